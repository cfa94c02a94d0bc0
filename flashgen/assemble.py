"""One package's notes -> their rendered cards, finished fields, content hashes and times -> the package.

The last stage, and the heaviest: each note's card is rendered (or taken from the render
cache), its images are resolved and bundled, its fields finished as Anki stores them, its
content hashed against the lock to decide its modification time, and the package made.

A :class:`PackageTask` is plain data, and so is what :func:`assemble` gives back, so the
whole stage runs on a worker process: the note texts go there, the package's bytes and each
note's hash, time and answer sketch come back. The rendered HTML never crosses between
processes (it was most of what crossed: out to be rendered, back, out again to be packaged).
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .collect import within
from .model import Diagnostic, Location, Severity, pickled_by_constructor

if TYPE_CHECKING:  # render (mistune, pygments) and package (genanki) are imported where they are used
    from .package import MediaFile, PackageNote
    from .render import RenderedCard

__all__ = ["NoteInput", "PackageTask", "Finished", "Assembled", "assemble", "finish", "packaged", "joined", "render_all", "render_checked", "content_hash"]

MAX_MEDIA_BYTES = 50 * 1024 * 1024


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class NoteInput:
    """Everything one note needs to become a package note: plain data, cheap to send to a worker."""

    key: str
    texts: tuple[str, str, str, str] | None  # title, question, answer, context: markdown (None: kept_as says where)
    origin: Location  # where its text was written: image paths are relative to it
    root: str  # the input folder its images must stay inside
    source: str  # the Source field, plain text
    tags: tuple[str, ...]
    deck: str
    note_id: int
    old: tuple[str, int, str | None] | None  # the lock's (content hash, modification time, sketch)
    held: bool = False  # push: its content change is not taken, so it keeps the lock's time
    kept_as: str | None = None  # texts None: the key under which the lane that parsed the note keeps them


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class PackageTask:
    notes: tuple[NoteInput, ...]  # in package order
    build_time: int
    notetype_mod: int
    # True: the package's bytes (the task is a whole package); False: its notes' fields and media,
    # for the caller to package (a piece of a package), or only their hashes and times (planning)
    make_package: bool = True
    cache_dir: str | None = None  # on a worker: the render cache it opens for itself (None: no cache)


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class Finished:
    """A note's outcome: its content hash, its modification time, and whether the content changed since the lock."""

    key: str
    digest: str
    mod: int
    changed: bool
    sketch: str | None  # of its answer, for the lock (None: held back, its lock entry stays)


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class Assembled:
    notes: tuple[Finished, ...]
    diagnostics: tuple[Diagnostic, ...]
    data: bytes | None = None  # the .apkg file, when the task asked for it
    package_notes: tuple[PackageNote, ...] = ()  # else what it is made of
    media: tuple[MediaFile, ...] = ()


# --- rendering -------------------------------------------------------------------------------


def render_checked(texts: tuple[str, str, str, str]) -> tuple[RenderedCard, str]:
    """A card rendered, and the sketch of its answer (continuity.py), both done where the text already is."""
    from .continuity import sketch
    from .render import render_card, unsafe_markup

    card = render_card(*texts)
    for part in (card.title, card.question, card.answer, card.context):
        problems = unsafe_markup(part.html)
        if problems:  # a renderer bug, never an input problem: refuse to ship it (or cache it)
            raise RuntimeError(f"rendered field has live markup: {problems[:3]}")
    return card, sketch(texts[2], texts[3])


def render_all(
    texts: Sequence[tuple[str, str, str, str]], cache, run: Callable[[Callable, list], list] | None = None
) -> list[tuple[RenderedCard, str | None]]:
    """Each card from the cache or rendered now, with its answer's sketch when rendered now (else None).

    ``run(render_checked, texts)`` renders the cards the cache lacks (default: here, one by one; a
    small library's build splits them between this process and the workers). A damaged cache is
    a miss, and one that cannot be written (a read-only folder) changes nothing.
    """
    from .cache import card_key

    keys = [card_key(*t) for t in texts]
    found: dict[str, RenderedCard] = {}
    if cache is not None:
        try:
            found = cache.get_many(set(keys))
        except Exception:  # noqa: BLE001 - a damaged cache is a miss
            found = {}
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
    work = [t for _, t in missing]
    rendered = run(render_checked, work) if run is not None else [render_checked(t) for t in work]
    fresh = dict(zip((k for k, _ in missing), rendered, strict=True))
    if cache is not None and fresh:
        try:
            cache.put_many({k: card for k, (card, _) in fresh.items()})
        except Exception:  # noqa: BLE001 - the build is unaffected
            pass
    return [fresh[k] if k in fresh else (found[k], None) for k in keys]


