"""The builder against the real Anki backend: import, review, edit, rebuild, re-import."""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from flashgen.build import BuildOptions, build
from flashgen.model import FlashgenError, Severity
from flashgen.notetype import NOTETYPE_ID
from tests.anki_helpers import flashgen_notes, fresh_collection, import_all, review
from flashgen.names import slug
from tests.conftest import CORPUS, corpus_figures

pytestmark = pytest.mark.anki

T0, T1, T2 = 1_700_000_000, 1_700_100_000, 1_700_200_000
EDITED = "corpus/ai-engineering/hq-part-23.md"
EDITED_PACKAGE = "ai-engineering-building-applications-with-foundation-models.apkg"
FIGURES = corpus_figures()
TOTALS = (FIGURES["questions"], FIGURES["notes"], FIGURES["merged"])
NOTES = FIGURES["notes"]


def digest(paths):
    return {os.path.basename(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    shutil.copytree(CORPUS, root / "corpus")
    return root


@pytest.fixture(scope="module")
def first(workspace):
    options = BuildOptions(out_dir=str(workspace / "out"), lock_path=str(workspace / "flashgen.lock"), build_time=T0)
    return options, build([str(workspace / "corpus")], options)


def test_corpus_builds_one_package_per_book(first):
    _, report = first
    assert sorted(os.path.basename(p) for p in report.written) == sorted(f"{slug(t)}.apkg" for t in FIGURES["books"])
    assert EDITED_PACKAGE in {os.path.basename(p) for p in report.written}
    assert (report.questions, report.notes, report.merged) == TOTALS
    assert report.count(Severity.ERROR) == 0
    for path in report.written:
        with zipfile.ZipFile(path) as archive:
            assert archive.namelist()[:2] == ["collection.anki2", "media"]
            assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
            assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())


def test_full_round_trip_in_real_anki(workspace, first, monkeypatch):
    options, report = first
    with fresh_collection(workspace / "anki") as col:
        # 1. first import: every note new, decks and tags as designed, cards render
        counts = import_all(col, report.written)
        assert counts == {"new": NOTES, "updated": 0, "duplicate": 0, "conflicting": 0, "missing_notetype": 0}
        notes = flashgen_notes(col)
        assert len(notes) == NOTES and col.card_count() == NOTES
        deck_names = {name.name for name in col.decks.all_names_and_ids()}
        assert deck_names >= {f"{book}::{deck}" for book, f in FIGURES["books"].items() for deck in f["decks"]}
        assert all(any(t.startswith("flashgen::book::") for t in n.tags) for n in notes)
        assert all(any(t.startswith("flashgen::chapter::") for t in n.tags) for n in notes)
        for cid in col.find_cards(f"mid:{NOTETYPE_ID}"):
            out = col.get_card(cid).render_output()
            assert 'class="fg-question"' in out.question_text and 'class="fg-answer"' in out.answer_text
            assert "unknown field" not in out.answer_text.lower()
        assert not col.get_empty_cards().notes
        for note in notes:  # nothing that runs, from any input
            for value in note.fields:
                lowered = value.lower()
                assert "<script" not in lowered and "javascript:" not in lowered
                assert not __import__("re").search(r"<[^>]+\son\w+\s*=", lowered)

        # 2. review some cards
        reviewed = review(col, "AI Engineering: Building Applications with Foundation Models", 3)
        before = {cid: (c.reps, c.ivl, c.due, c.did) for cid in reviewed for c in [col.get_card(cid)]}
        revlog = col.db.scalar("select count() from revlog")
        assert revlog == 3

        # 3. edit one answer, rebuild: exactly that note changes
        path = workspace / EDITED
        text = path.read_text(encoding="utf-8")
        old = "For example, attempting to retrieve current stock prices without internet connectivity would result in a tool failure."
        path.write_text(text.replace(old, "EDITED: stock prices need the network."), encoding="utf-8")
        packages_before = digest(report.written)
        edited = build([str(workspace / "corpus")], BuildOptions(**{**_fields(options), "build_time": T1}))
        assert edited.changed_notes == 1
        # only the edited book is rebuilt; the other books' packages are not even rewritten
        assert [os.path.basename(p) for p in edited.written] == [EDITED_PACKAGE]
        assert {os.path.basename(p) for p in edited.unchanged} == set(packages_before) - {EDITED_PACKAGE}
        assert (edited.questions, edited.notes, edited.merged) == TOTALS
        all_packages = sorted(edited.written + edited.unchanged)
        assert {k: v for k, v in digest(all_packages).items() if "ai-engineering" not in k} == {
            k: v for k, v in packages_before.items() if "ai-engineering" not in k
        }
        counts = import_all(col, all_packages)
        assert counts == {"new": 0, "updated": 1, "duplicate": NOTES - 1, "conflicting": 0, "missing_notetype": 0}
        assert len(col.models.all_names_and_ids()) == len({m.id for m in col.models.all_names_and_ids()})
        assert sum(1 for m in col.models.all_names_and_ids() if m.name.startswith("flashgen")) == 1
        (note,) = [n for n in flashgen_notes(col) if "EDITED: stock prices" in n["Answer"]]
        assert note.mod == T1
        after = {cid: (c.reps, c.ivl, c.due, c.did) for cid in reviewed for c in [col.get_card(cid)]}
        assert after == before and col.db.scalar("select count() from revlog") == revlog
        assert col.note_count() == NOTES

        # 4. nothing changed, another SOURCE_DATE_EPOCH: identical bytes, and re-import changes nothing
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(T2))
        lock_before = Path(options.lock_path).read_bytes()
        bytes_before = digest(all_packages)
        again = build([str(workspace / "corpus")], BuildOptions(**{**_fields(options), "build_time": None}))
        assert again.changed_notes == 0 and again.written == () and sorted(again.unchanged) == all_packages
        assert digest(all_packages) == bytes_before
        # and with nothing skipped (another output folder, no cache), still byte-identical
        fresh = build(
            [str(workspace / "corpus")],
            BuildOptions(**{**_fields(options), "build_time": None, "out_dir": str(workspace / "out2"), "use_cache": False}),
        )
        assert digest(fresh.written) == bytes_before or pytest.fail("rebuild is not byte-identical")
        assert Path(options.lock_path).read_bytes() == lock_before
        counts = import_all(col, fresh.written)
        assert counts["new"] == 0 and counts["updated"] == 0 and counts["conflicting"] == 0


