"""Property tests: for any text, the parser keeps its contract and the renderer stays inert.

`make test` runs a bounded budget; `make fuzz` (FLASHGEN_FUZZ_EXAMPLES=20000) the long run.
"""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flashgen.parse import parse_text
from flashgen.render import render_card, render_markdown, unsafe_markup
from tests.html_check import live_markup

EXAMPLES = int(os.environ.get("FLASHGEN_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PIECES = [
    ":p ", "\n:p Why?", "??x", "\n??x\n", "x??", "\nx??\n", "???x", ":x??", "\n---\n", "---", "\n#### T\n", "#### ",
    "```", "\n```python\n", "\n```\n", "~~~", "$", "$$", "`", "\\(", "\\)", "\\[", "\\]", "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>", "[a](javascript:alert(1))", "![i](../../etc/passwd)", "<", ">", "&", "&amp;",
    "**Rating: 8/10**", "\n**Rating: 9/10**\n", "# Flashcards: B (Part 1)\n", "\n", "\n\n", " ", "word", "_", "*",
    "|", "\r", "\r\n", "\t", "    ", "- ", "1. ", "> ", "<!--", "-->", "\ue000", "\x00", "${x}", "$HOME", "é", "中",
]  # fmt: skip
soup = st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=120).map("".join)

QUESTION_ERRORS = {"no-answer", "empty-answer", "empty-question"}


@fuzz
@given(soup)
def test_parser_accounts_for_every_question(text):
    parsed = parse_text(text, "fuzz.md")
    errors = sum(1 for d in parsed.diagnostics if d.code in QUESTION_ERRORS)
    assert parsed.questions == len(parsed.cards) + errors
    at_line_start = sum(1 for line in re.split(r"\r\n|\r|\n", text) if re.match(r"[ \t]{0,3}:p([ \t]|$)", line))
    assert parsed.questions >= at_line_start
    for d in parsed.diagnostics:
        assert d.location.path == "fuzz.md" and d.location.line >= 0


@fuzz
@given(soup | st.text(alphabet=st.sampled_from(list("htps:/w.ab *_`[]()<>!|~\n")), max_size=60))
def test_text_with_no_url_renders_the_same_without_the_url_plugin(text):
    """render.py leaves mistune's url plugin out where the text has no 'http://' or 'https://' (it is faster so)."""
    from flashgen.render import _markdown

    if "http://" in text or "https://" in text:
        return
    (with_urls, renderer_a), (without, renderer_b) = _markdown(urls=True), _markdown(urls=False)
    renderer_a.images, renderer_b.images = [], []
    assert without(text) == with_urls(text)
    assert renderer_b.images == renderer_a.images


CODE_PIECES = [
    "def ", "class ", "return ", "import ", "from ", "if ", "else", "for ", "in ", "lambda", "SELECT ", "FROM ", "WHERE ",
    "public ", "static ", "void ", "int ", "String ", "fn ", "let ", "const ", "var ", "function ", "=>", "->", "::", ":",
    "(", ")", "[", "]", "{", "}", "<", ">", "=", "==", "+", "-", "*", "**", "/", "//", "%", "@", "&", "|", "^", "~", "!",
    "'", '"', "'''", '"""', "f'", 'rb"', "`", "${", "$x", "#", "# note", "--", "/*", "*/", "<<EOF", "\\", "\\n", "\t",
    "0x1F", "3.14", "1e-9", "42", "_x", "self", "None", "True", "print", "\n", "\n    ", " ", ";", ",", ".", "é", "中",
]  # fmt: skip
code_soup = st.lists(st.sampled_from(CODE_PIECES) | st.text(max_size=3), max_size=80).map("".join)


@fuzz
@given(code_soup, st.sampled_from(["python", "java", "sql", "bash", "javascript", "rust", "markdown", "r", "go"]))
def test_joined_lexer_rules_give_pygments_own_tokens(code, language):
    """lexing.accelerate changes how a lexer's rules are tried, never which tokens come out."""
    from pygments.lexers import get_lexer_by_name

    from flashgen.lexing import accelerate

    plain, joined = (get_lexer_by_name(language, stripnl=False, ensurenl=True) for _ in range(2))
    accelerate(joined)
    assert list(joined.get_tokens(code)) == list(plain.get_tokens(code))


