"""flashgen push and diff against the real Anki desktop with the vendored AnkiConnect add-on.

The round trip of issue 13: push, review, edit, diff, push again, reword, delete a
source, push, then import the build's .apkg: nothing is duplicated, no review is lost.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flashgen.cli import main
from tests.anki_desktop import ci, what_is_missing
from tests.conftest import CORPUS

if (lacking := what_is_missing()) and not ci():
    pytest.skip(f"real Anki desktop needs: {lacking}", allow_module_level=True)

pytestmark = pytest.mark.desktop

BOOK = CORPUS / "build-llm"  # three files; plain Part 3 shares no card with the others


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _push(capsys, client, source: Path, lock: Path, *extra) -> tuple[int, dict]:
    code, out, err = _run(capsys, "push", source, "--lock", lock, "--anki-connect", client.url, "--json", *extra)
    return code, (json.loads(out) if out else {"stderr": err})


def _diff(capsys, source: Path, lock: Path) -> dict:
    code, out, _ = _run(capsys, "diff", source, "--lock", lock, "--json")
    assert code == 0
    return json.loads(out)


def _pushed_book(anki_desktop, tmp_path: Path, capsys) -> tuple:
    """A copy of the book, pushed once into a fresh Anki: (client, source, lock, notes pushed)."""
    client = anki_desktop.client
    source, lock = tmp_path / "notes", tmp_path / "flashgen.lock"
    shutil.copytree(BOOK, source)
    code, counts = _push(capsys, client, source, lock)
    assert code == 0 and counts["changed"] == counts["removed"] == 0
    return client, source, lock, counts["new"]


def _cards(client, query: str) -> list[dict]:
    ids = client.call("findCards", query=query)
    return client.cards_info(ids) if ids else []


def test_push_keeps_anki_in_step_through_edits_rewordings_and_removals(anki_desktop, tmp_path, capsys):
    # 1. push everything; review some cards; edit one answer: diff says exactly that
    client, source, lock, total = _pushed_book(anki_desktop, tmp_path, capsys)
    assert total > 100
    assert len(client.find_notes('"note:flashgen: Question/Answer"')) == total
    deck = sorted(d for d in client.deck_names() if "::05 Appendix C" in d)[0]
    reviewed = [c["cardId"] for c in _cards(client, f'"deck:{deck}"')[:3]]
    assert client.call("answerCards", answers=[{"cardId": c, "ease": 3} for c in reviewed]) == [True] * 3
    before = {c["cardId"]: (c["reps"], c["interval"], c["due"]) for c in client.cards_info(reviewed)}

    hq = source / "hq-part-04.md"
    text = hq.read_text(encoding="utf-8")
    answer_line = next(line for line in text.splitlines() if line.startswith("Gradient clipping is used to prevent"))
    hq.write_text(text.replace(answer_line, answer_line + " EDITED.", 1), encoding="utf-8")
    diff = _diff(capsys, source, lock)
    assert (len(diff["changed"]), len(diff["new"]), len(diff["removed"]), len(diff["reworded"])) == (1, 0, 0, 0)
    edited_guid = diff["changed"][0]["guid"]

    # 2. push again: that one note updated in place, reviews kept
    code, counts = _push(capsys, client, source, lock)
    assert (code, counts["changed"], counts["new"]) == (0, 1, 0)
    (edited,) = [n for n in client.notes_info(client.find_notes('"Answer:*EDITED.*"'))]
    assert len(client.find_notes('"note:flashgen: Question/Answer"')) == total
    after = {c["cardId"]: (c["reps"], c["interval"], c["due"]) for c in client.cards_info(reviewed)}
    assert after == before and all(reps == 1 for reps, _, _ in after.values())

    # 3. reword one reviewed question: the same note shows the new question
    card = client.cards_info(reviewed[:1])[0]
    question = client.notes_info([card["note"]])[0]["fields"]["Question"]["value"]
    files = sorted(source.glob("*.md"))
    plain_q = question.split("<")[0].strip()[:40]
    holder = next(p for p in files if plain_q and plain_q in p.read_text(encoding="utf-8"))
    text = holder.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith(":p ") and plain_q in line)
    holder.write_text(text.replace(line, ":p Reworded: " + line[3:], 1), encoding="utf-8")
    code, counts = _push(capsys, client, source, lock)
    assert (code, counts["reworded"], counts["new"]) == (0, 1, 0)
    note = client.notes_info([card["note"]])[0]
    assert note["fields"]["Question"]["value"].startswith("Reworded:")
    assert client.cards_info(reviewed[:1])[0]["reps"] == 1

    # 4. delete a source file: its notes are tagged and suspended, nothing is deleted
    gone = source / "flashcards-part-03.md"
    gone_count = len(_diff(capsys, source, lock)["unchanged"])
    gone.unlink()
    code, counts = _push(capsys, client, source, lock)
    assert code == 0 and counts["removed"] > 100
    tagged = client.find_notes("tag:flashgen::removed")
    assert len(tagged) == counts["removed"] and len(client.find_notes('"note:flashgen: Question/Answer"')) == total
    assert all(c["queue"] == -1 for c in client.cards_info(client.call("findCards", query="tag:flashgen::removed")))
    assert gone_count > counts["removed"]

    # 5. importing the .apkg that build makes adds no note
    code, _, _ = _run(capsys, "build", source, "--lock", lock, "-o", tmp_path / "out", "-q")
    assert code == 0
    for package in sorted((tmp_path / "out").glob("*.apkg")):
        client.import_package(package)
    assert len(client.find_notes('"note:flashgen: Question/Answer"')) == total
    assert edited["noteId"] in client.find_notes(f"nid:{edited['noteId']}") and edited_guid


def test_delete_removed_deletes_only_when_asked(anki_desktop, tmp_path, capsys):
    client, source, lock, total = _pushed_book(anki_desktop, tmp_path, capsys)
    (source / "flashcards-part-05.md").unlink()  # ten of its notes are in no other part
    code, counts = _push(capsys, client, source, lock, "--delete-removed")
    removed = counts["removed"]
    assert code == 0 and removed > 0
    assert len(client.find_notes('"note:flashgen: Question/Answer"')) == total - removed


def test_push_edited_in_anki_is_kept_unless_forced(anki_desktop, tmp_path, capsys):
    client, source, lock, _ = _pushed_book(anki_desktop, tmp_path, capsys)
    hq = source / "hq-part-04.md"
    text = hq.read_text(encoding="utf-8")
    (note_id,) = client.find_notes('"Question:What is gradient clipping used for in model training?"')
    client.update_fields(note_id, {"Context": "My own note, written in Anki."})
    answer = "Gradient clipping is used to prevent large gradients"
    hq.write_text(text.replace(answer, answer + " (edited in the source)", 1), encoding="utf-8")
    code, out, err = _run(capsys, "push", source, "--lock", lock, "--anki-connect", client.url)
    assert code == 0 and "edited in Anki since the last push" in err and "--force overwrites" in err
    assert client.notes_info([note_id])[0]["fields"]["Context"]["value"] == "My own note, written in Anki."
    code, out, err = _run(capsys, "push", source, "--lock", lock, "--anki-connect", client.url, "--force")
    assert code == 0 and "overwritten (--force)" in err
    assert client.notes_info([note_id])[0]["fields"]["Context"]["value"] != "My own note, written in Anki."


def test_push_without_anki_is_one_line_and_exit_2(tmp_path, capsys):
    code, out, err = _run(capsys, "push", BOOK, "--lock", tmp_path / "l", "--anki-connect", "http://127.0.0.1:9")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "is Anki running?" in err


def test_dry_run_compares_with_the_live_collection_and_changes_nothing(anki_desktop, tmp_path, capsys):
    client, source, lock, total = _pushed_book(anki_desktop, tmp_path, capsys)
    assert len(client.find_notes('"note:flashgen: Question/Answer"')) == total
    hq = source / "hq-part-04.md"
    answer = "Gradient clipping is used to prevent large gradients"
    hq.write_text(hq.read_text(encoding="utf-8").replace(answer, answer + " (dry run)", 1), encoding="utf-8")
    (source / "flashcards-part-05.md").unlink()
    lock_before = lock.read_bytes()
    code, counts = _push(capsys, client, source, lock, "--dry-run")
    assert code == 0 and counts["changed"] >= 1 and counts["removed"] == 10 and counts["new"] == 0
    assert lock.read_bytes() == lock_before
    assert client.find_notes('"Answer:*(dry run)*"') == [] and client.find_notes("tag:flashgen::removed") == []
    assert len(client.find_notes('"note:flashgen: Question/Answer"')) == total
    # a note deleted in Anki is new again to the live collection, though the lock knows it
    victim = client.find_notes('"Question:What is gradient clipping used for in model training?"')
    client.delete_notes(victim)
    code, counts = _push(capsys, client, source, lock, "--dry-run")
    assert counts["new"] == 1


def test_move_files_cards_where_a_fresh_build_would_and_pins_it(anki_desktop, tmp_path, capsys):
    client, source, lock, _ = _pushed_book(anki_desktop, tmp_path, capsys)
    # an older rule had put one note elsewhere: its card sits in that deck, pinned there
    data = json.loads(lock.read_text(encoding="utf-8"))
    key = sorted(data["notes"])[0]
    fresh_deck = data["notes"][key]["deck"]
    old_deck = fresh_deck.split("::")[0] + "::99 Where an older rule put it"
    data["notes"][key]["deck"] = old_deck
    lock.write_text(json.dumps(data), encoding="utf-8")
    question = data["notes"][key]["question"]
    (note_id,) = [n["noteId"] for n in client.notes_info(client.find_notes('"note:flashgen: Question/Answer"'))
                  if n["fields"]["Question"]["value"].startswith(question.split("`")[0][:30])][:1]
    client.change_deck(client.notes_info([note_id])[0]["cards"], old_deck)
    assert len(_diff(capsys, source, lock)["moved"]) == 1

    code, counts = _push(capsys, client, source, lock)  # without --move nothing moves
    assert counts["moved"] == 0 and _cards(client, f"nid:{note_id}")[0]["deckName"] == old_deck
    code, counts = _push(capsys, client, source, lock, "--move")
    assert code == 0 and counts["moved"] == 1
    assert _cards(client, f"nid:{note_id}")[0]["deckName"] == fresh_deck
    assert json.loads(lock.read_text(encoding="utf-8"))["notes"][key]["deck"] == fresh_deck
    assert _diff(capsys, source, lock)["moved"] == []
