"""Notes -> books ▸ chapters, with deck names and tags.

A chapter is a run of parts with the same (cleaned) starting chapter at
neighbouring places on the book's axis (axis.py), whichever numbering they
come from: "Summary" opening part 6 and "Summary" opening part 17 are two
chapters; "Hadoop" opening plain Part 24 and the High-Quality part placed at
24.6 are one. Its number is the axis position where it starts (a letter
follows when two chapters start within one part), so decks sort in book
order and adding parts later does not renumber the others; and the lock file
pins deck names once chosen, because Anki never moves an imported card.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Iterable, Mapping

from .dedupe import Note
from .model import Settings, Variant
from .names import book_author, book_title, chapter_name, deck_name, slug, tag_part

__all__ = ["Settings", "Chapter", "Book", "organise", "note_tags", "source_text"]


@dataclass(frozen=True, slots=True)
class Chapter:
    name: str
    number: int  # the reference part where it starts
    deck: str
    notes: tuple[Note, ...]
    suffix: str = ""  # 'b', 'c', ...: the second, third chapter to start in that part

    def ordinal(self, width: int = 2) -> str:
        """'07', '81b': the chapter's place in its book, as deck names and tags write it."""
        return f"{self.number:0{width}d}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Book:
    id: str  # the source string from the headers
    title: str
    slug: str
    chapters: tuple[Chapter, ...]
    filtered: int  # notes left out by the rating filter
    author: str | None = None  # from a source name '<id>---<Title>---<Author>'
    # notes kept in a deck other than the one a fresh build would choose: key -> that deck
    moved: tuple[tuple[str, str], ...] = ()

    @property
    def pinned_elsewhere(self) -> int:
        return len(self.moved)

    @property
    def notes(self) -> tuple[Note, ...]:
        return tuple(n for c in self.chapters for n in c.notes)


def _keep(note: Note, settings: Settings) -> bool:
    if settings.min_rating is None:
        return True
    if note.rating is None:
        return settings.keep_unrated
    return note.rating >= settings.min_rating


# Parts of one chapter sit within a part or so of each other; a label seen again further
# away ('Summary' at parts 6 and 17) is another chapter of the same name.
_SAME_CHAPTER_GAP = 2.0


def _chapter_runs(starts_of: dict[str, set[float]]) -> dict[tuple[str, float], float]:
    """(chapter label, part start) -> where its run of neighbouring parts starts."""
    start_of: dict[tuple[str, float], float] = {}
    for name, starts in starts_of.items():
        start = previous = None
        for p in sorted(starts):
            if previous is None or p - previous > _SAME_CHAPTER_GAP:
                start = p
            start_of[(name, p)] = start
            previous = p
    return start_of


def _numbers(starts: list[float]) -> dict[float, tuple[int, str]]:
    """Deck numbers for chapter starts: the part they start in, and a letter for the second
    and later chapters to start in the same part ('81', '81b'), so names sort in book order."""
    numbers: dict[float, tuple[int, str]] = {}
    taken: dict[int, int] = {}
    for start in sorted(set(starts)):
        number = int(start + 1e-9)
        seen = taken.get(number, 0)
        taken[number] = seen + 1
        numbers[start] = (number, "" if seen == 0 else chr(ord("a") + min(seen, 25)))
    return numbers


