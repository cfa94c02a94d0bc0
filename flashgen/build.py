"""The orchestrator: paths -> parsed files -> notes -> books -> assembled packages -> .apkg files.

Each stage is a pure function in its own module; this one wires them, keeps the
diagnostics, and does the I/O the stages do not: reading inputs, the render cache
(assemble.py reads media), the lock file. ``--strict`` is decided here, once, before anything is written.
The worker pool is workers.py's, what can be skipped state.py's, and putting the
results in place output.py's.

A rebuild costs what changed: a book whose input files, lock and settings are
as the last build left them is neither parsed nor written again (its figures
and diagnostics come from the state file in the output folder), and a card
whose text is unchanged comes from the render cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, Sequence

from .changes import Change, Changes
from .collect import collect_existing
from .lockfile import MAX_TIME, Lock
from .model import DEFAULT_THRESHOLD, Diagnostic, FlashgenError, Location, ParsedFile, Settings, Severity
from .output import Stale, clean_out_dir, commit_build, exclusive, left_behind, prepare_out_dir, settle
from .state import diagnostic_from, nothing_to_do, read_state, settings_key, sha_of_file, state_key, work_to_do

# The stages themselves are imported where they are used: a build that finds nothing to do
# (the commonest run) then imports none of them. Type names only, for the annotations:
if TYPE_CHECKING:
    from .continuity import Continuity
    from .dedupe import Deduped, Note
    from .organise import Book, Chapter
    from .assemble import PackageTask
    from .workers import Progress

__all__ = ["BuildOptions", "BuildReport", "build", "plan", "Plan", "SPLIT_MODES"]

SPLIT_MODES = ("book", "chapter", "none")
ALL_AT_ONCE = 2_000  # notes: up to this many, rendered in one batch split by cards, all held in memory at once
# Beyond that, a package larger than a worker's share over PIECES_PER_WORKER goes to the workers in pieces
# (of MIN_PIECE notes or more), so that at the end of a build none waits long while another finishes a
# large package (see _largest_piece).
PIECES_PER_WORKER = 4
MIN_PIECE = 128


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
    continuity: Continuity
    removed: tuple[Change, ...] = ()  # those lock notes, with book, deck and question
    # book -> the worker (workers.Lanes) that parsed it and keeps its note texts, for its package
    kept: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

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
    from .changes import removed_notes
    from .continuity import carry_over
    from .dedupe import dedupe
    from .organise import organise
    from .parse import parse_file
    from .workers import parse_by_book, shared_map

    parsed, deduped, kept = None, None, {}
    books = {book_of_file[f] for f in files} if book_of_file is not None else set()
    if pool is not None and len(books) >= 2 * pool._processes:  # else too few to keep every worker busy
        parsed, deduped, kept = parse_by_book(files, book_of_file, threshold, pool, progress)
    if deduped is None:
        if progress:
            progress("parse", 0, len(files))
        parsed = shared_map(parse_file, list(files), pool)
        deduped = dedupe((c for f in parsed for c in f.cards), threshold, lock.chapters)
    read = {f.meta.source.strip() for f in parsed}
    continuity = carry_over(deduped.notes, lock.notes, read, read | set(other_books), threshold)
    deduped = dataclasses.replace(deduped, notes=continuity.notes)
    books = organise(deduped.notes, settings, lock.decks)
    diagnostics = tuple(d for f in parsed for d in f.diagnostics) + deduped.diagnostics
    roots_of = MappingProxyType(dict(zip(files, roots, strict=True)))
    removed = removed_notes(continuity.removed, lock.notes, _titles(lock, settings))
    return Plan(tuple(parsed), deduped, books, diagnostics, roots_of, continuity, removed, MappingProxyType(kept))


def _titles(lock: Lock, settings: Settings) -> dict[str, str]:
    """Book titles for the books the lock names."""
    from .names import book_title

    overrides = dict(settings.title_overrides)
    return {book: book_title(book, overrides) for book in {s.book for s in lock.notes.values()} if book}


def plan(
    paths: Sequence[str],
    settings: Settings = Settings(),
    threshold: float = DEFAULT_THRESHOLD,
    lock: Lock = Lock(),
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Collect, parse, dedupe and organise: the pure part of a build (parsing on ``jobs`` workers, default all cores)."""
    from .workers import job_count, worker_pool, workers_for

    inputs = collect_existing(paths)
    with worker_pool(workers_for(inputs.files, job_count(jobs)), renders=False, packages=False) as pool:
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


