"""Hostile state around a build (issue 16): the cache, the lock, the output folder, names.

Every test here was written against the code before its fix and failed there.
Where the claim is about Anki, the deck goes through the real Anki backend.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from flashgen.build import BuildOptions, build
from flashgen.cli import main
from flashgen.config import load_config
from flashgen.lockfile import read_lock
from flashgen.model import FlashgenError, Severity
from flashgen.parse import parse_text
from flashgen.render import RENDER_VERSION, finish_images, render_markdown
from tests.anki_helpers import flashgen_notes, fresh_collection, import_all
from tests.html_check import live_markup

T0 = 1_700_000_000
HEADER = "# Flashcards: Hostile-Book_processed (Part 1)\n\n---\n\n"


def card(i: int, answer: str = "A.", question: str | None = None) -> str:
    return f"#### Card {i}\nContext {i}.\n:p {question or f'Question number {i}?'}\n??x\n{answer}\nx??\n\n---\n\n"


def options_for(tmp_path: Path, **kwargs) -> BuildOptions:
    return BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "flashgen.lock"), build_time=T0, **kwargs)


def write_source(tmp_path: Path, text: str, name: str = "cards.md") -> Path:
    source = tmp_path / "in"
    source.mkdir(exist_ok=True)
    (source / name).write_text(text, encoding="utf-8")
    return source


def answers_in_anki(tmp_path: Path, packages) -> list[str]:
    with fresh_collection(tmp_path / f"anki-{time.monotonic_ns()}") as col:
        import_all(col, packages)
        return sorted(note["Answer"] for note in flashgen_notes(col))


# --- 1 and 9: the render cache ----------------------------------------------------------------


def _cache_db(folder: Path) -> sqlite3.Connection:
    return sqlite3.connect(folder / f"render-v{RENDER_VERSION}.sqlite")


def _rebuild_from_cache(tmp_path: Path, poison) -> list[str]:
    """Build once (filling the cache), let ``poison`` edit the cache, rebuild from scratch; the answers Anki sees."""
    source = write_source(tmp_path, HEADER + card(1, "A.") + card(2, "B."))
    options = options_for(tmp_path, cache_dir=str(tmp_path / ".fgcache"), jobs=1)
    build([str(source)], options)
    with _cache_db(tmp_path / ".fgcache") as db:
        assert poison(db) > 0
    shutil.rmtree(tmp_path / "out")
    report = build([str(source)], options)
    return answers_in_anki(tmp_path, report.written)


def test_poisoned_cache_entry_ships_no_script(tmp_path):
    answers = _rebuild_from_cache(
        tmp_path,
        lambda db: db.execute(
            "update cards set value = replace(value, '<p>A.</p>', '<p>A.</p><script>alert(1)</script>')"
        ).rowcount,
    )
    assert answers == ["<p>A.</p>", "<p>B.</p>"]
    assert all(live_markup(a) == [] for a in answers)


def test_cache_entry_with_other_harmless_html_is_not_trusted_either(tmp_path):
    # no markup check can see this: only an entry flashgen itself wrote may be served
    answers = _rebuild_from_cache(
        tmp_path, lambda db: db.execute("update cards set value = replace(value, '<p>A.</p>', '<p>Z.</p>')").rowcount
    )
    assert answers == ["<p>A.</p>", "<p>B.</p>"]


@pytest.mark.parametrize(
    "value",
    [
        "[[1,[]],[1,[]],[1,[]],[1,[]]]",
        "[]",
        "null",
        '{"a": 1}',
        '[["\ue0027\ue003",[]],["q",[]],["a",[]],["c",[]]]',
        '[["t",[[1]]],["q",[]],["a",[]],["c",[]]]',
        "not json",
    ],
    ids=["ints", "empty", "null", "object", "slot-without-image", "bad-image", "not-json"],
)
def test_damaged_cache_entry_is_a_miss(tmp_path, value):
    answers = _rebuild_from_cache(tmp_path, lambda db: db.execute("update cards set value = ?", (value,)).rowcount)
    assert answers == ["<p>A.</p>", "<p>B.</p>"]


def test_cache_refuses_entries_a_renderer_could_not_have_made(tmp_path):
    """Even an entry under a valid key fails when it holds live markup or broken image slots (defence in depth)."""
    from flashgen import cache as cache_module
    from flashgen.render import RenderedCard, RenderedField

    store = cache_module.RenderCache(str(tmp_path / "c"))
    plain = RenderedField("<p>x</p>")
    bad = {
        "script": RenderedCard(plain, plain, RenderedField("<script>alert(1)</script>"), plain),
        "slot": RenderedCard(plain, plain, RenderedField("\ue0021\ue003"), plain),
    }
    store.put_many(bad)
    store.put_many({"good": RenderedCard(plain, plain, plain, plain)})
    assert set(store.get_many(["script", "slot", "good"])) == {"good"}
    store.close()


# --- 2: control characters --------------------------------------------------------------------


def test_control_characters_are_replaced_with_a_warning_at_their_line():
    text = HEADER + "#### Ti\x1ftle\nCon\x0btext.\n:p Why\x07?\n??x\nA\x1fB\x7f\u2028C\tD\nx??\n"
    parsed = parse_text(text, "c.md")
    warned = [(d.code, d.location.line, d.severity) for d in parsed.diagnostics]
    assert warned == [("control-character", line, Severity.WARNING) for line in (5, 6, 7, 9)]
    (c,) = parsed.cards
    for value in (c.title, c.context, c.question, c.answer):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value), repr(value)
    assert c.answer == "A\ufffdB\ufffd\u2028C\tD"  # nothing lost: each one is visibly replaced


def test_a_field_separator_in_card_text_no_longer_breaks_the_deck(tmp_path):
    source = write_source(tmp_path, HEADER + card(1, "Yes\x1fno") + card(2))
    (tmp_path / "in" / "b\x1fook").mkdir()
    (tmp_path / "in" / "b\x1fook" / "nohead.md").write_text(card(3), encoding="utf-8")  # book from the folder name
    (tmp_path / "in" / "head.md").write_text("# Flashcards: Se\x1fp (Part 1)\n\n" + card(4), encoding="utf-8")
    report = build([str(source)], options_for(tmp_path))
    assert {d.code for d in report.diagnostics} >= {"control-character"}
    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, report.written)["new"] == 4
        fields = [v for n in flashgen_notes(col) for v in n.fields]
        decks = [d.name for d in col.decks.all_names_and_ids()]
    assert not [v for v in fields + decks if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", v)]


# --- 3, 11: state files in the output folder -------------------------------------------------


def test_symlinked_build_lock_does_not_truncate_its_target(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    source = write_source(tmp_path, HEADER + card(1))
    (tmp_path / "out").mkdir()
    os.symlink(precious, tmp_path / "out" / ".flashgen-build.lock")
    with pytest.raises(FlashgenError, match="symbolic link"):
        build([str(source)], options_for(tmp_path))
    assert precious.read_text() == "keep me"


def test_symlinked_state_and_lock_files_are_replaced_not_written_through(tmp_path):
    source = write_source(tmp_path, HEADER + card(1))
    (tmp_path / "out").mkdir()
    keep = '{"version": 1, "notes": {}, "notetype": {"hash": null, "mod": 0}}'
    for name in ("state-target", "lock-target"):
        (tmp_path / name).write_text(keep)
    os.symlink(tmp_path / "state-target", tmp_path / "out" / ".flashgen-state.json")
    os.symlink(tmp_path / "lock-target", tmp_path / "flashgen.lock")
    report = build([str(source)], options_for(tmp_path))
    assert report.written and (tmp_path / "state-target").read_text() == (tmp_path / "lock-target").read_text() == keep
    assert not os.path.islink(tmp_path / "flashgen.lock") and read_lock(tmp_path / "flashgen.lock").notes


def test_symlinked_state_file_is_not_believed(tmp_path):
    source = write_source(tmp_path, HEADER + card(1))
    options = options_for(tmp_path)
    build([str(source)], options)
    state = tmp_path / "out" / ".flashgen-state.json"
    shutil.move(state, tmp_path / "elsewhere.json")
    os.symlink(tmp_path / "elsewhere.json", state)
    assert build([str(source)], options).written  # the state behind the link is not read: everything is rebuilt


@pytest.mark.parametrize("umask, existing, expected", [(0o022, None, 0o644), (0o027, None, 0o640), (0o022, 0o664, 0o664)])
def test_written_files_respect_the_umask_or_the_replaced_files_mode(tmp_path, umask, existing, expected):
    source = write_source(tmp_path, HEADER + card(1))
    lock = tmp_path / "flashgen.lock"
    if existing is not None:
        build([str(source)], options_for(tmp_path))
        os.chmod(lock, existing)
        (tmp_path / "in" / "cards.md").write_text(HEADER + card(1, "Changed."), encoding="utf-8")
    old = os.umask(umask)
    try:
        report = build([str(source)], options_for(tmp_path))
    finally:
        os.umask(old)
    assert stat.S_IMODE(lock.stat().st_mode) == expected
    if existing is None:
        assert stat.S_IMODE(os.stat(report.written[0]).st_mode) == expected


# --- 4: input files behind symlinks ----------------------------------------------------------


def test_input_file_linked_from_outside_the_tree_is_not_read(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text(HEADER + card(7, "TOP SECRET"), encoding="utf-8")
    source = write_source(tmp_path, HEADER + card(1))
    os.symlink(outside / "secret.md", source / "secret.md")
    os.symlink(source / "cards.md", source / "alias.md")  # a link inside the tree is fine
    report = build([str(source)], options_for(tmp_path))
    assert [(Path(d.location.path).name, d.code, d.severity) for d in report.diagnostics] == [
        ("secret.md", "unsafe-input", Severity.ERROR)
    ]
    assert "TOP SECRET" not in " ".join(answers_in_anki(tmp_path, report.written))
    assert report.files == 2


def test_input_folder_given_through_a_symlink_is_read_whole(tmp_path):
    """Containment is judged on resolved paths: the folder named, a link to the real one, holds its files."""
    source = write_source(tmp_path, HEADER + card(1))
    (source / "deeper").mkdir()
    (source / "deeper" / "more.md").write_text(HEADER + card(2), encoding="utf-8")
    os.symlink(source, tmp_path / "via-link")
    report = build([str(tmp_path / "via-link")], options_for(tmp_path))
    assert report.files == 2 and not [d for d in report.diagnostics if d.code == "unsafe-input"]


# --- 5: the lock as a schema ---------------------------------------------------------------------

GUID = "0085103f8b08d10f915f16e9"
GOOD_NOTE = {"chapter": "Memory", "created": T0, "deck": "Book::01 Memory", "hash": "bfcf6020edc56377c08e", "mod": T0}


def _lock(notetype=None, **note) -> str:
    return json.dumps({"version": 1, "notetype": notetype or {"hash": "0123456789abcdef", "mod": T0}, "notes": {GUID: {**GOOD_NOTE, **note}}})


@pytest.mark.parametrize(
    "text, key",
    [
        (_lock(notetype={"hash": "0123456789abcdef", "mod": 2**70}), "notetype.mod"),
        ('{"version": 1, "notetype": {"hash": null, "mod": 1e400}, "notes": {}}', "notetype.mod"),
        (_lock(notetype={"hash": 5, "mod": T0}), "notetype.hash"),
        (_lock(mod=10**25), f"notes.{GUID}.mod"),
        (_lock(created=10**25), f"notes.{GUID}.created"),
        (_lock(mod=-1), f"notes.{GUID}.mod"),
        (_lock(mod=True), f"notes.{GUID}.mod"),
        (_lock(mod=1.5), f"notes.{GUID}.mod"),
        (_lock(chapter=5), f"notes.{GUID}.chapter"),
        (_lock(deck=["x"]), f"notes.{GUID}.deck"),
        (_lock(deck="a\x1fb"), f"notes.{GUID}.deck"),
        (_lock(hash={}), f"notes.{GUID}.hash"),
        (_lock().replace(GUID, "../../etc"), "notes"),
        ('{"version": 1, "notes": []}', "notes"),
        ('{"version": 1, "notes": {"' + GUID + '": 3}}', f"notes.{GUID}"),
        ("[]", "version"),
    ],
)
def test_lock_values_are_range_checked(tmp_path, text, key):
    path = tmp_path / "flashgen.lock"
    path.write_text(text)
    with pytest.raises(FlashgenError, match="malformed lock file") as caught:
        read_lock(path)
    assert key in str(caught.value)


def test_a_huge_lock_time_is_a_usage_error_not_a_deck_anki_rejects(tmp_path, capsys):
    source = write_source(tmp_path, HEADER + card(1))
    (tmp_path / "flashgen.lock").write_text(_lock(notetype={"hash": "0123456789abcdef", "mod": 2**63 + 5}))
    code = main(["build", str(source), "-o", str(tmp_path / "out"), "--lock", str(tmp_path / "flashgen.lock"), "-q"])
    assert code == 2
    assert "malformed lock file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.apkg"))


def test_a_lock_flashgen_wrote_reads_back(tmp_path):
    source = write_source(tmp_path, HEADER + card(1) + card(2))
    build([str(source)], options_for(tmp_path))
    lock = read_lock(tmp_path / "flashgen.lock")
    assert len(lock.notes) == 2 and lock.notetype_mod == T0


# --- 10: Anki's own syntax ---------------------------------------------------------------------

ANKI_SYNTAX = [
    "[sound:evil.mp3]",
    "[SOUND:evil.mp3]",
    "[latex]\\input{/etc/passwd}[/latex]",
    "[LaTeX]x[/LaTeX]",
    "[$]x^2[/$]",
    "[$$]y^2[/$$]",
    "[anki:tts lang=en_US]spoken[/anki:tts]",
    "[anki:play:a:0]",
    "`[sound:in-code.mp3]`",
    "```\n[sound:in-block.mp3]\n[latex]x[/latex]\n```",
    "![[sound:alt.mp3]](missing.png)",
]


def test_anki_sound_and_latex_syntax_in_card_text_stays_text(tmp_path):
    body = "".join(card(i, f"Before {s} after.", f"Question {i} {s}?") for i, s in enumerate(ANKI_SYNTAX))
    source = write_source(tmp_path, "# Flashcards: Book [sound:book.mp3] (Part 1)\n\n---\n\n" + body)
    report = build([str(source)], options_for(tmp_path))
    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, report.written)["new"] == len(ANKI_SYNTAX)
        for note in flashgen_notes(col):
            for c in note.cards():
                out = c.render_output(reload=True)
                assert list(out.question_av_tags) == [] and list(out.answer_av_tags) == [], note["Question"]
                assert "latex-" not in out.answer_text and "[anki:" not in out.answer_text, note["Answer"]
        assert col.media.check().missing == []


@pytest.mark.parametrize("macro", ["href", "class", "style", "cssId", "data", "unicode", "require", "bbox", "mmlToken"])
def test_mathjax_html_extension_macros_are_neutralised(macro):
    texts = (
        f"$$\\{macro}{{javascript:alert(1)}}{{x}}$$",
        f"Inline $\\{macro}{{a}}{{b}}$ here.",
        f"\\(\\{macro} {{a}}{{b}}\\)",
        f"\\\\(\\{macro}{{javascript:alert(1)}}{{x}}\\\\)",  # delimiters that reach the page as text
    )
    for text in texts:
        field = finish_images(render_markdown(text), {})
        assert not re.search(r"\\" + macro + r"(?![A-Za-z])", field), field
    assert "\\hrefx" in finish_images(render_markdown("$\\hrefx$"), {})  # another control word, left alone


# --- 12: names printed on a terminal ------------------------------------------------------------


def test_file_names_with_terminal_escapes_are_printed_escaped(tmp_path, capsys):
    source = write_source(tmp_path, HEADER + card(1))
    (source / "evil\x1b]0;owned\x07.md").write_text(HEADER + "#### T\n:p Q?\n??x\nA\n", encoding="utf-8")
    main(["check", str(source)])
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "evil\\x1b]0;owned\\x07.md" in err


# --- 13: deck_template -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template", ["{book:>2000000}", "{book!r}", "{book.__class__}", "{book[0]}", "{number:0>9999}", "{chapter!s:^9}", "{}"]
)
def test_deck_template_allows_only_plain_fields(tmp_path, template):
    path = tmp_path / "flashgen.toml"
    path.write_text(f"deck_template = {json.dumps(template)}\n")
    with pytest.raises(FlashgenError, match="deck_template"):
        load_config(str(path))


def test_plain_deck_templates_still_work(tmp_path):
    path = tmp_path / "flashgen.toml"
    path.write_text('deck_template = "Books::{book}::{{{number}}} {chapter}"\n')
    assert load_config(str(path)).deck_template == "Books::{book}::{{{number}}} {chapter}"


# --- 14: deep nesting --------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "\n".join("  " * i + "- item" for i in range(depth))


def test_deep_list_nesting_is_flattened_with_a_warning():
    parsed = parse_text(HEADER + card(1, _nested(200)), "deep.md")
    deep = [d for d in parsed.diagnostics if d.code == "deep-nesting"]
    assert len(deep) == 1 and deep[0].severity is Severity.WARNING
    assert deep[0].location.line == 9 + 17  # the first answer line indented past the limit (34 columns)
    assert max(len(line) - len(line.lstrip()) for line in parsed.cards[0].answer.split("\n")) <= 32
    assert parsed.cards[0].answer.count("- item") == 200  # nothing lost


def _parse_and_render_seconds(text: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for c in parse_text(text, "deep.md").cards:
            render_markdown(c.answer)
        best = min(best, time.perf_counter() - started)
    return best


def test_deeply_nested_lists_cost_linear_time():
    small = HEADER + card(1, _nested(700))
    large = HEADER + card(1, _nested(990))  # twice the bytes
    assert 1.9 < len(large) / len(small) < 2.1
    ratio = _parse_and_render_seconds(large) / _parse_and_render_seconds(small)
    assert ratio < 3, ratio


# --- 6, 7, 8: the lock and the commit --------------------------------------------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder.exists() else {}


def _two_books(tmp_path: Path, answer: str = "A.") -> Path:
    source = tmp_path / "in"
    for book in ("Alpha", "Beta"):
        (source / book).mkdir(parents=True, exist_ok=True)
        (source / book / "cards.md").write_text(
            f"# Flashcards: {book}-Book_processed (Part 1)\n\n---\n\n" + card(1, answer) + card(2, answer), encoding="utf-8"
        )
    return source


def test_builds_sharing_a_lock_into_two_folders_keep_each_others_entries(tmp_path):
    source = _two_books(tmp_path)
    lock = tmp_path / "flashgen.lock"
    alpha = BuildOptions(out_dir=str(tmp_path / "out-a"), lock_path=str(lock), build_time=T0)
    beta = BuildOptions(out_dir=str(tmp_path / "out-b"), lock_path=str(lock), build_time=T0)
    others = []

    def beta_builds_meanwhile(stage, done, total):  # beta runs whole while alpha renders, as two processes would
        if stage == "write" and not others:
            others.append(build([str(source / "Beta")], beta))

    build([str(source / "Alpha")], alpha, beta_builds_meanwhile)
    assert others and others[0].changed_notes == 2
    assert len(read_lock(lock).notes) == 4  # before: 2, beta's entries lost
    again = build([str(source / "Beta")], dataclasses.replace(beta, build_time=T0 + 100))
    assert again.changed_notes == 0 and {s.mod for s in read_lock(lock).notes.values()} == {T0}


def _edit_everything(source: Path) -> None:
    for path in source.rglob("*.md"):
        path.write_text(path.read_text(encoding="utf-8").replace("A.", "Edited."), encoding="utf-8")


def _fail_when(monkeypatch, should_fail, error=None):
    """The first rename of a new file (a temporary one) to a target ``should_fail`` approves fails."""
    real, failed = os.replace, []

    def replace(src, dst, *args, **kwargs):
        if not failed and os.fspath(src).endswith(".tmp") and should_fail(os.fspath(dst)):
            failed.append(dst)
            raise error or PermissionError(13, "Permission denied", os.fspath(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("fault", ["lock-rename", "lock-create", "second-package", "state"])
def test_a_commit_that_fails_anywhere_leaves_everything_as_it_was(tmp_path, monkeypatch, fault):
    source = _two_books(tmp_path)
    options = options_for(tmp_path)
    build([str(source)], options)
    before, lock_before = _files(tmp_path / "out"), (tmp_path / "flashgen.lock").read_bytes()
    _edit_everything(source)
    if fault == "lock-create":
        import flashgen.files

        real = flashgen.files.open_no_follow

        def refuse_lock_temp(path, flags, mode=0o666):
            if os.path.basename(path).startswith(".flashgen.lock."):
                raise OSError(28, "No space left on device", path)
            return real(path, flags, mode)

        monkeypatch.setattr(flashgen.files, "open_no_follow", refuse_lock_temp)
    else:
        packages = []

        def should_fail(dst):
            if dst.endswith(".apkg"):
                packages.append(dst)
            name = os.path.basename(dst)
            return {"lock-rename": name == "flashgen.lock", "second-package": len(packages) == 2, "state": name == ".flashgen-state.json"}[fault]

        _fail_when(monkeypatch, should_fail)
    with pytest.raises(FlashgenError, match="flashgen.lock|cannot|Permission|No space"):
        build([str(source)], options)
    assert _files(tmp_path / "out") == before  # the old packages and state, no temporary file, no journal
    assert (tmp_path / "flashgen.lock").read_bytes() == lock_before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_an_interrupt_during_the_commit_leaves_everything_as_it_was(tmp_path, monkeypatch):
    source = _two_books(tmp_path)
    options = options_for(tmp_path)
    build([str(source)], options)
    before, lock_before = _files(tmp_path / "out"), (tmp_path / "flashgen.lock").read_bytes()
    _edit_everything(source)
    packages = []
    _fail_when(monkeypatch, lambda dst: dst.endswith(".apkg") and (packages.append(dst) or len(packages) == 2), KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        build([str(source)], options)
    assert _files(tmp_path / "out") == before
    assert (tmp_path / "flashgen.lock").read_bytes() == lock_before


_KILL_AT = """
import os, sys
from flashgen.build import BuildOptions, build
source, name, mode, out, lock, build_time = sys.argv[1:]
real_replace, real_unlink, armed = os.replace, os.unlink, []
def replace(src, dst, *args, **kwargs):
    if armed or (mode == "at" and os.path.basename(dst) == name):
        os._exit(9)  # as if killed: no clean-up of any kind
    real_replace(src, dst, *args, **kwargs)
    armed.extend([1] if os.path.basename(dst) == name else [])
