"""The command line: commands, exit codes, one-line errors, JSON, config."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from flashgen import __version__, parse_file
from flashgen.model import Severity
from flashgen.cli import main
from tests.conftest import CORPUS, SEEDS, corpus_figures


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_all_commands_with_examples(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("build", "check", "stats", "preview"):
        assert re.search(rf"^\s+{command}\s", out, re.M)
        assert f"flashgen {command} " in out
    for command in ("build", "check", "stats", "preview"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "example:" in out


def test_version(capsys):
    assert run(capsys, "--version")[:2] == (0, f"flashgen {__version__}\n")


def _corpus_counts():
    parsed = [parse_file(p) for p in sorted(CORPUS.rglob("*.md"))]  # README.md included, as the CLI reads it
    warnings = sum(d.severity is Severity.WARNING for p in parsed for d in p.diagnostics)
    return len(parsed), sum(p.questions for p in parsed), sum(len(p.cards) for p in parsed), warnings


def test_check_corpus(capsys):
    files, questions, cards, warnings = _corpus_counts()
    assert questions == cards == corpus_figures()["questions"]  # every question of the real corpus is a card
    code, out, err = run(capsys, "check", str(CORPUS))
    assert code == 0 and out == ""
    assert err.strip().splitlines()[-1] == f"{files} files, {questions} questions, {cards} cards, 0 errors, {warnings} warnings"
    assert run(capsys, "check", "--strict", str(CORPUS))[0] == 1


def test_check_json(capsys):
    code, out, _ = run(capsys, "check", "--json", str(CORPUS))
    data = json.loads(out)
    files, questions, cards, _ = _corpus_counts()
    assert (data["files"], data["cards"], data["questions"]) == (files, cards, questions)
    assert set(data["diagnostics"][0]) >= {"path", "line", "severity", "code", "message"}


def test_errors_in_input_exit_1_with_path_and_line(tmp_path, capsys):
    (tmp_path / "bad.md").write_text("# Flashcards: B (Part 1)\n\n#### T\n:p Q?\n\n---\n", encoding="utf-8")
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 1
    assert f"{tmp_path / 'bad.md'}:4: error: question 'Q?' has no answer" in err


@pytest.mark.parametrize("command", ["check", "build", "stats", "preview"])
def test_missing_path_is_one_line_and_exit_2(tmp_path, capsys, command):
    code, out, err = run(capsys, command, str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert err.splitlines() == [f"flashgen: error: {tmp_path / 'nope'}: no such file or folder"]


def test_unwritable_output_folder_is_one_line_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "build", str(SEEDS), "-o", str(blocker / "out"), "--lock", str(tmp_path / "l"))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("flashgen: error: ") and "cannot create output folder" in err
    if os.geteuid() != 0:  # root writes anywhere
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o500)
        assert run(capsys, "build", str(SEEDS), "-o", str(readonly), "--lock", str(tmp_path / "l"))[0] == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("out = [", "malformed config"),
        ("colour = 'blue'", "unknown config key 'colour'"),
        ("min_rating = 'high'", "'min_rating' must be a integer 0-10"),
        ("split = 'page'", "'split' must be"),
        ("deck_template = '{nope}'", "'deck_template' is not a valid template"),
    ],
)
def test_malformed_config_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    shutil.copytree(SEEDS, tmp_path / "in")
    (tmp_path / "in" / "flashgen.toml").write_text(text, encoding="utf-8")
    code, _, err = run(capsys, "build", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert code == 2 and len(err.splitlines()) == 1 and message in err


def test_config_in_pyproject_and_flags_override_it(tmp_path, capsys, monkeypatch):
    shutil.copytree(SEEDS, tmp_path / "in")
    (tmp_path / "in" / "pyproject.toml").write_text(
        '[tool.flashgen]\nsplit = "chapter"\nout = "decks"\nlock = "cards.lock"\n'
        '[tool.flashgen.titles]\n"ai-engineering-building-applications-with-foundation-models" = "AIE"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "build", "in", "--json")
    written = json.loads(out)["written"]
    assert code == 0 and sorted(os.path.basename(p) for p in written) == ["aie--24-memory.apkg", "aie--25-finetuning-overview.apkg"]
    assert (tmp_path / "in" / "cards.lock").exists()
    code, out, _ = run(capsys, "build", "in", "--json", "--split", "book", "-o", "other")
    assert [os.path.relpath(p, tmp_path) for p in json.loads(out)["written"]] == ["other/aie.apkg"]


def test_build_summary_and_quiet(tmp_path, capsys):
    args = ["build", str(SEEDS), "-o", str(tmp_path / "o"), "--lock", str(tmp_path / "l")]
    code, out, err = run(capsys, *args)
    assert code == 0 and out == ""
    assert re.fullmatch(
        r"2 files, 71 questions, 53 notes \(18 duplicates merged, 53 new or changed\), 2 decks in 1 package "
        r"\(written\) in .*/o/ in \d+\.\ds; 0 errors, 0 warnings\n",
        err,
    )
    code, _, err = run(capsys, *args)
    assert "0 new or changed), 2 decks in 1 package (all unchanged) in " in err
    assert run(capsys, *args, "-q")[1:] == ("", "")


def test_build_progress_is_silent_when_not_a_terminal(tmp_path, capsys):
    _, _, err = run(capsys, "build", str(CORPUS), "-o", str(tmp_path / "o"), "--lock", str(tmp_path / "l"), "-q")
    assert "\r" not in err and "#" not in err


def test_stats_json(capsys):
    code, out, _ = run(capsys, "stats", "--json", str(SEEDS), "--lock", "/nonexistent/flashgen.lock")
    data = json.loads(out)
    assert (data["questions"], data["notes"], data["merged"]) == (71, 53, 18)
    (book,) = data["books"]
    assert [(c["deck"].split("::")[1], c["questions"], c["notes"]) for c in book["chapters"]] == [
        ("24 Memory", 6, 6),
        ("25 Finetuning Overview", 65, 47),
    ]


def test_preview_is_one_self_contained_page(tmp_path, capsys):
    page = tmp_path / "p.html"
    code, _, _ = run(capsys, "preview", str(SEEDS), "-o", str(page), "--lock", str(tmp_path / "l"))
    html = page.read_text(encoding="utf-8")
    assert code == 0 and html.count('class="preview-card card"') == 53
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?:", html)
    from flashgen.theme import note_css

    assert note_css() in html and 'id="theme"' in html


def test_stats_counts_notes_the_lock_keeps_in_another_deck(tmp_path, capsys):
    lock = tmp_path / "flashgen.lock"
    assert run(capsys, "build", str(SEEDS), "-o", str(tmp_path / "out"), "--lock", str(lock), "-q")[0] == 0
    data = json.loads(lock.read_text(encoding="utf-8"))
    key = sorted(data["notes"])[0]
    data["notes"][key]["deck"] = data["notes"][key]["deck"].rsplit("::", 1)[0] + "::07 Where an older rule put it"
    lock.write_text(json.dumps(data), encoding="utf-8")
    code, out, _ = run(capsys, "stats", "--json", str(SEEDS), "--lock", str(lock))
    assert code == 0 and json.loads(out)["pinned_elsewhere"] == 1
    _, out, _ = run(capsys, "stats", str(SEEDS), "--lock", str(lock))
    assert "1 note kept in the deck the lock pins" in out and "07 Where an older rule put it" in out


def test_build_and_stats_name_notes_no_source_gives_any_more(tmp_path, capsys):
    notes = tmp_path / "notes"
    shutil.copytree(CORPUS / "build-llm", notes)
    lock = str(tmp_path / "flashgen.lock")
    assert run(capsys, "build", str(notes), "-o", str(tmp_path / "out"), "--lock", lock, "-q")[0] == 0
    gone = parse_file(notes / "flashcards-part-03.md").cards  # its cards appear in no other part
    (notes / "flashcards-part-03.md").unlink()
    code, _, err = run(capsys, "build", str(notes), "-o", str(tmp_path / "out"), "--lock", lock)
    assert code == 0 and f"{len(gone)} notes in the lock no source gives any more" in err
    assert f"Build a Large Language Model › {gone[0].question}" in err
    _, out, _ = run(capsys, "stats", "--json", str(notes), "--lock", lock)
    removed = json.loads(out)["removed"]
    assert len(removed) == len(gone) and {r["book"] for r in removed} == {"Build a Large Language Model"}
    assert {r["question"] for r in removed} == {c.question for c in gone}
    _, out, _ = run(capsys, "diff", "--json", str(notes), "--lock", lock)
    assert len(json.loads(out)["removed"]) == len(gone) and not json.loads(out)["new"]


def test_a_one_card_rebuild_of_a_book_starts_no_pool_machinery(tmp_path):
    """One changed answer in a book renders one card here: multiprocessing is never imported (7-10 ms of 0.4 s)."""
    import subprocess
    import sys

    book = tmp_path / "book"
    shutil.copytree(CORPUS / "ai-engineering", book)
    build = ["build", str(book), "-o", str(tmp_path / "out"), "--lock", str(tmp_path / "l.lock"), "--cache-dir", str(tmp_path / "cache"), "-q"]
    probe = (
        "import sys\n"
        "from flashgen.cli import main\n"
        f"assert main({build!r}) == 0\n"
        "print('multiprocessing' in sys.modules, 'flashgen.render' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert first.stdout.split() == ["True", "True"]  # the cold build, with 395 cards to render, weighed starting workers
    victim = sorted(book.glob("*.md"))[0]
    victim.write_text(victim.read_text(encoding="utf-8").replace("\nx??", "\nOne more line.\nx??", 1), encoding="utf-8")
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert again.stdout.split() == ["False", "True"]


def test_writing_packages_imports_neither_asyncio_nor_yaml_and_leaves_both_to_others(tmp_path):
    """genanki imports asyncio (through its cached_property dependency) and PyYAML, which no build
    uses: package.py leaves both out (61-95 ms and 5.8 MB of every build that writes a package).
    Whoever imports either afterwards gets the real package, and genanki's own use of PyYAML still works."""
    import subprocess
    import sys

    build = ["build", str(CORPUS / "ai-engineering"), "-o", str(tmp_path / "out"), "--lock", str(tmp_path / "l.lock"), "--no-cache", "-q"]
    probe = (
        "import sys\n"
        "from flashgen.cli import main\n"
        f"assert main({build!r}) == 0\n"
        "print(*(name in sys.modules for name in ('genanki', 'asyncio', 'yaml', 'cached_property')))\n"
        "import cached_property, genanki, yaml\n"
        "print(hasattr(cached_property, 'threaded_cached_property'), yaml.safe_load('[1, 2]'))\n"
        "model = genanki.Model(1, 'M', fields='- name: Front', templates=[{'name': 'C', 'qfmt': '{{Front}}', 'afmt': ''}])\n"
        "print(model.fields)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["True False False False", "True [1, 2]", "[{'name': 'Front'}]"]
    assert len(list((tmp_path / "out").glob("*.apkg"))) == 1


def test_a_genanki_that_uses_yaml_as_it_is_imported_is_imported_with_the_real_one(tmp_path):
    """Should a later genanki use PyYAML while it is imported, the stand-in cannot serve it: the
    package stage then imports genanki again, as it is, rather than fail every build."""
    import subprocess
    import sys
    from pathlib import Path

    fake = tmp_path / "genanki"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import yaml\n"
        "from cached_property import cached_property\n"
        "FIELDS = yaml.safe_load('[Front, Back]')\n"
        "class Model: pass\n"
        "class Note: pass\n"
        "class Deck: pass\n"
        "class Package: pass\n",
        encoding="utf-8",
    )
    probe = "import flashgen.package as p, sys\nprint(p.genanki.FIELDS, type(sys.modules['yaml']).__name__)\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])]))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env, cwd=tmp_path)
    assert result.stdout.splitlines() == ["['Front', 'Back'] module"]


def test_version_loads_nothing_it_does_not_need():
    """`flashgen --version` answers before the parser, the pipeline or its dependencies load
    (measured from a wheel install: +20 ms over a bare interpreter)."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from flashgen.cli import main\n"
        "assert main(['--version']) == 0\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('flashgen') or m in "
        "('argparse', 'dataclasses', 'json', 'genanki', 'mistune', 'pygments', 'tomllib'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "flashgen flashgen.cli"
