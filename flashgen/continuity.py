"""A note keeps its identity when its question is reworded; a note whose source is gone is said to be.

A note's identity (its GUID in Anki, and with it every review) comes from its
book and normalised question. The sources are generated and get regenerated:
the same card comes back with its question reworded, and would be a new note
while the old one lingers in Anki as an orphan. So, across builds:

* a note that has **vanished** since the lock (its book was read, it was not
  found) and a **new** note of the same book whose answer and context are alike
  under the dedupe threshold are one note **reworded**: the new note takes the
  old one's identity, and with it the created time, the chapter and the deck;
* a vanished note that nothing took over is **removed**.

Two notes that are both still present are never paired. Pairs are chosen best
first over a total order, so the outcome depends on neither input nor dict order.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import struct
import zlib
from dataclasses import dataclass
from typing import Iterable, Mapping

from .dedupe import Note, normalise
from .lockfile import NoteState

__all__ = ["sketch", "similarity", "Continuity", "carry_over"]

_MAX_WORDS = 160  # enough to tell answers apart; keeps a lock entry small


def sketch(answer: str, context: str) -> str:
    """The normalised words of an answer and its context, each as a 16-bit hash, base64-encoded.

    Comparing two sketches word by word gives nearly the ratio dedupe computes on the
    words themselves, from a lock entry of a few hundred bytes instead of the text.
    """
    words = normalise(answer).split()[:_MAX_WORDS] + ["\x1d"] + normalise(context).split()[: _MAX_WORDS // 2]
    hashes = [zlib.crc32(w.encode("utf-8")) & 0xFFFF for w in words]
    return base64.b64encode(struct.pack(f">{len(hashes)}H", *hashes)).decode("ascii")


def _words(encoded: str) -> list[int]:
    raw = base64.b64decode(encoded)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw) - 1, 2)]


def similarity(a: list[int], b: list[int], threshold: float) -> float:
    """difflib's ratio of two word sequences, or 0.0 as soon as it cannot reach ``threshold``."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
        return 0.0
    return matcher.ratio()


@dataclass(frozen=True, slots=True)
class Continuity:
    """The notes after identities were carried over, and what happened to the lock's notes."""

    notes: tuple[Note, ...]
    reworded: Mapping[str, str]  # note key (the inherited one) -> the key it had from its question
    removed: tuple[str, ...]  # lock keys of notes no source gives any more (sorted)


def carry_over(
    notes: Iterable[Note],
    lock_notes: Mapping[str, NoteState],
    books_read: Iterable[str],
    books_present: Iterable[str],
    threshold: float,
) -> Continuity:
    """Pair vanished notes with new ones (see the module docs).

    ``notes`` are the notes of ``books_read``, the books whose sources were read in this run;
    ``books_present`` are all books the inputs hold (an incremental build reads only some).
    A lock note is gone when its book was read and did not give it, or its book is no longer
    there at all; one from a lock that did not record books, only when every book was read.
    """
    notes = list(notes)
    present_keys = {n.key for n in notes}
    read, present = set(books_read), set(books_present)
    everything_read = present <= read
    vanished: dict[str, list[tuple[str, list[int]]]] = {}
    gone = []
    for key, state in sorted(lock_notes.items()):
        if key in present_keys:
            continue
        if state.book in read or (state.book is not None and state.book not in present) or (state.book is None and everything_read):
            gone.append(key)
            if state.book in read and state.sketch:
                vanished.setdefault(state.book, []).append((key, _words(state.sketch)))
    fresh: dict[str, list[tuple[str, list[int]]]] = {}
    for n in notes:
        if n.key not in lock_notes and n.book in vanished:
            fresh.setdefault(n.book, []).append((n.key, _words(sketch(n.answer, n.context))))

    renamed: dict[str, str] = {}  # new key -> inherited key
    for book in sorted(vanished):
        pairs = sorted(
            (-ratio, old, new)
            for old, old_words in vanished[book]
            for new, new_words in fresh.get(book, [])
            if (ratio := similarity(old_words, new_words, threshold)) >= threshold
        )
        taken_old, taken_new = set(), set()
        for _, old, new in pairs:
            if old not in taken_old and new not in taken_new:
                taken_old.add(old)
                taken_new.add(new)
                renamed[new] = old
    inherited = set(renamed.values())
    return Continuity(
        notes=tuple(_inherit(n, renamed[n.key], lock_notes[renamed[n.key]]) if n.key in renamed else n for n in notes),
        reworded={old: new for new, old in renamed.items()},
        removed=tuple(k for k in gone if k not in inherited),
    )


def _inherit(note: Note, key: str, old: NoteState) -> Note:
    """The note under its old identity, in its old chapter (its deck follows the key in the lock)."""
    return dataclasses.replace(note, key=key, chapter=old.chapter if old.chapter is not None else note.chapter)