# --- ids ---------------------------------------------------------------------------------------


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


def _package_name(book: Book, chapter: Chapter, split: str) -> str:
    from .names import slug

    if split == "none":
        return "flashgen.apkg"
    if split == "chapter":
        return f"{book.slug}--{chapter.ordinal()}-{slug(chapter.name)}.apkg"
    return f"{book.slug}.apkg"


# --- the build ---------------------------------------------------------------------------------


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
        except Stale:
            continue
    raise FlashgenError(f"{options.lock_path}: lock file keeps changing under this build (other builds running?)")


def _build_once(paths: Sequence[str], options: BuildOptions, progress: Progress | None) -> BuildReport:
    started = time.perf_counter()
    build_time = _build_time(options.build_time)
    inputs = collect_existing(paths)
    lock_sha_read = sha_of_file(options.lock_path)
    the_settings_key = settings_key(options)
    state = read_state(options.out_dir) if options.write else {}
    inputs_by_book, book_of_file, reused, todo = work_to_do(inputs, options, the_settings_key, state, lock_sha_read)
    if options.write and nothing_to_do(state, reused, inputs_by_book) and not left_behind(options):
        return _report_of_reused(inputs, reused, options, started)

    from .changes import NoteOutcome, classify
    from .lockfile import NoteState, read_lock
    from .notetype import notetype_hash
    from .state import BookFigures, write_state
    from .workers import Packaging, helper_ahead, job_count, worker_pool, workers_for

    jobs = job_count(options.jobs)
    lock = read_lock(options.lock_path)
    todo_files = [p for p, _ in todo]
    processes = workers_for(todo_files, jobs)
    with (
        # a worker per core: each assembles the books it parsed (workers.Lanes); one short, this process works too
        worker_pool(processes, lock.chapters, lanes=processes == jobs) as pool,
        helper_ahead(todo_files if pool is None else (), jobs, lambda: _first_build_of(todo_files, book_of_file, state, lock)) as helper,
    ):
        the_plan = _plan_files(
            todo_files,
            [r for _, r in todo],
            options.settings,
            options.threshold,
            lock,
            pool,
            progress,
            book_of_file,
            other_books=sorted(reused),
        )
        figures = BookFigures.of(the_plan)
        # the parsed cards (if they came back from the workers at all) are no longer needed
        the_plan = dataclasses.replace(the_plan, files=tuple(dataclasses.replace(f, cards=()) for f in the_plan.files))
        diagnostics = list(the_plan.diagnostics) + list(inputs.diagnostics)  # missing paths raised already
        path_of = {state_key(p, options.out_dir): p for p in inputs.files}
        for record in reused.values():
            diagnostics += [diagnostic_from(d, path_of) for d in record["diagnostics"]]

        groups: dict[str, list[tuple[Note, Book, Chapter]]] = {}
        for b in the_plan.books:
            for c in b.chapters:  # a chapter's notes all go to one package
                groups.setdefault(os.path.join(options.out_dir, _package_name(b, c, options.split)), []).extend((n, b, c) for n in c.notes)
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
        packaging = Packaging(pool)
        written: list[str] = []

        with contextlib.ExitStack() as stack:
            touched = {note.key for members in groups.values() for note, _, _ in members}  # the notes this build writes
            if options.write and not refuse:
                prepare_out_dir(options.out_dir)
                stack.enter_context(exclusive(options.out_dir))
                stack.callback(clean_out_dir, options)  # whatever way this build ends, it leaves no temporary file
                if settle(options, lock, lock_sha_read, touched):
                    raise Stale()
            cache, cache_problems = _open_cache(options) if groups and not refuse else (None, [])
            if cache is not None:
                stack.callback(cache.close)
            diagnostics += cache_problems
            try:
                ordered = sorted(groups.items()) if not refuse else []
                cache_dir = os.path.dirname(cache.path) if cache is not None else None

                def task_of(members, make_package: bool, kept: bool = False) -> PackageTask:
                    parse_key = the_plan.continuity.reworded  # a reworded note was kept under the key its question gave it
                    return _package_task(
                        members, the_plan.roots, lock, ids, options, build_time, nt_mod, cache_dir, make_package, kept, parse_key
                    )

                def lane_of(members) -> int | None:
                    """The worker that keeps the texts of all these notes (workers.Lanes), if one does."""
                    lanes = {the_plan.kept.get(note.book) for note, _, _ in members}
                    return lanes.pop() if len(lanes) == 1 else None

                assembled_packages = _assembled_packages(ordered, task_of, lane_of, options.write, nt_mod, cache, pool, jobs, helper)
                for i, (path, members) in enumerate(ordered):
                    try:
                        assembled = next(assembled_packages)
                    except OSError as exc:  # made on a worker: e.g. a full disk for Python 3.10's temporary database
                        raise FlashgenError(f"{path}: cannot write: {exc.strerror or exc}") from None
                    diagnostics += assembled.diagnostics
                    for (note, book, chapter), done in zip(members, assembled.notes, strict=True):
                        changed += done.changed
                        if not _held_back(note.key, lock, options):  # held back: its lock entry stays
                            old = lock.notes.get(note.key)
                            pushed = old.pushed if old is not None else None
                            states[note.key] = NoteState(
                                done.digest, done.mod, note.chapter, chapter.deck, created[note.key], note.book, note.question, done.sketch, pushed
                            )
                            outcomes.append(
                                NoteOutcome(note.key, book.title, chapter.deck, note.question, done.digest, fresh_decks.get(note.key))
                            )
                        figures.add(note.book, chapter.deck, path)
                    if options.write and not refuse:
                        if assembled.data is not None:
                            packaging.add_made(path, assembled.data)
                        else:
                            packaging.add(path, list(assembled.package_notes), list(assembled.media), nt_mod)
                        packaging.write_finished()
                    if progress:
                        progress("write", i + 1, len(groups))
                packaging.write_finished(wait=True)
                refuse = options.strict and _has_problems(diagnostics)
                if options.write and not refuse:

                    def state_file(lock_sha: str | None, lock_books: set[str], temp_of: dict[str, str], lock_changed: bool) -> str | None:
                        if groups or set(reused) != set(state.get("books", {})) or lock_changed or "lock_books" not in state:
                            return write_state(
                                options, the_settings_key, inputs_by_book, reused, figures, diagnostics, lock_sha, lock_books, temp_of
                            )
                        return None

                    kept = {name for record in reused.values() for name in record["packages"]}
                    commit_build(
                        options, lock, lock_sha_read, states, touched, (nt_hash, nt_mod), packaging.prepared, state_file, kept, inputs_by_book
                    )
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
    built_notes = sum(len(members) for members in groups.values())
    return BuildReport(
        files=len(inputs.files),
        questions=the_plan.questions + sum(r["questions"] for r in reused.values()),
        notes=built_notes + sum(r["notes"] for r in reused.values()),
        merged=the_plan.deduped.merged + sum(r["merged"] for r in reused.values()),
        decks=len({c.deck for m in groups.values() for _, _, c in m}) + sum(r["decks"] for r in reused.values()),
        written=tuple(written),
        unchanged=_packages_of(reused, options),
        diagnostics=tuple(diagnostics),
        seconds=time.perf_counter() - started,
        changed_notes=changed,
        refused=bool(refuse),
        changes=classify(outcomes, lock.notes, the_plan.continuity.reworded, the_plan.removed),
    )


