"""The parser's contract (docs/FORMAT.md), one irregularity at a time."""

from __future__ import annotations

import re

import pytest

from flashgen import Severity, Variant, parse_bytes, parse_file, parse_text
from tests.conftest import corpus_files, shared_relative

HEADER = "# Flashcards: 2A001---Some-Book_processed (Part 3)\n\n**Starting Chapter:** Intro\n\n---\n\n"
QUESTION_ERRORS = {"no-answer", "empty-answer", "empty-question"}


def parse(body: str, header: str = HEADER):
    return parse_text(header + body, "t.md")


def codes(parsed, severity=None):
    return [d.code for d in parsed.diagnostics if severity is None or d.severity is severity]


def card(title="T", question="Q?", answer="A.", closer="x??", context="Context."):
    return f"#### {title}\n{context}\n\n:p {question}\n??x\n{answer}\n{closer}\n\n---\n\n"


# --- the whole corpus ----------------------------------------------------------

_COLON_P = re.compile(r"^\s{0,3}:p(\s|$)|\S:p\s+\S")


@pytest.mark.parametrize("path", corpus_files(), ids=shared_relative)
def test_every_question_is_a_card_or_an_error(path):
    text = path.read_text(encoding="utf-8")
    marked = sum(1 for line in text.splitlines() if _COLON_P.search(line))
    parsed = parse_file(path)
    errors = [d for d in parsed.diagnostics if d.code in QUESTION_ERRORS]
    assert parsed.questions == marked
    assert len(parsed.cards) + len(errors) == marked


@pytest.mark.parametrize("path", corpus_files(), ids=shared_relative)
def test_no_card_contains_another_cards_text(path):
    structure = re.compile(r"^\s*(:p\s|\?\?x|x\?\?|#### |\*\*Rating:)")
    for c in parse_file(path).cards:
        for text in (c.title, c.context, c.question, c.answer):
            outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
            assert not any(structure.match(line) for line in outside_code.split("\n")), (c.location, text)


def test_header_metadata():
    parsed = parse_text(
        "# High-Quality Flashcards: 7A003--Book_processed (Part 12)\n\n**Rating threshold:** >= 8/10\n\n"
        "**Starting Chapter:** 7.5 Comparison. 7.6 Readings\n\n---\n\n**Rating: 9/10**\n\n" + card(),
        "x.md",
    )
    m = parsed.meta
    assert (m.source, m.part, m.variant, m.rating_threshold) == ("7A003--Book_processed", 12, Variant.HIGH_QUALITY, 8)
    assert m.starting_chapter == "7.5 Comparison. 7.6 Readings"
    assert parsed.cards[0].rating == 9
    assert parsed.diagnostics == ()


def test_a_clean_card():
    parsed = parse(card(title="Tool Failures", context="Background context: why.", question="Why?", answer="Because."))
    (c,) = parsed.cards
    assert (c.title, c.context, c.question, c.answer) == ("Tool Failures", "Background context: why.", "Why?", "Because.")
    assert c.location.line == 10 and c.index == 0 and c.meta.part == 3
    assert parsed.diagnostics == ()


# --- closers and markers -----------------------------------------------------------


@pytest.mark.parametrize("closer", ["???x", ":x??", "??", "x???"])
def test_variant_closers_are_repaired_with_a_warning(closer):
    parsed = parse(card(closer=closer) + card(title="Next", question="Q2?"))
    assert [c.answer for c in parsed.cards] == ["A.", "A."]
    assert codes(parsed) == ["closer-variant"]
    assert parsed.diagnostics[0].location.line == 13


def test_opener_used_as_closer_before_separator():
    parsed = parse(card(closer="??x") + card(title="Next"))
    assert [c.answer for c in parsed.cards] == ["A.", "A."]
    assert codes(parsed) == ["opener-as-closer"]


def test_second_opener_mid_answer_and_no_closer():
    body = "#### T\nC\n:p Q?\n??x\nFirst part.\n??x\nSecond part.\n\n---\n\n" + card(title="Next")
    parsed = parse(body)
    assert parsed.cards[0].answer == "First part.\nSecond part."
    assert parsed.cards[1].title == "Next"
    assert codes(parsed) == ["repeated-opener", "unclosed-answer"]


