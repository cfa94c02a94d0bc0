"""A future flashgen whose note type changed, imported over decks from this one (real Anki backend).

Anki's "Merge note types" import (``merge_notetypes``) matches a field or template of the incoming
note type to the collection's by ``id`` when both have one, else by name. flashgen gives each a
fixed id (flashgen/notetype.py); these tests simulate the next flashgen by changing the note type
in place (monkeypatched), rebuild with the same lock and import.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from anki.collection import ImportAnkiPackageOptions, ImportAnkiPackageRequest
from anki.import_export_pb2 import ImportAnkiPackageUpdateCondition

import flashgen.assemble as assemble_module
import flashgen.notetype as notetype
import flashgen.package as package
import flashgen.state as state
from flashgen.build import BuildOptions, build
from flashgen.notetype import FIELD_IDS, FIELDS, NOTETYPE_ID, TEMPLATE_ID, stable_id
from tests.anki_helpers import fresh_collection, review
from tests.conftest import CORPUS

pytestmark = pytest.mark.anki

T0, T1 = 1_700_000_000, 1_700_100_000
DECK = "AI Engineering: Building Applications with Foundation Models::24 Memory"
ALWAYS = ImportAnkiPackageUpdateCondition.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_ALWAYS


def test_ids_are_the_documented_derivation_and_fit_anki():
    # each id was given as stable_id of the name the field had then; a rename keeps the id,
    # so when a field is renamed, this test keeps its first name here
    first_names = {name: name for name in FIELDS}
    assert FIELD_IDS == {name: stable_id("field", first_names[name]) for name in FIELDS}
    assert TEMPLATE_ID == stable_id("template", "Card")
    ids = [*FIELD_IDS.values(), TEMPLATE_ID]
    assert len(set(ids)) == len(ids) and all(0 < i < 2**63 for i in ids)


def test_a_rebuild_that_keeps_every_book_still_sees_a_pygments_upgrade(seeds, monkeypatch):
    """The state check keys on what the note type's CSS is made from (theme.css_sources), not the
    CSS itself: pygments' version stands for its styles. An upgrade reads the books again, and the
    packages come out as the CSS they now need; one whose styles did not change, byte for byte."""
    import pygments

    root, paths = seeds
    first = build([str(root / "src")], BuildOptions(**paths, build_time=T0))
    before = {p: Path(p).read_bytes() for p in first.written}
    assert build([str(root / "src")], BuildOptions(**paths, build_time=T1)).written == ()

    monkeypatch.setattr(pygments, "__version__", pygments.__version__ + ".post1")
    upgraded = build([str(root / "src")], BuildOptions(**paths, build_time=T1))
    assert sorted(upgraded.written) == sorted(before) and upgraded.changed_notes == 0
    assert {p: Path(p).read_bytes() for p in upgraded.written} == before

    monkeypatch.setattr(notetype, "note_css", lambda: "/* the next pygments' colours */")
    monkeypatch.setattr(pygments, "__version__", pygments.__version__ + ".post2")
    restyled = build([str(root / "src")], BuildOptions(**paths, build_time=T1))
    assert sorted(restyled.written) == sorted(before)
    assert json.loads(Path(paths["lock_path"]).read_text())["notetype"]["mod"] == T1


def test_every_constant_the_css_is_made_from_moves_the_state_key(monkeypatch):
    """A no-op keys on theme.css_sources, not on the CSS: each of theme.py's constants is in it."""
    import flashgen.theme as theme

    constants = [name for name, value in vars(theme).items() if not name.startswith("__") and isinstance(value, (str, tuple))]
    assert {"_BASE_CSS", "_DARK_CARD", "_DARK_SCOPED", "LIGHT_STYLE", "DARK_STYLE", "_NIGHT"} <= set(constants)
    before = notetype.notetype_sources_hash()
    for name in constants:
        with monkeypatch.context() as patched:
            value = getattr(theme, name)
            patched.setattr(theme, name, value + (" ",) if isinstance(value, tuple) else value + " ")
            assert notetype.notetype_sources_hash() != before, name


def _import(col, paths, **options):
    totals = dict.fromkeys(("new", "updated", "duplicate", "conflicting"), 0)
    for path in paths:
        request = ImportAnkiPackageRequest(package_path=str(path), options=ImportAnkiPackageOptions(**options))
        log = col.import_anki_package(request).log
        for kind in totals:
            totals[kind] += len(getattr(log, kind))
    return totals


