"""Deduplication, chapters, names, decks and tags."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from flashgen import parse_file, parse_text
from flashgen.dedupe import dedupe, normalise
from flashgen.names import book_author, book_title, chapter_name, slug
from flashgen.organise import Settings, note_tags, organise
from tests.conftest import CORPUS, SEEDS, corpus_files


def cards_of(paths):
    return [c for p in paths for c in parse_file(p).cards]


def test_seeds_give_53_notes_with_finetuning_in_a_finetuning_chapter():
    result = dedupe(cards_of(sorted(SEEDS.glob("*.txt"))))
    assert (result.questions, len(result.notes), result.merged) == (71, 53, 18)
    finetuning = [n for n in result.notes if "finetuning" in n.question.lower()]
    assert finetuning and all("Finetuning" in n.chapter for n in finetuning)
    repeated = [n for n in result.notes if n.merged]
    assert len(repeated) == 18
    assert all({o.variant.value for o in n.occurrences} == {"plain", "high-quality"} for n in repeated)


def test_merged_note_keeps_every_place_and_the_highest_rating():
    result = dedupe(cards_of(sorted(SEEDS.glob("*.txt"))))
    note = next(n for n in result.notes if n.question == "What is PEFT?")
    assert [(o.location.path.rsplit("/", 1)[-1], o.part, o.variant.value) for o in note.occurrences] == [
        ("000_a69daa984ba8c2e6.txt", 23, "high-quality"),
        ("004_b8a6cea7d3a9e6c3.txt", 25, "plain"),
    ]
    assert note.rating == 8


def test_result_does_not_depend_on_input_order():
    files = corpus_files()
    forward = organise(dedupe(cards_of(files)).notes)
    backward = organise(dedupe(cards_of(list(reversed(files)))).notes)
    assert forward == backward


def _book_figures(books, deduped):
    figures = {}
    for b in books:
        notes = b.notes
        figures[b.title] = {
            "questions": sum(len(n.occurrences) for n in notes),
            "notes": len(notes),
            "merged": sum(n.merged for n in notes),
            "decks": {c.deck.split("::", 1)[1]: len(c.notes) for c in b.chapters},
        }
    return {
        "questions": deduped.questions,
        "notes": len(deduped.notes),
        "merged": deduped.merged,
        "warnings": [f"{d.location.path.split('corpus/')[-1]}:{d.location.line} {d.code}" for d in deduped.diagnostics],
        "books": figures,
    }


def test_corpus_figures(golden):
    deduped = dedupe(cards_of(sorted(CORPUS.glob("*/*.md"))))
    figures = _book_figures(organise(deduped.notes), deduped)
    golden("dedupe/corpus-figures.json", json.dumps(figures, indent=2, ensure_ascii=False) + "\n")


def _card(question, answer, context="C.", title="T", variant="Flashcards", part=3, rating=None):
    rating_line = f"**Rating: {rating}/10**\n\n" if rating else ""
    text = (
        f"# {variant}: Book_processed (Part {part})\n\n**Starting Chapter:** Intro\n\n---\n\n"
        f"{rating_line}#### {title}\n{context}\n:p {question}\n??x\n{answer}\nx??\n"
    )
    return parse_text(text, f"{variant}-{part}-{question[:5]}.md").cards[0]


def test_exact_duplicates_after_normalisation():
    a = _card("What is “PEFT”?", "Uses $x_1$ — fewer   params.")
    b = _card("what is \"PEFT\"", "Uses \\(x_1\\) - fewer params", variant="High-Quality Flashcards", part=2)
    (note,) = dedupe([a, b]).notes
    assert note.merged == 1 and note.answer == b.answer  # the High-Quality copy wins


def test_near_duplicates_merge_keeping_the_better_copy():
    a = _card("Q?", "The memory is 26 GB times 1.2 which gives 31.2 GB in total for inference.")
    b = _card("Q?", "The memory is 26 GB times 1.2, which gives 31.2 GB in total for inference!", rating=9)
    (note,) = dedupe([a, b]).notes
    assert note.answer == b.answer and note.rating == 9


def test_same_question_different_answers_are_both_kept_with_a_warning():
    a = _card("What is this flashcard about?", "Scheduling policies in operating systems.")
    b = _card("What is this flashcard about?", "Memory virtualisation and paging.", part=4)
    result = dedupe([a, b])
    assert len(result.notes) == 2 and len({n.key for n in result.notes}) == 2
    assert [d.code for d in result.diagnostics] == ["same-question"]


def test_different_questions_are_never_merged():
    a = _card("What is A?", "Same answer.")
    b = _card("What is B?", "Same answer.")
    assert len(dedupe([a, b]).notes) == 2


def test_identity_ignores_answer_and_file():
    a = _card("What is A?", "First answer.")
    b = dataclasses.replace(_card("What is A?", "An edited, quite different answer text."), location=a.location)
    assert dedupe([a]).notes[0].key == dedupe([b]).notes[0].key


def test_pinned_chapter_wins():
    a = _card("Q?", "A.")
    key = dedupe([a]).notes[0].key
    assert dedupe([a], pinned_chapters={key: "Earlier Chapter"}).notes[0].chapter == "Earlier Chapter"


def test_normalise():
    assert normalise("  What’s  *this* — \\(x\\)?? ") == normalise("what's this - $x$")


def test_min_rating_and_unrated():
    rated = _card("Q1?", "A.", rating=9)
    low = _card("Q2?", "A.", rating=6)
    unrated = _card("Q3?", "A.")
    notes = dedupe([rated, low, unrated]).notes
    kept = lambda s: sorted(n.question for b in organise(notes, s) for n in b.notes)  # noqa: E731
    assert kept(Settings(min_rating=8)) == ["Q1?", "Q3?"]
    assert kept(Settings(min_rating=8, keep_unrated=False)) == ["Q1?"]


def test_tags_and_decks():
    (book,) = organise(dedupe([_card("Q?", "A.", rating=8)]).notes)
    chapter = book.chapters[0]
    assert chapter.deck == "Book::03 Intro"
    assert note_tags(chapter.notes[0], book, chapter) == (
        "flashgen::book::book",
        "flashgen::chapter::book::03-intro",
        "flashgen::variant::plain",
        "flashgen::rating::8",
    )


@pytest.mark.parametrize(
    "source, title",
    [
        (
            "2A001---AI-Engineering_-Building-Applications-with-Foundation-Models-OReilly-Media-2025Chip-Huyen--_processed",
            "AI Engineering: Building Applications with Foundation Models",
        ),
        ("2A007---Build-a-Large-Language-Model_processed", "Build a Large Language Model"),
        ("Operating-Systems_-Three-Easy-Pieces_processed", "Operating Systems: Three Easy Pieces"),
        ("7A003--Designing-Data-Intensive-Applications-2017-Martin-Kleppmann_processed", "Designing Data Intensive Applications"),
        ("024---Clean-Code_processed", "Clean Code"),
        # '<id>---<Title>---<Author>': the author is not part of the title
        ("10A006---Java-Cookbook---Ian-F-Darwin_processed", "Java Cookbook"),
        ("10A008---Computational-Physics---Rubin-H_-Landau_processed", "Computational Physics"),
        # run-together words are split; product names stay whole
        ("10A000---FluentPython_processed", "Fluent Python"),
        ("10A001---LearningTypeScript_processed", "Learning TypeScript"),
        ("10A002---JavaScriptTheGoodParts_processed", "JavaScript The Good Parts"),
        ("10A003---Deep-Learning-with-PyTorch_processed", "Deep Learning with PyTorch"),
        ("10A004---iPhone-Programming_processed", "iPhone Programming"),
    ],
)
def test_book_titles(source, title):
    assert book_title(source) == title


@pytest.mark.parametrize(
    "source, author",
    [
        ("10A006---Java-Cookbook---Ian-F-Darwin_processed", "Ian F. Darwin"),
        ("10A008---Computational-Physics---Rubin-H_-Landau_processed", "Rubin H. Landau"),
        ("029---Understanding-Distributed-Systems-2021-Roberto-Vitillo--_processed", None),
    ],
)
def test_book_authors(source, author):
    assert book_author(source) == author


def test_titles_of_the_whole_corpus_carry_no_author():
    sources = {parse_file(p).meta.source for p in sorted(CORPUS.glob("*/*.md"))}
    authors = {book_author(s) for s in sources} - {None}
    assert authors == {"Ian F. Darwin", "Rubin H. Landau"}
    titles = [book_title(s) for s in sources]
    assert not [t for t in titles if any(name in t for author in authors for name in author.split())]
    assert not [t for t in titles if re.search(r"[a-z][A-Z][a-z]", t.replace("PyTorch", ""))]  # nothing run together


def test_an_override_keyed_by_the_old_title_still_applies():
    overrides = {"java-cookbook-ian-f-darwin": "Java Cookbook, 4th ed."}
    assert book_title("10A006---Java-Cookbook---Ian-F-Darwin_processed", overrides) == "Java Cookbook, 4th ed."


def test_title_override():
    assert book_title("024---Clean-Code_processed", {"clean-code": "Clean Code (2nd ed.)"}) == "Clean Code (2nd ed.)"


@pytest.mark.parametrize(
    "raw, name",
    [
        ("Appendix_D._Adding_Bells_and_Whistles_to_the_Training_Loop", "Appendix D. Adding Bells and Whistles to the Training Loop"),
        ("7.5 Comparison of Methods. 7.6 Readings. 7.7 Exercises", "7.5 Comparison of Methods"),
        ("8. Multi-level  Feedback", "8. Multi-level Feedback"),
        ("A::B", "A:B"),
        # identifiers keep their underscores; only an all-underscore label stands for spaces
        ("count and for_each Have Limitations", "count and for_each Have Limitations"),
        ("The __init__ Method", "The __init__ Method"),
        ("4_Implementing_a_GPT_model", "4 Implementing a GPT model"),
    ],
)
def test_chapter_names(raw, name):
    assert chapter_name(raw) == name


def test_slug():
    assert slug("AI Engineering: Building Apps — Ünïcode!") == "ai-engineering-building-apps-unicode"
