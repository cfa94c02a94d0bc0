"""Cards seen in many places -> one Note each, with every place it was seen.

Rules (README "Deduplication"):

* Cards of one book whose question, answer and context are equal after
  :func:`normalise` are one note.
* Cards with the same normalised question whose answers are at least
  ``threshold`` similar (difflib ratio over the words of the normalised answers) are one note
  too; the kept text is the best copy: High-Quality first, then the higher
  rating, then the longer answer, then the earlier place.
* The same question with answers less similar than that: both notes are kept,
  with a ``same-question`` warning; each gets its own identity.
* Different questions are never merged. Nothing depends on input order: every
  choice is made over a fully sorted key.
"""

from __future__ import annotations

import bisect
import difflib
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Mapping

from .axis import BookAxis, align
from .model import DEFAULT_THRESHOLD, Card, Diagnostic, Location, Severity, Variant, pickled_by_constructor

__all__ = ["Occurrence", "Note", "Deduped", "dedupe", "combine", "normalise", "DEFAULT_THRESHOLD", "IDENTITY_VERSION"]

# Part of every note identity. Changing normalise() for questions changes GUIDs,
# which makes Anki see new notes: bump this only with a migration.
IDENTITY_VERSION = "v1"


@pickled_by_constructor
@dataclass(frozen=True, slots=True, order=True)
class Occurrence:
    """One place a note was seen."""

    location: Location
    part: int | None
    variant: Variant
    index: int  # the card's position in its part
    chapter: str | None  # that part's starting chapter, as written
    rating: int | None


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class Note:
    """A card after deduplication: one question, the best text, every place it came from."""

    key: str  # stable identity: book + normalised question (+ tie-break)
    book: str  # the book's source string, as the headers name it
    title: str
    context: str
    question: str
    answer: str
    rating: int | None  # the highest rating among its occurrences
    occurrences: tuple[Occurrence, ...]  # sorted
    chapter: str | None  # the raw starting chapter chosen for it
    chapter_position: float  # where that chapter's part starts on the book's axis (see axis.py)
    origin: Location  # where the kept text was written: image paths are relative to it
    order: tuple[float, int]  # (place on the book's axis, index): book order
    pinned_away: bool = False  # the lock keeps it in a chapter the book would now place it outside

    @property
    def merged(self) -> int:
        return len(self.occurrences) - 1

    @property
    def variants(self) -> tuple[Variant, ...]:
        return tuple(sorted({o.variant for o in self.occurrences}, key=lambda v: v.value))


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class Deduped:
    notes: tuple[Note, ...]
    diagnostics: tuple[Diagnostic, ...]
    questions: int  # cards in

    @property
    def merged(self) -> int:
        return self.questions - len(self.notes)


_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "–": "-", "—": "-", "−": "-", "…": "..."})
_DELIMITERS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\$")
# '**', '__', a '*' not after a word character and not before a space, a '*' after a non-space
# and not before a word character. Each branch starts with its literal, the lookbehinds come
# after it (they look back over it): so the regex engine jumps from '*' to '*' (4x faster).
_EMPHASIS = re.compile(r"\*\*|__|\*(?<!\w\*)(?!\s)|\*(?<=\S\*)(?!\w)")
# a space next to an operator or bracket, once spaces are single: again literal first, and
# lookarounds, not groups (re.sub is far faster without a template)
_SPACE_NEAR_OPERATOR = re.compile(r" (?=[{}()\[\]^_=+\-*/,])| (?<=[{}()\[\]^_=+\-*/,] )")


def normalise(text: str) -> str:
    """Text reduced to what makes two copies the same card.

    Folds Unicode compatibility forms, case, typographic quotes and dashes,
    math delimiters (``$x$`` == ``\\(x\\)``), emphasis markers, white space
    (including around operators, where copies differ most) and trailing
    punctuation.
    """
    if not text.isascii():  # NFKC leaves ASCII as it is, and _QUOTES maps no ASCII character
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = text.casefold()
    text = _DELIMITERS.sub("$", text)
    text = _EMPHASIS.sub("", text)
    text = " ".join(text.split())  # str.split's white space is the regex \s
    text = _SPACE_NEAR_OPERATOR.sub("", text)
    return text.strip().rstrip(".?!:;,").strip()


