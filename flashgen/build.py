"""The orchestrator: paths -> parsed files -> notes -> books -> rendered fields -> .apkg files.

Each stage is a pure function in its own module; this one wires them, keeps
the diagnostics, and does the I/O: reading inputs and media, the lock file,
writing packages. ``--strict`` is decided here, once, before anything is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import os
import re
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Iterator, Sequence

from .collect import collect
from .dedupe import DEFAULT_THRESHOLD, Deduped, Note, dedupe
from .lockfile import Lock, NoteState, lock_text, read_lock
from .model import Diagnostic, FlashgenError, Location, ParsedFile, Severity
from .notetype import notetype_hash
from .organise import Book, Chapter, Settings, note_tags, organise, source_text
from .parse import parse_file
from .render import RenderedCard, finish_images, render_card, unsafe_markup

__all__ = ["BuildOptions", "BuildReport", "build", "plan", "Plan", "SPLIT_MODES"]

SPLIT_MODES = ("book", "chapter", "none")
MAX_MEDIA_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BuildOptions:
    out_dir: str = "out"
    split: str = "book"
    lock_path: str = "flashgen.lock"
    strict: bool = False
    settings: Settings = field(default_factory=Settings)
    threshold: float = DEFAULT_THRESHOLD
    build_time: int | None = None  # default: $SOURCE_DATE_EPOCH, else now
    write: bool = True  # False: plan and report only


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a build decides before writing: also what `stats` and `preview` show."""

    files: tuple[ParsedFile, ...]
    deduped: Deduped
    books: tuple[Book, ...]
    diagnostics: tuple[Diagnostic, ...]
    roots: MappingProxyType  # input file -> the folder named on the command line it was found in

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
    written: tuple[str, ...]  # .apkg paths
    diagnostics: tuple[Diagnostic, ...]
    seconds: float
    changed_notes: int  # new or changed since the lock
    refused: bool = False  # --strict found problems: nothing written

    def count(self, severity: Severity) -> int:
        return sum(1 for d in self.diagnostics if d.severity is severity)


def plan(
    paths: Sequence[str],
    settings: Settings = Settings(),
    threshold: float = DEFAULT_THRESHOLD,
    lock: Lock = Lock(),
    progress: Callable[[int, int], None] | None = None,
) -> Plan:
    """Collect, parse, dedupe and organise: the pure part of a build."""
    inputs = collect(paths)
    if inputs.missing:
        raise FlashgenError("; ".join(f"{d.location.path}: {d.message}" for d in inputs.missing))
    files = []
    for i, path in enumerate(inputs.files):
        files.append(parse_file(path))
        if progress:
            progress(i + 1, len(inputs.files))
    deduped = dedupe((c for f in files for c in f.cards), threshold, lock.chapters)
    books = organise(deduped.notes, settings, lock.decks)
    diagnostics = tuple(d for f in files for d in f.diagnostics) + deduped.diagnostics
    return Plan(tuple(files), deduped, books, diagnostics, MappingProxyType(dict(zip(inputs.files, inputs.roots))))


def _build_time(given: int | None) -> int:
    if given is not None:
        return int(given)
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return int(epoch)
        except ValueError:
            raise FlashgenError(f"SOURCE_DATE_EPOCH must be whole seconds, not {epoch!r}") from None
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
    real_root = os.path.realpath(root)
    real = os.path.realpath(candidate)
    if os.path.commonpath([real_root, real]) != real_root:
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


@dataclass(frozen=True, slots=True)
class _Rendered:
    note: Note
    book: Book
    chapter: Chapter
    fields: tuple[str, ...]
    tags: tuple[str, ...]
    media: tuple[tuple[str, bytes], ...]


def _note_fields(note: Note, book: Book, chapter: Chapter, card: RenderedCard, media_names: dict) -> tuple[str, ...]:
    return (
        finish_images(card.question, media_names),
        finish_images(card.answer, media_names),
        finish_images(card.title, media_names),
        finish_images(card.context, media_names),
        html.escape(source_text(note, book, chapter), quote=False),
    )


def _content_hash(fields: Sequence[str], tags: Sequence[str]) -> str:
    payload = "\x1f".join(fields) + "\x1e" + " ".join(tags)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]


def _note_ids(states: dict[str, NoteState]) -> dict[str, int]:
    """Anki note ids from creation times (Anki shows them as 'created'); unique within the build."""
    ids: dict[str, int] = {}
    previous = 0
    for key in sorted(states, key=lambda k: (states[k].created, k)):
        previous = max(states[key].created * 1000, previous + 1)
        ids[key] = previous
    return ids


