"""A self-contained HTML page showing rendered cards with exactly the note type's templates and CSS.

Math is typeset here, offline, as MathML (converted by ``latex2mathml``; browsers lay out
MathML Core natively), so that the preview shows formulas as formulas the way Anki's MathJax
will. The converter is lenient where MathJax is not (``a^^b``, ``\\foo``, ``\\frac{a}``
pass through it), so the preview adds MathJax's own checks on top, and a formula that fails
any of them is shown as a red box around its TeX, with the reason as its tooltip: broken math
never looks like good math, nor like plain text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from .notetype import BACK_TEMPLATE, FIELDS, FRONT_TEMPLATE
from .organise import source_text
from .render import finish_images, render_card
from .theme import note_css

__all__ = ["MathField", "Preview", "fill_template", "formula_mathml", "preview_html", "preview_page", "typeset_math"]

_SECTION = re.compile(r"\{\{([#^])(\w+)\}\}(.*?)\{\{/\2\}\}", re.S)
_FIELD = re.compile(r"\{\{(\w+)\}\}")


def fill_template(template: str, fields: dict[str, str]) -> str:
    """The subset of Anki's template language flashgen's templates use: fields and sections."""

    def section(m: re.Match) -> str:
        present = bool(fields.get(m.group(2), "").strip())
        return m.group(3) if present == (m.group(1) == "#") else ""

    return _FIELD.sub(lambda m: fields.get(m.group(1), ""), _SECTION.sub(section, template))


# --- math as MathML -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MathField:
    """A field's HTML with its formulas as MathML, and how many there were and failed."""

    html: str
    formulas: int
    errors: int


# Like MathJax, only text outside <pre> and <code> holds math, and a formula never spans a tag.
_SKIPPED_OR_TAG = re.compile(r"<(pre|code)\b[^>]*>.*?</\1\s*>|<[^>]*>", re.S | re.I)
# MathJax's own scan inside a formula: a backslash escapes the next character, braces nest,
# and only a closing delimiter outside every brace ends the formula.
_TEX_TOKEN = re.compile(r"\\[()\[\]]|\\.|[{}]", re.S)
_OPENER = re.compile(r"\\[(\[]")
_CLOSER = {"\\(": "\\)", "\\[": "\\]"}
_CONVERTER_ENTITY = re.compile(r"&#x([0-9A-Fa-f]+);")  # latex2mathml writes symbols as entity text

# What the preview may write: MathML presentation markup, nothing that loads or links.
_MATHML_TAGS = frozenset(
    "math mrow mi mo mn ms mtext mspace msub msup msubsup munder mover munderover mfrac msqrt "
    "mroot mstyle mtable mtr mtd mpadded mphantom menclose".split()
)
_MATHML_ATTRIBUTES = frozenset(
    "display stretchy fence form separator width height depth lspace rspace columnalign rowalign "
    "columnspacing rowspacing columnlines rowlines frame accent accentunder mathvariant displaystyle "
    "scriptlevel mathcolor mathbackground mathsize linethickness minsize maxsize movablelimits "
    "largeop symmetric notation".split()
)
# MathJax reports a missing argument where latex2mathml writes an element short of children.
_ARITY = {"mfrac": 2, "mroot": 2, "msub": 2, "msup": 2, "munder": 2, "mover": 2, "msubsup": 3, "munderover": 3}
_TOKEN_TAGS = frozenset({"mi", "mo", "mn", "mtext", "ms"})


def _unbalanced(tex: str) -> bool:
    depth = 0
    for m in re.finditer(r"\\.|[{}]", tex, re.S):
        if m.group() == "{":
            depth += 1
        elif m.group() == "}":
            depth -= 1
            if depth < 0:
                return True
    return depth != 0