def _notetypes(col):
    """Every flashgen note type: name, [(field, id)], [(template, id)], notes using it."""
    col.models._clear_cache()  # an import changes note types behind the Python cache (Anki desktop clears it too)
    found = []
    for entry in col.models.all_names_and_ids():
        if entry.name.startswith("flashgen"):
            nt = col.models.get(entry.id)
            fields = [(f["name"], f.get("id")) for f in nt["flds"]]
            found.append((nt["name"], fields, [(t["name"], t.get("id")) for t in nt["tmpls"]], col.models.use_count(nt)))
    return found


@pytest.fixture
def seeds(tmp_path):
    shutil.copytree(CORPUS.parent / "seeds", tmp_path / "src")
    return tmp_path, {"out_dir": str(tmp_path / "out"), "lock_path": str(tmp_path / "flashgen.lock")}


def _future_notetype(monkeypatch, *, add=None, rename=None):
    """Make this flashgen the next one: a field appended (with a value in every note) or renamed."""
    fields, ids, back = list(FIELDS), dict(FIELD_IDS), notetype.BACK_TEMPLATE
    if add:
        fields.append(add)
        ids[add] = stable_id("field", add)
        back += f"\n{{{{#{add}}}}}<div>{{{{{add}}}}}</div>{{{{/{add}}}}}"
        finish = assemble_module.note_fields
        monkeypatch.setattr(assemble_module, "note_fields", lambda *a: (*finish(*a), f"{add} text"))
    if rename:
        old, new = rename
        fields[fields.index(old)] = new
        ids[new] = ids.pop(old)
        back = back.replace(old, new)
    monkeypatch.setattr(notetype, "FIELDS", tuple(fields))
    monkeypatch.setattr(notetype, "FIELD_IDS", ids)
    monkeypatch.setattr(notetype, "BACK_TEMPLATE", back)


def test_first_import_keeps_the_fixed_ids(seeds):
    root, paths = seeds
    report = build([str(root / "src")], BuildOptions(**paths, build_time=T0))
    with fresh_collection(root / "anki") as col:
        assert _import(col, report.written)["new"] == 53
        ((name, fields, templates, used),) = _notetypes(col)
        assert fields == [(f, FIELD_IDS[f]) for f in FIELDS] and templates == [("Card", TEMPLATE_ID)] and used == 53


def test_an_appended_field_merges_into_the_one_note_type(seeds, monkeypatch):
    """Measured with anki 26.9.3; before the fixed ids (no ``id`` in the package) every count
    here was the same, because an appended field is matched by name alike.

    The merge adds the field to the collection's note type, and in doing so Anki rewrites every
    note of that type and gives it the import time as its mod. The package's notes (mod: the
    build time, earlier) are then "duplicates" under the default "Update notes: if newer", and
    the new field stays empty: that import must use "Update notes: always" (README).
    """
    root, paths = seeds
    report = build([str(root / "src")], BuildOptions(**paths, build_time=T0))
    first = [shutil.copy(p, root) for p in report.written]  # the rebuild writes the same paths
    with fresh_collection(root / "anki") as col:
        _import(col, first)
        reviewed = review(col, DECK, 3)
        before = {cid: (c.reps, c.ivl, c.due, c.did) for cid in reviewed for c in [col.get_card(cid)]}

        _future_notetype(monkeypatch, add="Hint")
        future = build([str(root / "src")], BuildOptions(**paths, build_time=T1))
        assert future.changed_notes == 53  # every note has a new field value
        assert json.loads(Path(paths["lock_path"]).read_text())["notetype"]["mod"] == T1
        wanted = [(f, FIELD_IDS[f]) for f in FIELDS] + [("Hint", stable_id("field", "Hint"))]

        # the default import: a second note type, every note "conflicting"
        with fresh_collection(root / "other") as other:
            _import(other, first)
            assert _import(other, future.written) == {"new": 0, "updated": 0, "duplicate": 0, "conflicting": 53}
            assert [n[0] for n in _notetypes(other)] == ["flashgen: Question/Answer", "flashgen: Question/Answer+"]

        # merged: one note type, with the new field and every id; the notes stamped, not updated
        assert _import(col, future.written, merge_notetypes=True) == {"new": 0, "updated": 0, "duplicate": 53, "conflicting": 0}
        assert _notetypes(col) == [("flashgen: Question/Answer", wanted, [("Card", TEMPLATE_ID)], 53)]
        stamped = col.db.list(f"select distinct mod from notes where mid = {NOTETYPE_ID}")
        assert len(stamped) == 1 and stamped[0] > T1
        assert col.db.scalar("select count() from notes where flds like '%Hint text%'") == 0

        # "Update notes: always" brings the field's values in, with the package's mods
        assert _import(col, future.written, merge_notetypes=True, update_notes=ALWAYS)["updated"] == 53
        assert col.db.scalar("select count() from notes where flds like '%Hint text%'") == 53
        assert col.db.list(f"select distinct mod from notes where mid = {NOTETYPE_ID}") == [T1]
        assert _notetypes(col) == [("flashgen: Question/Answer", wanted, [("Card", TEMPLATE_ID)], 53)]
        after = {cid: (c.reps, c.ivl, c.due, c.did) for cid in reviewed for c in [col.get_card(cid)]}
        assert after == before and col.db.scalar("select count() from revlog") == 3
        assert col.note_count() == 53 and col.card_count() == 53


