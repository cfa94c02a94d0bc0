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
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .model import FlashgenError

__all__ = ["NoteState", "Lock", "read_lock", "lock_text", "LOCK_VERSION"]

LOCK_VERSION = 1


@dataclass(frozen=True, slots=True)
class NoteState:
    hash: str  # of everything Anki stores for the note: fields, tags
    mod: int  # seconds since the epoch when that content last changed
    chapter: str | None  # the raw chapter the note was given
    deck: str  # the deck it was first imported into
    created: int  # when the note first appeared: its Anki note id derives from it


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


def read_lock(path: str | os.PathLike) -> Lock:
    """Read a lock file; a missing file is an empty lock, a damaged one a FlashgenError."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return Lock()
    except (OSError, ValueError) as exc:
        raise FlashgenError(f"{os.fspath(path)}: cannot read lock file: {exc}") from exc
    try:
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"unsupported version {data.get('version')!r}")
        notes = {
            key: NoteState(
                hash=str(v["hash"]),
                mod=int(v["mod"]),
                chapter=v.get("chapter"),
                deck=str(v["deck"]),
                created=int(v.get("created", v["mod"])),
            )
            for key, v in data.get("notes", {}).items()
        }
        notetype = data.get("notetype", {})
        return Lock(MappingProxyType(notes), notetype.get("hash"), int(notetype.get("mod", 0)))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise FlashgenError(f"{os.fspath(path)}: malformed lock file: {exc}") from exc


def lock_text(lock: Lock) -> str:
    """The lock as stable, diff-friendly JSON."""
    data = {
        "version": LOCK_VERSION,
        "notetype": {"hash": lock.notetype_hash, "mod": lock.notetype_mod},
        "notes": {
            key: {"hash": s.hash, "mod": s.mod, "created": s.created, "chapter": s.chapter, "deck": s.deck}
            for key, s in sorted(lock.notes.items())
        },
    }
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