def _identity_position(part: int | None, variant: Variant) -> int:
    """The order in which same-question notes are numbered, and so their identities.

    Frozen: it must never follow the book axis (axis.py), whose placements improve
    with evidence, or two notes could swap GUIDs and so each other's reviews.
    """
    if part is None:
        return 0
    return part + 1 if variant is Variant.HIGH_QUALITY else part


def _preference(card: Card) -> tuple:
    """Sort key of the best copy first; total, so the choice never depends on input order."""
    return (
        card.meta.variant is not Variant.HIGH_QUALITY,
        -(card.rating or 0),
        -len(card.answer),
        -len(card.context),
        card.location.path,
        card.location.line,
    )


class _Entry:
    """A card during clustering; its normalised texts are computed only if a raw comparison fails."""

    __slots__ = ("card", "_answer", "_context")

    def __init__(self, card: Card):
        self.card = card
        self._answer: str | None = None
        self._context: str | None = None

    @property
    def answer(self) -> str:
        if self._answer is None:
            self._answer = normalise(self.card.answer)
        return self._answer

    @property
    def context(self) -> str:
        if self._context is None:
            self._context = normalise(self.card.context)
        return self._context

    def same_as(self, best: "_Entry", threshold: float) -> bool:
        if self.card.answer == best.card.answer:  # verbatim copies, the usual case: no normalising
            return True
        if self.answer == best.answer and self.context == best.context:
            return True
        return _similar(self.answer, best.answer, threshold)


def _book_id(card: Card) -> str:
    return card.meta.source.strip()


def _similar(a: str, b: str, threshold: float) -> bool:
    """Word-level difflib ratio: as telling as characters for 'differs only a little', ~100x cheaper."""
    if a == b:
        return True
    matcher = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False)
    return matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold


def _identity(book: str, question: str, tie: int) -> str:
    payload = f"flashgen/{IDENTITY_VERSION}\x1f{book}\x1f{question}" + (f"\x1f{tie}" if tie else "")
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def dedupe(
    cards: Iterable[Card],
    threshold: float = DEFAULT_THRESHOLD,
    pinned_chapters: Mapping[str, str] | None = None,
) -> Deduped:
    """Merge repeated cards into notes.

    ``pinned_chapters`` maps note keys to the raw chapter a previous build chose
    (from the lock file): Anki never moves an imported card to another deck, so
    a note keeps its chapter once it has one.
    """
    pinned_chapters = pinned_chapters or {}
    by_question: dict[tuple[str, str], list[tuple[Card, str, str, str]]] = {}
    count = 0
    for card in cards:
        count += 1
        book = _book_id(card)
        by_question.setdefault((book, normalise(card.question)), []).append(_Entry(card))

    groups: dict[str, list[tuple[str, list[Card]]]] = {}  # book -> (note key, its copies, best first)
    diagnostics: list[Diagnostic] = []
    for (book, question_key), entries in sorted(by_question.items()):
        entries.sort(key=lambda e: _preference(e.card))
        clusters: list[list[_Entry]] = []
        for entry in entries:
            for cluster in clusters:
                if entry.same_as(cluster[0], threshold):
                    cluster.append(entry)
                    break
            else:
                clusters.append([entry])
        # earliest-seen cluster keeps the plain identity; the others are numbered after it
        clusters.sort(key=lambda c: min((_identity_position(e.card.meta.part, e.card.meta.variant), e.card.index) for e in c))
        for tie, cluster in enumerate(clusters):
            key = _identity(book, question_key, tie)
            groups.setdefault(book, []).append((key, [e.card for e in cluster]))
            if tie:
                first = clusters[0][0].card
                here = cluster[0].card
                diagnostics.append(
                    Diagnostic(
                        Severity.WARNING,
                        "same-question",
                        f"same question as {first.location} with a different answer; both kept",
                        here.location,
                    )
                )
    notes: list[Note] = []
    for book, members in groups.items():
        axis = align((c for _, copies in members for c in copies), [copies for _, copies in members])
        places = _Places(axis, (c for _, copies in members for c in copies))
        notes += [_merge(key, book, copies, pinned_chapters.get(key), places) for key, copies in members]
    return combine([Deduped(notes=tuple(notes), diagnostics=tuple(diagnostics), questions=count)])


