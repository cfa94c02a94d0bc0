"""Continuity across builds: reworded questions keep their note, vanished notes are reported removed."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil

from flashgen import parse_file, parse_text
from flashgen.continuity import carry_over, sketch
from flashgen.dedupe import DEFAULT_THRESHOLD, dedupe
from flashgen.lockfile import Lock, NoteState, lock_text, parse_lock
from tests.conftest import CORPUS

HQ2 = CORPUS / "fluent-python" / "hq-part-02.md"
HQ2B = CORPUS / "fluent-python" / "hq-part-02-b.md"


def _notes(*texts: tuple[str, str]):
    return dedupe([c for name, text in texts for c in parse_text(text, name).cards]).notes


def _lock(notes):
    return {n.key: NoteState("0", 1, n.chapter, f"Deck::{n.chapter}", 1, n.book, n.question, sketch(n.answer, n.context)) for n in notes}


def _carry(before, after, books_read=None):
    books = {n.book for n in after} | {n.book for n in before}
    return carry_over(after, _lock(before), books if books_read is None else books_read, books, DEFAULT_THRESHOLD)


def test_a_reworded_question_keeps_its_note():
    text = HQ2.read_text(encoding="utf-8")
    card = parse_file(HQ2).cards[3]
    reworded = text.replace(f":p {card.question}", ":p In your own words: " + card.question.lower(), 1)
    before, after = _notes(("hq2.md", text)), _notes(("hq2.md", reworded))
    old_key = next(n.key for n in before if n.question == card.question)
    result = _carry(before, after)
    assert result.reworded == {old_key: next(n.key for n in after if n.question.startswith("In your own words"))}
    assert result.removed == ()
    (carried,) = [n for n in result.notes if n.key == old_key]
    assert carried.question.startswith("In your own words") and carried.chapter == card.meta.starting_chapter


def test_a_regenerated_part_pairs_nothing_wrongly():
    # the same chunk written twice: answers are rewritten too (difflib 0.12-0.35 on the true pairs),
    # so nothing reaches the threshold and nothing is paired by mistake
    before = dedupe(parse_file(HQ2).cards).notes
    after = dedupe(parse_file(HQ2B).cards).notes
    result = _carry(before, after)
    same = {n.key for n in before} & {n.key for n in after}
    assert result.reworded == {}
    assert sorted(result.removed) == sorted({n.key for n in before} - same)


def test_two_notes_still_present_are_never_paired():
    text = "# Flashcards: B (Part 1)\n\n---\n\n#### A\nC.\n:p Q one?\n??x\nThe same long answer about things.\nx??\n"
    before = _notes(("a.md", text))
    after = _notes(("a.md", text), ("b.md", text.replace("Q one?", "Q two?")))
    result = _carry(before, after)
    assert result.reworded == {} and result.removed == ()


def test_pairing_does_not_depend_on_order():
    answers = [f"Answer number {i} talks about topic {i} at some length, with words." for i in range(6)]
    old = "".join(f"#### T{i}\nC.\n:p Old question {i}?\n??x\n{a}\nx??\n\n---\n\n" for i, a in enumerate(answers))
    new = "".join(f"#### T{i}\nC.\n:p Brand new wording {i}?\n??x\n{a}\nx??\n\n---\n\n" for i, a in enumerate(answers))
    head = "# Flashcards: B (Part 1)\n\n---\n\n"
    before, after = _notes(("a.md", head + old)), list(_notes(("a.md", head + new)))
    first = _carry(before, after)
    random.Random(7).shuffle(after)
    assert _carry(list(reversed(before)), after).reworded == first.reworded
    assert len(first.reworded) == 6
    carried = {n.key: n.question for n in first.notes}
    by_old = {n.key: n.question for n in before}
    assert all(carried[k].replace("Brand new wording", "Old question") == by_old[k] for k in first.reworded)


def test_books_not_read_keep_their_notes_and_a_gone_book_is_removed():
    a = _notes(("a.md", "# Flashcards: Book-A (Part 1)\n\n---\n\n#### T\nC.\n:p Qa?\n??x\nA.\nx??\n"))
    b = _notes(("b.md", "# Flashcards: Book-B (Part 1)\n\n---\n\n#### T\nC.\n:p Qb?\n??x\nB.\nx??\n"))
    lock = _lock(a + b)
    book_a, book_b = a[0].book, b[0].book
    # an incremental build read only book A; book B is unchanged and still there
    assert carry_over(a, lock, {book_a}, {book_a, book_b}, DEFAULT_THRESHOLD).removed == ()
    # book B's files were deleted
    assert carry_over(a, lock, {book_a}, {book_a}, DEFAULT_THRESHOLD).removed == (b[0].key,)


def test_lock_entries_round_trip_with_what_continuity_needs():
    notes = _notes(("a.md", "# Flashcards: B (Part 1)\n\n---\n\n#### T\nC.\n:p Line one\nline two?\n??x\nA.\nx??\n"))
    lock = _lock(notes)
    text = lock_text(Lock(lock))
    assert parse_lock(json.loads(text)).notes == lock


# --- end to end: build, import into the real Anki backend, reword, rebuild, import -------------------


def test_reworded_question_updates_the_same_note_in_anki_with_its_reviews(tmp_path, capsys):
    from flashgen.build import BuildOptions, build
    from flashgen.cli import main
    from tests.anki_helpers import CardAnswer, flashgen_notes, fresh_collection, import_all  # anki.collection first

    notes_dir = tmp_path / "notes"
    shutil.copytree(CORPUS / "fluent-python", notes_dir)
    options = BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "flashgen.lock"), build_time=1_700_000_000)
    first = build([str(notes_dir)], options)
    target = parse_file(notes_dir / "hq-part-03.md").cards[0]
    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, first.written)["new"] == first.notes
        (note,) = [n for n in flashgen_notes(col) if n["Question"].startswith(target.question[:40])]
        (card,) = note.cards()
        states = col._backend.get_scheduling_states(card.id)
        card.start_timer()
        col.sched.answer_card(col.sched.build_answer(card=card, states=states, rating=CardAnswer.GOOD))
        before = [(c.id, c.reps, c.ivl, c.due) for c in col.get_note(note.id).cards()]
        assert before[0][1] == 1  # reviewed once

        path = notes_dir / "hq-part-03.md"
        path.write_text(path.read_text(encoding="utf-8").replace(f":p {target.question}", ":p Put simply: " + target.question, 1), encoding="utf-8")
        assert main(["diff", str(notes_dir), "--lock", options.lock_path, "--json"]) == 0
        diff = json.loads(capsys.readouterr().out)
        assert (len(diff["reworded"]), len(diff["new"]), len(diff["removed"])) == (1, 0, 0)
        assert diff["reworded"][0]["guid"] == note.guid

        second = build([str(notes_dir)], dataclasses.replace(options, build_time=1_700_100_000))
        assert [c.guid for c in second.changes.reworded] == [note.guid] and second.changes.new == ()
        counts = import_all(col, second.written)
        assert (counts["new"], counts["updated"]) == (0, 1)
        updated = col.get_note(note.id)
        assert updated["Question"].startswith("Put simply:") and updated.guid == note.guid
        assert [(c.id, c.reps, c.ivl, c.due) for c in updated.cards()] == before
        assert col.db.scalar("select count() from revlog where cid = ?", card.id) == 1