def unlink(path, *args, **kwargs):
    if armed:
        os._exit(9)
    real_unlink(path, *args, **kwargs)
os.replace, os.unlink, os.remove = replace, unlink, unlink
build([source], BuildOptions(out_dir=out, lock_path=lock, build_time=int(build_time)))
"""


def _killed_during_commit(tmp_path: Path, source: Path, name: str, mode: str, build_time: int) -> None:
    """Build ``source`` in a process that dies when it renames a file to ``name`` ("at"), or just after ("after")."""
    import subprocess
    import sys

    command = [sys.executable, "-c", _KILL_AT, str(source), name, mode, str(tmp_path / "out"), str(tmp_path / "flashgen.lock"), str(build_time)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    assert subprocess.run(command, env=env, capture_output=True, timeout=120).returncode == 9


def test_a_build_killed_before_its_lock_is_in_is_rolled_back_by_the_next(tmp_path):
    source = _two_books(tmp_path)
    options = options_for(tmp_path)
    build([str(source)], options)
    before, lock_before = _files(tmp_path / "out"), (tmp_path / "flashgen.lock").read_bytes()
    edited = tmp_path / "edited"
    shutil.copytree(source, edited)
    _edit_everything(edited)
    _killed_during_commit(tmp_path, edited, "beta-book.apkg", "at", T0 + 10)  # alpha's package in, beta's moved aside
    again = build([str(source)], options)  # the old sources: nothing to do once the commit is undone
    assert again.written == () and len(again.unchanged) == 2
    assert _files(tmp_path / "out") == before
    assert (tmp_path / "flashgen.lock").read_bytes() == lock_before


def test_a_build_killed_after_its_lock_is_in_is_rolled_forward_by_the_next(tmp_path):
    source = _two_books(tmp_path)
    build([str(source)], options_for(tmp_path))
    _edit_everything(source)
    reference = tmp_path / "reference"
    shutil.copytree(tmp_path, reference, ignore=shutil.ignore_patterns("reference"))
    finished = build([str(reference / "in")], BuildOptions(out_dir=str(reference / "out"), lock_path=str(reference / "flashgen.lock"), build_time=T0 + 10))
    assert len(finished.written) == 2
    _killed_during_commit(tmp_path, source, "flashgen.lock", "after", T0 + 10)
    again = build([str(source)], options_for(tmp_path))
    assert again.written == () and again.changed_notes == 0  # the killed build's work, completed, not redone
    assert _files(tmp_path / "out") == _files(reference / "out")
    assert (tmp_path / "flashgen.lock").read_bytes() == (reference / "flashgen.lock").read_bytes()


def test_stale_temporary_files_of_flashgen_are_cleaned_and_nothing_else(tmp_path):
    source = _two_books(tmp_path)
    options = options_for(tmp_path)
    build([str(source)], options)
    out = tmp_path / "out"
    planted = [out / ".alpha-book.apkg.0123456789ab.tmp", out / "..flashgen-state.json.0123456789ab.tmp", tmp_path / ".flashgen.lock.0123456789ab.tmp"]
    kept = [out / ".notes.txt.0123456789ab.tmp", out / "mine.apkg.tmp", tmp_path / ".other.lock.0123456789ab.tmp"]
    for path in planted + kept:
        path.write_bytes(b"x" * 100_000)
    assert build([str(source)], options).written == ()  # even a build with nothing to write
    assert [p for p in planted if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


def test_a_planted_journal_moves_and_deletes_nothing_outside_the_folder(tmp_path):
    source = _two_books(tmp_path)
    options = options_for(tmp_path)
    build([str(source)], options)
    (tmp_path / "precious.apkg").write_text("keep me")
    (tmp_path / "out" / ".x.apkg.0123456789ab.tmp").write_text("planted")
    sha = hashlib.sha256(b"keep me").hexdigest()
    for renames, remove in [
        ([["../precious.apkg", ".x.apkg.0123456789ab.tmp", None]], []),
        ([["x.apkg", "../.precious.apkg.0123456789ab.tmp", None]], []),
        ([], [["../precious.apkg", sha]]),
    ]:
        journal = {"version": 1, "renames": renames, "point": {"lock": False, "sha256": "0" * 64}, "remove": remove}
        (tmp_path / "out" / ".flashgen-commit.json").write_text(json.dumps(journal))
        build([str(source)], options)
        assert (tmp_path / "precious.apkg").read_text() == "keep me"
        assert not (tmp_path / "out" / ".flashgen-commit.json").exists()


def test_switching_split_removes_the_packages_flashgen_wrote_before_and_nothing_else(tmp_path):
    source = _two_books(tmp_path)
    by_book = build([str(source)], options_for(tmp_path))
    out = tmp_path / "out"
    (out / "mine.apkg").write_bytes(b"the user's own")
    by_chapter = build([str(source)], options_for(tmp_path, split="chapter"))
    assert sorted(p.name for p in out.glob("*.apkg")) == sorted([os.path.basename(p) for p in by_chapter.written] + ["mine.apkg"])
    Path(by_chapter.written[0]).write_bytes(b"edited by hand")  # no longer what flashgen wrote: kept
    build([str(source)], options_for(tmp_path, split="none"))
    assert sorted(p.name for p in out.glob("*.apkg")) == sorted(["flashgen.apkg", "mine.apkg", os.path.basename(by_chapter.written[0])])
    assert len(by_book.written) == 2



@pytest.fixture(scope="module")
def big_library(tmp_path_factory) -> Path:
    """The corpus five times over, as five more books: a build of several seconds on two cores."""
    from tests.conftest import corpus_copies

    return corpus_copies(tmp_path_factory.mktemp("big-library"), 5)


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is a POSIX signal; Windows stops a process with TerminateProcess")
def test_sigterm_mid_build_exits_143_quietly_and_leaves_the_old_outputs(big_library, tmp_path):
    import signal
    import subprocess
    import sys

    source = tmp_path / "in"
    shutil.copytree(big_library, source)
    command = [sys.executable, "-m", "flashgen", "build", str(source), "-o", str(tmp_path / "out"), "--lock", str(tmp_path / "flashgen.lock"), "--no-cache", "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "SOURCE_DATE_EPOCH": str(T0)}
    assert subprocess.run(command, env=env, capture_output=True, timeout=300).returncode == 0
    before, lock_before = _files(tmp_path / "out"), (tmp_path / "flashgen.lock").read_bytes()
    for path in source.rglob("*.md"):  # every book changes
        path.write_text(path.read_text(encoding="utf-8").replace("??x\n", "??x\nEdited.\n", 1), encoding="utf-8")
    with subprocess.Popen(command, env={**env, "SOURCE_DATE_EPOCH": str(T0 + 10)}, stderr=subprocess.PIPE) as run:
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:  # until packages are being written
            if any(p.name.endswith(".tmp") for p in (tmp_path / "out").iterdir()):
                break
            time.sleep(0.005)
        run.send_signal(signal.SIGTERM)
        err = run.stderr.read().decode()
        code = run.wait(timeout=60)
    assert code == 143, err
    assert err.strip().splitlines() == ["flashgen: terminated"], err
    assert [p for p in tmp_path.rglob("*.tmp")] == []
    assert _files(tmp_path / "out") == before
    assert (tmp_path / "flashgen.lock").read_bytes() == lock_before
