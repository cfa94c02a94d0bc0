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

import json
import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .model import FlashgenError

__all__ = ["NoteState", "Lock", "read_lock", "parse_lock", "lock_text", "LOCK_VERSION", "MAX_TIME"]

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


class _Malformed(ValueError):
    """A lock value that breaks the schema; the message names its key."""


def _time(value, key: str) -> int:
    # bool is an int to Python, and 1e400 is a float (inf) to json: both are refused
    if type(value) is not int or not 0 <= value <= MAX_TIME:
        raise _Malformed(f"{key}: must be whole seconds in 0..{MAX_TIME}, not {value!r}")
    return value


def _text(value, key: str, pattern: re.Pattern | None = None, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > 1000 or _CONTROL.search(value):
        raise _Malformed(f"{key}: must be {'null or ' if optional else ''}a non-empty line of text, not {value!r:.80}")
    if pattern is not None and not pattern.fullmatch(value):
        raise _Malformed(f"{key}: {value!r:.80} is not of the form {pattern.pattern}")
    return value


def _table(value, key: str) -> dict:
    if not isinstance(value, dict):
        raise _Malformed(f"{key}: must be a table, not {type(value).__name__}")
    return value


def _note_state(key: str, v) -> NoteState:
    where = f"notes.{key}"
    v = _table(v, where)
    for required in ("hash", "mod", "deck"):
        if required not in v:
            raise _Malformed(f"{where}.{required}: missing")
    mod = _time(v["mod"], f"{where}.mod")
    return NoteState(
        hash=_text(v["hash"], f"{where}.hash", _HEX),
        mod=mod,
        chapter=_text(v.get("chapter"), f"{where}.chapter", optional=True),
        deck=_text(v["deck"], f"{where}.deck"),
        created=_time(v.get("created", mod), f"{where}.created"),
        book=_text(v.get("book"), f"{where}.book", optional=True),
        question=_question(v.get("question"), f"{where}.question"),
        sketch=_text(v.get("sketch"), f"{where}.sketch", _SKETCH, optional=True),
        pushed=_text(v.get("pushed"), f"{where}.pushed", _HEX, optional=True),
    )


def _question(value, key: str) -> str | None:
    # a question may span lines; any other control character is refused
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 10_000 or _CONTROL.search(value.replace("\n", " ")):
        raise _Malformed(f"{key}: must be null or text, not {value!r:.80}")
    return value


def parse_lock(data) -> Lock:
    """A lock from its decoded JSON, checked as a schema; raises ValueError naming the offending key."""
    data = _table(data, "version")
    if data.get("version") != LOCK_VERSION:
        raise _Malformed(f"version: unsupported version {data.get('version')!r}")
    notes = {}
    for key, v in _table(data.get("notes", {}), "notes").items():
        if not _GUID.fullmatch(key):
            raise _Malformed(f"notes: {key!r:.80} is not a note id (24 hex digits)")
        notes[key] = _note_state(key, v)
    notetype = _table(data.get("notetype", {}), "notetype")
    return Lock(
        MappingProxyType(notes),
        _text(notetype.get("hash"), "notetype.hash", _HEX, optional=True),
        _time(notetype.get("mod", 0), "notetype.mod"),
    )


def read_lock(path: str | os.PathLike) -> Lock:
    """Read a lock file; a missing file is an empty lock, a damaged one a FlashgenError naming the bad key."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return Lock()
    except (OSError, ValueError, RecursionError) as exc:
        raise FlashgenError(f"{os.fspath(path)}: cannot read lock file: {exc}") from exc
    try:
        return parse_lock(data)
    except _Malformed as exc:
        raise FlashgenError(f"{os.fspath(path)}: malformed lock file: {exc}") from None


def lock_text(lock: Lock) -> str:
    """The lock as stable, diff-friendly JSON."""
    data = {
        "version": LOCK_VERSION,
        "notetype": {"hash": lock.notetype_hash, "mod": lock.notetype_mod},
        "notes": {
            key: {
                "hash": s.hash,
                "mod": s.mod,
                "created": s.created,
                "chapter": s.chapter,
                "deck": s.deck,
                **{
                    name: value
                    for name, value in (("book", s.book), ("question", s.question), ("sketch", s.sketch), ("pushed", s.pushed))
                    if value
                },
            }
            for key, s in sorted(lock.notes.items())
        },
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
