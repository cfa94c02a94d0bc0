"""Chapters on one book axis: decks in book order, one deck per chapter, whatever the numberings.

The plain and High-Quality numberings of a book relate differently from book to
book; these tests build books whose numberings relate in ways the corpus does not
show (large offsets, no shared cards), so the rules cannot be tuned to the corpus.
"""

from __future__ import annotations

import pytest

from flashgen import parse_file, parse_text
from flashgen.axis import section_number
from flashgen.dedupe import dedupe
from flashgen.organise import organise
from tests.conftest import CORPUS


def _corpus_books():
    cards = [c for p in sorted(CORPUS.glob("*/*.md")) for c in parse_file(p).cards]
    return organise(dedupe(cards).notes)


CORPUS_BOOKS = _corpus_books()


@pytest.mark.parametrize("book", CORPUS_BOOKS, ids=lambda b: b.slug)
def test_decks_sort_in_book_order_and_section_order(book):
    decks = [c.deck for c in book.chapters]  # the book's order: where each chapter starts
    assert decks == sorted(decks), "Anki sorts decks by name: the names must sort in book order"
    sections = [section_number(c.name) for c in book.chapters if section_number(c.name)]
    assert sections == sorted(sections)


@pytest.mark.parametrize("book", CORPUS_BOOKS, ids=lambda b: b.slug)
def test_no_chapter_is_split_into_neighbouring_decks(book):
    names = [c.name for c in book.chapters]
    assert not [a for a, b in zip(names, names[1:]) if a == b]


# --- synthetic books -----------------------------------------------------------------------------


def _file(variant: str, part: int, chapter: str, cards: list[tuple[str, str]]) -> str:
    head = f"# {variant}: Test-Book_processed (Part {part})\n\n**Starting Chapter:** {chapter}\n\n---\n\n"
    return head + "".join(f"#### {q}\nC.\n:p {q}?\n??x\n{a}\nx??\n\n---\n\n" for q, a in cards)


def _books(files: dict[str, str]):
    cards = [c for name, text in sorted(files.items()) for c in parse_text(text, name).cards]
    return organise(dedupe(cards).notes)


def _decks(files):
    (book,) = _books(files)
    return {c.deck.split("::", 1)[1]: sorted(n.question for n in c.notes) for c in book.chapters}


def _cards(prefix: str, n: int, start: int = 0) -> list[tuple[str, str]]:
    return [(f"{prefix} {i}", f"The answer about {prefix.lower()} number {i} is long enough.") for i in range(start, start + n)]


def test_high_quality_parts_far_from_their_plain_numbers_are_placed_by_shared_cards():
    # HQ Part 5 covers the end of plain Part 40 and the start of plain 41: an offset no rule assumes
    files = {
        "p40.md": _file("Flashcards", 40, "Hadoop", _cards("Hadoop", 6)),
        "p41.md": _file("Flashcards", 41, "Spark", _cards("Spark", 6)),
        "hq5.md": _file("High-Quality Flashcards", 5, "Hadoop", _cards("Hadoop", 3, start=3) + _cards("Spark", 3)),
        "hq6.md": _file("High-Quality Flashcards", 6, "Flink", _cards("Flink", 4)),
    }
    decks = _decks(files)
    # one deck per chapter, in book order; HQ 6 starts after HQ 5, which ends inside plain 41
    assert list(decks) == ["40 Hadoop", "41 Spark", "41b Flink"]
    assert decks["40 Hadoop"] == [f"Hadoop {i}?" for i in range(6)]
    assert all(q.startswith("Flink") for q in decks["41b Flink"])


def test_equal_labels_place_parts_that_share_no_card():
    files = {
        "p10.md": _file("Flashcards", 10, "Intro", _cards("Intro", 3)),
        "p11.md": _file("Flashcards", 11, "Streams", _cards("Streams", 3)),
        "p12.md": _file("Flashcards", 12, "Joins", _cards("Joins", 3)),
        "hq3.md": _file("High-Quality Flashcards", 3, "Streams", _cards("Windows", 3)),
    }
    decks = _decks(files)
    assert list(decks) == ["10 Intro", "11 Streams", "12 Joins"]
    assert len(decks["11 Streams"]) == 6


def test_section_numbers_place_parts_that_share_nothing_else():
    files = {
        "p81.md": _file("Flashcards", 81, "10.4 Wavelet Transforms", _cards("Wavelet", 2)),
        "p82.md": _file("Flashcards", 82, "10.5 Discrete Wavelet Transforms", _cards("Discrete", 2)),
        "hq21.md": _file("High-Quality Flashcards", 21, "10.4.1 Generating Wavelet Basis Functions", _cards("Basis", 2)),
        "hq22.md": _file("High-Quality Flashcards", 22, "10.5.1 Pyramid Scheme", _cards("Pyramid", 2)),
        "hq23.md": _file("High-Quality Flashcards", 23, "10.7 Code Listings", _cards("Listing", 2)),
    }
    assert list(_decks(files)) == [
        "81 10.4 Wavelet Transforms",
        "81b 10.4.1 Generating Wavelet Basis Functions",
        "82 10.5 Discrete Wavelet Transforms",
        "82b 10.5.1 Pyramid Scheme",
        "82c 10.7 Code Listings",
    ]


def test_without_any_evidence_each_numbering_keeps_its_own_numbers():
    files = {
        "p7.md": _file("Flashcards", 7, "Alpha", _cards("Alpha", 2)),
        "hq2.md": _file("High-Quality Flashcards", 2, "Beta", _cards("Beta", 2)),
    }
    assert list(_decks(files)) == ["02 Beta", "07 Alpha"]


def test_a_generic_label_far_away_is_another_chapter():
    files = {
        "p6.md": _file("Flashcards", 6, "Summary", _cards("First", 2)),
        "p7.md": _file("Flashcards", 7, "Middle", _cards("Middle", 2)),
        "p17.md": _file("Flashcards", 17, "Summary", _cards("Second", 2)),
    }
    assert list(_decks(files)) == ["06 Summary", "07 Middle", "17 Summary"]


def test_a_note_pinned_to_another_chapters_deck_stays_there_alone():
    files = {
        "p40.md": _file("Flashcards", 40, "Hadoop", _cards("Hadoop", 2)),
        "p41.md": _file("Flashcards", 41, "Spark", _cards("Spark", 2)),
    }
    cards = [c for name, text in sorted(files.items()) for c in parse_text(text, name).cards]
    notes = dedupe(cards).notes
    spark = next(n for n in notes if n.question == "Spark 0?")
    (book,) = organise(notes, pinned_decks={spark.key: "Test Book::40 Hadoop"})  # an older rule's choice
    assert {c.deck: sorted(n.question for n in c.notes) for c in book.chapters} == {
        "Test Book::40 Hadoop": ["Hadoop 0?", "Hadoop 1?", "Spark 0?"],
        "Test Book::41 Spark": ["Spark 1?"],
    }
    assert book.pinned_elsewhere == 1


def test_new_notes_join_the_deck_their_chapter_already_has():
    files = {"p40.md": _file("Flashcards", 40, "Hadoop", _cards("Hadoop", 3))}
    cards = [c for name, text in sorted(files.items()) for c in parse_text(text, name).cards]
    notes = dedupe(cards).notes
    old_deck = "Test Book::39 Hadoop"  # an earlier build numbered the chapter differently
    (book,) = organise(notes, pinned_decks={notes[0].key: old_deck, notes[1].key: old_deck})
    assert [(c.deck, len(c.notes)) for c in book.chapters] == [(old_deck, 3)]  # one deck, not two
    assert book.pinned_elsewhere == 3
