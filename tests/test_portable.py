"""Portability: the same library and the same bytes whatever the OS, the path spelling or the start method."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flashgen.workers as worker_module
from flashgen.build import BuildOptions, build
from flashgen.state import STATE_FILE
from tests.conftest import CORPUS, ROOT

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


# --- worker processes: spawn as on Windows and macOS -------------------------------------------


def _what_a_worker_sees(_) -> tuple[dict, int]:
    return dict(worker_module._PINNED_CHAPTERS), worker_module.PARALLEL_FROM


def test_spawn_only_really_spawns_and_workers_get_their_pins_as_arguments(start_methods, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(worker_module, "_PINNED_CHAPTERS", {"stale": "inherited"})
    monkeypatch.setattr(worker_module, "PARALLEL_FROM", 7)  # state a forked worker inherits, a spawned one never sees
    with worker_module.worker_pool(2, {"key": "pinned"}) as pool:
        method = pool._ctx.get_start_method()
        seen = pool.map(_what_a_worker_sees, range(4), chunksize=1)
    assert {str(pins) for pins, _ in seen} == {str({"key": "pinned"})}
    if start_methods == "spawn-only":
        assert method == "spawn" and {n for _, n in seen} == {64}
        with pytest.raises(ValueError):
            multiprocessing.get_context("fork")
    else:
        assert method == "fork" and {n for _, n in seen} == {7}


# --- the whole command as on Windows ------------------------------------------------------------

AS_WINDOWS = Path(__file__).resolve().parent / "as_windows.py"


def _digests(out: Path, lock: Path) -> dict[str, str]:
    files = sorted(out.glob("*.apkg")) + [lock]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# spawned workers must import flashgen again: the corpus (54 files, 1.1 MB of cards, 1,009 notes) is
# too little work to start a worker per core for, but gets one helper, started before the files are
# parsed (workers.helper_ahead); the library (over 64 files) gets one per core
@pytest.mark.parametrize("source, workers", [(CORPUS, 1), ("library", 2)], ids=["corpus", "library-on-workers"])
def test_builds_as_on_windows_give_the_same_bytes(tmp_path, request, source, workers):
    """No fcntl, termios, pwd, grp, resource (...), and only spawn: the same packages and lock as a normal build."""
    source = request.getfixturevalue(source) if isinstance(source, str) else source
    normal = BuildOptions(out_dir=str(tmp_path / "normal"), lock_path=str(tmp_path / "normal.lock"), build_time=T0, jobs=2)
    build([str(source)], normal)

    command = [sys.executable, str(AS_WINDOWS), "build", str(source), "-o", "out", "--lock", "as-windows.lock", "-q", "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOURCE_DATE_EPOCH": str(T0)}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"as_windows: {workers} spawned workers" in run.stderr
    expected = _digests(tmp_path / "normal", tmp_path / "normal.lock")
    actual = _digests(tmp_path / "out", tmp_path / "as-windows.lock")
    assert list(actual.values()) == list(expected.values()) and len(actual) >= 2  # packages and the lock


# --- folders and text files ---------------------------------------------------------------------


def test_the_render_cache_is_in_the_user_cache_folder(tmp_path, monkeypatch):
    from flashgen.cache import default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "flashgen")


def test_crlf_and_lf_read_alike_and_everything_is_written_with_lf(tmp_path, monkeypatch):
    from flashgen.cli import main
    from flashgen.config import load_config
    from flashgen.lockfile import read_lock

    notes = tmp_path / "notes"
    notes.mkdir()
    text = _book("Gamma", ["Line one.\nLine two.", "Three."])
    (notes / "lf.md").write_bytes(text.encode())
    (notes / "crlf.md").write_bytes(text.replace("\n", "\r\n").replace("Gamma", "Delta").encode())
    config = 'out = "decks"\nlock = "notes/flashgen.lock"\n[titles]\nGamma_processed = "Gamma"\n'
    (tmp_path / "flashgen.toml").write_bytes(config.replace("\n", "\r\n").encode())
    (tmp_path / "lf.toml").write_bytes(config.encode())
    assert dataclasses.replace(load_config(str(tmp_path / "flashgen.toml")), path="") == dataclasses.replace(
        load_config(str(tmp_path / "lf.toml")), path=""
    )

    monkeypatch.chdir(tmp_path)
    assert main(["build", "notes", "-q"]) == 0
    assert main(["preview", "notes", "-o", "preview.html", "-q"]) == 0
    lock = tmp_path / "notes" / "flashgen.lock"
    written = [lock, tmp_path / "decks" / STATE_FILE, tmp_path / "preview.html"]
    assert all(b"\r" not in p.read_bytes() for p in written)
    notes_by_book = {}
    for key, state in json.loads(lock.read_text(encoding="utf-8"))["notes"].items():
        notes_by_book.setdefault(state["deck"].split("::")[0], []).append(state["hash"])
    assert "Gamma" in notes_by_book  # the title from the CRLF config
    assert sorted(len(hashes) for hashes in notes_by_book.values()) == [2, 2]  # the CRLF book's cards, all there

    crlf_lock = tmp_path / "crlf.lock"
    crlf_lock.write_bytes(lock.read_bytes().replace(b"\n", b"\r\n"))
    assert read_lock(crlf_lock) == read_lock(lock)


def test_json_on_stdout_is_utf8_whatever_the_console_code_page(tmp_path, monkeypatch):
    import io

    from flashgen.cli import main

    (tmp_path / "book.md").write_text(_book("Mathématiques › 数学", ["Un."]), encoding="utf-8")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")  # a pipe on Windows, by default
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["check", str(tmp_path), "--json"]) == 0
    assert main(["stats", str(tmp_path), "--json"]) == 0
    stdout.flush()
    first, second = stdout.buffer.getvalue().decode("utf-8").split("\n}\n", 1)
    assert "数学" in json.dumps(json.loads(second)["books"], ensure_ascii=False)


def test_the_ci_example_builds_on_three_platforms_with_commands_that_exist():
    import shlex

    import yaml

    from flashgen.cli import make_parser

    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "rebuild-decks.yml").read_text(encoding="utf-8"))
    job = workflow["jobs"]["build"]
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest", "windows-latest", "macos-latest"]
    commands = []
    for step in job["steps"]:
        for line in step.get("run", "").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["flashgen"] or words[:3] == ["python", "-m", "flashgen"]:
                commands.append(words[1 if words[0] == "flashgen" else 3 :])
    assert [c[0] for c in commands] == ["check", "build"]
    for arguments in commands:
        make_parser().parse_args(arguments)  # an option the command does not know exits here
