"""The lock file: what earlier builds decided, so rebuilds update notes instead of duplicating them.

Anki updates an existing note only when the incoming note's modification time
is newer than its own. The lock records, for every note, a hash of its content
and the time that content last changed; unchanged notes keep their time (a
rebuild is byte-identical and re-importing it changes nothing), changed notes
get the build time. It also pins each note's chapter and deck, because Anki
never moves an imported card to another deck.

The file is JSON with sorted keys, meant to be committed next to the sources.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterator, Mapping

from .model import FlashgenError

__all__ = ["NoteState", "Lock", "read_lock", "parse_lock", "lock_text", "lock_chunks", "write_lock", "LOCK_VERSION", "MAX_TIME"]

LOCK_VERSION = 1


@dataclass(frozen=True, slots=True)
class NoteState:
    hash: str  # of everything Anki stores for the note: fields, tags
    mod: int  # seconds since the epoch when that content last changed
    chapter: str | None  # the raw chapter the note was given
    deck: str  # the deck it was first imported into
    created: int  # when the note first appeared: its Anki note id derives from it
    # What a later build needs to recognise the note once its source is gone or reworded
    # (continuity.py); absent in locks written before they were recorded.
    book: str | None = None  # the book's source name, as the headers give it
    question: str | None = None  # the question as written, to say which note was removed
    sketch: str | None = None  # the answer's and context's words, hashed (continuity.sketch)
    pushed: str | None = None  # hash of the fields as 'flashgen push' last left them in Anki


@dataclass(frozen=True, slots=True)
class Lock:
    notes: Mapping[str, NoteState] = field(default_factory=lambda: MappingProxyType({}))
    notetype_hash: str | None = None
    notetype_mod: int = 0

    @property
    def chapters(self) -> dict[str, str]:
        return {key: s.chapter for key, s in self.notes.items() if s.chapter is not None}

    @property
    def decks(self) -> dict[str, str]:
        return {key: s.deck for key, s in self.notes.items()}


# Times are seconds since the epoch. Anki stores them (and note ids, which are milliseconds)
# as i64; a lock is hand-editable and may come from anyone, so a value must be a plain
# integer in a range no real build produces outside of: 0 up to the year 2106.
MAX_TIME = 2**32 - 1
_GUID = re.compile(r"[0-9a-f]{24}")
_HEX = re.compile(r"[0-9a-f]{1,64}")
_SKETCH = re.compile(r"[A-Za-z0-9+/]{0,4000}={0,2}")
# Deck names and chapters go into Anki as they are: no field separator or other control character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What in a lock file's JSON can decode to a control character: an escape (a backslash that
# starts its run, then pairs of escaped backslashes, then b f n r t or a \u escape of C0, DEL or
# C1), or DEL and C1 written raw (in UTF-8: 7f, c2 80..9f). A lock without any holds none in any
# value, which then need no one-by-one check (at 56,000 notes: 0.05 s instead of 0.3 s).
_ESCAPED_CONTROL = re.compile(r"\\(?<!\\\\)(?:\\\\)*(?:[bfnrt]|u00[01]|u007[fF]|u00[89][0-9a-fA-F])")
_RAW_C1 = re.compile(rb"\xc2[\x80-\x9f]")  # one literal first byte: the regex engine skips to each (DEL: a bytes search)


class _Malformed(ValueError):
    """A lock value that breaks the schema; the message names its key."""


# The checks below name the offending key as ``where + name`` ("notes.<id>" + ".hash"), joined only
# when a value is refused: joining it for each of a note's nine values was a tenth of reading a lock.


def _time(value, where: str, name: str = "") -> int:
    # bool is an int to Python, and 1e400 is a float (inf) to json: both are refused
    if type(value) is not int or not 0 <= value <= MAX_TIME:
        raise _Malformed(f"{where}{name}: must be whole seconds in 0..{MAX_TIME}, not {value!r}")
    return value


def _text(
    value, where: str, name: str = "", pattern: re.Pattern | None = None, optional: bool = False, clean: bool = False
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 1000 or (not clean and _CONTROL.search(value)):
        raise _Malformed(f"{where}{name}: must be {'null or ' if optional else ''}a non-empty line of text, not {value!r:.80}")
    if pattern is not None and not pattern.fullmatch(value):
        raise _Malformed(f"{where}{name}: {value!r:.80} is not of the form {pattern.pattern}")
    return value


def _table(value, key: str) -> dict:
    if not isinstance(value, dict):
        raise _Malformed(f"{key}: must be a table, not {type(value).__name__}")
    return value


def _note_state(key: str, v, clean: bool = False) -> NoteState:
    """One note's entry, checked; ``clean``: the lock's text holds no control character anywhere."""
    where = "notes." + key
    v = _table(v, where)
    for required in ("hash", "mod", "deck"):
        if required not in v:
            raise _Malformed(f"{where}.{required}: missing")
    mod = _time(v["mod"], where, ".mod")
    return NoteState(
        _text(v["hash"], where, ".hash", _HEX, clean=clean),
        mod,
        _text(v.get("chapter"), where, ".chapter", optional=True, clean=clean),
        _text(v["deck"], where, ".deck", clean=clean),
        _time(v.get("created", mod), where, ".created"),
        _text(v.get("book"), where, ".book", optional=True, clean=clean),
        _question(v.get("question"), where, ".question", clean),
        _text(v.get("sketch"), where, ".sketch", _SKETCH, optional=True, clean=clean),
        _text(v.get("pushed"), where, ".pushed", _HEX, optional=True, clean=clean),
    )


def _question(value, where: str, name: str = "", clean: bool = False) -> str | None:
    # a question may span lines; any other control character is refused
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 10_000 or (not clean and _CONTROL.search(value.replace("\n", " "))):
        raise _Malformed(f"{where}{name}: must be null or text, not {value!r:.80}")
    return value


def parse_lock(data, clean: bool = False) -> Lock:
    """A lock from its decoded JSON, checked as a schema; raises ValueError naming the offending key.

    ``clean``: the JSON text was seen to hold no control character, so values need no check for one.
    """
    data = _table(data, "version")
    if data.get("version") != LOCK_VERSION:
        raise _Malformed(f"version: unsupported version {data.get('version')!r}")
    notes = {}
    for key, v in _table(data.get("notes", {}), "notes").items():
        if not _GUID.fullmatch(key):
            raise _Malformed(f"notes: {key!r:.80} is not a note id (24 hex digits)")
        notes[key] = _note_state(key, v, clean)
    notetype = _table(data.get("notetype", {}), "notetype")
    return Lock(
        MappingProxyType(notes),
        _text(notetype.get("hash"), "notetype.hash", pattern=_HEX, optional=True),
        _time(notetype.get("mod", 0), "notetype.mod"),
    )


def read_lock(path: str | os.PathLike) -> Lock:
    """Read a lock file; a missing file is an empty lock, a damaged one a FlashgenError naming the bad key."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return Lock()
    except OSError as exc:
        raise FlashgenError(f"{os.fspath(path)}: cannot read lock file: {exc}") from exc
    with _no_collections():  # JSON makes no cycles; a large lock's objects set off full collections (0.3 s in 1.1)
        try:
            text = raw.decode("utf-8")
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise FlashgenError(f"{os.fspath(path)}: cannot read lock file: {exc}") from exc
        try:
            return parse_lock(data, clean=b"\x7f" not in raw and not _RAW_C1.search(raw) and not _ESCAPED_CONTROL.search(text))
        except _Malformed as exc:
            raise FlashgenError(f"{os.fspath(path)}: malformed lock file: {exc}") from None


