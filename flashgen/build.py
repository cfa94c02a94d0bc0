"""The orchestrator: paths -> parsed files -> notes -> books -> rendered fields -> .apkg files.

Each stage is a pure function in its own module; this one wires them, keeps
the diagnostics, and does the I/O: reading inputs and media, the render cache,
the lock file, writing packages. ``--strict`` is decided here, once, before
anything is written.

A rebuild costs what changed: a book whose input files, lock and settings are
as the last build left them is neither parsed nor written again (its figures
and diagnostics come from the state file in the output folder), and a card
whose text is unchanged comes from the render cache.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import hashlib
import html
import json
import multiprocessing
import os
import pathlib
import re
import sys
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterator, Mapping, Sequence

from . import __version__
from .changes import Change, Changes, NoteOutcome, classify, removed_notes
from .collect import Inputs, collect_existing, within
from .continuity import Continuity, carry_over, sketch
from .dedupe import DEFAULT_THRESHOLD, Deduped, Note, combine, dedupe
from .lockfile import MAX_TIME, Lock, NoteState, lock_text, read_lock
from .model import Diagnostic, FlashgenError, Location, ParsedFile, Severity
from .names import book_title, slug
from .notetype import notetype_hash
from .organise import Book, Chapter, Settings, note_tags, organise, source_text
from .parse import book_of, parse_file
from .render import RenderedCard, finish_images, inert_anki_syntax, render_card, unsafe_markup

__all__ = ["BuildOptions", "BuildReport", "build", "plan", "Plan", "SPLIT_MODES"]

SPLIT_MODES = ("book", "chapter", "none")
MAX_MEDIA_BYTES = 50 * 1024 * 1024
STATE_FILE = ".flashgen-state.json"
STATE_VERSION = 2  # 2: paths relative to the output folder, in POSIX form
_PARALLEL_FROM = 64  # below this many items a process pool costs more than it saves

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class BuildOptions:
    out_dir: str = "out"
    split: str = "book"
    lock_path: str = "flashgen.lock"
    strict: bool = False
    settings: Settings = field(default_factory=Settings)
    threshold: float = DEFAULT_THRESHOLD
    build_time: int | None = None  # default: $SOURCE_DATE_EPOCH, else now
    jobs: int | None = None  # worker processes; default: every core
    cache_dir: str | None = None  # render cache; default: the user cache folder
    use_cache: bool = True
    write: bool = True  # False: plan and report only
    # notes whose content change is not taken (push: edited in Anki since the last push): they keep
    # their lock entry and their old modification time, so Anki keeps its newer copy
    hold_back: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a build decides before rendering: also what `stats` and `preview` show."""

    files: tuple[ParsedFile, ...]
    deduped: Deduped
    books: tuple[Book, ...]
    diagnostics: tuple[Diagnostic, ...]
    roots: MappingProxyType  # input file -> the folder named on the command line it was found in
    # which notes took over a reworded note's identity, and which lock notes no source gives
    continuity: Continuity = Continuity((), MappingProxyType({}), ())
    removed: tuple[Change, ...] = ()  # those lock notes, with book, deck and question

    @property
    def questions(self) -> int:
        return sum(f.questions for f in self.files)


@dataclass(frozen=True, slots=True)
class BuildReport:
    files: int
    questions: int
    notes: int
    merged: int
    decks: int
    written: tuple[str, ...]  # .apkg paths written by this build
    unchanged: tuple[str, ...]  # .apkg paths of books that needed no rebuild
    diagnostics: tuple[Diagnostic, ...]
    seconds: float
    changed_notes: int  # new or changed since the lock
    refused: bool = False  # --strict found problems: nothing written
    changes: Changes = Changes()  # note by note, for the books this build read (all of them unless reused)

    def count(self, severity: Severity) -> int:
        return sum(1 for d in self.diagnostics if d.severity is severity)


# --- parallel work -------------------------------------------------------------------------


def _jobs(requested: int | None) -> int:
    return max(1, requested if requested else (os.cpu_count() or 1))


def _start_method() -> str:
    """How worker processes start: fork on Linux, spawn elsewhere (Windows has only spawn).

    Workers take nothing from this process but their initializer arguments and tasks, so both
    give the same bytes (tests/test_portable.py). fork is kept where it is safe because a pool
    is ready sooner: 0.03 s against 0.2-0.5 s for spawned workers to import flashgen again
    (2 cores, Python 3.11), which counts in a one-book rebuild of about a second; on a cold
    20,000-question build the two were within the noise (12-16 s each). macOS offers fork, but
    its system libraries are not fork-safe (Python's own default there is spawn).
    """
    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods and sys.platform.startswith("linux") else "spawn"


