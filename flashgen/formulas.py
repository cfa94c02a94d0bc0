"""Where the math is in card markdown, as generators really write it.

The generator writes TeX between dollars, but with its own habits: a space
inside the delimiters (``$\\Delta t $``), a dollar glued to the word before it
(``width$\\Delta \\omega$``), display ``$$`` in mid-line. Pandoc's spacing rules
reject all of these, so dollars are paired here by *evidence* instead:

* single dollars pair left to right within a paragraph, as TeX itself pairs them;
* a pair is math when its body shows TeX (a command, ``^``, ``_``, braces) or is
  a short symbolic body (``x``, ``PC1``, ``N = 13,000``), and never when it is
  money (``$1.3 million and $``), a shell variable (``${x}``) or a run of words;
* words inside a formula are kept as ``\\text{...}``, because MathJax would set
  them as one italic product of letters;
* a ``$`` glued to TeX with no partner opens or closes a formula that runs to
  the end of the TeX around it.

Every repair, and every dollar left as a dollar next to TeX, is a *problem*:
the parser reports them as ``suspect-math`` warnings at their lines, and the
renderer applies exactly the same pairing, so what ``check`` says is what the
card shows.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable

from .fences import closes, fence_of

__all__ = ["Formula", "MathProblem", "split_fences", "scan_math", "math_problems"]


@dataclass(frozen=True, slots=True)
class Formula:
    display: bool
    tex: str


@dataclass(frozen=True, slots=True)
class MathProblem:
    """Something doubtful about the math of a text; ``offset`` is where, in characters."""

    offset: int
    message: str


def split_fences(text: str) -> list[tuple[bool, str]]:
    """Split markdown into (is_code, chunk) pieces along fenced code blocks."""
    pieces: list[tuple[bool, str]] = []
    lines = text.split("\n")
    prose: list[str] = []
    i = 0
    while i < len(lines):
        opener = fence_of(lines[i])
        if opener is not None:
            j = i + 1
            while j < len(lines) and not closes(opener, lines[j]):
                j += 1
            if prose:
                pieces.append((False, "\n".join(prose)))
                prose = []
            pieces.append((True, "\n".join(lines[i : j + 1])))
            i = j + 1
            continue
        prose.append(lines[i])
        i += 1
    if prose:
        pieces.append((False, "\n".join(prose)))
    return pieces


# --- evidence ---------------------------------------------------------------------------------

_TOKENS = re.compile(
    r"(?P<par>\n[ \t]*\n)|(?P<code>`+)|(?P<dd>\$\$)|\\(?P<open>[(\[])|\\(?P<close>[)\]])|(?P<esc>\\\$)|(?P<d>\$)"
)
_COMMAND = re.compile(r"\\[A-Za-z]+")
_STRONG_TEX = re.compile(r"\\[A-Za-z]+|[\^_{}]|\\[,;!{}|]")
# groups whose words are meant as words: \text{...}, \mathrm{...}, \begin{cases} ...
_WORD_GROUP = re.compile(
    r"\\(?:text\w*|math(?:rm|bf|it|sf|tt|cal|bb|frak)|operatorname\*?|mbox|hbox|label|begin|end)\s*\{[^{}]*\}"
)
# an ordinary word: two or more letters, not a command's name
_WORD = r"(?<![\\A-Za-z])[A-Za-z][a-z']+(?![A-Za-z])"
_PROSE_RUN = re.compile(_WORD + r"(?:[ \t]*[,;]?[ \t]+" + _WORD + r")+")
_LONG_WORD = re.compile(r"[A-Za-z]{3,}")
# two-letter lowercase tokens ('xi', 'dt') are as often variables as words: they do not count
_ORDINARY_WORD = re.compile(r"(?<![\\A-Za-z])(?:[a-z]{3,}|[A-Z][a-z]{2,})(?![A-Za-z])")
# a TeX command standing in prose with no delimiters: '\exp(x)', '\frac{a}{b}', '\alpha is'
# (not a Windows path: 'C:\Users\me' has a word character, ':' or a slash before its backslash)
_BARE_COMMAND = re.compile(r"(?<![\w:\\/.])\\[A-Za-z]{2,}(?=[({\[_^]|[ \t]+[\w\\(])")
# the delimiters the output uses: a formula that holds one would end early in Anki's MathJax
_ANKI_DELIMITER = re.compile(r"\\[()\[\]]")
# '$vruntime$': one name, glued to both dollars, is a variable
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# a word of three or more letters right after a formula; 'th' in '$n$th' is a suffix, not a word
_WORD_AFTER = re.compile(r"[A-Za-z]{3,}")
_CODE_SPAN = re.compile(r"(`+).*?(?<!`)\1(?!`)", re.DOTALL)
# How far a formula written without (one of) its delimiters may reach: far beyond any real
# inline formula, and it keeps hostile text (a line of ten thousand glued dollars) linear.
_REACH = 400
_MAX_PROBLEMS = 20  # per field: the first few say enough, and ten thousand warnings say nothing more
# a piece of a bare formula: no white space, no dollar, no delimiter
_CHUNK = re.compile(r"(?:(?!\\[()\[\]])[^\s$])+")
_SENTENCE_END = re.compile(r"[.,;:!?]+$")
# '$1.3 million', '$5,000', '$100M': a number right after the dollar, then words or nothing
_MONEY = re.compile(r"\$\d[\d,]*(?:\.\d+)?(?:[kKmMbB]n?\b|\s+[A-Za-z]|[ \t]*(?:[.,;:!?)]|\n|\Z))")
_SHELL = re.compile(r"\$\{[A-Za-z_][\w.]*\}")
_GAP = r"[ \t]*\n?[ \t]*"  # white space within a paragraph
# the extent of TeX around a glued dollar: no sentence punctuation, and stops before a run of words
_TEX_RUN = re.compile(_GAP + r"(?:\\[A-Za-z]+|[^\s.,;:!?$`]|[ \t](?=[\\^_{}()\[\]=+\-*/<>|0-9]|[A-Za-z](?![A-Za-z])))+")


def _prose_runs(tex: str) -> list[re.Match]:
    """Runs of two or more ordinary words in a formula body, outside groups meant for words."""
    blanked = _WORD_GROUP.sub(lambda m: " " * len(m.group()), tex)
    blanked = _COMMAND.sub(lambda m: " " * len(m.group()), blanked)
    return [m for m in _PROSE_RUN.finditer(blanked) if _LONG_WORD.search(m.group())]


def _is_symbolic(tex: str) -> bool:
    """A short body with no ordinary words: 'x', 'PC1', '0', 'N = 13,000', 'A·B', '||A||'."""
    body = tex.strip()
    return bool(body) and len(body) <= 40 and not _ORDINARY_WORD.search(body)


def _with_words_as_text(tex: str) -> str:
    """'\\lambda to the service rate \\mu' -> '\\lambda \\text{ to the service rate } \\mu'."""
    out, last = [], 0
    for m in _prose_runs(tex):
        out.append(tex[last : m.start()])
        out.append("\\text{ " + m.group().strip() + " }")
        last = m.end()
    out.append(tex[last:])
    return "".join(out)


# --- the scan ------------------------------------------------------------------------------------


class _Scan:
    """One pass over one prose chunk: formulas out, problems noted."""

    def __init__(self, text: str, slot: Callable[[Formula], str]):
        self.text = text
        self.slot = slot
        self.tokens = [(m.start(), m.end(), m.lastgroup, m.group()) for m in _TOKENS.finditer(text)]
        self.out: list[str] = []
        self.last = 0  # text[:last] is already in out
        self.problems: list[MathProblem] = []
        self.code_end = 0  # where the last code span ended: no formula reaches back past it
        self._positions: dict[tuple[str, str | None], list[int]] = {}
        self._stops: dict[tuple[str, ...], list[int]] = {}

    def take(self, start: int, end: int, formula: Formula, body: str = "") -> None:
        """Replace text[start:end] by a slot for the formula; words in it are kept as words.

        ``body`` is the formula as written, white space and all: the generator moves the space
        next to a dollar inside it ('$N $- Memory'), and that space goes back outside.
        """
        if _prose_runs(formula.tex):
            self.warn(start, f"words inside formula '{_short(formula.tex)}' set as \\text{{...}}")
            formula = Formula(formula.display, _with_words_as_text(formula.tex))
        self.emit(start)
        # the generator glues a dollar to the word next to it ('terms of$\pi_0$', '$ P$represents')
        before, after = self.text[start - 1 : start], self.text[end : end + 1]
        glued_before = not formula.display and (
            before.isalnum() or body[:1].isspace() and before != "" and not before.isspace()
        )
        glued_after = not formula.display and (
            _WORD_AFTER.match(self.text, end) is not None
            or body[:1].isspace() and after.isalpha()
            or body[-1:].isspace() and after not in ("", ".", ",", ";", ":", "?", "!", ")") and not after.isspace()
        )
        self.out.append(" " * glued_before + self.slot(formula) + " " * glued_after)
        self.last = end

    def emit(self, until: int) -> None:
        """Copy text[last:until] to the output; TeX standing bare in prose becomes a formula."""
        segment, base = self.text[self.last : until], self.last
        self.last = until
        if "\\" not in segment:
            self.out.append(segment)
            return
        position = 0
        for start, end in _bare_tex(segment):
            self.out.append(segment[position:start])
            tex = segment[start:end]
            self.warn(base + start, f"TeX '{_short(tex)}' has no math delimiters; set as a formula")
            self.out.append(self.slot(Formula(False, _with_words_as_text(tex))))
            position = end
        self.out.append(segment[position:])

    def warn(self, offset: int, message: str) -> None:
        self.problems.append(MathProblem(offset, message))

    def next_of(self, k: int, kind: str, value: str | None = None, stop: tuple[str, ...] = ("par",)) -> int | None:
        """Index of the next token after k of ``kind`` (and ``value``), before any token of a ``stop`` kind.

        By bisection over precomputed positions: a paragraph of ten thousand unclosed
        delimiters must not cost a hundred million steps.
        """
        positions = self._positions.get((kind, value))
        if positions is None:
            positions = [j for j, token in enumerate(self.tokens) if token[2] == kind and (value is None or token[3] == value)]
            self._positions[(kind, value)] = positions
        n = bisect.bisect_right(positions, k)
        if n == len(positions):
            return None
        return positions[n] if positions[n] < self._next_stop(stop)[k] else None

    def _next_stop(self, stop: tuple[str, ...]) -> list[int]:
        """For each token index, the index of the first later token of a ``stop`` kind (or the end)."""
        table = self._stops.get(stop)
        if table is None:
            table = [len(self.tokens)] * len(self.tokens)
            following = len(self.tokens)
            for j in range(len(self.tokens) - 1, -1, -1):
                table[j] = following
                if self.tokens[j][2] in stop:
                    following = j
            self._stops[stop] = table
        return table

    def run(self) -> str:
        tokens = self.tokens
        k = 0
        while k < len(tokens):
            start, end, kind, value = tokens[k]
            if kind == "code":
                other = self.next_of(k, "code", value)
                if other is not None:
                    self.code_end = tokens[other][1]  # a code span is left to mistune, untouched
                k = (other if other is not None else k) + 1
                continue
            if kind == "dd":
                other = self.next_of(k, "dd", stop=())
                body = self.text[end : tokens[other][0]] if other is not None else ""
                if other is not None and body.strip() and not _ANKI_DELIMITER.search(body):
                    self.take(start, tokens[other][1], Formula(True, body.strip()))
                    k = other + 1
                    continue
                k = self.literal(k)  # never closed, or closed on nothing
                continue
            elif kind == "open":
                display = value == "\\["
                other = self.next_of(k, "close", "\\" + ("]" if display else ")"), stop=() if display else ("par",))
                if other is not None and self.text[end : tokens[other][0]].strip():
                    self.take(start, tokens[other][1], Formula(display, self.text[end : tokens[other][0]].strip()))
                    k = other + 1
                    continue
                if other is None:
                    self.warn(start, f"'{value}' is never closed")
            elif kind == "d":
                k = self.dollar(k)
                continue
            k += 1
        self.emit(len(self.text))
        return "".join(self.out)

    def dollar(self, k: int) -> int:
        """Pair the dollar at token k with the next one, if what lies between is math."""
        start, end = self.tokens[k][0], self.tokens[k][1]
        other = self.next_of(k, "d", stop=("par", "code", "dd", "open", "close"))
        if other is None or _SHELL.match(self.text, start):
            return self.literal(k)
        body = self.text[end : self.tokens[other][0]]
        strong, words = _STRONG_TEX.search(body), _prose_runs(body)
        if _MONEY.match(self.text, start) and (words or not strong):
            return self.literal(k)  # '$1.3 million and $2.6 million'
        if not strong and (words or not _is_symbolic(body)) and not _IDENTIFIER.fullmatch(body):
            return self.literal(k)  # R's 'data$texts, data$images'
        self.take(start, self.tokens[other][1], Formula(False, body.strip()), body)
        return other + 1

    def literal(self, k: int) -> int:
        """The dollar(s) at token k stay dollars, unless TeX is glued to them: then they open or close a formula."""
        start, end = self.tokens[k][0], self.tokens[k][1]
        after = _TEX_RUN.match(self.text, end)
        if after and _COMMAND.search(after.group()) and not _MONEY.match(self.text, start):
            stop = end + len(after.group().rstrip())
            tex = self.text[end:stop].strip()
            display = self.tokens[k][2] == "dd"
            self.warn(start, f"formula '{self.tokens[k][3]}{_short(tex)}' is never closed; closed after it")
            self.take(start, stop, Formula(display, tex))
            return self._token_after(stop)
        opened = _formula_before(self.text, max(self.last, self.code_end), start)
        if opened is not None:
            tex = self.text[opened:start].strip()
            self.warn(start, f"formula '{_short(tex)}{self.tokens[k][3]}' has no opening; opened before it")
            self.take(opened, end, Formula(self.tokens[k][2] == "dd", tex))
            return k + 1
        if self.tokens[k][2] == "dd" and self.next_of(k, "dd", stop=()) is None:
            self.warn(start, "'$$' is never closed; shown as dollars")
        return k + 1

    def _token_after(self, offset: int) -> int:
        for j, token in enumerate(self.tokens):
            if token[0] >= offset:
                return j
        return len(self.tokens)


def _bare_tex(segment: str) -> list[tuple[int, int]]:
    """Extents of formulas written with no delimiters, outside code spans: each bare command
    with the symbols around it on its line, up to an ordinary word or the end of a sentence."""
    code = [m.span() for m in _CODE_SPAN.finditer(segment)] if "`" in segment else []
    extents: list[tuple[int, int]] = []
    for m in _BARE_COMMAND.finditer(segment):
        if any(a <= m.start() < b for a, b in code) or (extents and m.start() < extents[-1][1]):
            continue
        window = max(0, m.start() - _REACH)
        line_start = segment.rfind("\n", window, m.start()) + 1 or window
        line_end = segment.find("\n", m.end(), m.end() + _REACH)
        line_end = min(len(segment), m.end() + _REACH) if line_end < 0 else line_end
        chunks = [(c.start() + line_start, c.end() + line_start) for c in _CHUNK.finditer(segment[line_start:line_end])]
        here = next(i for i, (a, b) in enumerate(chunks) if a <= m.start() < b)

        def joins(i: int) -> bool:
            """Chunks i and i+1 are one formula's: white space between, no sentence end, no word."""
            left, right = segment[slice(*chunks[i])], segment[slice(*chunks[i + 1])]
            apart = segment[chunks[i][1] : chunks[i + 1][0]]
            return apart.isspace() and not _SENTENCE_END.search(left) and _formula_chunk(left) and _formula_chunk(right)

        first = here
        while first > 0 and joins(first - 1):
            first -= 1
        last = here
        while last + 1 < len(chunks) and joins(last):
            last += 1
        start, end = chunks[first][0], chunks[last][1]
        end -= len(_SENTENCE_END.search(segment[start:end]).group()) if _SENTENCE_END.search(segment[start:end]) else 0
        if any(a < end and start < b for a, b in code):
            continue
        extents.append((start, end))
    return extents