# --- media -----------------------------------------------------------------------------------

_SAFE_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}$")


def resolve_image(url: str, origin: Location, root: str) -> tuple[str | None, bytes | None, Diagnostic | None]:
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


# --- fields, hashes, times -------------------------------------------------------------------


def note_fields(note: NoteInput, card: RenderedCard, media_names: Mapping[str, str | None]) -> tuple[str, ...]:
    """The note's fields in the note type's order, as Anki stores them."""
    from .render import finish_images, inert_anki_syntax

    return (
        finish_images(card.question, media_names),
        finish_images(card.answer, media_names),
        finish_images(card.title, media_names),
        finish_images(card.context, media_names),
        inert_anki_syntax(html.escape(note.source, quote=False)),
    )


def content_hash(fields: Sequence[str], tags: Sequence[str]) -> str:
    payload = "\x1f".join(fields) + "\x1e" + " ".join(tags)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def finish(task: PackageTask, rendered: Sequence[tuple[RenderedCard, str | None]]) -> Assembled:
    """The task's notes finished from their rendered cards, with their package notes and media, not yet packaged.

    A note whose content hash is the lock's keeps its time; a changed one gets the build's
    time (or one second past its old time, so Anki always sees it as newer).
    """
    from .continuity import sketch
    from .package import MediaFile, PackageNote

    outcomes, package_notes, media, problems = [], [], {}, []
    for note, (card, fresh_sketch) in zip(task.notes, rendered, strict=True):
        media_names: dict[str, str | None] = {}
        for url, _alt in card.images:
            if url in media_names:
                continue
            name, data, problem = resolve_image(url, note.origin, note.root)
            media_names[url] = name
            if problem:
                problems.append(problem)
            elif name is not None and data is not None:
                media[name] = MediaFile(name, data)
        fields = note_fields(note, card, media_names)
        digest = content_hash(fields, note.tags)
        old_hash, old_mod, old_sketch = note.old if note.old is not None else (None, None, None)
        changed = False
        if note.held:
            mod = old_mod  # its lock entry stays, and Anki keeps its own newer copy
        elif old_hash != digest:
            changed = True
            mod = max(task.build_time, old_mod + 1) if old_mod is not None else task.build_time
        else:
            mod = old_mod
        kept_sketch = None
        if not note.held:  # the sketch is only worked out again when the content changed
            known = old_sketch if old_hash == digest and old_sketch else None
            kept_sketch = known or fresh_sketch or sketch(note.texts[2], note.texts[3])
        outcomes.append(Finished(note.key, digest, mod, changed, kept_sketch))
        package_notes.append(PackageNote(note.key, fields, note.tags, note.deck, mod, note.note_id))
    return Assembled(tuple(outcomes), tuple(problems), None, tuple(package_notes), tuple(media.values()))


def assemble(task: PackageTask, cache=None) -> Assembled:
    """The whole stage for the task's notes: render (through ``cache``), finish, and make the package if asked."""
    finished = finish(task, render_all([n.texts for n in task.notes], cache))
    return packaged(finished, task.notetype_mod) if task.make_package else finished


def packaged(finished: Assembled, notetype_mod: int) -> Assembled:
    """Finished notes made into their package: its bytes instead of its parts."""
    from .package import package_bytes

    data = package_bytes(finished.package_notes, finished.media, notetype_mod)
    return Assembled(finished.notes, finished.diagnostics, data)


def joined(pieces: Sequence[Assembled]) -> Assembled:
    """Pieces of one package, finished apart, as one (media files named by content, so repeats are one)."""
    media = {m.name: m for piece in pieces for m in piece.media}
    return Assembled(
        tuple(n for piece in pieces for n in piece.notes),
        tuple(d for piece in pieces for d in piece.diagnostics),
        None,
        tuple(n for piece in pieces for n in piece.package_notes),
        tuple(media.values()),
    )