def _fields(options):
    return {name: getattr(options, name) for name in options.__dataclass_fields__}


def test_rebuild_from_scratch_is_reproducible(tmp_path):
    seeds = str(CORPUS.parent / "seeds")
    a = build([seeds], BuildOptions(out_dir=str(tmp_path / "a"), lock_path=str(tmp_path / "a.lock"), build_time=T0))
    b = build([seeds], BuildOptions(out_dir=str(tmp_path / "b"), lock_path=str(tmp_path / "b.lock"), build_time=T0))
    assert digest(a.written) == digest(b.written)
    assert Path(tmp_path / "a.lock").read_text() == Path(tmp_path / "b.lock").read_text()


@pytest.mark.parametrize("split, files", [("chapter", 2), ("none", 1), ("book", 1)])
def test_split_modes(tmp_path, split, files):
    seeds = str(CORPUS.parent / "seeds")
    report = build([seeds], BuildOptions(out_dir=str(tmp_path), lock_path=str(tmp_path / "l"), split=split, build_time=T0))
    assert len(report.written) == files == len([p for p in os.listdir(tmp_path) if p.endswith(".apkg")])


def test_strict_refuses_before_writing(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "bad.md").write_text("# Flashcards: B (Part 1)\n\n#### T\n:p Q?\n\n---\n", encoding="utf-8")
    options = BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "l"), strict=True, build_time=T0)
    report = build([str(source)], options)
    assert report.refused and report.written == () and not (tmp_path / "out").exists()


def test_failed_write_leaves_previous_package_untouched(tmp_path, monkeypatch):
    seeds = str(CORPUS.parent / "seeds")
    options = BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "l"), build_time=T0)
    (path,) = build([seeds], options).written
    previous = Path(path).read_bytes()
    lock_before = Path(tmp_path / "l").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    (tmp_path / "in").mkdir()
    shutil.copy(os.path.join(seeds, os.listdir(seeds)[0]), tmp_path / "in" / "a.txt")
    with pytest.raises(FlashgenError, match="No space left"):
        build([str(tmp_path / "in")], options)
    assert Path(path).read_bytes() == previous
    assert Path(tmp_path / "l").read_bytes() == lock_before
    assert sorted(os.listdir(tmp_path / "out")) == [".flashgen-build.lock", ".flashgen-state.json", os.path.basename(path)]