def _formula_before(text: str, low: int, high: int) -> int | None:
    """Where a formula that ends at ``high`` with TeX glued to its dollar would have begun
    (not before ``low``): back over the pieces of formula on its line, to a word or a sentence end."""
    low = max(low, high - _REACH)
    gap = re.search(_GAP + r"\Z", text[low:high])
    high -= len(gap.group()) if gap else 0  # the dollar may stand at the start of the next line
    line_start = max(low, text.rfind("\n", low, high) + 1)
    chunks = list(_CHUNK.finditer(text, line_start, high))
    if not chunks or chunks[-1].end() != high or not _COMMAND.search(chunks[-1].group()):
        return None
    first = len(chunks) - 1
    while first > 0:
        left = chunks[first - 1].group()
        if not text[chunks[first - 1].end() : chunks[first].start()].isspace():
            break
        if _SENTENCE_END.search(left) or not _formula_chunk(left):
            break
        first -= 1
    return chunks[first].start()


def _formula_chunk(chunk: str) -> bool:
    """A white-space separated piece of a bare formula: anything but an ordinary word."""
    word = _SENTENCE_END.sub("", chunk)
    return bool(word) and not re.fullmatch(r"[A-Za-z][a-z']+|[A-Z]?[a-z]+[-'][a-z]+", word) or bool(_COMMAND.search(word))


