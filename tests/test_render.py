"""Rendering: markdown, code, math and dollars, safe HTML; golden HTML per case.

Each case's input is here, its HTML in tests/goldens/render/<name>.html
(regenerate with `make goldens`, review the diff by eye).
"""

from __future__ import annotations

import re

import pytest

from flashgen import parse_file
from flashgen.render import (
    _language,
    _lexer,
    code_languages,
    finish_images,
    render_card,
    render_inline,
    render_markdown,
    unsafe_markup,
)
from flashgen.theme import note_css
from tests.conftest import corpus_files

CASES = {
    # math
    "math-inline-dollar": "KL Divergence $D_{KL}(P || Q)$, on the other hand, measures the difference.",
    "math-display-dollar": "$$PPL(P,Q) = 2^{H(P,Q)}$$",
    "math-display-multiline-blank": "Before\n$$\n\\begin{aligned}\na &= b \\\\\n\nc &= d_1 * e_2\n\\end{aligned}\n$$\nAfter",
    "math-glued-to-text": "costs$$x_1 + x_2$$total and $N = 13,000,000,000$ parameters",
    "math-existing-paren": "- \\( \\mu \\) and \\( \\sigma^2 \\) are mean and variance",
    "math-existing-bracket": "\\[ \\text{Loss} = -\\sum_i y_i \\log p_i \\]",
    "math-markdown-specials": "$a_1 * b_2 * c_3$ and $x < y \\& z > w$",
    "math-badly-split": "- Model parameter count $N $- Memory per parameter$ M$",
    "math-glued-closer-leftover": "$$\\text{Total Inference Memory} = 26 \\text{ GB} \\times 1.2 = 31.2 \\text{ GB}$$",
    # the generator's math habits, each shape as the corpus has it
    "math-space-inside-glued-outside": "The time width $\\Delta t $ and frequency width$\\Delta \\omega$ are related.",
    "math-leading-space-glued-after": "where $ P(xi|xi−1)$is the probability of the token $ xi$ given the previous tokens.",
    "math-digits-shifted-spaces": "each bit can represent two unique values, $0 $ or$1 $. In contrast",
    "math-run-of-formulas": "the equation $\\frac{\\partial \\mathcal{L}}{\\partial w_i} = 0 $ for$i=1,...,6 $, and$\\frac{\\partial \\mathcal{L}}{\\partial b_i} = 0 $ for$i=1,2,3$ in",
    "math-display-mid-line": "$$\\Psi(t) = \\sin(8t)e^{-\\frac{t^2}{2}},$$daughter wavelets are created using the transformation:",
    "math-display-then-where": "$$\\psi(t) = \\frac{1}{\\sqrt{\\pi f_b}} e^{j 2 \\pi f_c t}$$where $ f_c $ is the center frequency and $ f_b$ is the bandwidth.",
    "math-matrix-rows": "$$\nX = \\begin{bmatrix} \nx_1 \\\\ \n\\vdots \\\\\nx_M \n\\end{bmatrix}\n$$",
    "math-cases-with-text": "$$y(t) = \\begin{cases} \n\\sin(\\omega_0 t), & \\text{for } -N\\pi/\\omega_0 < t < N\\pi/\\omega_0 \\\\ \n0, & \\text{elsewhere}\n\\end{cases}$$",
    "math-words-in-formula": "the ratio of the arrival rate$\\lambda to the service rate \\mu$ is the load",
    "math-variable-name": "its $vruntime$ will be updated more slowly",
    "math-symbolic-capitals": "$PC1 $(the eigenvector with the largest eigenvalue) points along, while $ PC2$ is orthogonal",
    "math-bare-tex-in-prose": "Lower perplexity, where 2^H(P||Q) = \\exp(H(P||Q)) represents the perplexity.",
    "math-never-closed": "as $|t| \\to \\infty $, i.e., $\\Psi(|t| \\to \\infty) \\to 0$, and the limit $\\omega",
    "math-existing-paren-multiline": "The transform \\(\nY(s, \\tau) = \\int y(t) dt\n\\) is linear.",
    # dollars that are not math
    "dollar-money-range": "GitHub Copilot earned between $1.3 million and $2.6 million in revenue.",
    "dollar-money-glued": "companies that raised at least$1 billion",
    "dollar-money-single": "An AI startup that generates $200 million annually.",
    "dollar-shell-vars": "Set $HOME and ${var.x}, then echo $PATH.",
    "dollar-prompt": "$ git status\n$ git commit -m 'x'",
    "dollar-r": "embeddings <- clip::generate_embeddings(data $texts, data$ images)",
    "dollar-in-code": "Use `$HOME` or:\n```sh\nexport A=$HOME\necho \"$$ is the pid\"\n```",
    # html-looking text
    "html-in-prose": "Use `<!--END-->` as a marker, or <!--END--> --> and <<postscript>>.",
    "html-generics": "A List<Map<String, Object>> holds maps.",
    "html-script": "<script>alert('x')</script>\n\nText <img src=x onerror=alert(1)> <b onclick=\"x()\">b</b>",
    "html-links": "[safe](https://example.com) [js](javascript:alert(1)) [data](data:text/html,x) [rel](notes.md) <https://a.org>",
    "html-page-in-fence": "```html\n<!DOCTYPE html>\n<html><head><script>alert(1)</script></head>\n<body onload=\"x()\"></body></html>\n```",
    # code
    "code-python": "```python\ndef f(x):\n    return x ** 2  # square\n```",
    "code-no-language": "```\nplain text block\n```",
    "code-aliases": "```sh\nls -la\n```\n\n```csharp\nvar x = 1;\n```\n\n```razor\n@model Foo\n```\n\n```hcl\nresource \"a\" \"b\" {}\n```\n\n```pseudocode\nfor each x do y\n```\n\n```plaintext\nhello\n```",
    "code-unknown-language": "```nosuchlanguage\nx = 1\n```",
    "code-indented-in-list": "1. First:\n   ```python\n   x = 1\n   ```\n2. Second",
    "code-long-line": "```java\n" + "String s = \"" + "x" * 200 + "\";\n```",
    "code-non-ascii": "```python\n# 中文注释 — “quotes”\nλ = 'Trafﬁc'\n```",
    # markdown
    "markdown-lists-emphasis": "**Number of Steps:** tracking.\n- *one*\n- two with `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    "markdown-image": "See ![a diagram](figures/plot.png).",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_golden(name, golden):
    field = render_markdown(CASES[name])
    media = {path: "flashgen-" + path.replace("/", "-") for path, _ in field.images}
    golden(f"render/{name}.html", finish_images(field, media) + "\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_cases_are_inert(name):
    html = render_markdown(CASES[name]).html
    assert unsafe_markup(html) == []
    assert "$" not in html


def test_math_survives_markdown_untouched():
    html = render_markdown(CASES["math-display-multiline-blank"]).html
    assert "\\[\\begin{aligned}\na &amp;= b \\\\\n\nc &amp;= d_1 * e_2\n\\end{aligned}\\]" in html


def test_dollar_math_becomes_mathjax_delimiters():
    assert render_inline("$x_1$ and $$y$$").html == "\\(x_1\\) and \\[y\\]"


@pytest.mark.parametrize("text", ["between $1.3 million and $2.6 million", "at least$1 billion", "$ git log", "$HOME"])
def test_dollars_that_are_not_math_stay_dollars(text):
    html = render_inline(text).html
    assert "\\(" not in html and html.replace("&#36;", "$") == text


def test_links_only_for_http():
    html = render_markdown(CASES["html-links"]).html
    assert re.findall(r'href="([^"]+)"', html) == ["https://example.com", "https://a.org"]


def test_unsafe_markup_detects_live_markup():
    assert unsafe_markup('<p>ok <a href="https://x">x</a></p>') == []
    assert unsafe_markup("<script>x</script>") == ["tag <script>"]
    assert unsafe_markup('<img src="a.png" onerror="x">') == ["attribute onerror= on <img>"]
    assert unsafe_markup('<a href="javascript:alert(1)">x</a>') == ["link 'javascript:alert(1)'"]


def test_code_is_class_based_and_lexers_are_made_once():
    _lexer.cache_clear()
    html = render_markdown("```python\nx = 1\n```\n\n```python\ny = 2\n```").html
    assert html.count('<div class="highlight" data-lang="python">') == 2
    assert 'class="k"' in html or 'class="n"' in html
    assert "style=" not in html
    assert _lexer.cache_info().misses == 1


def test_an_unknown_language_is_plain_text_whatever_pygments_plugins_are_installed(monkeypatch):
    """A plugin's lexer would make the same card render differently on another machine, under the same cache key."""
    import pygments.plugin

    def installed_plugins(group):
        raise AssertionError(f"looked for {group} plugins")

    monkeypatch.setattr(pygments.plugin, "iter_entry_points", installed_plugins)
    _lexer.cache_clear()
    try:
        html = render_markdown("```flashgen-no-such-language\nx = <1>\n```\n\n```python\nx = 1\n```").html
    finally:
        _lexer.cache_clear()  # the next test must not get lexers made under this patch
    assert '<div class="highlight" data-lang="flashgen-no-such-language"><pre><span></span>x = &lt;1&gt;\n</pre></div>' in html
    assert '<span class="n">x</span>' in html


def test_the_languages_found_before_rendering_are_every_corpus_card_needs(monkeypatch):
    """Cards are handed to the processes that render them by these languages (workers.ends_apart), so that
    each process makes the lexers of its own cards: they must name every lexer a card needs."""
    import flashgen.render as render

    used: list[str] = []
    monkeypatch.setattr(render, "_lexer", lambda language: used.append(language) or _lexer(language))
    missed = []
    for path in corpus_files():
        for card in parse_file(path).cards:
            used.clear()
            render_card(card.title, card.question, card.answer, card.context)
            found = code_languages([card.title, card.question, card.answer, card.context])
            missed += [(str(card.location), language) for language in used if language not in found | {""}]  # "": text, always made
    assert missed == []
    assert {"python", "java", "c", "sql"} <= code_languages(
        card.answer for path in corpus_files() for card in parse_file(path).cards
    )


def test_code_languages_are_named_as_blocks_are_rendered():
    text = "```Python {.numberLines}\nx\n```\n\n~~~ {.rust}\ny\n~~~\n\nand `code` and ``x``, no fence\n```\n"
    assert code_languages([text]) == {"python", "rust"}
    assert code_languages(["no fences at all"]) == set()


def test_images_are_slots_until_the_builder_resolves_them():
    field = render_markdown("![a diagram](figures/plot.png) ![gone](missing.png)")
    assert field.images == (("figures/plot.png", "a diagram"), ("missing.png", "gone"))
    html = finish_images(field, {"figures/plot.png": "flashgen-1234-plot.png", "missing.png": None})
    assert '<img src="flashgen-1234-plot.png" alt="a diagram">' in html
    assert '<span class="fg-missing-image">[gone]</span>' in html


def test_render_card_drops_the_generators_context_label():
    card = render_card("T", "Q?", "A.", "Background context: Long-term memory helps.")
    assert card.context.html == "<p>Long-term memory helps.</p>"
    assert render_card("T", "Q?", "A.", "Background context explaining the concept.").context.html == ""


def test_css_has_light_and_dark_code_themes_scoped_to_night_mode():
    css = note_css()
    assert ".fg .highlight .k " in css
    for night in (".nightMode", ".night_mode", ".night-mode"):
        assert re.search(re.escape(f"{night} .fg .highlight .k") + "[ ,]", css)
    assert "overflow-x: auto" in css and "@media (max-width: 600px)" in css


_FENCE_LINE = re.compile(r"^\s*(```|~~~)", re.M)


def test_every_corpus_card_renders_inert_with_every_fence_highlighted():
    blocks = highlighted = 0
    for path in corpus_files():
        for card in parse_file(path).cards:
            rendered = render_card(card.title, card.question, card.answer, card.context)
            for field in (rendered.title, rendered.question, rendered.answer, rendered.context):
                assert unsafe_markup(field.html) == [], card.location
                assert "$$" not in field.html and "$" not in field.html, card.location
            blocks += len(_FENCE_LINE.findall(card.answer + "\n" + card.context)) // 2
            highlighted += (rendered.answer.html + rendered.context.html).count('<div class="highlight"')
    assert blocks >= 365  # every fenced block in the corpus
    assert highlighted == blocks


def test_tokens_pygments_cannot_lex_are_plain_text_not_red_boxes():
    from flashgen.render import highlight_code

    html = highlight_code('x = 1 $ 2\ny = "§"  ¤', "python")
    assert 'class="err"' not in html and "$ " in html
    assert 'class="err"' not in render_markdown("```hcl\nresource \"a\" \"b\" {\n  x = a ? 1 : 2 §\n}\n```").html


_FIELD_CODE = re.compile(r'<div class="highlight"[^>]*>|<pre.*?</pre>|<code>.*?</code>', re.DOTALL)
_FIELD_MATH = re.compile(r"\\\((.*?)\\\)|\\\[(.*?)\\\]", re.DOTALL)
_WORDS_GROUP = re.compile(r"\\(?:text\w*|math\w+|operatorname|mbox|begin|end)\s*\{[^{}]*\}")


def test_no_corpus_note_shows_raw_tex_in_prose_or_prose_as_math():
    shown_tex, prose_math = [], []
    for path in corpus_files():
        for card in parse_file(path).cards:
            rendered = render_card(card.title, card.question, card.answer, card.context)
            for field in (rendered.title, rendered.question, rendered.answer, rendered.context):
                html = _FIELD_CODE.sub(" ", field.html)
                prose = _FIELD_MATH.sub("\N{SECTION SIGN}", html)
                if re.search(r"\\[A-Za-z]{2,}", prose):
                    shown_tex.append(f"{card.location}: {prose[:120]}")
                for m in _FIELD_MATH.finditer(html):
                    tex = _WORDS_GROUP.sub(" ", m.group(1) or m.group(2))
                    if re.search(r"(?<![\\A-Za-z{])[a-z]{3,} +[a-z]{2,}(?![A-Za-z])", tex):
                        prose_math.append(f"{card.location}: {tex[:80]}")
    assert shown_tex == [] and prose_math == []


@pytest.mark.parametrize("shape", ["\\( ", "$$ ", "$\\alpha", "\\alpha$ ", "` `` ", "a\\frac{a}{b} "])
def test_math_scan_stays_linear_on_hostile_text(shape):
    """Unclosed delimiters and glued dollars by the ten thousand: twice the text, about twice the time.

    A ratio of best-of-three timings in one run, not a time limit: a loaded machine slows both sizes.
    """
    import time

    from flashgen.formulas import math_problems

    def best(n: int) -> float:
        text = shape * n
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            math_problems(text)
            runs.append(time.perf_counter() - started)
        return min(runs)

    small, large = best(6000), best(12000)
    assert large < 3.5 * small + 0.01
    assert len(math_problems(shape * 6000)) <= 21  # the first twenty, and a count of the rest


# --- joined lexer rules (lexing.py) ---------------------------------------------------------

OTHER_LEXERS = ("python", "java", "sql", "bash", "javascript", "typescript", "go", "rust", "yaml", "json", "markdown", "r")


def _corpus_code_blocks() -> list[tuple[str, str]]:
    import mistune

    blocks: list[tuple[str, str]] = []

    class Blocks(mistune.HTMLRenderer):
        def block_code(self, code, info=None):
            blocks.append((_language(info), code))
            return ""

    md = mistune.create_markdown(renderer=Blocks(escape=True))
    for path in corpus_files():
        for card in parse_file(path).cards:
            for text in (card.answer, card.context):
                if "```" in text or "~~~" in text:
                    md(text)
    return blocks


def _lexer_pair(language: str):
    """Two lexers of a language, as render.py makes them: pygments' own, and one with joined rules."""
    from flashgen.lexing import accelerate

    plain, joined = (type(_lexer(language))(stripnl=False, ensurenl=True) for _ in range(2))
    return plain, joined, accelerate(joined)


def test_joined_rules_give_pygments_own_tokens_on_every_corpus_block_in_many_languages():
    """Each block lexed as its own language and as every other one: the states and recoveries of many lexers."""
    from flashgen.lexing import _joined

    blocks = _corpus_code_blocks()
    assert len(blocks) > 100
    for language in sorted({language for language, _ in blocks} | set(OTHER_LEXERS)):
        plain, joined, accelerated = _lexer_pair(language)
        if language in ("python", "java", "sql", "javascript", "markdown", "r"):  # every state joined, none left to pygments
            assert accelerated and all(_joined(rules) is not None for rules in plain._tokens.values()), language
        for _, code in blocks[:: 1 if language in OTHER_LEXERS[:4] else 5]:
            assert list(joined.get_tokens(code)) == list(plain.get_tokens(code)), (language, code[:200])


def test_a_language_switches_to_joined_rules_with_the_same_html(monkeypatch):
    import flashgen.render as render

    code = "```python\ndef f(x: int) -> str:\n    return f'{x!r:>8}'  # done\n```"
    _lexer.cache_clear()
    expected = render_markdown(code).html
    monkeypatch.setattr(render, "JOIN_RULES_AFTER", 10)
    monkeypatch.setattr(render, "_LEXED", {})
    try:
        first = render_markdown(code).html  # crosses the threshold: the rules are joined after it
        assert "get_tokens_unprocessed" in vars(render._lexer("python"))  # lexing.accelerate's
        assert render_markdown(code).html == first == expected
    finally:
        _lexer.cache_clear()
