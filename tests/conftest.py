"""Shared fixtures: where the real inputs live, and the golden-file helper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FLASHGEN_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"
SEEDS = SHARED / "seeds"
GOLDENS = Path(__file__).resolve().parent / "goldens"


def corpus_files() -> list[Path]:
    """Every real input file, corpus and seeds, sorted."""
    files = sorted(CORPUS.glob("*/*.md")) + sorted(SEEDS.glob("*.txt"))
    if not files:
        raise RuntimeError(f"no corpus found under {SHARED}; set FLASHGEN_SHARED")
    return files


def corpus_figures() -> dict:
    """The reviewed per-book figures of the corpus (`tests/goldens/dedupe/corpus-figures.json`).

    Tests that build the whole corpus take their expected counts from here, so that a grown
    corpus changes one reviewed golden file rather than numbers scattered through the tests.
    """
    import json

    return json.loads((GOLDENS / "dedupe" / "corpus-figures.json").read_text(encoding="utf-8"))


def shared_relative(path: Path) -> str:
    return path.relative_to(SHARED).as_posix()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite golden files from the current output (review the diff by eye!)",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """Compare text with a golden file, or rewrite it under --update-goldens."""
    update = request.config.getoption("--update-goldens")

    def check(name: str, actual: str) -> None:
        path = GOLDENS / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"no golden file {path}; run 'make goldens' and review it"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"output differs from {path}; if intended, run 'make goldens' and review the diff"

    return check


def corpus_copies(root: Path, copies: int) -> Path:
    """The real corpus ``copies`` times over in ``root``, each copy of a book another book."""
    for copy in range(copies):
        for path in sorted(CORPUS.glob("*/*.md")):
            text = path.read_text(encoding="utf-8").replace("Flashcards: ", f"Flashcards: Copy {copy} of ", 1)
            target = root / f"copy-{copy}" / path.parent.name / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Path:
    """The real corpus three times over, as three more books: enough files and cards for the worker pool."""
    from flashgen.workers import PARALLEL_FROM

    root = corpus_copies(tmp_path_factory.mktemp("library"), 3)
    assert len(list(root.rglob("*.md"))) >= PARALLEL_FROM
    return root


@pytest.fixture(params=["default", "spawn-only"])
def start_methods(request, monkeypatch) -> str:
    """The platform's start methods, then as on Windows: worker processes can only be spawned."""
    if request.param == "spawn-only":
        from tests.spawn_only import limit_to_spawn

        limit_to_spawn(monkeypatch.setattr)
    return request.param


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """Builds in tests use a render cache (and cache secret) of their own, never the user's.

    Session-wide, so that module-scoped fixtures, which pytest sets up before any
    function-scoped one, cannot build with the user's cache either.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-state"))
        yield


# The real Anki desktop fixtures (anki_desktop, anki_desktop_factory); imported last because
# that module reads SHARED from here.
from tests.anki_desktop import anki_desktop, anki_desktop_factory  # noqa: E402,F401