@contextmanager
def _exclusive(out_dir: str) -> Iterator[None]:
    """One build at a time writes into a folder: concurrent builds queue instead of mixing files."""
    with open(os.path.join(out_dir, ".flashgen-build.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_out_dir(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise FlashgenError(f"{out_dir}: cannot create output folder: {exc.strerror}") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise FlashgenError(f"{out_dir}: output folder is not writable")


def _package_groups(rendered: Sequence[_Rendered], split: str, out_dir: str) -> dict[str, list[_Rendered]]:
    groups: dict[str, list[_Rendered]] = {}
    for r in rendered:
        if split == "none":
            name = "flashgen.apkg"
        elif split == "chapter":
            name = f"{r.book.slug}--{r.chapter.number:02d}-{r.chapter.name and _slug(r.chapter.name)}.apkg"
        else:
            name = f"{r.book.slug}.apkg"
        groups.setdefault(os.path.join(out_dir, name), []).append(r)
    return groups


def _slug(text: str) -> str:
    from .names import slug

    return slug(text)


def build(
    paths: Sequence[str],
    options: BuildOptions = BuildOptions(),
    progress: Callable[[str, int, int], None] | None = None,
) -> BuildReport:
    """Build .apkg files from flashcard files and folders; see README "Building decks"."""
    from .package import MediaFile, PackageNote, write_atomically, write_package

    started = time.perf_counter()
    if options.split not in SPLIT_MODES:
        raise FlashgenError(f"--split must be one of {', '.join(SPLIT_MODES)}, not {options.split!r}")
    build_time = _build_time(options.build_time)
    lock = read_lock(options.lock_path)
    the_plan = plan(
        paths,
        options.settings,
        options.threshold,
        lock,
        (lambda done, total: progress("parse", done, total)) if progress else None,
    )
    diagnostics = list(the_plan.diagnostics)

    rendered: list[_Rendered] = []
    all_notes = [(n, b, c) for b in the_plan.books for c in b.chapters for n in c.notes]
    for i, (note, book, chapter) in enumerate(all_notes):
        card = render_card(note.title, note.question, note.answer, note.context)
        media_names: dict[str, str | None] = {}
        media: list[tuple[str, bytes]] = []
        for url, _alt in card.images:
            if url in media_names:
                continue
            name, data, problem = _resolve_image(url, note.origin, the_plan.roots.get(note.origin.path, "."))
            media_names[url] = name
            if problem:
                diagnostics.append(problem)
            elif name is not None and data is not None:
                media.append((name, data))
        fields = _note_fields(note, book, chapter, card, media_names)
        for f in fields:
            problems = unsafe_markup(f)
            if problems:  # a renderer bug, never an input problem: refuse to ship it
                raise RuntimeError(f"{note.origin}: rendered field has live markup: {problems[:3]}")
        rendered.append(_Rendered(note, book, chapter, fields, note_tags(note, book, chapter), tuple(media)))
        if progress:
            progress("render", i + 1, len(all_notes))

    diagnostics.sort(key=lambda d: (d.location, d.code))
    errors = sum(1 for d in diagnostics if d.severity is Severity.ERROR)
    warnings = sum(1 for d in diagnostics if d.severity is Severity.WARNING)
    refuse = options.strict and (errors or warnings)

    # what changed since the lock
    states: dict[str, NoteState] = dict(lock.notes)
    changed = 0
    for r in rendered:
        digest = _content_hash(r.fields, r.tags)
        old = lock.notes.get(r.note.key)
        if old is not None and old.hash == digest:
            states[r.note.key] = NoteState(digest, old.mod, r.note.chapter, r.chapter.deck, old.created)
            continue
        changed += 1
        mod = max(build_time, old.mod + 1) if old else build_time
        created = old.created if old else build_time
        states[r.note.key] = NoteState(digest, mod, r.note.chapter, r.chapter.deck, created)
    nt_hash = notetype_hash()
    nt_mod = lock.notetype_mod if lock.notetype_hash == nt_hash else max(build_time, lock.notetype_mod + 1)
    new_lock = Lock(MappingProxyType(states), nt_hash, nt_mod)
    ids = _note_ids(states)

    written: list[str] = []
    groups = _package_groups(rendered, options.split, options.out_dir)
    if options.write and not refuse:
        _prepare_out_dir(options.out_dir)
        with _exclusive(options.out_dir):
            for i, (path, members) in enumerate(sorted(groups.items())):
                notes = [
                    PackageNote(
                        guid=r.note.key,
                        fields=r.fields,
                        tags=r.tags,
                        deck=r.chapter.deck,
                        mod=states[r.note.key].mod,
                        note_id=ids[r.note.key],
                    )
                    for r in members
                ]
                media = {name: MediaFile(name, data) for r in members for name, data in r.media}
                try:
                    write_package(path, notes, list(media.values()), nt_mod)
                except OSError as exc:
                    raise FlashgenError(f"{path}: cannot write: {exc.strerror or exc}") from None
                written.append(path)
                if progress:
                    progress("write", i + 1, len(groups))
            text = lock_text(new_lock)
            if text != (lock_text(lock) if lock.notes or lock.notetype_hash else None):
                try:
                    write_atomically(options.lock_path, lambda handle: handle.write(text.encode("utf-8")))
                except OSError as exc:
                    raise FlashgenError(f"{options.lock_path}: cannot write lock file: {exc.strerror}") from None

    return BuildReport(
        files=len(the_plan.files),
        questions=the_plan.questions,
        notes=len(rendered),
        merged=the_plan.deduped.merged,
        decks=len({r.chapter.deck for r in rendered}),
        written=tuple(written),
        diagnostics=tuple(diagnostics),
        seconds=time.perf_counter() - started,
        changed_notes=changed,
        refused=bool(refuse),
    )
