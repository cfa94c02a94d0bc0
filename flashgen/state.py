"""The incremental state: what the last build into a folder made, so the next one skips what did not change.

The state file in the output folder records, per book, the digests of its input files and
packages, its figures and its diagnostics, together with a key of the settings and the
lock's digest; a book whose inputs, settings, lock and packages all match is reused as it is.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
from typing import TYPE_CHECKING, Mapping

from . import __version__
from .model import Diagnostic, Location, Severity
from .notetype import notetype_sources_hash

if TYPE_CHECKING:
    from .build import BuildOptions, Plan
    from .collect import Inputs

STATE_FILE = ".flashgen-state.json"
JOURNAL = ".flashgen-commit.json"  # a commit under way (commit.py)
STATE_VERSION = 2  # 2: paths relative to the output folder, in POSIX form


def _file_digest(path: str, known: Mapping[str, str]) -> tuple[str, str]:
    """(sha256 of the bytes, the book the file belongs to) without parsing it.

    ``known``: the book of each digest the last build saw at this path; a file whose bytes
    are as they were is of the same book, and only the others have their header read.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        data, digest = b"", f"unreadable:{exc.errno}"
    else:
        digest = hashlib.sha256(data).hexdigest()
    if digest in known:
        return digest, known[digest]
    from .parse import book_of  # imported only when a file is new or changed

    return digest, book_of(data, path)


def sha_of_file(path: str) -> str | None:
    """The sha256 of a file's bytes; None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def settings_key(options: BuildOptions) -> str:
    """A digest of everything besides the inputs and the lock that shapes a build's packages."""
    from .model import RENDER_VERSION

    s = options.settings
    parts = (
        __version__,
        RENDER_VERSION,
        notetype_sources_hash(),
        options.split,
        repr(options.threshold),
        json.dumps(sorted(s.title_overrides.items())),
        s.deck_template,
        repr(s.min_rating),
        repr(s.keep_unrated),
        state_key(options.lock_path, options.out_dir),
    )
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def read_state(out_dir: str) -> dict:
    """The state file of the output folder; empty if there is none, or none of this version."""
    from .files import open_no_follow

    try:  # a state file behind a link is not this folder's: not read
        with os.fdopen(open_no_follow(os.path.join(out_dir, STATE_FILE), os.O_RDONLY), encoding="utf-8") as handle:
            state = json.load(handle)
        return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}
    except (OSError, ValueError):
        return {}


def state_key(path: str, out_dir: str) -> str:
    """How the state file names a path: relative to the output folder that holds it, in POSIX form.

    So ``notes/`` and ``/abs/path/notes`` are one library, on any OS, and moving the
    sources together with the output folder keeps it.
    """
    folder, name = os.path.split(path)
    cwd = os.getcwd()  # relative paths are relative to it: part of what is remembered
    if name in ("", ".", ".."):
        return _relative(path, out_dir, cwd)
    # a file's key is its folder's and its name: relpath once per folder, not once per file
    # (on each of 4,095 files it was 0.3 s of a 4 s rebuild)
    folder = _relative(folder or os.curdir, out_dir, cwd)
    return name if folder == "." else f"{folder.rstrip('/')}/{name}"


@functools.lru_cache(maxsize=1024)
def _relative(path: str, out_dir: str, cwd: str) -> str:
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
        if all(sha_of_file(os.path.join(out_dir, name)) == sha for name, sha in record.get("packages", {}).items()):
            reusable[book] = record
    return reusable


