"""Card markdown -> the HTML that goes into Anki fields (the CSS that styles it is theme.py's).

Three concerns meet here, each kept apart:

* **math** is cut out of the markdown before mistune sees it (so ``_``, ``*``,
  ``\\\\`` and ``&`` inside formulas survive), then put back in the delimiters
  Anki's MathJax reads: ``\\(...\\)`` and ``\\[...\\]``, never ``$``;
* **code** is highlighted by pygments as class-based HTML, so the note type's
  CSS can give it a light and a dark theme;
* **safety**: raw HTML in the input is escaped, links are http(s) only, and
  every leftover ``$`` is written as ``&#36;`` so nothing downstream reads it
  as a math delimiter.

Rendering is a pure function of the text: the same input always gives the
same HTML, which is what lets the build cache it by content.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from .formulas import Formula, scan_math
from .model import RENDER_VERSION, pickled_by_constructor

__all__ = [
    "RenderedField",
    "render_markdown",
    "render_inline",
    "render_card",
    "RenderedCard",
    "finish_images",
    "inert_anki_syntax",
    "unsafe_markup",
    "well_formed",
    "RENDER_VERSION",
]


# Private-use characters mark where math and images go back in; any in the input are replaced.
_MATH_OPEN, _MATH_CLOSE, _IMG_OPEN, _IMG_CLOSE = "\ue000", "\ue001", "\ue002", "\ue003"
_PRIVATE = re.compile("[\ue000-\ue003]")
_MATH_SLOT = re.compile(_MATH_OPEN + r"(\d+)" + _MATH_CLOSE)
_IMG_SLOT = re.compile(_IMG_OPEN + r"(\d+)" + _IMG_CLOSE)

# Fence info strings real files use, mapped to pygments lexer names.
LANGUAGE_ALIASES = {
    "sh": "bash",
    "shell": "bash",
    "zsh": "bash",
    "console": "console",
    "terminal": "console",
    "csharp": "csharp",
    "c#": "csharp",
    "cs": "csharp",
    "razor": "aspx-cs",
    "cshtml": "aspx-cs",
    "hcl": "terraform",
    "tf": "terraform",
    "terraform": "terraform",
    "yml": "yaml",
    "r": "r",
    "plaintext": "text",
    "plain": "text",
    "txt": "text",
    "text": "text",
    "pseudocode": "text",
    "pseudo": "text",
    "output": "text",
    "math": "text",
    "latex": "latex",
    "tex": "latex",
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "ts": "typescript",
    "c++": "cpp",
    "golang": "go",
    "dockerfile": "docker",
    "ps": "powershell",
}


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class RenderedField:
    """A field's HTML; ``images`` are the image paths it names, in order of their slots."""

    html: str
    images: tuple[tuple[str, str], ...] = ()  # (path as written, alt text)


# --- math -------------------------------------------------------------------------------

def _extract_math(text: str) -> tuple[str, list[Formula]]:
    formulas: list[Formula] = []

    def slot(formula: Formula) -> str:
        formulas.append(formula)
        return f"{_MATH_OPEN}{len(formulas) - 1}{_MATH_CLOSE}"

    source, _ = scan_math(text, slot)  # the parser reports the problems, at their lines
    return source, formulas


def _math_html(formula: Formula) -> str:
    body = html.escape(formula.tex, quote=False)
    return f"\\[{body}\\]" if formula.display else f"\\({body}\\)"


# --- markdown and code ----------------------------------------------------------------------


@lru_cache(maxsize=256)
def _lexer(language: str):
    """One lexer per language per process; languages pygments itself does not know get plain text.

    Only pygments' own lexers are used, never a plugin's: the same card then renders the same
    on every machine (the render cache keys on the text alone), and an unknown language costs
    no scan of every installed package's entry points (46-50 ms, in the first process to meet one).
    """
    from pygments.lexers import get_lexer_by_name

    name = LANGUAGE_ALIASES.get(language, language)
    if name not in _builtin_languages():
        name = "text"
    return get_lexer_by_name(name, stripnl=False, ensurenl=True)


@lru_cache(maxsize=None)
def _builtin_languages() -> frozenset[str]:
    from pygments.lexers import get_all_lexers

    return frozenset(alias for _, aliases, _, _ in get_all_lexers(plugins=False) for alias in aliases)