def _first_build_of(files: Sequence[str], book_of_file: Mapping[str, str], state: Mapping, lock: Lock) -> bool:
    """Whether the books of ``files`` were never built before, as far as this build can tell: none is in the
    output folder's state, and the lock holds none of their notes. Their cards are then unlikely to be in the
    render cache either (an output folder and lock made afresh, with the cache kept, is the exception)."""
    books = {book_of_file[p] for p in files}
    return not books & set(state.get("books", {})) and not any(s.book in books for s in lock.notes.values())


def _package_task(
    members,
    roots,
    lock: Lock,
    ids,
    options: BuildOptions,
    build_time: int,
    nt_mod: int,
    cache_dir,
    make_package: bool,
    kept: bool = False,
    parse_key: Mapping[str, str] = MappingProxyType({}),
) -> PackageTask:
    """What the assemble stage needs for one package's notes, as plain data a worker can take: without
    their texts when the worker it goes to ``kept`` them as it parsed them (workers.Lanes; ``parse_key``:
    a carried-over key -> the key it was parsed under)."""
    from .assemble import NoteInput, PackageTask
    from .organise import note_tags, source_text

    notes = []
    for note, book, chapter in members:
        old = lock.notes.get(note.key)
        notes.append(
            NoteInput(
                note.key,
                (note.title, note.question, note.answer, note.context) if not kept else None,
                note.origin,
                roots.get(note.origin.path, "."),
                source_text(note, book, chapter),
                note_tags(note, book, chapter),
                chapter.deck,
                ids[note.key],
                (old.hash, old.mod, old.sketch) if old is not None else None,
                _held_back(note.key, lock, options),
                parse_key.get(note.key, note.key) if kept else None,
            )
        )
    return PackageTask(tuple(notes), build_time, nt_mod, make_package, cache_dir)