def _short(tex: str) -> str:
    tex = " ".join(tex.split())
    return tex if len(tex) <= 30 else tex[:27] + "..."


def scan_math(text: str, slot: Callable[[Formula], str]) -> tuple[str, list[MathProblem]]:
    """Replace each formula in markdown ``text`` by ``slot(formula)``; code is left as it is.

    Returns the new text and the problems found, at offsets into the original text.
    """
    pieces, problems, offset = [], [], 0
    for is_code, chunk in split_fences(text):
        if is_code or ("$" not in chunk and "\\" not in chunk):
            pieces.append(chunk)  # every kind of math starts with one of these
        else:
            scan = _Scan(chunk, slot)
            pieces.append(scan.run())
            problems += [MathProblem(offset + p.offset, p.message) for p in scan.problems]
        offset += len(chunk) + 1
    return "\n".join(pieces), problems


def math_problems(text: str) -> list[tuple[int, str]]:
    """The math problems of a field's markdown, as (0-based line within the text, message)."""
    if "$" not in text and "\\" not in text:
        return []
    _, problems = scan_math(text, lambda formula: "")
    newlines = [m.start() for m in re.finditer("\n", text)]
    found = [(bisect.bisect_left(newlines, p.offset), p.message) for p in problems[:_MAX_PROBLEMS]]
    if len(problems) > _MAX_PROBLEMS:
        found.append((found[-1][0], f"and {len(problems) - _MAX_PROBLEMS} more math problems in this field"))
    return found
