"""flashgen.ankiconnect against the real Anki desktop with the vendored AnkiConnect add-on.

Each test runs its own Anki desktop 26.09 under Xvfb (tests/anki_desktop.py, about 1.5 s to
start). The errors that need no Anki are in tests/test_ankiconnect_errors.py.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zipfile
from contextlib import closing
from pathlib import Path

import pytest

from flashgen.ankiconnect import AnkiConnect
from flashgen.build import BuildOptions, build
from flashgen.model import FlashgenError
from tests.anki_desktop import ci, what_is_missing
from tests.conftest import SEEDS
from tests.test_ankiconnect_errors import KEY_ERROR

# One skip line for the module where a piece is missing; under CI the fixture fails instead.
if (lacking := what_is_missing()) and not ci():
    pytest.skip(f"real Anki desktop needs: {lacking}", allow_module_level=True)

pytestmark = pytest.mark.desktop

T0, T1 = 1_700_000_000, 1_700_000_100
CHANGED_FROM, CHANGED_TO = "- Secure communication protocols", "- Encrypted communication protocols"


def package_notes(path) -> dict[str, tuple[int, int, str]]:
    """guid -> (note id, note mod, deck name) as written in a flashgen .apkg."""
    with zipfile.ZipFile(path) as package:
        data = package.read("collection.anki2")
    with closing(sqlite3.connect(":memory:")) as db:
        db.deserialize(data)
        decks = {int(k): v["name"] for k, v in json.loads(db.execute("select decks from col").fetchone()[0]).items()}
        rows = db.execute("select n.guid, n.id, n.mod, c.did from notes n join cards c on c.nid = n.id").fetchall()
    return {guid: (nid, mod, decks[did]) for guid, nid, mod, did in rows}


def collection_notes(path) -> dict[str, tuple[int, int]]:
    """guid -> (note id, note mod) in an Anki collection, read by the real backend."""
    from anki.collection import Collection

    col = Collection(str(path))
    try:
        return {note.guid: (note.id, note.mod) for note in map(col.get_note, col.find_notes(""))}
    finally:
        col.close()


def seeds_copy(tmp_path) -> Path:
    source = tmp_path / "src"
    shutil.copytree(SEEDS, source)
    return source


def build_seeds(source, tmp_path, build_time) -> str:
    options = BuildOptions(out_dir=str(tmp_path / f"out{build_time}"), lock_path=str(tmp_path / "flashgen.lock"), build_time=build_time)
    (path,) = build([str(source)], options).written
    return path


def test_version_and_api_key(anki_desktop_factory):
    desktop = anki_desktop_factory(api_key="s3cret")
    print(f"Anki desktop answered after {desktop.startup_seconds:.1f} s")
    assert desktop.client.version() == 6
    for key in (None, "wrong"):
        with pytest.raises(FlashgenError) as caught:
            AnkiConnect(desktop.client.url, key=key).version()
        assert str(caught.value) == f"{desktop.client.url}: {KEY_ERROR}"
    # multi carries the key into every action it batches
    assert desktop.client.multi([("version", {}), ("deckNames", {})]) == [6, ["Default"]]


@pytest.mark.anki
def test_import_package_keeps_guids_and_decks(anki_desktop, tmp_path):
    client = anki_desktop.client
    path = build_seeds(SEEDS, tmp_path, T0)
    expected = package_notes(path)
    assert len(expected) == 53

    client.import_package(path)
    note_ids = client.find_notes("deck:*")
    assert sorted(note_ids) == sorted(nid for nid, _, _ in expected.values())  # Anki kept the package's note ids
    infos = client.notes_info(note_ids)
    decks = {card["note"]: card["deckName"] for card in client.cards_info([c for i in infos for c in i["cards"]])}
    assert decks == {nid: deck for nid, _, deck in expected.values()}
    assert set(client.deck_names()) == {"Default"} | {deck for *_, deck in expected.values()} | {
        deck.split("::")[0] for *_, deck in expected.values()
    }
    assert {info["modelName"] for info in infos} == {"flashgen: Question/Answer"}

    client.import_package(path)  # again: nothing new
    assert sorted(client.find_notes("deck:*")) == sorted(note_ids)

    anki_desktop.quit()  # AnkiConnect shows no GUID: read the collection Anki closed
    assert collection_notes(anki_desktop.collection_path) == {guid: (nid, mod) for guid, (nid, mod, _) in expected.items()}


@pytest.mark.anki
def test_rebuilt_package_updates_in_place_and_keeps_reviews(anki_desktop, tmp_path):
    client = anki_desktop.client
    source = seeds_copy(tmp_path)
    first = build_seeds(source, tmp_path, T0)
    client.import_package(first)
    all_notes = sorted(client.find_notes("deck:*"))
    (nid,) = client.find_notes('"Answer:*Secure communication protocols*"')
    (cid,) = client.notes_info([nid])[0]["cards"]
    assert client.call("answerCards", answers=[{"cardId": cid, "ease": 3}]) == [True]
    card_before = client.cards_info([cid])[0]
    reviews_before = client.call("getReviewsOfCards", cards=[cid])
    assert card_before["reps"] == 1 and len(reviews_before[str(cid)]) == 1
    config = client.call("getDeckConfig", deck="Default")  # a deck option the user changed
    config["new"]["perDay"] = 33
    assert client.call("saveDeckConfig", config=config) is True

    (edited,) = [f for f in source.iterdir() if CHANGED_FROM in f.read_text(encoding="utf-8")]
    edited.write_text(edited.read_text(encoding="utf-8").replace(CHANGED_FROM, CHANGED_TO), encoding="utf-8")
    second = build_seeds(source, tmp_path, T1)
    changed = {nid for nid, mod, _ in package_notes(second).values() if mod == T1}
    assert changed == {nid}

    client.import_package(second)
    assert sorted(client.find_notes("deck:*")) == all_notes
    assert CHANGED_TO[2:] in client.notes_info([nid])[0]["fields"]["Answer"]["value"]
    card_after = client.cards_info([cid])[0]
    keys = ("deckName", "type", "queue", "due", "interval", "reps", "lapses", "mod")
    assert {k: card_after[k] for k in keys} == {k: card_before[k] for k in keys}
    assert client.call("getReviewsOfCards", cards=[cid]) == reviews_before
    assert client.call("getDeckConfig", deck="Default")["new"]["perDay"] == 33

    client.import_package(first)  # older than the collection's note: Anki keeps the newer text
    assert CHANGED_TO[2:] in client.notes_info([nid])[0]["fields"]["Answer"]["value"]

    anki_desktop.quit()
    assert collection_notes(anki_desktop.collection_path)[
        next(g for g, (i, _, _) in package_notes(second).items() if i == nid)
    ] == (nid, T1)  # the package's mod, not the import time


def test_push_helpers(anki_desktop, tmp_path):
    client = anki_desktop.client
    client.import_package(build_seeds(SEEDS, tmp_path, T0))
    first, second, *_ = sorted(client.find_notes("deck:*"))
    (card,) = client.notes_info([first])[0]["cards"]

    client.update_fields(first, {"Title": "A new title"})
    assert client.notes_info([first])[0]["fields"]["Title"]["value"] == "A new title"

    client.add_tags([first], ["flashgen::removed", "extra"])
    assert {"flashgen::removed", "extra"} <= set(client.notes_info([first])[0]["tags"])

    assert client.suspend([card]) is True
    assert client.cards_info([card])[0]["queue"] == -1
    assert client.suspend([card]) is False

    client.change_deck([card], "Elsewhere::Sub")
    assert client.cards_info([card])[0]["deckName"] == "Elsewhere::Sub"

    stored = client.store_media("flashgen-test.txt", b"bytes\x00\xff")
    assert stored == "flashgen-test.txt"
    assert (anki_desktop.base / "User 1" / "collection.media" / stored).read_bytes() == b"bytes\x00\xff"

    client.delete_notes([second])
    assert client.notes_info([second]) == [{}]
    with pytest.raises(FlashgenError, match="does not know the action 'noSuchAction'"):
        client.call("noSuchAction")
