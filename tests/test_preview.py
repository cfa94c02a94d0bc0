"""The preview typesets math offline, as MathML, and shows what Anki's MathJax would reject in red."""

from __future__ import annotations

import re

import pytest

from flashgen.cli import main
from flashgen.preview import formula_mathml, typeset_math
from tests.conftest import CORPUS

# Formulas Anki's MathJax rejects, as flashgen writes them, and why; tests/test_mathjax.py
# checks that MathJax itself rejects each of them.
BROKEN = {
    "<p>\\(a^^b\\)</p>": "double exponent",
    "<p>\\(\\foo x\\)</p>": "unknown command \\foo",
    "<p>\\[x^{2\\]</p>": "no closing \\]",
    "<p>\\(\\frac{a}\\)</p>": "missing argument",
    "<p>\\(\\left( x\\)</p>": "extra left or missing right",
    "<p>\\(x}\\)</p>": "unbalanced braces",
    "<p>\\(x{\\)</p>": "no closing \\)",
    # '\\href' as flashgen makes it inert (render.inert_anki_syntax): Anki shows it in red, as text
    "<p>\\(\\&#8203;href{x}{y}\\)</p>": "unknown command \\",
}

_RAW_MATH = re.compile(r"\\[(\[]")
_CODE = re.compile(r"<(pre|code)\b.*?</\1>", re.S)


@pytest.fixture(scope="module")
def corpus_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("preview") / "corpus.html"
    assert main(["preview", str(CORPUS), "-o", str(out), "-q", "--lock", str(out.parent / "lock")]) == 0
    return out.read_text(encoding="utf-8")


def test_corpus_preview_shows_every_formula_as_mathml(corpus_page):
    formulas = int(re.search(r"<span>(\d+) formulas</span>", corpus_page).group(1))
    assert formulas > 300  # computational-physics alone has hundreds
    assert corpus_page.count("<math ") == formulas
    assert 'class="fg-math-error"' not in corpus_page and '<span class="preview-math-errors">' not in corpus_page
    assert not _RAW_MATH.search(_CODE.sub("", corpus_page))  # no TeX left as text
    assert 'display="block"' in corpus_page and "<mfrac>" in corpus_page


@pytest.mark.parametrize("field", sorted(BROKEN))
def test_a_broken_formula_is_a_red_box_with_its_reason(field):
    typeset = typeset_math(field)
    assert (typeset.formulas, typeset.errors) == (1, 1)
    box = re.fullmatch(r'<p><span class="fg-math-error" title="([^"]*)">(.*?)</span>(.*)</p>', typeset.html)
    assert box, typeset.html
    assert BROKEN[field] in box.group(1).replace("&#x27;", "'")
    assert box.group(2) + box.group(3) == field[3:-4]  # the TeX itself as the card has it, nothing lost


def test_after_an_unclosed_formula_the_next_one_typesets_as_in_mathjax():
    typeset = typeset_math("<p>\\(x{ and then \\(y\\)</p>")
    assert (typeset.formulas, typeset.errors) == (2, 1)
    assert typeset.html.startswith('<p><span class="fg-math-error"') and typeset.html.count("<math ") == 1
    assert typeset_math("<p>\\(a\\) \\[b\\]</p>").html.count("<math ") == 2


def test_the_command_counts_formulas_that_cannot_be_typeset(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "b.md").write_text(
        "# Flashcards: Broken Math (Part 1)\n\n#### Broken\n:p What do $a^^b$ and $x_{n}$ mean?\n??x\n"
        "The formula $\\foo x + 1$ and $x < y$.\nx??\n\n---\n",
        encoding="utf-8",
    )
    out = tmp_path / "p.html"
    assert main(["preview", str(tmp_path / "in"), "-o", str(out), "--lock", str(tmp_path / "lock")]) == 0
    assert "2 formulas of 4 cannot be typeset (red boxes in the preview)" in capsys.readouterr().err
    page = out.read_text(encoding="utf-8")
    assert page.count('class="fg-math-error"') == 2 and page.count("<math ") == 2
    assert '<span class="preview-math-errors">2 formulas Anki cannot typeset</span>' in page


def test_mathml_is_escaped_and_carries_no_links_or_styles():
    # latex2mathml's own string output unescapes text: '\text{<b>}' would be live markup
    mathml, problem = formula_mathml("\\text{<script>alert(1)</script>} < \\href{javascript:alert(1)}{x}", False)
    assert problem is None
    assert "<script" not in mathml and "&lt;script&gt;" in mathml and "&lt;" in mathml
    assert "href" not in mathml and "javascript" not in mathml
    mathml, _ = formula_mathml("\\style{background:url(https://example.com)}{x}", False)
    assert "style" not in mathml and "url(" not in mathml


def test_mathml_follows_tex_conventions():
    mathml, _ = formula_mathml("\\Delta t \\, \\backslash", False)
    assert '<mi mathvariant="normal">\u0394</mi>' in mathml  # capital Greek upright, as MathJax sets it
    assert formula_mathml("\\backslash", False)[1] is None  # a symbol, not an unknown command
    assert formula_mathml("{" * 5000 + "x" + "}" * 5000, False) == (None, "nested too deeply")
    assert formula_mathml("\\sum_{i=1}^n x_i", True)[0].startswith('<math display="block">')
    assert typeset_math("<p>no math here</p>").html == "<p>no math here</p>"
    assert typeset_math("<code>\\(x\\)</code>").formulas == 0  # MathJax skips code, so does the preview