def work_to_do(inputs: Inputs, options: BuildOptions, settings_key: str, state: dict, lock_sha: str | None):
    """Which input files need parsing: those of books that changed since the last build into this folder.

    Returns (input hashes by book and state key, each file's book, state records of the books reused
    as they are, [(file, root)] to parse).
    """
    inputs_by_book: dict[str, dict[str, str]] = {}
    book_of_file: dict[str, str] = {}
    seen: dict[str, dict[str, str]] = {}  # state key -> {digest: book}, as the last build recorded them
    for book, record in state.get("books", {}).items():
        for key, digest in record.get("inputs", {}).items() if isinstance(record, dict) else ():
            seen.setdefault(key, {})[digest] = book
    for path in inputs.files:
        key = state_key(path, options.out_dir)
        digest, book = _file_digest(path, seen.get(key, {}))
        inputs_by_book.setdefault(book, {})[key] = digest
        book_of_file[path] = book
    reused = _reusable_books(state, settings_key, lock_sha, inputs_by_book, options.out_dir)
    if options.split == "none" and set(reused) != set(inputs_by_book):
        reused = {}  # one package holds every book: all or nothing
    todo = [(p, r) for p, r in zip(inputs.files, inputs.roots, strict=True) if book_of_file[p] not in reused]
    return inputs_by_book, book_of_file, reused, todo


def nothing_to_do(state: dict, reused: Mapping[str, dict], inputs_by_book: Mapping[str, dict]) -> bool:
    """Whether a build would write nothing: every book reused, and nothing the lock holds is gone.

    Then the build need not even read the lock: the state file recorded the books its notes
    come from, and a note of a book no longer among the inputs would be reported removed.
    """
    lock_books = state.get("lock_books")
    return (
        bool(reused)
        and set(reused) == set(inputs_by_book) == set(state.get("books", {}))
        and isinstance(lock_books, list)
        and set(lock_books) <= set(inputs_by_book)
    )


def diagnostic_from(d: dict, path_of: Mapping[str, str]) -> Diagnostic:
    """A diagnostic from the state file, its file named as this build spells it (``path_of``: state key -> path)."""
    return Diagnostic(Severity(d["severity"]), d["code"], d["message"], Location(path_of.get(d["path"], d["path"]), d["line"]))


class BookFigures:
    """Per-book figures for the state file, gathered as packages are made."""

    def __init__(self, cards: dict, questions: dict, notes: dict, book_of_path: dict):
        self.cards, self.questions, self.notes_before_filter, self.book_of_path = cards, questions, notes, book_of_path
        self.notes: dict[str, int] = {}
        self.decks: dict[str, set] = {}
        self.packages: dict[str, set] = {}

    @classmethod
    def of(cls, the_plan: Plan) -> BookFigures:
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


def write_state(options, settings_key, inputs_by_book, reused, figures: BookFigures, diagnostics, lock_sha, lock_books, temp_of) -> str:
    """Record what this build made of each book, so an unchanged book can be skipped next time.

    Written to a temporary file (returned) for the commit to rename in; ``temp_of`` maps each
    package to the temporary file that holds its new bytes, ``lock_sha`` is the committed lock's,
    ``lock_books`` the books its notes come from.
    """
    from .files import write_atomically

    diagnostics_of: dict[str, list[dict]] = {}
    for d in diagnostics:
        book = figures.book_of_path.get(d.location.path)
        if book is not None:
            diagnostics_of.setdefault(book, []).append({**d.as_dict(), "path": state_key(d.location.path, options.out_dir)})
    books: dict[str, dict] = dict(reused)
    for book, files in inputs_by_book.items():
        if book in reused:
            continue
        books[book] = {
            "inputs": files,
            "packages": {os.path.basename(p): sha_of_file(temp_of.get(p, p)) for p in sorted(figures.packages.get(book, ()))},  # beside the state
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
        "lock_books": sorted(lock_books),
        "lock_path": state_key(options.lock_path, options.out_dir),  # whose packages these are (see output._leftovers)
        "books": books,
    }
    # on one line: json's C encoder only writes without indentation (40 ms against 114 ms for the
    # 3 MB state of 100,000 questions, on every rebuild that changes a book)
    text = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return write_atomically(os.path.join(options.out_dir, STATE_FILE), lambda handle: handle.write(text.encode("utf-8")), commit=False)