def prepare() -> None:
    """Import mistune and pygments and set up the markdown parsers and the plain-text lexer now,
    rather than on the first card that needs them.

    Called before worker processes fork, so that they inherit it instead of each doing it again.
    Lexers for languages are made where they are first needed: a lexer's regexes compile on its
    first use (Python 30-50 ms, SQL 20 ms), and workers that render beside this process are given
    cards of other languages than this process's (workers.ends_apart), so that the two share
    the work of making them.
    """
    _markdown(urls=True)
    _markdown(urls=False)
    _lexer("text")


def make_lexers(languages: Iterable[str]) -> None:
    """Make these languages' lexers now, before any card needs them (their regexes compile as they are made)."""
    for language in sorted(languages):
        _lexer(language)


def code_languages(texts: Iterable[str]) -> set[str]:
    """The languages the fenced code blocks in these markdown texts may name, as :func:`highlight_code` names them.

    Workers that render beside this process are given cards by these languages (workers.ends_apart).
    Every run of three backticks or tildes counts, wherever it is: a language too many or one
    missed (an info string written with escapes) only changes which process makes its lexer.
    """
    return {_language(m.group(1)) for text in texts if "``" in text or "~~" in text for m in _FENCE_INFO.finditer(text)}


_FENCE_INFO = re.compile(r"(?:`{3,}|~{3,})[ \t]*(\S+)")


def _language(info: str | None) -> str:
    """A fence's language: the info string's first word, lower case, without ``{}`` or dots (``{.python}``)."""
    words = (info or "").split(maxsplit=1)
    return words[0].lower().strip("{}.") if words else ""


@lru_cache(maxsize=None)
def _token_class(ttype) -> str:
    """The CSS class pygments' HtmlFormatter gives a token type (so its style sheets apply).

    ``Error`` tokens get none: pygments marks with it whatever its lexer does not know,
    valid code included (newer Terraform, templating), and its styles draw red boxes round them.
    """
    from pygments.token import STANDARD_TYPES, Error

    if ttype in Error:
        return ""

    name = STANDARD_TYPES.get(ttype)
    suffix = ""
    while name is None:
        suffix = "-" + ttype[-1] + suffix
        ttype = ttype.parent
        name = STANDARD_TYPES.get(ttype)
    return name + suffix if name or not suffix else suffix.lstrip("-")


def highlight_code(code: str, info: str | None) -> str:
    """Pygments-highlighted code as class-based HTML, the markup of pygments' HtmlFormatter.

    Tokens are joined directly (runs of one class merged): the same classes as
    HtmlFormatter, at a fraction of its cost per block.
    """
    language = _language(info)
    label = f' data-lang="{html.escape(language, quote=True)}"' if language else ""
    out = [f'<div class="highlight"{label}><pre><span></span>']
    run_class, run = "", []

    def flush() -> None:
        text = html.escape("".join(run), quote=False)
        out.append(f'<span class="{run_class}">{text}</span>' if run_class else text)

    lexer = _lexer(language)
    for ttype, value in lexer.get_tokens(code):
        css = _token_class(ttype)
        if css != run_class and run:
            flush()
            run = []
        run_class = css
        run.append(value)
    if run:
        flush()
    out.append("</pre></div>\n")
    _count_lexed(language, lexer, len(code))
    return "".join(out)


# Code a language's lexer must have lexed in this process before its rules are joined
# (lexing.py): about 0.2 s of lexing, against 0.15-0.19 s to join a library's lexers, and
# a sign that as much again is coming. A book never gets there (ai-engineering's notes hold
# 60,000 characters of code, 19,000 of them Python); 8,000 generated questions hold 517,000
# characters of Python.
JOIN_RULES_AFTER = 100_000
_LEXED: dict[str, int] = {}


def _count_lexed(language: str, lexer, characters: int) -> None:
    before = _LEXED.get(language, 0)
    _LEXED[language] = before + characters
    if before < JOIN_RULES_AFTER <= before + characters:
        from .lexing import accelerate

        accelerate(lexer)


_SAFE_LINK = re.compile(r"https?://", re.IGNORECASE)
_BARE_URL, _BARE_SECURE_URL = "http://", "https://"  # what mistune's url plugin links, as it spells them