def _element_html(element, problems: list[str]) -> str:
    """Serialise the converter's tree ourselves: its own output unescapes text (``\\text{<b>}``
    would be live markup), so every text is escaped here and only MathML tags and
    presentation attributes pass."""
    tag = element.tag
    if tag not in _MATHML_TAGS:
        problems.append(f"the converter wrote <{tag}>")
        return ""
    raw = element.text or ""
    if tag in _TOKEN_TAGS and raw.startswith("\\"):
        # the converter keeps a command it does not know as raw text (known symbols become
        # entities, '\\backslash' too); MathJax shows it in red
        problems.append(f"unknown command {raw.split('{')[0]}")
    text = _CONVERTER_ENTITY.sub(lambda m: chr(int(m.group(1), 16)), raw)
    if tag == "mi" and not text and len(element) == 0:
        problems.append("a ^ or _ with nothing before it: double exponent? use braces")
    if tag in _ARITY and len(element) != _ARITY[tag]:
        problems.append(f"missing argument ({tag})")
    attrib = dict(element.attrib)
    if tag == "mi" and len(text) == 1 and "\u0391" <= text <= "\u03a9":
        attrib.setdefault("mathvariant", "normal")  # TeX, and MathJax, set capital Greek upright
    attributes = "".join(
        f' {name}="{html.escape(value, quote=True)}"'
        for name, value in sorted(attrib.items())
        if name in _MATHML_ATTRIBUTES  # an href or a style from \\href or \\style is dropped
    )
    children = "".join(_element_html(child, problems) for child in element)
    tail = html.escape(element.tail or "", quote=False)
    return f"<{tag}{attributes}>{html.escape(text, quote=False)}{children}</{tag}>{tail}"


def formula_mathml(tex: str, display: bool) -> tuple[str | None, str | None]:
    """One formula's TeX as MathML, or None and the reason Anki's MathJax would reject it."""
    from latex2mathml.converter import convert_to_element  # only the preview needs it

    if _unbalanced(tex):
        return None, "unbalanced braces"
    problems: list[str] = []
    try:
        mathml = _element_html(convert_to_element(tex, display="block" if display else "inline"), problems)
    except RecursionError:  # deeper than Python's stack (the converter recurses as well)
        return None, "nested too deeply"
    except Exception as exc:  # third-party code on arbitrary TeX: any failure means it cannot be shown
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower().removesuffix(" error")
        return None, f"{words} {exc}".strip()
    return (None, problems[0]) if problems else (mathml, None)


def _error_box(source_html: str, reason: str) -> str:
    title = html.escape(f"Anki's MathJax cannot typeset this: {reason}", quote=True)
    return f'<span class="fg-math-error" title="{title}">{source_html}</span>'


def _closing(text: str, start: int, closer: str) -> re.Match | None:
    """Where MathJax ends a formula opened before ``start``, or None if it never does."""
    depth = 0
    for token in _TEX_TOKEN.finditer(text, start):
        if token.group() == "{":
            depth += 1
        elif token.group() == "}" and depth > 0:  # MathJax never goes below zero: 'x}' still closes
            depth -= 1
        elif token.group() == closer and depth == 0:
            return token
    return None


def _typeset_text(text: str, counts: list[int]) -> str:
    """One run of field text (HTML-escaped) with each \\(..\\) and \\[..\\] typeset."""
    out: list[str] = []
    done = 0
    for opener in _OPENER.finditer(text):
        if opener.start() < done:  # inside the formula just typeset
            continue
        closer = _CLOSER[opener.group()]
        end = _closing(text, opener.end(), closer)
        counts[0] += 1
        out.append(text[done : opener.start()])
        if end is None:
            # MathJax leaves the opener and what follows as text, and goes on looking after it
            counts[1] += 1
            out.append(_error_box(opener.group(), f"no closing {closer}, so Anki shows the TeX as text"))
            done = opener.end()
            continue
        mathml, problem = formula_mathml(html.unescape(text[opener.end() : end.start()]), closer == "\\]")
        if mathml is None:
            counts[1] += 1
            out.append(_error_box(text[opener.start() : end.end()], problem or "cannot convert"))
        else:
            out.append(mathml)
        done = end.end()
    out.append(text[done:])
    return "".join(out)