def test_closer_glued_to_math():
    parsed = parse("#### T\nC\n:p Q?\n??x\n$$a = b$$x??\n\n---\n")
    assert parsed.cards[0].answer == "$$a = b$$"
    assert codes(parsed) == ["glued-closer"]


def test_question_glued_after_math():
    parsed = parse("#### T\nFormula:\n$$E = mc^2$$:p What is E?\n??x\nEnergy.\nx??\n")
    (c,) = parsed.cards
    assert c.question == "What is E?"
    assert c.context == "Formula:\n$$E = mc^2$$"
    assert codes(parsed) == ["glued-question"]


def test_blank_lines_everywhere():
    parsed = parse("#### T\n\n\nContext.\n\n:p Q?\n\n\n??x\n\nA.\n\n\nx??\n---\n")
    (c,) = parsed.cards
    assert (c.context, c.question, c.answer) == ("Context.", "Q?", "A.")
    assert parsed.diagnostics == ()


def test_card_with_neither_closer_nor_separator():
    parsed = parse("#### One\nC\n:p Q1?\n??x\nA1.\n\n#### Two\nC\n:p Q2?\n??x\nA2.\nx??\n")
    assert [c.answer for c in parsed.cards] == ["A1.", "A2."]
    assert codes(parsed) == ["unclosed-answer"]
    assert parsed.diagnostics[0].location.line == 13


def test_several_questions_before_one_closer():
    parsed = parse("#### Few-Shot\nShared.\n:p Q1?\n??x\nA1.\n\n:p Q2?\n??x\nA2.\n:p Q3?\n??x\nA3.\nx??\n---\n")
    assert [(c.title, c.context, c.question, c.answer) for c in parsed.cards] == [
        ("Few-Shot", "Shared.", "Q1?", "A1."),
        ("Few-Shot", "Shared.", "Q2?", "A2."),
        ("Few-Shot", "Shared.", "Q3?", "A3."),
    ]
    assert codes(parsed) == ["unclosed-answer", "unclosed-answer"]


def test_missing_answer_is_an_error_at_the_question():
    parsed = parse("#### T\nC\n:p Lonely question?\n\n---\n\n" + card(title="Next"))
    assert [c.title for c in parsed.cards] == ["Next"]
    (error,) = [d for d in parsed.diagnostics if d.severity is Severity.ERROR]
    assert (error.code, error.location.line) == ("no-answer", 9)


def test_missing_opener_is_repaired():
    parsed = parse("#### T\nC\n:p Q?\nThe answer.\nx??\n---\n")
    assert (parsed.cards[0].question, parsed.cards[0].answer) == ("Q?", "The answer.")
    assert codes(parsed) == ["missing-opener"]


def test_empty_answer_is_an_error():
    parsed = parse("#### T\nC\n:p Q?\n??x\nx??\n")
    assert parsed.cards == () and codes(parsed) == ["empty-answer"]


# --- separators and structure --------------------------------------------------------


def test_separators_doubled_tripled_trailing_spaces_and_missing():
    body = card(title="A") + "---   \n---\n\n" + card(title="B").replace("\n---\n", "\n") + card(title="C")
    parsed = parse(body.rstrip("-\n") + "\n")
    assert [c.title for c in parsed.cards] == ["A", "B", "C"]
    assert codes(parsed) == ["missing-separator"]


def test_rating_then_stray_separator_then_heading():
    parsed = parse("**Rating: 9/10**\n\n---\n\n" + card(title="Rated"))
    assert parsed.cards[0].rating == 9 and parsed.diagnostics == ()


def test_heading_without_question_is_a_warning():
    parsed = parse("#### Summary\n- a\n- b\n\n" + card(title="Real"))
    assert [c.title for c in parsed.cards] == ["Real"]
    assert codes(parsed) == ["no-question"]


def test_separator_between_heading_and_question_is_ignored():
    parsed = parse("#### Split\nContext.\n---\n:p Q?\n??x\nA.\nx??\n")
    assert parsed.cards[0].title == "Split" and codes(parsed) == ["stray-separator"]