@contextmanager
def _workers(jobs: int, pinned_chapters: Mapping[str, str] | None = None) -> Iterator[object | None]:
    """A pool of worker processes, started now, while this process is still small.

    ``pinned_chapters`` (the lock's) is handed to each worker once, for deduplicating books there.
    """
    if jobs <= 1:
        yield None
        return
    context = multiprocessing.get_context(_start_method())
    pool = None
    try:
        with _stop_signals_held():
            pool = context.Pool(jobs, initializer=_start_worker, initargs=(dict(pinned_chapters or {}),))
        yield pool
    finally:
        if pool is not None:  # also on an interrupt: workers never outlive the build
            pool.terminate()
            pool.join()


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (POSIX) while workers start: they inherit the mask, so none is
    interrupted before its initializer has set what an interrupt does there. Delivered after."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no masks, and no signals that need one
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_worker(pinned_chapters: Mapping[str, str]) -> None:
    """A worker's initializer: its signals, then the lock's pins.

    Signals that stop the command are the main process's to handle: it stops the pool, the
    way the pool expects. Ctrl-C, ``timeout`` and CI runners signal the whole process group;
    a worker with Python's handlers printed a KeyboardInterrupt or BrokenPipe traceback, and a
    worker killed while waiting for work dies holding the pool's queue lock, so that stopping
    the pool then waits for ever (``timeout 3 flashgen build`` hung so). So a worker leaves
    the group (POSIX), ignores SIGINT (a Windows console sends Ctrl-C to every process in it),
    and dies quietly of SIGTERM, which is how ``pool.terminate()`` stops it.
    """
    import signal

    if hasattr(os, "setpgid"):
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    _keep_pins(pinned_chapters)