safe_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.", min_size=1, max_size=30).map(str.strip).filter(bool)
closers = st.sampled_from(["x??", "x??", "x??", "???x", ":x??", "??", "??x"])
separators = st.sampled_from(["\n---\n", "\n---\n", "\n---   \n---\n", "\n", "\n\n"])
blank = st.sampled_from(["", "\n", "\n\n"])


@st.composite
def files(draw):
    cards = []
    text = "# Flashcards: Prop-Book_processed (Part 1)\n\n---\n\n"
    for i in range(draw(st.integers(1, 8))):
        question = f"Q{i} " + draw(safe_words)
        answer = f"A{i} " + draw(safe_words)
        code = draw(st.sampled_from(["", f"\n```python\n# A{i} code\n---\n```", f"\n```\nA{i} plain\n```"]))
        closer = draw(closers)
        text += f"#### Title {i}\n{draw(blank)}C{i} context\n{draw(blank)}:p {question}\n{draw(blank)}??x\n{answer}{code}\n{draw(blank)}{closer}{draw(separators)}\n"
        cards.append((question, answer + code))
    return text, cards


@fuzz
@given(files())
def test_cards_never_cross_into_a_neighbour(generated):
    text, cards = generated
    parsed = parse_text(text, "prop.md")
    assert [(c.question, c.answer) for c in parsed.cards] == cards
    assert not parsed.errors


@fuzz
@given(soup)
def test_renderer_output_is_inert(text):
    for html in (render_markdown(text).html, *(f.html for f in vars_of(render_card(text, text, text, text)))):
        assert unsafe_markup(html) == []
        assert live_markup(html) == []
        assert "$" not in html


@fuzz
@given(soup)
def test_every_lexer_a_text_needs_is_one_its_languages_name(text):
    """The languages cards are handed out by (workers.ends_apart) name every lexer rendering then asks for; one too many is harmless."""
    import flashgen.render as render

    used: list[str] = []
    real = render._lexer
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render, "_lexer", lambda language: used.append(language) or real(language))
        render_card(text, text, text, text)
    named = {type(real(language)) for language in render.code_languages([text])} | {type(real("text"))}
    assert {type(real(language)) for language in used} <= named


def vars_of(card):
    return (card.title, card.question, card.answer, card.context)