def test_text_outside_cards_is_a_notice():
    parsed = parse(card() + "Please let me know if you need more flashcards or any adjustments!\n")
    assert len(parsed.cards) == 1
    assert codes(parsed) == ["stray-text"] and parsed.diagnostics[0].severity is Severity.NOTICE


def test_template_leftover_is_removed_with_a_notice():
    parsed = parse(card(context="Background context explaining the concept. Include any relevant formulas or data here."))
    assert parsed.cards[0].context == "Background context explaining the concept."
    assert codes(parsed) == ["template-leftover"]


def test_separator_and_comment_inside_closed_fence_are_code():
    answer = "```yaml\n---\n# a comment\n#### not a heading\nkey: value\n---\n```"
    parsed = parse(card(answer=answer) + card(title="Next"))
    assert parsed.cards[0].answer == answer
    assert [c.title for c in parsed.cards] == ["T", "Next"] and parsed.diagnostics == ()


def test_fence_indented_in_a_list_item():
    answer = "- step one:\n    ```python\n    x = 1\n    ---\n    ```\n- step two"
    parsed = parse(card(answer=answer))
    assert parsed.cards[0].answer == answer and parsed.diagnostics == ()


def test_fence_with_no_language():
    parsed = parse(card(answer="```\nplain\n```"))
    assert parsed.cards[0].answer == "```\nplain\n```"


def test_unclosed_fence_ends_with_its_card():
    body = card(answer="```python\nx = 1") + card(title="Next", answer="```js\nlet y = 2;\n```")
    parsed = parse(body)
    assert [c.title for c in parsed.cards] == ["T", "Next"]
    assert parsed.cards[0].answer == "```python\nx = 1\n```"
    assert parsed.cards[1].answer == "```js\nlet y = 2;\n```"
    assert codes(parsed) == ["unclosed-fence"]
    assert parsed.diagnostics[0].location.line == 12


def test_unclosed_fence_at_end_of_file():
    parsed = parse("#### T\nC\n:p Q?\n??x\n```python\nprint(1)\n")
    assert parsed.cards[0].answer == "```python\nprint(1)\n```"
    assert sorted(codes(parsed)) == ["unclosed-answer", "unclosed-fence"]


def test_empty_first_block():
    parsed = parse("---\n\n---\n\n" + card())
    assert len(parsed.cards) == 1 and parsed.diagnostics == ()


# --- text ------------------------------------------------------------------------------


def test_non_ascii_survives():
    parsed = parse(card(title="Trafﬁc “quotes” — dashes", answer="λ = 0.5 # 中文注释"))
    assert parsed.cards[0].title == "Trafﬁc “quotes” — dashes"
    assert parsed.cards[0].answer == "λ = 0.5 # 中文注释"


def test_html_looking_text_is_kept_verbatim():
    answer = "<!--END--> --> <<postscript>> List<Map<String, Object>> <script>alert(1)</script>"
    assert parse(card(answer=answer)).cards[0].answer == answer


# --- files -----------------------------------------------------------------------------


def test_file_without_header_takes_book_from_folder(tmp_path):
    folder = tmp_path / "my-book"
    folder.mkdir()
    path = folder / "hq-part-07.md"
    path.write_text(card(), encoding="utf-8")
    parsed = parse_file(path)
    assert (parsed.meta.source, parsed.meta.part, parsed.meta.variant) == ("my-book", 7, Variant.HIGH_QUALITY)
    assert len(parsed.cards) == 1 and codes(parsed) == ["no-header"]


def test_readme_beside_decks_is_skipped_with_one_notice():
    parsed = parse_text("# Notes\n\nJust a readme.\n", "README.md")
    assert parsed.cards == () and codes(parsed) == ["not-flashcards"]


@pytest.mark.parametrize(
    "data, code",
    [
        (b"", "empty-file"),
        (b"   \n\n", "empty-file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary-file"),
        (b"# Flashcards: B (Part 1)\n\xff\xfe bad", "not-utf8"),
    ],
)
def test_unusable_files_are_one_error(data, code):
    parsed = parse_bytes(data, "bad.md")
    assert parsed.cards == () and codes(parsed) == [code]
    assert parsed.diagnostics[0].severity is Severity.ERROR


