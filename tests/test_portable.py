"""Portability: the same library and the same bytes whatever the OS, the path spelling or the start method."""

from __future__ import annotations

import dataclasses
import json
import os

from flashgen.build import STATE_FILE, BuildOptions, build

T0 = 1_700_000_000


def _book(name: str, answers: list[str]) -> str:
    cards = "".join(f"#### Card {i}\nContext.\n:p {name} question {i}?\n??x\n{a}\nx??\n\n---\n\n" for i, a in enumerate(answers))
    return f"# Flashcards: {name}_processed (Part 1)\n\n---\n\n{cards}"


def test_a_library_is_the_same_however_its_path_is_spelled(tmp_path, monkeypatch):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text(_book("Alpha", ["One.", "Two.\nx??"]), encoding="utf-8")  # a stray closer: a warning
    (notes / "sub" / "b.md").write_text(_book("Beta", ["Three."]), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    relative = BuildOptions(out_dir="out", lock_path="flashgen.lock", build_time=T0)
    absolute = dataclasses.replace(relative, out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "flashgen.lock"))

    first = build([str(notes)], absolute)
    assert len(first.written) == 2 and first.diagnostics
    for paths, options in ((["notes/"], relative), (["./notes"], absolute), ([str(notes) + "/"], relative)):
        again = build(paths, options)
        assert again.written == (), paths
        assert sorted(again.unchanged) == sorted(f"{options.out_dir}/{p.rsplit('/', 1)[1]}" for p in first.written)
        # diagnostics of a skipped book name its files as this build spelled them
        assert [d.location.path for d in again.diagnostics] == [os.path.join(os.path.normpath(paths[0]), "a.md")] * len(first.diagnostics)

    state = (tmp_path / "out" / STATE_FILE).read_text(encoding="utf-8")
    assert str(tmp_path) not in state and "\\" not in state
    books = json.loads(state)["books"].values()
    assert sorted(p for b in books for p in b["inputs"]) == ["../notes/a.md", "../notes/sub/b.md"]
    assert sorted(p for b in books for p in b["packages"]) == sorted(p.rsplit("/", 1)[1] for p in first.written)