MATH_PIECES = [
    "$", "$$", " ", "\\alpha", "\\frac{a}{b}", "x", "_1", "^2", "{", "}", "word", "the cost", "5", "$5", "1.3 million",
    "\\to", "\\infty", ",", ".", "\n", "\n\n", "`", "\\(", "\\)", "\\[", "\\]", "\\text{a b}", "=", "|", "-", "C:\\Users",
]  # fmt: skip
math_soup = st.lists(st.sampled_from(MATH_PIECES), max_size=40).map("".join)
_CODE = re.compile(r"<div class=\"highlight\"[^>]*>|<pre.*?</pre>|<code>.*?</code>", re.DOTALL)  # fences, info strings, spans
_MATH = re.compile(r"\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL)
# a dollar left as a dollar right next to a TeX command, either side
_DOLLAR_BY_TEX = re.compile(r"&#36;\s?\\[A-Za-z]{2,}|\\[A-Za-z]{2,}[}\s]?&#36;")


@fuzz
@given(math_soup)
def test_no_field_shows_a_dollar_next_to_tex_outside_code(text):
    html = render_markdown(text).html
    prose = _MATH.sub("\N{SECTION SIGN}", _CODE.sub("\N{SECTION SIGN}", html))  # a formula is not white space
    assert not _DOLLAR_BY_TEX.search(prose), html
    assert "$" not in html


@fuzz
@given(st.text(alphabet=st.sampled_from(list("*_ \t\n\u00a0\u2003ab+(),.?$=-’…é\\")), max_size=40))
def test_normalise_is_its_plain_definition(text):
    """dedupe.normalise's fast regexes (literal first) agree with the plain ones: identities and sketches rest on it."""
    import unicodedata

    from flashgen.dedupe import _DELIMITERS, _QUOTES, normalise

    plain = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    plain = _DELIMITERS.sub("$", plain)
    plain = re.sub(r"\*\*|__|(?<!\w)\*(?!\s)|(?<=\S)\*(?!\w)", "", plain)
    plain = re.sub(r"\s+", " ", plain)
    plain = re.sub(r"\s+(?=[{}()\[\]^_=+\-*/,])|(?<=[{}()\[\]^_=+\-*/,])\s+", "", plain)
    assert normalise(text) == plain.strip().rstrip(".?!:;,").strip()


_LOCK_TEXT = st.one_of(st.none(), st.text(max_size=12))


@fuzz
@given(
    st.dictionaries(
        st.text(alphabet="0123456789abcdef", min_size=24, max_size=24),
        st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 2**32 - 1), _LOCK_TEXT, st.text(min_size=1, max_size=8),
                  st.integers(0, 2**32 - 1), _LOCK_TEXT, _LOCK_TEXT, _LOCK_TEXT, _LOCK_TEXT),
        max_size=4,
    ),
    st.one_of(st.none(), st.text(max_size=8)),
    st.integers(0, 2**32 - 1),
)
def test_the_lock_is_written_as_json_writes_it(notes, notetype_hash, notetype_mod):
    """lock_chunks writes the lock by hand, a note at a time: the very text json.dumps gives its tables."""
    import json
    from types import MappingProxyType

    from flashgen.lockfile import LOCK_VERSION, Lock, NoteState, lock_text

    lock = Lock(MappingProxyType({k: NoteState(*v) for k, v in notes.items()}), notetype_hash, notetype_mod)
    tables = {
        "version": LOCK_VERSION,
        "notetype": {"hash": notetype_hash, "mod": notetype_mod},
        "notes": {
            key: {
                "hash": s.hash, "mod": s.mod, "created": s.created, "chapter": s.chapter, "deck": s.deck,
                **{k: v for k, v in (("book", s.book), ("question", s.question), ("sketch", s.sketch), ("pushed", s.pushed)) if v},
            }
            for key, s in sorted(lock.notes.items())
        },
    }
    assert lock_text(lock) == json.dumps(tables, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


_ENTRY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2**32 + 1), st.floats(allow_nan=False), st.lists(st.integers(), max_size=1),
    st.sampled_from(["", "abc123", "Deck::1", "AAAA==", "x" * 1001, "q" * 10_001, "not hex", "a\u00e9"]),
)


@fuzz
@given(
    st.fixed_dictionaries(
        {"hash": st.one_of(st.just("abc123"), _ENTRY_VALUE), "mod": st.one_of(st.just(7), _ENTRY_VALUE), "deck": st.one_of(st.just("Deck::1"), _ENTRY_VALUE)},
        optional={name: _ENTRY_VALUE for name in ("created", "chapter", "book", "question", "sketch", "pushed")},
    )
)
def test_a_clean_lock_entry_is_checked_as_strictly_as_any(entry):
    """A lock with no control character anywhere skips that check value by value: it accepts exactly what the full checks do."""
    from flashgen.lockfile import _Malformed, _note_state

    def checked(clean):
        try:
            return _note_state("0" * 24, entry, clean)
        except _Malformed:
            return "refused"

    assert checked(True) == checked(False)



@fuzz
@given(st.lists(st.sets(st.sampled_from(["python", "sql", "java", "r", "bash"]), max_size=3), max_size=60), st.integers(1, 7))
def test_cards_handed_out_by_language_are_each_handed_out_once_and_grouped(kinds, workers):
    """However the cards' languages fall, every card is rendered once, the cards placed by one language are
    together (so a process that meets it meets it once), and so are the cards without code."""
    from collections import Counter

    from flashgen.workers import ends_apart

    order = ends_apart(kinds, workers)
    assert sorted(order) == list(range(len(kinds)))
    weight = Counter(kind for needs in kinds for kind in needs)
    placed_by = [min(kinds[i], key=lambda k: (-weight[k], k)) if kinds[i] else "" for i in order]
    runs = [kind for j, kind in enumerate(placed_by) if j == 0 or kind != placed_by[j - 1]]
    assert len(runs) == len(set(runs))