def test_media_inside_the_tree_is_bundled_and_nothing_outside_is_read(tmp_path):
    source = tmp_path / "in"
    (source / "img").mkdir(parents=True)
    (source / "img" / "plot.png").write_bytes(b"\x89PNG fake image")
    (tmp_path / "secret.png").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.png", source / "img" / "link.png")
    card = "#### T{n}\nC\n:p Q{n}?\n??x\n![x]({url})\nx??\n\n---\n\n"
    urls = ["img/plot.png", "img/missing.png", "../secret.png", "/etc/passwd", "img/link.png", "https://x.org/a.png"]
    body = "".join(card.format(n=i, url=u) for i, u in enumerate(urls))
    (source / "cards.md").write_text("# Flashcards: B (Part 1)\n\n---\n\n" + body, encoding="utf-8")
    report = build([str(source)], BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "l"), build_time=T0))
    problems = sorted((d.location.line, d.code) for d in report.diagnostics)
    assert [code for _, code in problems] == ["missing-image", "unsafe-image", "unsafe-image", "unsafe-image", "unsafe-image"]
    with zipfile.ZipFile(report.written[0]) as archive:
        assert archive.read("0") == b"\x89PNG fake image"
        assert b"secret" not in b"".join(archive.read(n) for n in archive.namelist())
    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, report.written)["new"] == 6
        (name,) = os.listdir(col.media.dir())
        assert Path(col.media.dir(), name).read_bytes() == b"\x89PNG fake image"
        (note,) = [n for n in flashgen_notes(col) if "Q0?" in n["Question"]]
        assert f'<img src="{name}"' in note["Answer"]


def test_missing_path_and_bad_lock_are_environment_errors(tmp_path):
    with pytest.raises(FlashgenError, match="no such file"):
        build([str(tmp_path / "nope")], BuildOptions(out_dir=str(tmp_path / "o"), lock_path=str(tmp_path / "l")))
    (tmp_path / "l").write_text("{not json", encoding="utf-8")
    with pytest.raises(FlashgenError, match="lock file"):
        build([str(CORPUS.parent / "seeds")], BuildOptions(out_dir=str(tmp_path / "o"), lock_path=str(tmp_path / "l")))


def test_demo_decks_import_cleanly(tmp_path, monkeypatch):
    """What `make demo` does: examples/ with its flashgen.toml, imported into a fresh Anki collection."""
    import shutil as _shutil

    from flashgen.cli import main

    examples = Path(__file__).resolve().parent.parent / "examples"
    _shutil.copytree(examples, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    lock_before = (tmp_path / "examples" / "flashgen.lock").read_bytes()
    assert main(["build", "examples/", "-q"]) == 0
    # the committed lock is current: `make demo` on a clean clone changes nothing in the checkout
    assert (tmp_path / "examples" / "flashgen.lock").read_bytes() == lock_before
    (package,) = sorted((tmp_path / "out").glob("*.apkg"))
    assert package.name == "ai-engineering.apkg"  # the title override from examples/flashgen.toml
    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, [package]) == {"new": 53, "updated": 0, "duplicate": 0, "conflicting": 0, "missing_notetype": 0}
        assert {n.name for n in col.decks.all_names_and_ids()} >= {
            "AI Engineering::24 Memory",
            "AI Engineering::25 Finetuning Overview",
        }


def test_without_the_lock_only_the_clock_decides(tmp_path):
    """What the README says of building without the lock: every note gets the build time, so a
    later build updates all notes, changed or not, and one at the same time updates none, edit or not."""
    shutil.copytree(CORPUS.parent / "seeds", tmp_path / "src")

    def unlocked(build_time, n):
        options = BuildOptions(out_dir=str(tmp_path / f"out{n}"), lock_path=str(tmp_path / f"lock{n}"), build_time=build_time)
        return build([str(tmp_path / "src")], options).written

    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, unlocked(T0, 0))["new"] == 53
        assert import_all(col, unlocked(T1, 1))["updated"] == 53  # nothing edited
        (path,) = [p for p in (tmp_path / "src").iterdir() if "tool failure." in p.read_text(encoding="utf-8")]
        path.write_text(path.read_text(encoding="utf-8").replace("tool failure.", "EDITED.", 1), encoding="utf-8")
        assert import_all(col, unlocked(T1, 2)) == {"new": 0, "updated": 0, "duplicate": 53, "conflicting": 0, "missing_notetype": 0}
        assert not col.find_notes("EDITED.")
        assert import_all(col, unlocked(T2, 3))["updated"] == 53
        assert len(col.find_notes("EDITED.")) == 1 and col.note_count() == 53