@contextlib.contextmanager
def _no_collections() -> Iterator[None]:
    """The cyclic garbage collector paused (as it was before, after)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def lock_text(lock: Lock) -> str:
    """The lock as stable, diff-friendly JSON."""
    return "".join(lock_chunks(lock))


def write_lock(path: str, lock: Lock, commit: bool = True) -> tuple[str, str]:
    """Write the lock file atomically, a batch of notes at a time, so a large lock is never held whole.

    Returns (the file written: ``path``, or with ``commit=False`` the temporary file beside it
    for the caller to rename in; the sha256 of its bytes).
    """
    from .files import write_atomically

    digest = hashlib.sha256()

    def write(handle) -> None:
        chunks = lock_chunks(lock)
        while batch := "".join(itertools.islice(chunks, 512)).encode("utf-8"):
            digest.update(batch)
            handle.write(batch)

    written = write_atomically(path, write, commit=commit)
    return written, digest.hexdigest()


def lock_chunks(lock: Lock) -> Iterator[str]:
    """The lock's text (:func:`lock_text`) a note at a time, so a large lock is written without being held whole.

    The same text as ``json.dumps(..., indent=1, sort_keys=True, ensure_ascii=False)`` of the lock's
    tables, written out by hand: the json module encodes in Python once it indents, and a
    100,000-question library's lock (36 MB) took seconds and 160 MB that way.
    """
    yield "{\n"
    yield ' "notes": {'
    for i, (key, s) in enumerate(sorted(lock.notes.items())):
        # the names in sorted order; the four optional ones only when they hold something
        lines = [f'   "book": {_json_string(s.book)}'] if s.book else []
        lines += (
            f'   "chapter": {_json_value(s.chapter)}',
            f'   "created": {_json_value(s.created)}',
            f'   "deck": {_json_value(s.deck)}',
            f'   "hash": {_json_value(s.hash)}',
            f'   "mod": {_json_value(s.mod)}',
        )
        later = (("pushed", s.pushed), ("question", s.question), ("sketch", s.sketch))
        lines += (f'   "{name}": {_json_string(value)}' for name, value in later if value)
        body = ",\n".join(lines)
        yield (",\n  " if i else "\n  ") + f"{_json_string(key)}: {{\n{body}\n  }}"
    yield "\n }" if lock.notes else "}"
    yield f',\n "notetype": {{\n  "hash": {_json_value(lock.notetype_hash)},\n  "mod": {_json_value(lock.notetype_mod)}\n }}'
    yield f',\n "version": {LOCK_VERSION}\n}}\n'


_json_string = json.encoder.encode_basestring  # as json.dumps writes a str with ensure_ascii=False


def _json_value(value) -> str:
    if value is None:
        return "null"
    return str(value) if type(value) is int else _json_string(value)