def typeset_math(field_html: str) -> MathField:
    """A field's HTML with every formula as MathML, or as a red error box when it would not typeset."""
    if "\\(" not in field_html and "\\[" not in field_html:
        return MathField(field_html, 0, 0)
    counts = [0, 0]
    out: list[str] = []
    done = 0
    for m in _SKIPPED_OR_TAG.finditer(field_html):
        out.append(_typeset_text(field_html[done : m.start()], counts))
        out.append(m.group())
        done = m.end()
    out.append(_typeset_text(field_html[done:], counts))
    return MathField("".join(out), counts[0], counts[1])


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flashgen preview</title>
<style>
{css}
/* the preview page itself, not part of the note type */
body.preview {{ margin: 0; padding: 0; background: #eef0f3; font-family: sans-serif; }}
html.night-mode body.preview {{ background: #111; }}
.preview-bar {{ position: sticky; top: 0; z-index: 1; display: flex; gap: 1em; align-items: center; padding: 8px 16px; background: #24292f; color: #fff; font-size: 14px; }}
.preview-bar button {{ font: inherit; padding: 2px 10px; }}
.preview-deck {{ margin: 20px 16px 6px; font: 600 14px sans-serif; color: #57606a; }}
.preview-card {{ margin: 10px 16px 18px; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.25); overflow: hidden; }}
.preview-math-errors {{ background: #cf222e; padding: 1px 8px; border-radius: 10px; }}
.fg math {{ font-size: 1.1em; }}
.fg math[display="block"] {{ margin: 0.5em 0; overflow-x: auto; overflow-y: hidden; }}
/* a formula Anki's MathJax would reject: its TeX in a red box, never passing for good math */
.fg-math-error {{ border: 2px solid #cf222e; border-radius: 4px; padding: 0 0.25em; color: #a40e26; background: #ffebe9; font-family: ui-monospace, monospace; font-size: 0.9em; cursor: help; }}
html.night-mode .fg-math-error {{ border-color: #f85149; color: #ffa198; background: #490202; }}
</style>
</head>
<body class="preview">
<div class="preview-bar"><strong>flashgen preview</strong><span>{count} notes</span><span>{formulas} formulas</span>{math_errors}
<button type="button" id="theme">Dark</button></div>
{cards}
<script>
document.getElementById("theme").addEventListener("click", function () {{
  var dark = document.documentElement.classList.toggle("night-mode");
  this.textContent = dark ? "Light" : "Dark";
}});
if (location.hash === "#dark") document.getElementById("theme").click();
</script>
</body>
</html>
"""


@dataclass(frozen=True, slots=True)
class Preview:
    """The page, and the figures the command reports."""

    html: str
    notes: int
    formulas: int
    math_errors: int


def preview_page(books, limit: int | None = None) -> Preview:
    """One page with the back side of every note (front included, as in Anki), deck by deck,
    formulas typeset as MathML (:func:`typeset_math`)."""
    out: list[str] = []
    count = formulas = errors = 0
    for book in books:
        for chapter in book.chapters:
            out.append(f'<div class="preview-deck">{html.escape(chapter.deck)}</div>')
            for note in chapter.notes:
                if limit is not None and count >= limit:
                    break
                card = render_card(note.title, note.question, note.answer, note.context)
                values = {}
                for name, field in (("Question", card.question), ("Answer", card.answer),
                                    ("Title", card.title), ("Context", card.context)):  # fmt: skip
                    typeset = typeset_math(finish_images(field, {}))
                    values[name] = typeset.html
                    formulas += typeset.formulas
                    errors += typeset.errors
                values["Source"] = html.escape(source_text(note, book, chapter), quote=False)
                assert set(values) == set(FIELDS)
                front = fill_template(FRONT_TEMPLATE, values)
                back = fill_template(BACK_TEMPLATE, {**values, "FrontSide": front})
                out.append(f'<div class="preview-card card">{back}</div>')
                count += 1
    badge = f'<span class="preview-math-errors">{errors} formulas Anki cannot typeset</span>' if errors else ""
    page = _PAGE.format(css=note_css(), count=count, formulas=formulas, math_errors=badge, cards="\n".join(out))
    return Preview(page, count, formulas, errors)


def preview_html(books, limit: int | None = None) -> str:
    """The page of :func:`preview_page` alone."""
    return preview_page(books, limit).html
