"""The wheel, installed in a fresh virtual environment away from the checkout, runs as `flashgen` and `python -m flashgen`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flashgen import __version__
from flashgen.build import BuildOptions, build
from tests.conftest import ROOT, SEEDS

T0 = 1_700_000_000


def _run(command: list, cwd: Path, **env) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    run = subprocess.run(command, cwd=cwd, env={**environment, **env}, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{command}\n{run.stdout}\n{run.stderr}"
    return run.stdout + run.stderr


@pytest.mark.slow
def test_the_wheel_installs_and_runs_in_a_clean_venv(tmp_path):
    # build from a copy: setuptools leaves build/ behind, and stale files there would end up in the wheel
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "flashgen", source / "flashgen", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(source), "-w", str(tmp_path / "dist")], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("flashgen-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / ("python.exe" if os.name == "nt" else "python")
    # this environment's pip installs into the new one: no pip of its own to bootstrap; its cache makes it quick
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--disable-pip-version-check", str(wheel)], tmp_path)

    work = tmp_path / "elsewhere"  # not the checkout: `import flashgen` must find the installed copy
    work.mkdir()
    where = _run([str(python), "-c", "import flashgen; print(flashgen.__file__)"], work)
    assert Path(where.strip()).resolve().is_relative_to(venv.resolve())
    assert _run([str(scripts / "flashgen"), "--version"], work).strip() == f"flashgen {__version__}"
    assert _run([str(python), "-m", "flashgen", "--version"], work).strip() == f"flashgen {__version__}"

    _run([str(scripts / "flashgen"), "build", str(SEEDS), "-o", "out", "--lock", "flashgen.lock", "-q"], work, SOURCE_DATE_EPOCH=str(T0))
    expected = build([str(SEEDS)], BuildOptions(out_dir=str(tmp_path / "here"), lock_path=str(tmp_path / "here.lock"), build_time=T0))
    installed = sorted((work / "out").glob("*.apkg"))
    assert [p.name for p in installed] == [os.path.basename(p) for p in expected.written]
    for mine, theirs in zip(installed, sorted(expected.written), strict=True):
        assert hashlib.sha256(mine.read_bytes()).digest() == hashlib.sha256(Path(theirs).read_bytes()).digest()
    assert (work / "flashgen.lock").read_bytes() == (tmp_path / "here.lock").read_bytes()
