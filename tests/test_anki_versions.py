"""The re-import round trip in an older Anki too: Anki 24.06 (the `anki` 24.6.3 wheel).

Many users run an Anki older than the test extra's. The older backend lives in a virtual
environment of its own in pytest's cache folder, made once (about 15 s) and reused; each step
runs tests/anki_step.py with that environment's Python and reads back JSON. The same steps run
with this environment's Anki, so the two behaviours sit side by side.

What differs (measured, and pinned below): up to Anki 24.11 an updated note gets the *import
time* as its mod, not the package's (25.02 keeps the package's). A later edit then updates the
note only if its build time is newer than that import: a rebuild with a fixed SOURCE_DATE_EPOCH
older than the import is skipped as a duplicate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flashgen.build import BuildOptions, build
from flashgen.notetype import NOTETYPE_ID
from tests.conftest import CORPUS

pytestmark = pytest.mark.anki

OLD_ANKI = "24.6.3"
STEP = Path(__file__).resolve().parent / "anki_step.py"
T0, T1, T2 = 1_700_000_000, 1_700_100_000, 1_700_200_000
DECK = "AI Engineering: Building Applications with Foundation Models::24 Memory"
ANSWER_END = "would result in a tool failure."
EMPTY = {"new": 0, "updated": 0, "duplicate": 0, "conflicting": 0, "missing_notetype": 0}


def _old_anki_python(cache_dir: Path) -> Path:
    """The Python of a virtual environment with anki==OLD_ANKI, made once in pytest's cache."""
    venv = cache_dir / "venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    done = venv / ".installed"
    if done.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)  # an install cut short is started again
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    # this environment's pip installs into the new one: nothing to bootstrap
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
               "--disable-pip-version-check", "--only-binary=:all:", f"anki=={OLD_ANKI}"]  # fmt: skip
    installed = subprocess.run(command, capture_output=True, text=True)
    if installed.returncode != 0:
        last = (installed.stderr.strip().splitlines() or ["no message"])[-1]
        reason = f"could not install anki=={OLD_ANKI} from PyPI (offline?): {last}"
        if os.environ.get("CI"):  # CI reaches PyPI: there a missing wheel is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    done.write_text(OLD_ANKI + "\n", encoding="utf-8")
    return python


@pytest.fixture(scope="module", params=[OLD_ANKI, "test extra"])
def anki_python(request):
    if request.param == "test extra":
        return request.param, Path(sys.executable)
    return request.param, _old_anki_python(Path(request.config.cache.mkdir(f"anki-{OLD_ANKI}")))


class _Library:
    """The seeds, their lock and output, and one Anki collection driven step by step."""

    def __init__(self, root: Path, python: Path):
        shutil.copytree(CORPUS.parent / "seeds", root / "src")
        self.root, self.python = root, python
        self.options = {"out_dir": str(root / "out"), "lock_path": str(root / "flashgen.lock")}

    def build(self, build_time: int) -> list[str]:
        return list(build([str(self.root / "src")], BuildOptions(**self.options, build_time=build_time)).written)

    def edit(self, old: str, new: str) -> None:
        for path in sorted((self.root / "src").iterdir()):
            text = path.read_text(encoding="utf-8")
            if old in text:
                path.write_text(text.replace(old, new, 1), encoding="utf-8")
                return
        raise AssertionError(f"{old!r} is in no source")

    def step(self, **request) -> dict:
        request["notetype_id"] = NOTETYPE_ID
        done = subprocess.run(
            [str(self.python), str(STEP), str(self.root / "collection.anki2"), json.dumps(request)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},  # an old wheel's deprecations are not ours
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)


def _edited(result: dict, marker: str) -> dict:
    (note,) = [n for n in result["notes"].values() if marker in n["fields"][1]]
    return note


def test_round_trip_keeps_reviews_and_one_note_type(anki_python, tmp_path):
    version, python = anki_python
    old = version == OLD_ANKI
    library = _Library(tmp_path, python)

    first = library.step(**{"import": library.build(T0)})
    assert first["version"].startswith("24.06" if old else "26.")
    assert first["counts"] == {**EMPTY, "new": 53}
    assert {n["mod"] for n in first["notes"].values()} == {T0}  # new notes keep the package's mod
    assert [nt["name"] for nt in first["notetypes"]] == ["flashgen: Question/Answer"]

    reviewed = library.step(review={"deck": DECK, "count": 3})
    cards = {cid: reviewed["cards"][str(cid)] for cid in reviewed["reviewed"]}
    assert reviewed["revlog"] == 3

    # edit an answer, rebuild, re-import: that note updated in place, reviews kept
    library.edit(ANSWER_END, "EDIT ONE.")
    updated = library.step(**{"import": library.build(T1)})
    assert updated["counts"] == {**EMPTY, "updated": 1, "duplicate": 52}
    assert [nt["name"] for nt in updated["notetypes"]] == ["flashgen: Question/Answer"]
    assert {cid: updated["cards"][str(cid)] for cid in cards} == cards and updated["revlog"] == 3
    stamped = _edited(updated, "EDIT ONE.")["mod"]
    if old:  # the import time, not the package's T1
        assert updated["import_started"] <= stamped <= updated["import_ended"]
    else:
        assert stamped == T1

    # the same note edited again, built with a fixed SOURCE_DATE_EPOCH older than that import
    library.edit("EDIT ONE.", "EDIT TWO.")
    again = library.step(**{"import": library.build(T2)})
    if old:  # skipped: the collection's copy looks newer
        assert again["counts"] == {**EMPTY, "duplicate": 53}
        assert _edited(again, "EDIT ONE.")["mod"] == stamped
    else:
        assert again["counts"] == {**EMPTY, "updated": 1, "duplicate": 52}

    # a build after the import (the clock, or a commit made since) updates it on both
    library.edit("EDIT TWO.", "EDIT THREE.")
    later = library.step(**{"import": library.build(max(int(time.time()), stamped + 1))})
    assert later["counts"] == {**EMPTY, "updated": 1, "duplicate": 52}
    assert [nt["name"] for nt in later["notetypes"]] == ["flashgen: Question/Answer"]
    assert {cid: later["cards"][str(cid)] for cid in cards} == cards and later["revlog"] == 3
    assert len(later["notes"]) == 53