def _held_back(key: str, lock: Lock, options: BuildOptions) -> bool:
    """Whether a note's content change is not taken this build (push: edited in Anki since the last push)."""
    return key in options.hold_back and key in lock.notes


def _assembled_packages(ordered, task_of, lane_of, write: bool, notetype_mod: int, cache, pool, jobs: int, helper=None):
    """Each package assembled, in order (assemble.py): made, when ``write``, unless it is left to Packaging.

    A small library's cards render all at once, by this process and the workers together,
    card by card: the ``helper`` started for it (workers.helper_ahead), or else workers started
    now if there are none yet and enough cards to render to pay for them; either is stopped once
    the cards are rendered. Its notes are finished here and packaged on the build's workers if it
    has any (Packaging), else here. A large library's
    packages are assembled on the workers, where its render cache is opened too, and only
    package bytes and hashes come back. A book is assembled on the worker that parsed it, from
    the texts it kept (``lane_of``, workers.Lanes); a worker with none of its own left takes
    another's, and then, as where the pool cannot keep texts, the texts go with the task. A
    package too large to leave the workers evenly loaded at the end goes out in pieces
    (:func:`_largest_piece`), with their texts, and their fields come back to be packaged here.
    """
    from .assemble import finish, joined, packaged, render_all
    from .render import code_languages
    from .workers import assembled_in_order, ends_apart, lexers_made_first, shared_map, stop, worker_pool, worth_rendering_on_workers

    everything = [m for _, members in ordered for m in members]
    if len(everything) <= ALL_AT_ONCE:
        texts = [(n.title, n.question, n.answer, n.context) for n, _, _ in everything]

        def card_by_card(function, work: list) -> list:
            if helper is not None:  # started before parsing, it has made every lexer
                try:
                    order = lexers_made_first([code_languages(t) for t in work])
                    return shared_map(function, work, helper, order=order, meanwhile=_load_packaging)
                finally:
                    stop(helper)  # before the packages are made here: its 16-18 MB are not needed then
            if jobs <= 1 or not worth_rendering_on_workers(len(work)):
                return shared_map(function, work, None)
            kinds = [code_languages(texts) for texts in work]
            if pool is not None:
                return shared_map(function, work, pool, order=ends_apart(kinds, pool._processes))
            # workers of their own, for exactly this: they only render, so they fork without genanki (this
            # process imports it while they render); and they stop before the cache is written and the
            # packages made (left idle, each kept its 16-18 MB while this process did that). Each process
            # makes the lexers of the cards it meets, and the cards are handed out by language, so the two
            # make few of the same.
            with worker_pool(jobs - 1, packages=False) as rendering:  # this process works too
                order = ends_apart(kinds, rendering._processes)
                return shared_map(function, work, rendering, order=order, meanwhile=_load_packaging)

        cards = iter(render_all(texts, cache, card_by_card))
        for _, members in ordered:
            yield finish(task_of(members, False), [next(cards) for _ in members])
        return
    if pool is None:  # where workers spawn, a library short of the 8 MiB that starts the build's own (worth_workers)
        pool = helper
    here_too = pool is not None and pool._processes < jobs  # a pool one short of the cores: this process works too
    workers = pool._processes + here_too if pool is not None else 1
    largest = _largest_piece(len(everything), workers)
    splits = [_pieces(members, largest) for _, members in ordered]
    items = [(piece, len(pieces) == 1) for pieces in splits for piece in pieces]
    results = assembled_in_order(
        items,
        pool,
        here_too,
        cache,
        make=lambda item, lane: task_of(item[0], write and item[1], kept=lane is not None),
        lane_of=lambda item: lane_of(item[0]) if item[1] else None,  # a piece goes where least waits: its texts go with it
    )
    for pieces in splits:
        parts = [next(results) for _ in pieces]
        if len(parts) == 1:
            yield parts[0]
        else:
            whole = joined(parts)
            yield packaged(whole, notetype_mod) if write else whole