@lru_cache(maxsize=None)
def _markdown(urls: bool = True):
    """The markdown parser and its renderer; ``urls``: with mistune's ``url`` plugin, which links bare URLs.

    Only text that holds ``http://`` or ``https://`` needs the plugin, which is all it
    matches (case and all). Without it the parser renders the same HTML, faster: with it,
    every ``h`` of the text stops the inline parser's scan for the next markup (35% of
    the time of 1,303 generated answers with no code).
    """
    import mistune
    from mistune.renderers.html import HTMLRenderer

    class CardRenderer(HTMLRenderer):
        """mistune's HTML renderer with card rules: safe links, image slots, pygments code."""

        def __init__(self) -> None:
            super().__init__(escape=True)
            self.images: list[tuple[str, str]] = []

        def link(self, text: str, url: str, title: str | None = None) -> str:
            if not _SAFE_LINK.match(url.strip()):
                return text  # relative, javascript:, data:, file: ... show the words only
            attrs = f' title="{self.escape_attribute(title)}"' if title else ""
            return f'<a href="{self.escape_attribute(url.strip())}"{attrs}>{text}</a>'

        def image(self, text: str, url: str, title: str | None = None) -> str:
            alt = html.unescape(re.sub(r"<[^>]*>", "", text))
            self.images.append((url.strip(), alt))
            return f"{_IMG_OPEN}{len(self.images) - 1}{_IMG_CLOSE}"

        def block_code(self, code: str, info: str | None = None) -> str:
            return highlight_code(code, info)

    renderer = CardRenderer()
    md = mistune.create_markdown(renderer=renderer, plugins=["strikethrough", "table"] + (["url"] if urls else []))
    return md, renderer


# One line with none of these is plain text to mistune too: escaping it gives the same HTML, far faster.
_MARKDOWN_SYNTAX = re.compile(r"[\\`*_\[\]<>&$!~|\ue000-\ue003]|https?:|www\.|^\s*(?:[#>+=-]|\d+[.)])|^\s{4}|^\s*$")


def _plain_line(text: str) -> str | None:
    if "\n" in text or _MARKDOWN_SYNTAX.search(text):
        return None
    return text.strip().replace('"', "&quot;")


def render_markdown(text: str) -> RenderedField:
    """Render a block of card markdown (context or answer) to safe HTML."""
    plain = _plain_line(text)
    if plain is not None:
        return RenderedField(f"<p>{plain}</p>")
    text = _PRIVATE.sub("\ufffd", text)
    source, formulas = _extract_math(text)
    md, renderer = _markdown(_BARE_URL in source or _BARE_SECURE_URL in source)
    renderer.images = []
    body = md(source)
    images = tuple(renderer.images)
    body = _MATH_SLOT.sub(lambda m: _math_html(formulas[int(m.group(1))]), body)
    # A '$' left in the HTML is a real dollar sign: make sure no MathJax setting ever reads it as math.
    body = body.replace("$", "&#36;").strip()
    return RenderedField(body, images)


def render_inline(text: str) -> RenderedField:
    """Render a one-paragraph field (title, question) without the wrapping ``<p>``."""
    field = render_markdown(text)
    body = field.html
    if body.startswith("<p>") and body.endswith("</p>") and body.count("<p>") == 1:
        body = body[3:-4]
    return RenderedField(body, field.images)


# Anki reads its own syntax in field text, wherever it stands in the HTML: '[sound:x]' and
# '[anki:tts]...' play or speak, '[anki:play:...]' is a play button, '[latex]', '[$]', '[$$]'
# ask for LaTeX images. Breaking the '[' with an entity keeps the text as it looks: Anki
# matches the raw field, the browser shows '['.
_ANKI_SYNTAX = re.compile(r"\[(?=sound:|anki:|/?latex\]|/?\$\$?\])", re.IGNORECASE)
# The MathJax Anki ships (3.2, tex-chtml-full) loads the 'html' extension: '\href{javascript:...}'
# is a live link, '\class', '\style', '\cssId' set attributes; '\bbox' and '\mmlToken' take
# styles and attributes, '\unicode' fonts, '\require' loads more. No card needs them. A
# zero-width space after the backslash unmakes the control word, in math and in text alike
# (MathJax reads the page's text, where an entity is already that character).
_MATHJAX_HTML = re.compile(r"\\(?=(?:href|class|style|cssId|data|unicode|require|bbox|mmlToken)(?![A-Za-z]))")


def inert_anki_syntax(field_html: str) -> str:
    """Field HTML with the syntax Anki and its MathJax would act on turned into text that looks the same."""
    if "[" in field_html:
        field_html = _ANKI_SYNTAX.sub("&#91;", field_html)
    if "\\" in field_html:
        field_html = _MATHJAX_HTML.sub("\\&#8203;", field_html)
    return field_html