class _Places:
    """Where cards and chapters sit in one book, on its axis."""

    def __init__(self, axis: BookAxis, cards: Iterable[Card]):
        self.axis = axis
        starts: dict[tuple[float, str], tuple[str | None, bool]] = {}  # (start, part file) -> chapter, anchored
        files = {card.location.path: card.meta for card in cards}  # one entry a part file
        for path, meta in files.items():
            anchored = axis.is_anchored(meta.variant, meta.part)
            starts[(axis.start(meta.variant, meta.part), path)] = (meta.starting_chapter, anchored)
        self.chapter_starts = sorted(starts.items())  # ((start, part file), (chapter, anchored))

    def of(self, card: Card) -> float:
        return self.axis.place(card)

    def chapter_at(self, place: float, own: set[str]) -> tuple[str | None, float]:
        """The chapter begun by ``place``: the starting chapter of the last part to start there or
        before. A part placed without evidence bounds only its own cards' chapters (``own``: their files)."""
        k = bisect.bisect_right(self.chapter_starts, ((place, "\U0010ffff"),))
        for (start, path), (chapter, anchored) in reversed(self.chapter_starts[:k]):
            if anchored or path in own:
                return chapter, start
        (start, _), (chapter, _) = self.chapter_starts[0]
        return chapter, start


def combine(parts: Iterable[Deduped]) -> Deduped:
    """One result from the results of deduplicating disjoint sets of books: what ``dedupe`` of all their cards gives.

    Deduplication never looks across books, so a build may dedupe each book on its own worker.
    """
    parts = list(parts)
    notes = sorted((n for p in parts for n in p.notes), key=lambda n: (n.book, n.order, n.key))
    diagnostics = sorted((d for p in parts for d in p.diagnostics), key=lambda d: d.location)
    return Deduped(notes=tuple(notes), diagnostics=tuple(diagnostics), questions=sum(p.questions for p in parts))


def _merge(key: str, book: str, copies: list[Card], pinned: str | None, places: _Places) -> Note:
    best = copies[0]
    occurrences = tuple(
        sorted(
            Occurrence(c.location, c.meta.part, c.meta.variant, c.index, c.meta.starting_chapter, c.rating)
            for c in copies
        )
    )
    ratings = [c.rating for c in copies if c.rating is not None]
    # Where the book places the note: the reference numbering's copies are placed by their
    # part numbers, the others only by the axis's estimate (see README "Chapters").
    reference = [c for c in copies if c.meta.variant is places.axis.reference] or copies
    place = min(places.of(c) for c in reference)
    if any(places.axis.is_anchored(c.meta.variant, c.meta.part) for c in copies):
        chapter, position = places.chapter_at(place, {c.location.path for c in copies})
    else:  # only in parts placed without evidence: the chapter its own part starts with
        home = min(copies, key=lambda c: (places.of(c), c.location))
        chapter, position = home.meta.starting_chapter, places.axis.start(home.meta.variant, home.meta.part)
    pinned_away = pinned is not None and pinned != chapter
    if pinned_away:
        # Anki never moves an imported card: a note keeps the chapter an earlier build gave it
        pinned_at = [start for (start, _), (label, _) in places.chapter_starts if label == pinned]
        chapter, position = pinned, max((s for s in pinned_at if s <= place), default=min(pinned_at, default=position))
    return Note(
        key=key,
        book=book,
        title=best.title,
        context=best.context,
        question=best.question,
        answer=best.answer,
        rating=max(ratings) if ratings else None,
        occurrences=occurrences,
        chapter=chapter,
        chapter_position=position,
        origin=best.location,
        order=(place, min(c.index for c in copies)),
        pinned_away=pinned_away,
    )
