"""Bad input, faults and hostile text: nothing crashes, nothing is lost, nothing runs.

Each row of the bad-input matrix builds the bad file next to a good one: the bad
file gets one clear diagnostic and the good file's cards are still built.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from flashgen.build import BuildOptions, build
from flashgen.model import FlashgenError, Severity
from flashgen.parse import parse_file, parse_text
from tests.anki_helpers import flashgen_notes, fresh_collection, import_all
from tests.html_check import live_markup

GOOD = "# Flashcards: Good-Book_processed (Part 1)\n\n---\n\n#### Fine\nContext.\n:p Does the good file build?\n??x\nYes.\nx??\n\n---\n"
T0 = 1_700_000_000


def build_with(tmp_path, name: str, data: bytes, **kwargs):
    source = tmp_path / "in"
    source.mkdir(exist_ok=True)
    (source / "good.md").write_text(GOOD, encoding="utf-8")
    if data is not None:
        (source / name).write_bytes(data)
    options = BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "flashgen.lock"), build_time=T0, **kwargs)
    return build([str(source)], options)


def about(report, name):
    return [d for d in report.diagnostics if d.location.path.endswith(name)]


def card(i: int, answer: str = "An answer.") -> str:
    return f"#### Card {i}\nContext {i}.\n:p Question number {i}?\n??x\n{answer}\nx??\n\n---\n\n"


HEADER = "# Flashcards: Bad-Book_processed (Part 2)\n\n---\n\n"


# --- the matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty-file"),
        (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 20, "binary-file"),
        (HEADER.encode() + b"#### T\n:p Q?\n??x\nbad \xff\xfe byte\nx??\n", "not-utf8"),
    ],
    ids=["empty", "binary", "invalid-utf8"],
)
def test_unusable_file_is_one_error_and_the_build_goes_on(tmp_path, data, code):
    report = build_with(tmp_path, "bad.md", data)
    assert [d.code for d in about(report, "bad.md")] == [code]
    assert about(report, "bad.md")[0].severity is Severity.ERROR
    assert report.notes == 1 and len(report.written) == 1


@pytest.mark.parametrize(
    "encode, code",
    [
        (lambda t: t.encode("utf-16"), "utf16"),
        (lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"), "bom"),
        (lambda t: t.replace("\n", "\r\n").encode(), None),
        (lambda t: t.replace("\n", "\r").encode(), "cr-line-endings"),
    ],
    ids=["utf16-bom", "utf8-bom", "crlf", "lone-cr"],
)
def test_encodings_and_line_endings_build_every_card(tmp_path, encode, code):
    report = build_with(tmp_path, "other.md", encode(HEADER + card(1) + card(2)))
    assert [d.code for d in about(report, "other.md")] == ([code] if code else [])
    assert report.notes == 3


def test_50_mb_file(tmp_path):
    block = "".join(card(i, "A longer answer with `code`, $x^2$ and **bold** text. " * 8) for i in range(200))
    text = HEADER + block * (50_000_000 // len(block) + 1)
    path = tmp_path / "huge.md"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size >= 50_000_000
    parsed = parse_file(path)
    assert parsed.questions == len(parsed.cards) == text.count("\n:p ")
    assert not parsed.errors


def test_1_mb_line(tmp_path):
    long_line = "word " * 200_000 + "`code` $x$ <b>"
    report = build_with(tmp_path, "long.md", (HEADER + card(1, long_line)).encode())
    assert report.notes == 2 and not report.count(Severity.ERROR)


def test_20000_questions_without_answers(tmp_path):
    text = HEADER + "#### Empty\nC\n" + ":p A question with no answer?\n" * 20_000
    report = build_with(tmp_path, "noanswers.md", text.encode())
    errors = about(report, "noanswers.md")
    assert len(errors) == 20_000 and {d.code for d in errors} == {"no-answer"}
    assert report.notes == 1


def test_tens_of_thousands_of_fence_lines(tmp_path):
    fences = "```python\n" * 15_000 + "```\n" * 15_000
    report = build_with(tmp_path, "fences.md", (HEADER + card(1, fences) + card(2)).encode())
    assert report.notes == 3  # both cards of the file, and the good one
    assert about(report, "fences.md") == [] or {d.code for d in about(report, "fences.md")} <= {"unclosed-fence"}


def test_unclosed_fence_at_end_of_file(tmp_path):
    report = build_with(tmp_path, "open.md", (HEADER + "#### T\nC\n:p Q?\n??x\n```python\nprint(1)\n").encode())
    assert sorted(d.code for d in about(report, "open.md")) == ["unclosed-answer", "unclosed-fence"]
    assert report.notes == 2


def test_symlink_loops(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.md").write_text(GOOD, encoding="utf-8")
    os.symlink(source / "b.md", source / "a.md")
    os.symlink(source / "a.md", source / "b.md")
    os.symlink(source, source / "loop")  # a folder loop: folders behind links are not followed
    report = build([str(source)], BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "l"), build_time=T0))
    assert sorted((d.location.path.rsplit("/", 1)[-1], d.code) for d in report.diagnostics) == [
        ("a.md", "unreadable"),
        ("b.md", "unreadable"),
    ]
    assert report.notes == 1


def test_unreadable_file(tmp_path, monkeypatch):
    real_open = open

    def guarded(path, *args, **kwargs):
        if str(path).endswith("secret.md"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", guarded)  # root reads anything: simulate the denial
    report = build_with(tmp_path, "secret.md", HEADER.encode() + card(1).encode())
    assert [(d.code, d.message) for d in about(report, "secret.md")] == [("unreadable", "cannot read file: Permission denied")]
    assert report.notes == 1


def test_unwritable_output_folder(tmp_path):
    (tmp_path / "blocker").write_text("a file where the folder should be")
    with pytest.raises(FlashgenError, match="cannot create output folder"):
        build([str(tmp_path)], BuildOptions(out_dir=str(tmp_path / "blocker" / "out"), lock_path=str(tmp_path / "l")))


def test_disk_full_during_write_keeps_previous_outputs(tmp_path, monkeypatch):
    first = build_with(tmp_path, "more.md", (HEADER + card(1)).encode())
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    lock_before = (tmp_path / "flashgen.lock").read_bytes()
    (tmp_path / "in" / "more.md").write_text(HEADER + card(1, "Changed."), encoding="utf-8")

    real_write = os.write

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", lambda *a, **k: full_disk(0, b""))
    with pytest.raises(FlashgenError, match="No space left on device"):
        build_with(tmp_path, "more.md", None)
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before
    assert (tmp_path / "flashgen.lock").read_bytes() == lock_before
    assert first.written and real_write


# --- hostile text ------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert(document.cookie)</script>",
    '<img src=x onerror="alert(1)">',
    "<svg onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java&#115;cript:alert(1))",
    "![x](javascript:alert(1))",
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<!--<script>alert(1)</script>-->",
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style>',
    "$</span><script>alert(1)</script>$",
    "$$\\href{javascript:alert(1)}{x}$$",
    "`<script>` and ```html\n<script>alert(1)</script>\n```",
    '"><script>alert(1)</script>',
    "<details open ontoggle=alert(1)>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<a href='vbscript:msgbox(1)'>x</a>",
]


def test_no_live_markup_survives_into_real_anki(tmp_path):
    body = "".join(
        f"#### Title {i} {h}\n{h}\n:p Question {i}: {h}\n??x\n{h}\n\nMore {h}\nx??\n\n---\n\n" for i, h in enumerate(HOSTILE)
    )
    report = build_with(tmp_path, "hostile.md", (HEADER + body).encode())
    assert report.notes == len(HOSTILE) + 1
    with fresh_collection(tmp_path / "anki") as col:
        import_all(col, report.written)
        for note in flashgen_notes(col):
            for value in note.fields:
                assert live_markup(value) == [], value


def test_zip_entry_names_are_safe(tmp_path):
    source = tmp_path / "in"
    (source / "..weird" / "x").mkdir(parents=True)
    (source / "..weird" / "x" / "../../n a m e.PNG").resolve().parent.mkdir(parents=True, exist_ok=True)
    (source / "pic.PNG").write_bytes(b"png")
    (source / "cards.md").write_text(HEADER + card(1, "![p](pic.PNG)"), encoding="utf-8")
    report = build([str(source)], BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "l"), build_time=T0))
    with zipfile.ZipFile(report.written[0]) as archive:
        names = archive.namelist()
        media = json.loads(archive.read("media"))
    assert names == ["collection.anki2", "media", "0"]
    assert all(re.fullmatch(r"flashgen-[0-9a-f]{16}\.png", n) for n in media.values())


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "launcher",
    [["-m", "flashgen.cli"], [str(Path(__file__).resolve().parent / "as_windows.py")]],
    ids=["flashgen", "as-on-windows"],  # as_windows.py: no fcntl (msvcrt's byte locks instead), spawn only
)
def test_two_builds_into_one_folder_at_once(tmp_path, launcher):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(40):
        (source / f"part-{i:02d}.md").write_text(
            f"# Flashcards: Race-Book_processed (Part {i})\n\n---\n\n" + "".join(card(i * 100 + j) for j in range(25)),
            encoding="utf-8",
        )
    command = [
        sys.executable, *launcher, "build", str(source),
        "-o", str(tmp_path / "out"), "--lock", str(tmp_path / "flashgen.lock"), "-q", "--no-cache",
    ]  # fmt: skip
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(T0), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    runs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()
    lock = json.loads((tmp_path / "flashgen.lock").read_text())
    assert len(lock["notes"]) == 1000
    (package,) = (tmp_path / "out").glob("*.apkg")
    with zipfile.ZipFile(package) as archive:
        assert archive.testzip() is None
    with fresh_collection(tmp_path / "anki") as col:
        assert import_all(col, [package])["new"] == 1000
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


# --- incremental builds stay truthful -----------------------------------------------------------


def test_skipped_books_still_report_their_figures_and_diagnostics(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.md").write_text(HEADER + card(1, "Answer.\n???x") + card(2), encoding="utf-8")
    (source / "b.md").write_text(GOOD, encoding="utf-8")
    options = BuildOptions(out_dir=str(tmp_path / "out"), lock_path=str(tmp_path / "l"), build_time=T0)
    first = build([str(source)], options)
    again = build([str(source)], options)
    assert again.written == () and len(again.unchanged) == 2
    assert (again.questions, again.notes, again.merged, again.decks) == (first.questions, first.notes, first.merged, first.decks)
    assert again.diagnostics == first.diagnostics and again.count(Severity.WARNING) == 2  # ???x, then a stray x??
    # a deleted package, a changed setting or an edited lock file each bring the work back
    os.remove(first.written[0])
    assert len(build([str(source)], options).written) == 1
    strict_rating = BuildOptions(**{**{f: getattr(options, f) for f in options.__dataclass_fields__}, "threshold": 0.9})
    assert len(build([str(source)], strict_rating).written) == 2
    Path(options.lock_path).write_text(Path(options.lock_path).read_text().replace('"mod": 1700000000', '"mod": 1600000000', 1))
    assert len(build([str(source)], strict_rating).written) == 2


def test_parse_never_raises_on_odd_text():
    for text in ["\x00", "\ufeff", "\u2028:p x\u2029??x", ":p\n??x\nx??", "```" * 1000, "$" * 10_000, "\r" * 100]:
        parsed = parse_text(text, "odd.md")
        assert parsed.questions == len(parsed.cards) + sum(
            1 for d in parsed.diagnostics if d.code in ("no-answer", "empty-answer", "empty-question")
        )