def finish_images(field: RenderedField, media_names: dict[str, str | None]) -> str:
    """Put images back: a bundled file's media name, or its alt text when it could not be bundled.

    The result is the field as Anki stores it, so Anki's own syntax is made inert here (:func:`inert_anki_syntax`).
    """

    def put_back(m: re.Match) -> str:
        path, alt = field.images[int(m.group(1))]
        name = media_names.get(path)
        if not name:
            return f'<span class="fg-missing-image">[{html.escape(alt or path)}]</span>'
        return f'<img src="{html.escape(name, quote=True)}" alt="{html.escape(alt, quote=True)}">'

    return inert_anki_syntax(_IMG_SLOT.sub(put_back, field.html))


# The markup card fields may contain: everything flashgen itself writes, nothing else.
SAFE_TAGS = frozenset(
    "a b blockquote br code del div em h1 h2 h3 h4 h5 h6 hr i img li ol p pre span strong "
    "table tbody td th thead tr ul".split()
)
SAFE_ATTRIBUTES = frozenset({"class", "href", "title", "src", "alt", "data-lang", "start", "style", "id"})


_MARKUP = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>|<!--|<![A-Za-z\[]|<\?")
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")


_CONTROL = re.compile(r"[\x00-\x20]")
# The shapes pygments and mistune write thousands of times; removed in one pass before the full scan.
_KNOWN_SAFE = re.compile(r'<span class="[\w -]*">|</span>|</?(?:p|li|ul|ol|code|pre|strong|em|br|hr|table|thead|tbody|tr|th|td|blockquote|del)>')


def unsafe_markup(fragment: str) -> list[str]:
    """Everything in an HTML fragment that could run or load something: tags, attributes, URLs.

    An empty list means the fragment is inert. The builder checks every field with it.
    Field HTML escapes every ``<`` of text, so each ``<`` left is markup and is checked.
    """
    problems: list[str] = []
    for m in _MARKUP.finditer(_KNOWN_SAFE.sub("", fragment)):
        if m.group(2) is None:
            problems.append(f"markup {m.group(0)!r}")
            continue
        tag = m.group(2).lower()
        if m.group(1):
            continue  # a closing tag carries nothing; its opening tag was checked
        if tag not in SAFE_TAGS:
            problems.append(f"tag <{tag}>")
        for a in _ATTRIBUTE.finditer(m.group(3)):
            name = a.group(1).lower()
            value = ""
            if name in ("href", "src"):  # what a browser would follow, entities and spaces undone
                value = _CONTROL.sub("", html.unescape((a.group(2) or "").strip("\"'")))
            if name not in SAFE_ATTRIBUTES or name.startswith("on"):
                problems.append(f"attribute {name}= on <{tag}>")
            elif name == "href" and not _SAFE_LINK.match(value):
                problems.append(f"link {value!r}")
            elif name == "src" and (":" in value or value.startswith(("/", "\\"))):
                problems.append(f"src {value!r}")
            elif name == "style" and tag not in ("td", "th"):
                problems.append(f"style on <{tag}>")
    return problems


def well_formed(field: RenderedField) -> bool:
    """Whether ``field`` is something :func:`render_markdown` could have made.

    Text HTML with no live markup, images as (path, alt) text pairs, and every image
    slot naming one of them: what the render cache must check before serving a field.
    """
    if not isinstance(field.html, str) or not isinstance(field.images, tuple):
        return False
    if not all(isinstance(i, tuple) and len(i) == 2 and all(isinstance(x, str) for x in i) for i in field.images):
        return False
    if any(int(m.group(1)) >= len(field.images) for m in _IMG_SLOT.finditer(field.html)):
        return False
    return not unsafe_markup(field.html)


# Labels the generator put in front of context; the back template has its own "Background" heading.
_CONTEXT_LABEL = re.compile(
    r"^\s*(?:Background context explaining the concept\.|Background context:|Background:)\s*", re.IGNORECASE
)


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class RenderedCard:
    """The HTML of one note's text fields, before images are put back."""

    title: RenderedField
    question: RenderedField
    answer: RenderedField
    context: RenderedField

    @property
    def images(self) -> tuple[tuple[str, str], ...]:
        return self.title.images + self.question.images + self.answer.images + self.context.images


def render_card(title: str, question: str, answer: str, context: str) -> RenderedCard:
    """Render a card's four markdown texts into field HTML."""
    return RenderedCard(
        title=render_inline(title),
        question=render_inline(question),
        answer=render_markdown(answer),
        context=render_markdown(_CONTEXT_LABEL.sub("", context, count=1)),
    )
