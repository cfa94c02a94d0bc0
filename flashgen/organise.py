"""Notes -> books ▸ chapters, with deck names and tags.

A chapter is a run of parts with the same (cleaned) starting chapter at
adjacent places in the book: "Summary" opening part 6 and "Summary" opening
part 17 are two chapters. Its number is the book position where it starts,
so adding parts later does not renumber the others; and the lock file pins
deck names once chosen, because Anki never moves an imported card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .dedupe import Note
from .model import Variant
from .names import DEFAULT_DECK_TEMPLATE, book_author, book_title, chapter_name, deck_name, slug, tag_part

__all__ = ["Settings", "Chapter", "Book", "organise", "note_tags", "source_text"]


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user can choose about names and selection (config file or flags)."""

    title_overrides: Mapping[str, str] = field(default_factory=dict)
    deck_template: str = DEFAULT_DECK_TEMPLATE
    min_rating: int | None = None
    keep_unrated: bool = True  # plain files carry no ratings: dropping them is opt-in


@dataclass(frozen=True, slots=True)
class Chapter:
    name: str
    number: int
    deck: str
    notes: tuple[Note, ...]


@dataclass(frozen=True, slots=True)
class Book:
    id: str  # the source string from the headers
    title: str
    slug: str
    chapters: tuple[Chapter, ...]
    filtered: int  # notes left out by the rating filter
    author: str | None = None  # from a source name '<id>---<Title>---<Author>'

    @property
    def notes(self) -> tuple[Note, ...]:
        return tuple(n for c in self.chapters for n in c.notes)


def _keep(note: Note, settings: Settings) -> bool:
    if settings.min_rating is None:
        return True
    if note.rating is None:
        return settings.keep_unrated
    return note.rating >= settings.min_rating


def _chapter_runs(names_at: dict[str, set[int]]) -> dict[tuple[str, int], int]:
    """(chapter, position) -> the position where its run of adjacent parts starts."""
    start_of: dict[tuple[str, int], int] = {}
    for name, positions in names_at.items():
        start = previous = None
        for p in sorted(positions):
            if previous is None or p - previous > 1:
                start = p
            start_of[(name, p)] = start
            previous = p
    return start_of


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
        names_at: dict[str, set[int]] = {}
        for n in kept:
            names_at.setdefault(_chapter_label(n), set()).add(n.chapter_position)
        runs = _chapter_runs(names_at)
        width = max(2, len(str(max((n.chapter_position for n in kept), default=0))))
        decks: dict[str, tuple[str, int, list[Note]]] = {}
        for n in kept:
            label = _chapter_label(n)
            number = runs[(label, n.chapter_position)]
            deck = pinned_decks.get(n.key) or deck_name(title, number, label, settings.deck_template, width)
            decks.setdefault(deck, (label, number, []))[2].append(n)
        chapters = tuple(
            Chapter(name=label, number=number, deck=deck, notes=tuple(chapter_notes))
            for deck, (label, number, chapter_notes) in sorted(decks.items(), key=lambda kv: (kv[1][1], kv[0]))
        )
        books.append(
            Book(
                id=book_id,
                title=title,
                slug=slug(title),
                chapters=chapters,
                filtered=len(all_notes) - len(kept),
                author=book_author(book_id),
            )
        )
    return tuple(books)


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
        f"flashgen::chapter::{book.slug}::{chapter.number:02d}-{tag_part(chapter.name)}",
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