def test_encodings_and_line_endings_parse_the_same():
    text = HEADER + card() + card(title="Two")
    expected = [(c.title, c.answer, c.location.line) for c in parse_text(text, "t.md").cards]
    for data, code in [
        (text.encode("utf-8"), None),
        (b"\xef\xbb\xbf" + text.encode("utf-8"), "bom"),
        (text.encode("utf-16"), "utf16"),
        (text.replace("\n", "\r\n").encode(), None),
        (text.replace("\n", "\r").encode(), "cr-line-endings"),
    ]:
        parsed = parse_bytes(data, "t.md")
        assert [(c.title, c.answer, c.location.line) for c in parsed.cards] == expected
        assert codes(parsed) == ([code] if code else [])


def test_unreadable_file_is_an_error(tmp_path):
    parsed = parse_file(tmp_path / "missing.md")
    assert codes(parsed) == ["unreadable"]


@pytest.mark.parametrize(
    "data",
    [
        (HEADER + card()).encode(),
        (HEADER + card()).encode("utf-16"),
        b"\xef\xbb\xbf" + (HEADER + card()).encode(),
        (HEADER + card() + "x" * 9000 + "\x00").encode(),  # NUL past the first 8 KB
        (HEADER + card()).encode() + b"\xff",
        card().encode(),  # no header
        b"",
        ("# Notes\n\n" + HEADER + card()).encode(),  # header after stray text, before any card
    ],
)
def test_book_of_agrees_with_the_parser(data):
    from flashgen.parse import book_of

    path = "lib/my-book/part-1.md"
    assert book_of(data, path) == parse_bytes(data, path).meta.source.strip()


# --- math: doubtful formulas are warnings at their lines (FORMAT.md `suspect-math`) --------------------


def _math_warnings(text: str) -> list[tuple[int, str]]:
    parsed = parse_text(text, "m.md")
    return [(d.location.line, d.message) for d in parsed.diagnostics if d.code == "suspect-math"]


HEADER = "# Flashcards: B (Part 1)\n\n"


def test_generator_habits_are_not_warned_about():
    card = (
        "#### T\nThe width $\\Delta t $ and width$\\Delta \\omega$, where $ p_i$ is\n"
        ":p What is $\\pi_1 $ in terms of$\\pi_0$?\n??x\nIt is $$x^2$$ and costs $1.3 million and $2.6 million.\nx??\n"
    )
    assert _math_warnings(HEADER + card) == []


@pytest.mark.parametrize(
    "where, text, message",
    [
        ("context", "the rate$\\lambda to the service rate \\mu$ is", "words inside formula"),
        ("answer", "Then $|t| \\to \\infty", "never closed"),
        ("answer", "where 2^H = \\exp(H) is the perplexity", "no math delimiters"),
        ("answer", "the value \\alpha + \\beta$ here", "has no opening"),
        ("question", "What is $$x^2 here?", "'$$' is never closed"),
        ("answer", "In \\(x + y here", "'\\(' is never closed"),
    ],
)
def test_doubtful_math_is_warned_at_its_line(where, text, message):
    lines = {"context": 5, "question": 7, "answer": 11}  # header, blank, heading, blank, context, blank, :p, ??x, ...
    fields = {"context": "Some context.", "question": "Why?", "answer": "Line one.\n\nLine two."}
    fields[where] = text if where != "answer" else "Line one.\n\n" + text
    card = f"#### T\n\n{fields['context']}\n\n:p {fields['question']}\n??x\n{fields['answer']}\nx??\n"
    (warning,) = _math_warnings(HEADER + card)
    assert warning[0] == lines[where] and message in warning[1]


def test_math_in_code_is_never_warned_about():
    card = "#### T\nC\n:p Q?\n??x\n```sh\necho $HOME \\alpha $x\n```\nUse `$\\alpha` here.\nx??\n"
    assert _math_warnings(HEADER + card) == []