def _chunk_size(pool, items: int) -> int:
    """Items sent to a worker at a time: small enough to balance the workers, large enough to pay the pickling."""
    return max(1, min(64, items // (pool._processes * 8)))


def _map(
    function, items: list, pool, stage: str, progress: Progress | None, at_least: int = _PARALLEL_FROM, chunk: int | None = None
) -> list:
    """``[function(x) for x in items]``, over the worker pool when there are ``at_least`` items (``chunk`` at a time)."""
    if progress:
        progress(stage, 0, len(items))
    if pool is None or len(items) < at_least:
        results = []
        for i, item in enumerate(items):
            results.append(function(item))
            if progress and (i % 64 == 0 or i + 1 == len(items)):
                progress(stage, i + 1, len(items))
        return results
    chunk = chunk or _chunk_size(pool, len(items))
    results = []
    for result in pool.imap(function, items, chunksize=chunk):
        results.append(result)
        if progress and (len(results) % chunk == 0 or len(results) == len(items)):
            progress(stage, len(results), len(items))
    return results


_PINNED_CHAPTERS: Mapping[str, str] = {}  # in a worker: the lock's chapter pins


def _keep_pins(pinned_chapters: Mapping[str, str]) -> None:
    global _PINNED_CHAPTERS
    _PINNED_CHAPTERS = pinned_chapters


def _parse_book(task: tuple[tuple[str, ...], float]) -> tuple[tuple[ParsedFile, ...], Deduped]:
    """On a worker: parse one book's files and deduplicate its cards.

    The files come back without their cards, which would be most of what crosses
    between the processes: the notes hold the text that is kept.
    """
    paths, threshold = task
    parsed = tuple(parse_file(p) for p in paths)
    deduped = dedupe((c for f in parsed for c in f.cards), threshold, _PINNED_CHAPTERS)
    return tuple(dataclasses.replace(f, cards=()) for f in parsed), deduped


def _render_texts(texts: tuple[str, str, str, str]) -> RenderedCard:
    card = render_card(*texts)
    for part in (card.title, card.question, card.answer, card.context):
        problems = unsafe_markup(part.html)
        if problems:  # a renderer bug, never an input problem: refuse to ship it (or cache it)
            raise RuntimeError(f"rendered field has live markup: {problems[:3]}")
    return card


# --- planning --------------------------------------------------------------------------------


def _plan_files(
    files: Sequence[str],
    roots: Sequence[str],
    settings: Settings,
    threshold: float,
    lock: Lock,
    pool=None,
    progress: Progress | None = None,
    book_of_file: Mapping[str, str] | None = None,
    other_books: Sequence[str] = (),
) -> Plan:
    """Parse, dedupe, carry identities over and organise ``files``; ``other_books`` are books the
    inputs also hold but this run does not read (an incremental build reuses them)."""
    parsed, deduped = None, None
    if pool is not None and book_of_file is not None:
        parsed, deduped = _parse_by_book(files, book_of_file, threshold, pool, progress)
    if deduped is None:
        parsed = _map(parse_file, list(files), pool, "parse", progress)
        deduped = dedupe((c for f in parsed for c in f.cards), threshold, lock.chapters)
    read = {f.meta.source.strip() for f in parsed}
    continuity = carry_over(deduped.notes, lock.notes, read, read | set(other_books), threshold)
    deduped = dataclasses.replace(deduped, notes=continuity.notes)
    books = organise(deduped.notes, settings, lock.decks)
    diagnostics = tuple(d for f in parsed for d in f.diagnostics) + deduped.diagnostics
    roots_of = MappingProxyType(dict(zip(files, roots, strict=True)))
    removed = removed_notes(continuity.removed, lock.notes, _titles(lock, settings))
    return Plan(tuple(parsed), deduped, books, diagnostics, roots_of, continuity, removed)


def _titles(lock: Lock, settings: Settings) -> dict[str, str]:
    """Book titles for the books the lock names."""
    overrides = dict(settings.title_overrides)
    return {book: book_title(book, overrides) for book in {s.book for s in lock.notes.values()} if book}


def _parse_by_book(files: Sequence[str], book_of_file: Mapping[str, str], threshold: float, pool, progress):
    """Parse and deduplicate each book on a worker: (parsed files in input order, cardless; combined notes).

    ``book_of_file`` comes from :func:`book_of`, which agrees with the parser; should a
    book's cards still turn up in two groups, both come back None (the files came
    back without their cards) and the caller parses and deduplicates in one piece.
    """
    groups: dict[str, list[str]] = {}
    for path in files:
        groups.setdefault(book_of_file[path], []).append(path)
    tasks = [(tuple(paths), threshold) for _, paths in sorted(groups.items())]
    results = _map(_parse_book, tasks, pool, "parse", progress, at_least=2, chunk=1)  # books: few, large, uneven
    books_seen = [{n.book for n in deduped.notes} for _, deduped in results]
    if sum(map(len, books_seen)) != len(set().union(*books_seen)):
        return None, None
    by_path = {f.meta.path: f for parsed, _ in results for f in parsed}
    return [by_path[p] for p in files], combine(deduped for _, deduped in results)


def plan(
    paths: Sequence[str],
    settings: Settings = Settings(),
    threshold: float = DEFAULT_THRESHOLD,
    lock: Lock = Lock(),
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Collect, parse, dedupe and organise: the pure part of a build (parsing on ``jobs`` workers, default all cores)."""
    inputs = collect_existing(paths)
    with _workers(_jobs(jobs) if len(inputs.files) >= _PARALLEL_FROM else 1) as pool:
        the_plan = _plan_files(inputs.files, inputs.roots, settings, threshold, lock, pool, progress)
    return dataclasses.replace(the_plan, diagnostics=inputs.diagnostics + the_plan.diagnostics)


def _build_time(given: int | None) -> int:
    if given is not None:
        return int(given)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            seconds = int(epoch)
        except ValueError:
            seconds = -1
        if not 0 <= seconds <= MAX_TIME:  # it becomes note times in the lock, which holds only these
            raise FlashgenError(f"SOURCE_DATE_EPOCH must be whole seconds in 0..{MAX_TIME}, not {epoch!r}")
        return seconds
    return int(time.time())


# --- media ----------------------------------------------------------------------------

_SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}$")


def _resolve_image(url: str, origin: Location, root: str) -> tuple[str | None, bytes | None, Diagnostic | None]:
    """An image path from a card -> (media name, bytes), or a diagnostic. Never reads outside ``root``."""
    path = urllib.parse.unquote(url.split("#", 1)[0].split("?", 1)[0])
    if not path or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path) or os.path.isabs(path) or path.startswith(("\\", "~")):
        return None, None, Diagnostic(
            Severity.ERROR, "unsafe-image", f"image {url!r} is not a relative path inside the input folder; not bundled", origin
        )
    candidate = os.path.normpath(os.path.join(os.path.dirname(origin.path), path))
    real = os.path.realpath(candidate)
    if not within(real, root):  # the rule input files follow too
        return None, None, Diagnostic(
            Severity.ERROR, "unsafe-image", f"image {url!r} leads outside the input folder; not read", origin
        )
    if not os.path.isfile(real):
        return None, None, Diagnostic(Severity.WARNING, "missing-image", f"image {url!r} not found", origin)
    try:
        if os.path.getsize(real) > MAX_MEDIA_BYTES:
            return None, None, Diagnostic(Severity.WARNING, "large-image", f"image {url!r} is over 50 MB; skipped", origin)
        with open(real, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return None, None, Diagnostic(Severity.WARNING, "missing-image", f"image {url!r} unreadable: {exc.strerror}", origin)
    suffix = os.path.splitext(real)[1].lower()
    suffix = suffix if _SAFE_SUFFIX.match(suffix) else ""
    return f"flashgen-{hashlib.sha256(data).hexdigest()[:16]}{suffix}", data, None


# --- fields, hashes, ids ---------------------------------------------------------------------


def _note_fields(note: Note, book: Book, chapter: Chapter, card: RenderedCard, media_names: dict) -> tuple[str, ...]:
    return (
        finish_images(card.question, media_names),
        finish_images(card.answer, media_names),
        finish_images(card.title, media_names),
        finish_images(card.context, media_names),
        inert_anki_syntax(html.escape(source_text(note, book, chapter), quote=False)),
    )


def _content_hash(fields: Sequence[str], tags: Sequence[str]) -> str:
    payload = "\x1f".join(fields) + "\x1e" + " ".join(tags)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def note_ids(created: dict[str, int]) -> dict[str, int]:
    """Anki note ids from creation times (Anki shows them as 'created'); unique, in one linear pass."""
    ids: dict[str, int] = {}
    previous = 0
    for key in sorted(created, key=lambda k: (created[k], k)):
        previous = max(created[key] * 1000, previous + 1)
        ids[key] = previous
    return ids


def _open_cache(options: BuildOptions):
    """The render cache, or None (with a notice) when it is off or cannot be used."""
    if not options.use_cache:
        return None, []
    from .cache import RenderCache, default_cache_dir

    folder = options.cache_dir or default_cache_dir()
    try:
        return RenderCache(folder), []
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation: never fail a build for it
        notice = Diagnostic(Severity.NOTICE, "no-cache", f"render cache unavailable ({exc}); rendering everything", Location(folder))
        return None, [notice]


class _PendingRender:
    """One package's cards being rendered: cached ones looked up now, the rest on the worker pool.

    Started one package ahead, so workers render the next package while this
    process writes the current one.
    """

    def __init__(self, members: list[tuple[Note, Book, Chapter]], cache, pool):
        from .cache import card_key

        self.cache = cache
        texts = [(n.title, n.question, n.answer, n.context) for n, _, _ in members]
        self.keys = [card_key(*t) for t in texts]
        self.found: dict[str, RenderedCard] = {}
        if cache is not None:
            try:
                self.found = cache.get_many(set(self.keys))
            except Exception:  # noqa: BLE001 - a damaged cache is a miss
                self.found = {}
        self.missing = sorted({k: t for k, t in zip(self.keys, texts, strict=True) if k not in self.found}.items())
        work = [t for _, t in self.missing]
        self.pending = None
        if pool is not None and len(work) >= _PARALLEL_FROM:
            self.pending = pool.map_async(_render_texts, work, chunksize=_chunk_size(pool, len(work)))
        self.work = work

    def result(self) -> list[RenderedCard]:
        fresh = self.pending.get() if self.pending is not None else [_render_texts(t) for t in self.work]
        new = {k: card for (k, _), card in zip(self.missing, fresh, strict=True)}
        if self.cache is not None and new:
            try:
                self.cache.put_many(new)
            except Exception:  # noqa: BLE001 - e.g. a read-only cache folder; the build is unaffected
                pass
        self.found.update(new)
        return [self.found[k] for k in self.keys]


class _Packaging:
    """Packages being made on the worker pool, written to temporary files here, in order, as they finish.

    Only this process writes into the output folder, and every temporary file it
    wrote is in ``prepared`` before anything else can fail, so the build can
    always commit or delete them all.
    """

    def __init__(self, pool):
        self.pool = pool
        self.queue: collections.deque = collections.deque()
        self.prepared: list[tuple[str, str]] = []  # (temporary file, final path)

    def add(self, path: str, notes: list, media: list, notetype_mod: int) -> None:
        from .package import package_bytes

        if self.pool is None:
            self.queue.append((path, _Done(package_bytes, notes, media, notetype_mod)))
        else:
            self.queue.append((path, self.pool.apply_async(package_bytes, (notes, media, notetype_mod))))

    def write_finished(self, wait: bool = False) -> None:
        """Write each package made so far to its temporary file (``wait``: every package)."""
        from .package import prepare_package

        while self.queue and (wait or self.queue[0][1].ready()):
            path, pending = self.queue.popleft()
            try:
                self.prepared.append((prepare_package(path, pending.get()), path))
            except OSError as exc:
                raise FlashgenError(f"{path}: cannot write: {exc.strerror or exc}") from None


class _Done:
    """Work done here, when there is no pool, with the face of a pool's pending result (errors raised by ``get``)."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def ready(self) -> bool:
        return True

    def get(self):
        return self.function(*self.args)


# --- output ----------------------------------------------------------------------------------


@contextmanager
def _exclusive(out_dir: str) -> Iterator[None]:
    """One build at a time writes into a folder: concurrent builds queue instead of mixing files.

    The operating system's own lock, so a build that dies never leaves the folder locked.
    """
    with _holding(os.path.join(out_dir, ".flashgen-build.lock")):
        yield


def _lock_guard(lock_path: str) -> str:
    """The file whose lock guards the lock file (builds into other folders may share the lock file).

    A file of its own, never the lock file itself: on Windows a locked byte cannot be read by
    anyone else, and an open file cannot be replaced, while the lock file is read by every
    build and replaced by each that changes it. Hidden, beside it; it stays, since deleting a
    lock file other processes may be waiting on would let two of them hold it.
    """
    folder, name = os.path.split(os.path.abspath(lock_path))
    return os.path.join(folder, f".{name}.flashgen-lock")


@contextmanager
def _holding(path: str, required: bool = True) -> Iterator[None]:
    """An exclusive lock on the file at ``path`` (created if need be), for as long as the block runs.

    Not ``required``: where the file cannot be made (a read-only folder), the block runs unlocked.
    """
    from .package import open_no_follow

    try:  # a link planted in the output folder must not be opened: "w" would have truncated its target
        fd = open_no_follow(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        if exc.errno == errno.ELOOP or required:
            raise FlashgenError(f"{path}: cannot open the build lock: {exc.strerror}") from None
        fd = None
    if fd is None:
        yield
        return
    try:
        _lock_file(fd, True)
        try:
            yield
        finally:
            _lock_file(fd, False)
    finally:
        os.close(fd)


def _lock_file(fd: int, lock: bool) -> None:
    """Take (waiting as long as it takes) or release an exclusive lock on an open file: flock on POSIX, msvcrt on Windows."""
    # The stdlib, not the filelock package: its current release adds at-fork and audit hooks to
    # the process, and this one forks its worker pool.
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position: always byte 0
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK if lock else msvcrt.LK_UNLCK, 1)
                return
            except OSError as exc:
                if not lock or exc.errno != errno.EDEADLOCK:  # EDEADLOCK: still held after 10 s of retries
                    raise
    else:
        fcntl.flock(fd, fcntl.LOCK_EX if lock else fcntl.LOCK_UN)


def _prepare_out_dir(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise FlashgenError(f"{out_dir}: cannot create output folder: {exc.strerror}") from None
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK | os.X_OK):
        raise FlashgenError(f"{out_dir}: output folder is not writable")


def _package_name(book: Book, chapter: Chapter, split: str) -> str:
    if split == "none":
        return "flashgen.apkg"
    if split == "chapter":
        return f"{book.slug}--{chapter.ordinal()}-{slug(chapter.name)}.apkg"
    return f"{book.slug}.apkg"


def _file_digest(path: str) -> tuple[str, str]:
    """(sha256 of the bytes, the book the file belongs to) without parsing it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return f"unreadable:{exc.errno}", book_of(b"", path)
    return hashlib.sha256(data).hexdigest(), book_of(data, path)


def _sha_of_file(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def _settings_key(options: BuildOptions) -> str:
    from .render import RENDER_VERSION

    s = options.settings
    parts = (
        __version__,
        RENDER_VERSION,
        notetype_hash(),
        options.split,
        repr(options.threshold),
        json.dumps(sorted(s.title_overrides.items())),
        s.deck_template,
        repr(s.min_rating),
        repr(s.keep_unrated),
        _state_key(options.lock_path, options.out_dir),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _read_state(out_dir: str) -> dict:
    from .package import open_no_follow

    try:  # a state file behind a link is not this folder's: not read
        with os.fdopen(open_no_follow(os.path.join(out_dir, STATE_FILE), os.O_RDONLY), encoding="utf-8") as handle:
            state = json.load(handle)
        return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}
    except (OSError, ValueError):
        return {}


def _state_key(path: str, out_dir: str) -> str:
    """How the state file names a path: relative to the output folder that holds it, in POSIX form.

    So ``notes/`` and ``/abs/path/notes`` are one library, on any OS, and moving the
    sources together with the output folder keeps it.
    """
    try:
        path = os.path.relpath(os.path.abspath(path), os.path.abspath(out_dir))
    except ValueError:  # Windows: no relative path leads to another drive
        path = os.path.abspath(path)
    return pathlib.PurePath(path).as_posix()


def _reusable_books(
    state: dict, settings_key: str, lock_sha: str | None, inputs_by_book: dict[str, dict[str, str]], out_dir: str
) -> dict[str, dict]:
    """Books whose inputs, settings, lock and packages are exactly as the last build left them."""
    if state.get("settings") != settings_key or state.get("lock") != lock_sha:
        return {}
    reusable = {}
    for book, record in state.get("books", {}).items():
        if inputs_by_book.get(book) != record.get("inputs"):
            continue
        if all(_sha_of_file(os.path.join(out_dir, name)) == sha for name, sha in record.get("packages", {}).items()):
            reusable[book] = record
    return reusable


def _work_to_do(inputs: Inputs, options: BuildOptions, settings_key: str, state: dict, lock_sha: str | None):
    """Which input files need parsing: those of books that changed since the last build into this folder.

    Returns (input hashes by book and state key, each file's book, state records of the books reused
    as they are, [(file, root)] to parse).
    """
    inputs_by_book: dict[str, dict[str, str]] = {}
    book_of_file: dict[str, str] = {}
    for path in inputs.files:
        digest, book = _file_digest(path)
        inputs_by_book.setdefault(book, {})[_state_key(path, options.out_dir)] = digest
        book_of_file[path] = book
    reused = _reusable_books(state, settings_key, lock_sha, inputs_by_book, options.out_dir)
    if options.split == "none" and set(reused) != set(inputs_by_book):
        reused = {}  # one package holds every book: all or nothing
    todo = [(p, r) for p, r in zip(inputs.files, inputs.roots, strict=True) if book_of_file[p] not in reused]
    return inputs_by_book, book_of_file, reused, todo


def _diagnostic_from(d: dict, path_of: Mapping[str, str]) -> Diagnostic:
    """A diagnostic from the state file, its file named as this build spells it (``path_of``: state key -> path)."""
    return Diagnostic(Severity(d["severity"]), d["code"], d["message"], Location(path_of.get(d["path"], d["path"]), d["line"]))


# --- the build ---------------------------------------------------------------------------------


class _Stale(Exception):
    """Another build changed the lock file while this one was working: start over from its result."""


def build(paths: Sequence[str], options: BuildOptions = BuildOptions(), progress: Progress | None = None) -> BuildReport:
    """Build .apkg files from flashcard files and folders; see README "Building decks".

    Concurrent builds into one output folder write one at a time; a build that
    finds the lock file changed under it starts over, so the lock and packages
    always come whole from one build's view of the sources.
    """
    if options.split not in SPLIT_MODES:
        raise FlashgenError(f"--split must be one of {', '.join(SPLIT_MODES)}, not {options.split!r}")
    for _attempt in range(5):
        try:
            return _build_once(paths, options, progress)
        except _Stale:
            continue
    raise FlashgenError(f"{options.lock_path}: lock file keeps changing under this build (other builds running?)")


def _build_once(paths: Sequence[str], options: BuildOptions, progress: Progress | None) -> BuildReport:
    from .package import MediaFile, PackageNote

    started = time.perf_counter()
    jobs = _jobs(options.jobs)
    build_time = _build_time(options.build_time)
    inputs = collect_existing(paths)
    lock_sha_read = _sha_of_file(options.lock_path)
    lock = read_lock(options.lock_path)

    settings_key = _settings_key(options)
    state = _read_state(options.out_dir) if options.write else {}
    inputs_by_book, book_of_file, reused, todo = _work_to_do(inputs, options, settings_key, state, lock_sha_read)

    with _workers(jobs if len(todo) >= _PARALLEL_FROM else 1, lock.chapters) as pool:
        the_plan = _plan_files(
            [p for p, _ in todo],
            [r for _, r in todo],
            options.settings,
            options.threshold,
            lock,
            pool,
            progress,
            book_of_file,
            other_books=sorted(reused),
        )
        figures = _BookFigures.of(the_plan)
        # the parsed cards (if they came back from the workers at all) are no longer needed
        the_plan = dataclasses.replace(the_plan, files=tuple(dataclasses.replace(f, cards=()) for f in the_plan.files))
        diagnostics = list(the_plan.diagnostics) + list(inputs.diagnostics)  # missing paths raised already
        path_of = {_state_key(p, options.out_dir): p for p in inputs.files}
        for record in reused.values():
            diagnostics += [_diagnostic_from(d, path_of) for d in record["diagnostics"]]

        groups: dict[str, list[tuple[Note, Book, Chapter]]] = {}
        for b in the_plan.books:
            for c in b.chapters:
                for n in c.notes:
                    groups.setdefault(os.path.join(options.out_dir, _package_name(b, c, options.split)), []).append((n, b, c))
        created = {key: s.created for key, s in lock.notes.items()}
        for book_notes in groups.values():
            for note, _, _ in book_notes:
                created.setdefault(note.key, build_time)
        ids = note_ids(created)
        nt_hash = notetype_hash()
        nt_mod = lock.notetype_mod if lock.notetype_hash == nt_hash else max(build_time, lock.notetype_mod + 1)
        states: dict[str, NoteState] = dict(lock.notes)
        changed = 0
        outcomes: list[NoteOutcome] = []
        fresh_decks = {key: deck for b in the_plan.books for key, deck in b.moved}
        refuse = options.strict and _has_problems(diagnostics)  # known before rendering: render nothing
        out_existed = os.path.isdir(options.out_dir)
        packaging = _Packaging(pool)
        written: list[str] = []

        with contextlib.ExitStack() as stack:
            touched = {note.key for members in groups.values() for note, _, _ in members}  # the notes this build writes
            if options.write and not refuse:
                _prepare_out_dir(options.out_dir)
                stack.enter_context(_exclusive(options.out_dir))
                stack.callback(_clean_out_dir, options)  # whatever way this build ends, it leaves no temporary file
                if _settle(options, lock, lock_sha_read, touched):
                    raise _Stale()
            cache, cache_problems = _open_cache(options) if groups and not refuse else (None, [])
            if cache is not None:
                stack.callback(cache.close)
            diagnostics += cache_problems
            try:
                ordered = sorted(groups.items()) if not refuse else []
                # packages render a few ahead on the workers, so they never wait while this process
                # finishes the current one's fields; few enough that little is held in memory
                ahead = 1 + (pool._processes if pool is not None else 0)
                upcoming = collections.deque(_PendingRender(m, cache, pool) for _, m in ordered[:ahead])
                for i, (path, members) in enumerate(ordered):
                    cards = upcoming.popleft().result()
                    if i + ahead < len(ordered):
                        upcoming.append(_PendingRender(ordered[i + ahead][1], cache, pool))
                    package_notes, media = [], {}
                    for (note, book, chapter), card in zip(members, cards, strict=True):
                        fields, note_media = _finish(note, book, chapter, card, the_plan.roots, diagnostics)
                        tags = note_tags(note, book, chapter)
                        digest = _content_hash(fields, tags)
                        old = lock.notes.get(note.key)
                        if old is not None and note.key in options.hold_back:
                            package_notes.append(PackageNote(note.key, fields, tags, chapter.deck, old.mod, ids[note.key]))
                            media.update((name, MediaFile(name, data)) for name, data in note_media)
                            figures.add(note.book, chapter.deck, path)
                            continue
                        if old is None or old.hash != digest:
                            changed += 1
                            mod = max(build_time, old.mod + 1) if old else build_time
                        else:
                            mod = old.mod
                        # the sketch is only worked out again when the content changed
                        known = old.sketch if old is not None and old.hash == digest and old.sketch else None
                        states[note.key] = NoteState(
                            digest,
                            mod,
                            note.chapter,
                            chapter.deck,
                            created[note.key],
                            note.book,
                            note.question,
                            known or sketch(note.answer, note.context),
                            old.pushed if old is not None else None,
                        )
                        outcomes.append(
                            NoteOutcome(note.key, book.title, chapter.deck, note.question, digest, fresh_decks.get(note.key))
                        )
                        package_notes.append(PackageNote(note.key, fields, tags, chapter.deck, mod, ids[note.key]))
                        media.update((name, MediaFile(name, data)) for name, data in note_media)
                        figures.add(note.book, chapter.deck, path)
                    if options.write and not refuse:
                        packaging.add(path, package_notes, list(media.values()), nt_mod)
                        packaging.write_finished()
                    if progress:
                        progress("write", i + 1, len(groups))
                packaging.write_finished(wait=True)
                refuse = options.strict and _has_problems(diagnostics)
                if options.write and not refuse:

                    def state_file(lock_sha: str | None, temp_of: dict[str, str], lock_changed: bool) -> str | None:
                        if groups or set(reused) != set(state.get("books", {})) or lock_changed:
                            return _write_state(options, settings_key, inputs_by_book, reused, figures, diagnostics, lock_sha, temp_of)
                        return None

                    kept = {name for record in reused.values() for name in record["packages"]}
                    _commit(options, lock, states, touched, (nt_hash, nt_mod), packaging.prepared, state_file, kept, inputs_by_book)
                    written = [path for _, path in packaging.prepared]
                    packaging.prepared = []
            finally:
                for tmp, _ in packaging.prepared:  # a failure, or --strict: none of this build's packages appear
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                if refuse and not out_existed:
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(options.out_dir, ".flashgen-build.lock"))
                        os.rmdir(options.out_dir)

    diagnostics.sort(key=lambda d: (d.location, d.code))
    reused_packages = tuple(sorted(os.path.join(options.out_dir, name) for record in reused.values() for name in record["packages"]))
    built_notes = sum(len(members) for members in groups.values())
    return BuildReport(
        files=len(inputs.files),
        questions=the_plan.questions + sum(r["questions"] for r in reused.values()),
        notes=built_notes + sum(r["notes"] for r in reused.values()),
        merged=the_plan.deduped.merged + sum(r["merged"] for r in reused.values()),
        decks=len({c.deck for m in groups.values() for _, _, c in m}) + sum(r["decks"] for r in reused.values()),
        written=tuple(written),
        unchanged=reused_packages,
        diagnostics=tuple(diagnostics),
        seconds=time.perf_counter() - started,
        changed_notes=changed,
        refused=bool(refuse),
        changes=classify(
            outcomes,
            lock.notes,
            the_plan.continuity.reworded,
            the_plan.continuity.removed,
            _titles(lock, options.settings),
        ),
    )


def _settle(options: BuildOptions, lock: Lock, lock_sha_read: str | None, touched: set[str]) -> bool:
    """With the output folder's build lock just taken: whether this build must start over.

    It must if a killed build's commit was still to be finished or undone (the folder is not
    what this build planned from), or if another build changed the lock under the notes this
    one is about to write. Stale temporary files of the folder go.
    """
    from .commit import recover

    with _holding(_lock_guard(options.lock_path), required=False):  # the lock is read while no build replaces it
        if recover(options.out_dir, options.lock_path):
            return True
    _clean_out_dir(options)
    if _sha_of_file(options.lock_path) == lock_sha_read:
        return False
    return _lock_moved(lock, read_lock(options.lock_path), touched, None)


def _lock_moved(before: Lock, now: Lock, touched: set[str], notetype: tuple[str, int] | None) -> bool:
    """Whether ``now`` differs from ``before`` in what this build's packages rest on: its notes' entries, the note type.

    Entries of other notes may change: builds into other folders sharing the lock add theirs.
    A note type as this build would write it is no change (builds of one version agree on it).
    """
    now_type, before_type = (now.notetype_hash, now.notetype_mod), (before.notetype_hash, before.notetype_mod)
    if now_type != before_type and now_type != notetype:
        return True
    return any(now.notes.get(key) != before.notes.get(key) for key in touched)


def _clean_out_dir(options: BuildOptions) -> None:
    """Delete temporary packages and state files in the output folder (the build lock held: none is a running build's)."""
    from .commit import JOURNAL, clean_stale_temps

    lock_folder, lock_name = os.path.split(os.path.abspath(options.lock_path))
    mine = lock_name if os.path.abspath(options.out_dir) == lock_folder else None  # the lock's are cleaned under its own lock
    clean_stale_temps(options.out_dir, lambda target: target != mine and (target.endswith(".apkg") or target in (STATE_FILE, JOURNAL)))


def _commit(options: BuildOptions, lock: Lock, states, touched, notetype, prepared, state_file, kept, inputs_by_book) -> None:
    """Put this build's packages (``prepared``: [(temporary file, path)]), state file and lock in place as one change.

    Under the lock file's own lock, the lock is read again and this build's entries merged
    into it, so builds into other folders that share it keep theirs; if one of them changed
    an entry of a note this build wrote, the build starts over. Packages an earlier build of
    this lock wrote into the folder for these books, and this build does not (a changed
    ``--split``, a renamed chapter), are removed. See commit.py for how the commit is one change.
    """
    from .commit import clean_stale_temps, commit
    from .package import write_atomically

    lock_folder, lock_name = os.path.split(os.path.abspath(options.lock_path))
    # not required: a lock folder this build cannot write in is one where it can change nothing
    # (if the lock must change, writing it fails below, with the reason)
    with _holding(_lock_guard(options.lock_path), required=False):
        clean_stale_temps(lock_folder, lambda target: target == lock_name)
        current = read_lock(options.lock_path)
        if _lock_moved(lock, current, touched, notetype):
            raise _Stale()
        notes = dict(current.notes)
        notes.update((key, states[key]) for key in touched)
        changed = notes != dict(current.notes) or notetype != (current.notetype_hash, current.notetype_mod)
        lock_temp = state_temp = None
        committed = False
        try:
            if changed or not os.path.exists(options.lock_path):
                data = lock_text(Lock(MappingProxyType(notes), *notetype)).encode("utf-8")
                try:
                    lock_temp = write_atomically(options.lock_path, lambda handle: handle.write(data), commit=False)
                except OSError as exc:
                    raise FlashgenError(f"{options.lock_path}: cannot write lock file: {exc.strerror}") from None
                lock_sha = hashlib.sha256(data).hexdigest()
            else:
                lock_sha = _sha_of_file(options.lock_path)
            renames = list(prepared)
            try:
                state_temp = state_file(lock_sha, {path: temp for temp, path in prepared}, changed)
            except OSError as exc:
                raise FlashgenError(f"{os.path.join(options.out_dir, STATE_FILE)}: cannot write: {exc.strerror}") from None
            if state_temp is not None:
                renames.append((state_temp, os.path.join(options.out_dir, STATE_FILE)))
            removals = _leftovers(options, {os.path.basename(path) for _, path in prepared} | set(kept), inputs_by_book)
            commit(options.out_dir, renames, (lock_temp, options.lock_path) if lock_temp else None, removals)
            committed = True
        finally:
            for temp in (lock_temp, state_temp) if not committed else ():
                if temp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)


def _leftovers(options: BuildOptions, keep: set[str], inputs_by_book) -> list[tuple[str, str]]:
    """(name, sha256) of packages the last build of this lock wrote for these books that this one does not write or keep.

    Only names the state file records as flashgen's, still holding the bytes it recorded:
    a file someone put in the folder, or changed since, is never removed.
    """
    previous = _read_state(options.out_dir)  # again: the build lock is held now
    if previous.get("lock_path", _state_key(options.lock_path, options.out_dir)) != _state_key(options.lock_path, options.out_dir):
        return []  # another library's packages (a state file written before the key existed is taken as this lock's)
    found = set()
    for book, record in previous.get("books", {}).items():
        if book not in inputs_by_book or not isinstance(record, dict) or not isinstance(record.get("packages"), dict):
            continue
        for name, sha in record["packages"].items():
            plain = isinstance(name, str) and os.path.basename(name) == name and name.endswith(".apkg")
            if plain and name not in keep and isinstance(sha, str) and _sha_of_file(os.path.join(options.out_dir, name)) == sha:
                found.add((name, sha))
    return sorted(found)


def _has_problems(diagnostics: Sequence[Diagnostic]) -> bool:
    return any(d.severity in (Severity.ERROR, Severity.WARNING) for d in diagnostics)


def _finish(note: Note, book: Book, chapter: Chapter, card: RenderedCard, roots, diagnostics: list):
    """The note's final fields, with its images resolved (problems go to ``diagnostics``)."""
    media_names: dict[str, str | None] = {}
    media: list[tuple[str, bytes]] = []
    for url, _alt in card.images:
        if url in media_names:
            continue
        name, data, problem = _resolve_image(url, note.origin, roots.get(note.origin.path, "."))
        media_names[url] = name
        if problem:
            diagnostics.append(problem)
        elif name is not None and data is not None:
            media.append((name, data))
    return _note_fields(note, book, chapter, card, media_names), media  # fields checked by _render_texts


class _BookFigures:
    """Per-book figures for the state file, gathered as packages are made."""

    def __init__(self, cards: dict, questions: dict, notes: dict, book_of_path: dict):
        self.cards, self.questions, self.notes_before_filter, self.book_of_path = cards, questions, notes, book_of_path
        self.notes: dict[str, int] = {}
        self.decks: dict[str, set] = {}
        self.packages: dict[str, set] = {}

    @classmethod
    def of(cls, the_plan: Plan) -> "_BookFigures":
        questions: dict[str, int] = {}
        for f in the_plan.files:
            book = f.meta.source.strip()
            questions[book] = questions.get(book, 0) + f.questions
        cards: dict[str, int] = {}  # every card is one occurrence of one note
        notes: dict[str, int] = {}
        for note in the_plan.deduped.notes:
            notes[note.book] = notes.get(note.book, 0) + 1
            cards[note.book] = cards.get(note.book, 0) + len(note.occurrences)
        return cls(cards, questions, notes, {f.meta.path: f.meta.source.strip() for f in the_plan.files})

    def add(self, book: str, deck: str, package: str) -> None:
        self.notes[book] = self.notes.get(book, 0) + 1
        self.decks.setdefault(book, set()).add(deck)
        self.packages.setdefault(book, set()).add(package)


def _write_state(options, settings_key, inputs_by_book, reused, figures: _BookFigures, diagnostics, lock_sha, temp_of) -> str:
    """Record what this build made of each book, so an unchanged book can be skipped next time.

    Written to a temporary file (returned) for the commit to rename in; ``temp_of`` maps each
    package to the temporary file that holds its new bytes, ``lock_sha`` is the committed lock's.
    """
    from .package import write_atomically

    diagnostics_of: dict[str, list[dict]] = {}
    for d in diagnostics:
        book = figures.book_of_path.get(d.location.path)
        if book is not None:
            diagnostics_of.setdefault(book, []).append({**d.as_dict(), "path": _state_key(d.location.path, options.out_dir)})
    books: dict[str, dict] = dict(reused)
    for book, files in inputs_by_book.items():
        if book in reused:
            continue
        books[book] = {
            "inputs": files,
            "packages": {os.path.basename(p): _sha_of_file(temp_of.get(p, p)) for p in sorted(figures.packages.get(book, ()))},  # beside the state
            "questions": figures.questions.get(book, 0),
            "notes": figures.notes.get(book, 0),
            "merged": figures.cards.get(book, 0) - figures.notes_before_filter.get(book, 0),
            "decks": len(figures.decks.get(book, ())),
            "diagnostics": diagnostics_of.get(book, []),
        }
    state = {
        "version": STATE_VERSION,
        "settings": settings_key,
        "lock": lock_sha,
        "lock_path": _state_key(options.lock_path, options.out_dir),  # whose packages these are (see _leftovers)
        "books": books,
    }
    text = json.dumps(state, indent=1, sort_keys=True)
    return write_atomically(os.path.join(options.out_dir, STATE_FILE), lambda handle: handle.write(text.encode("utf-8")), commit=False)