def _load_packaging() -> None:
    """Import the package stage (genanki), which finishing the notes needs next: done by this process while
    workers of its own render, which then render more cards (a book's first build: 48-66 ms that were its
    alone after rendering)."""
    importlib.import_module(".package", __package__)


def _largest_piece(notes: int, workers: int) -> int:
    """The most notes a package task holds when ``workers`` processes assemble ``notes``: larger packages go in pieces.

    A piece's fields come back to be packaged by the main process: a note crosses between
    processes a third time, and the main process packages while the workers render. So only a
    package over a quarter of a worker's share is cut: a shelf of equal books goes out whole.
    Against a sixteenth, in interleaved runs on 2 workers (medians):
    - 8,642 questions in 9 equal books (each cut in 4 before): 4.62 s against 4.60 s (8 runs),
      8.09 s of CPU against 8.31 s; peak memory 93 MB against 89 MB (5 runs), as the workers
      now make the packages the main process made;
    - 20,178 questions in 21 books: 17.67 s of CPU against 18.00 s (6 runs);
    - those 8,642 questions with two thirds of them in one book (cut in 6, not 22): 4.85 s both,
      8.20 s of CPU against 8.34 s (6 runs).
    """
    return max(MIN_PIECE, -(-notes // (workers * PIECES_PER_WORKER))) if workers > 1 else notes


def _pieces(members: list, largest: int) -> list[list]:
    """``members`` in as few even runs as keep each at most ``largest``."""
    count = -(-len(members) // largest)
    size, extra = divmod(len(members), count)
    runs, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        runs.append(members[start:end])
        start = end
    return runs


def _report_of_reused(inputs, reused: Mapping[str, dict], options: BuildOptions, started: float) -> BuildReport:
    """The report of a build that found every book as the last build left it: told by the state file alone."""
    path_of = {state_key(p, options.out_dir): p for p in inputs.files}
    diagnostics = list(inputs.diagnostics) + [diagnostic_from(d, path_of) for r in reused.values() for d in r["diagnostics"]]
    diagnostics.sort(key=lambda d: (d.location, d.code))
    return BuildReport(
        files=len(inputs.files),
        questions=sum(r["questions"] for r in reused.values()),
        notes=sum(r["notes"] for r in reused.values()),
        merged=sum(r["merged"] for r in reused.values()),
        decks=sum(r["decks"] for r in reused.values()),
        written=(),
        unchanged=_packages_of(reused, options),
        diagnostics=tuple(diagnostics),
        seconds=time.perf_counter() - started,
        changed_notes=0,
        refused=options.strict and _has_problems(diagnostics),
    )


def _packages_of(reused: Mapping[str, dict], options: BuildOptions) -> tuple[str, ...]:
    return tuple(sorted(os.path.join(options.out_dir, name) for record in reused.values() for name in record["packages"]))


def _has_problems(diagnostics: Sequence[Diagnostic]) -> bool:
    return any(d.severity in (Severity.ERROR, Severity.WARNING) for d in diagnostics)