def organise(
    notes: Iterable[Note],
    settings: Settings = Settings(),
    pinned_decks: Mapping[str, str] | None = None,
) -> tuple[Book, ...]:
    """Group notes into books and chapter decks, sorted in book order.

    ``pinned_decks`` maps a note key to the deck an earlier build put it in.
    """
    pinned_decks = pinned_decks or {}
    by_book: dict[str, list[Note]] = {}
    for note in notes:
        by_book.setdefault(note.book, []).append(note)

    books = []
    for book_id in sorted(by_book):
        all_notes = by_book[book_id]
        kept = [n for n in all_notes if _keep(n, settings)]
        title = book_title(book_id, dict(settings.title_overrides))
        starts_of: dict[str, set[float]] = {}
        for n in kept:
            starts_of.setdefault(_chapter_label(n), set()).add(n.chapter_position)
        runs = _chapter_runs(starts_of)
        numbers = _numbers(list(runs.values()))
        width = max(2, len(str(max((number for number, _ in numbers.values()), default=0))))
        # A chapter whose notes an earlier build already put in a deck keeps that deck, so that new
        # notes join the user's deck instead of starting a second one for the same chapter.
        pins_of: dict[tuple[str, float], list[str]] = {}
        for n in kept:
            label = _chapter_label(n)
            if n.key in pinned_decks and _deck_of_chapter(pinned_decks[n.key], label, settings.deck_template):
                pins_of.setdefault((label, runs[(label, n.chapter_position)]), []).append(pinned_decks[n.key])
        kept_deck = {chapter: min(set(pins), key=lambda d: (-pins.count(d), d)) for chapter, pins in pins_of.items()}
        decks: dict[str, tuple[str, float, list[Note]]] = {}
        moved = []
        for n in kept:
            label = _chapter_label(n)
            start = runs[(label, n.chapter_position)]
            number, suffix = numbers[start]
            fresh = deck_name(title, number, label, settings.deck_template, width, suffix)
            deck = pinned_decks.get(n.key) or kept_deck.get((label, start)) or fresh
            if deck != fresh or n.pinned_away:
                moved.append((n.key, fresh))
            decks.setdefault(deck, (label, start, []))[2].append(n)
        chapters = tuple(
            Chapter(name=label, number=numbers[start][0], deck=deck, notes=tuple(chapter_notes), suffix=numbers[start][1])
            for deck, (label, start, chapter_notes) in sorted(decks.items(), key=lambda kv: (kv[1][1], kv[0]))
        )
        books.append(
            Book(
                id=book_id,
                title=title,
                slug=slug(title),
                chapters=chapters,
                filtered=len(all_notes) - len(kept),
                author=book_author(book_id),
                moved=tuple(sorted(moved)),
            )
        )
    return tuple(books)


def _deck_of_chapter(deck: str, label: str, template: str) -> bool:
    """Whether ``deck`` is a deck this template makes for chapter ``label``, whatever its book title and number."""
    pattern = "".join(
        re.escape(literal) + {"book": ".*", "number": r"\d+[a-z]?", "chapter": re.escape(label)}.get(name or "", "")
        for literal, name, _, _ in string.Formatter().parse(template)
    )
    return re.fullmatch(pattern, deck, re.DOTALL) is not None


def _chapter_label(note: Note) -> str:
    name = chapter_name(note.chapter)
    if name:
        return name
    part = note.occurrences[0].part
    return f"Part {part}" if part is not None else "Cards"


def note_tags(note: Note, book: Book, chapter: Chapter) -> tuple[str, ...]:
    """Hierarchical Anki tags: book, chapter, variant(s), rating."""
    tags = [
        f"flashgen::book::{book.slug}",
        f"flashgen::chapter::{book.slug}::{chapter.ordinal()}-{tag_part(chapter.name)}",
    ]
    tags += [f"flashgen::variant::{variant.value}" for variant in note.variants]
    if note.rating is not None:
        tags.append(f"flashgen::rating::{note.rating}")
    return tuple(tags)


def source_text(note: Note, book: Book, chapter: Chapter) -> str:
    """'AI Engineering › Finetuning Overview · Part 25, High-Quality Part 23' (plain text);
    the author, where the source name gives one, follows the title: 'Java Cookbook by Ian F. Darwin › ...'."""
    parts = []
    for o in note.occurrences:
        label = ("High-Quality Part" if o.variant is Variant.HIGH_QUALITY else "Part") + (
            f" {o.part}" if o.part is not None else ""
        )
        if label not in parts:
            parts.append(label)
    by = f" by {book.author}" if book.author else ""
    return f"{book.title}{by} › {chapter.name} · {', '.join(parts)}"