def test_a_renamed_field_stays_the_same_field(seeds, monkeypatch):
    """The fixed ids at work. Without them (measured with anki 26.9.3 before this change), the
    merge matched by name: the note type ended with six fields, "Source" still holding the
    text and "Origin" empty, and every note stamped with the import time."""
    root, paths = seeds
    report = build([str(root / "src")], BuildOptions(**paths, build_time=T0))
    with fresh_collection(root / "anki") as col:
        _import(col, report.written)
        sources = col.db.list(f"select flds from notes where mid = {NOTETYPE_ID} order by id")

        _future_notetype(monkeypatch, rename=("Source", "Origin"))
        future = build([str(root / "src")], BuildOptions(**paths, build_time=T1))
        assert future.changed_notes == 0  # same values; only the note type changed
        assert _import(col, future.written, merge_notetypes=True) == {"new": 0, "updated": 0, "duplicate": 53, "conflicting": 0}
        names = [f for f in FIELDS if f != "Source"] + ["Origin"]
        ((name, fields, _, used),) = _notetypes(col)
        assert fields == [(f, FIELD_IDS.get(f, FIELD_IDS["Source"])) for f in names] and used == 53
        # no schema change: the notes are untouched, mods and all
        assert col.db.list(f"select flds from notes where mid = {NOTETYPE_ID} order by id") == sources
        assert col.db.list(f"select distinct mod from notes where mid = {NOTETYPE_ID}") == [T0]


def test_decks_from_before_the_ids_take_them_on_the_next_import(seeds, monkeypatch):
    """A collection whose flashgen note type has no field ids (decks built before they existed):
    the next build's note type is newer (its hash changed), so a plain import gives it the ids,
    and nothing else changes."""
    root, paths = seeds
    # the note type as flashgen wrote it before: no ids (and another hash in the lock)
    monkeypatch.setattr(package, "field_configs", lambda: [{"name": name} for name in FIELDS])
    monkeypatch.setattr(
        package,
        "template_configs",
        lambda: [{"name": "Card", "qfmt": notetype.FRONT_TEMPLATE, "afmt": notetype.BACK_TEMPLATE}],
    )
    monkeypatch.setattr(notetype, "notetype_hash", lambda: "0123456789abcdef")  # the lock's
    monkeypatch.setattr(state, "notetype_sources_hash", lambda: "0123456789abcdef")  # the state file's settings key
    report = build([str(root / "src")], BuildOptions(**paths, build_time=T0))
    monkeypatch.undo()
    with fresh_collection(root / "anki") as col:
        _import(col, report.written)
        ((_, fields, templates, _),) = _notetypes(col)
        assert {i for _, i in fields + templates} == {None}

        upgraded = build([str(root / "src")], BuildOptions(**paths, build_time=T1))
        assert upgraded.changed_notes == 0
        assert _import(col, upgraded.written) == {"new": 0, "updated": 0, "duplicate": 53, "conflicting": 0}
        assert _notetypes(col) == [("flashgen: Question/Answer", [(f, FIELD_IDS[f]) for f in FIELDS], [("Card", TEMPLATE_ID)], 53)]
        assert col.db.list(f"select distinct mod from notes where mid = {NOTETYPE_ID}") == [T0]
