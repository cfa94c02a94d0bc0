"""Golden files: the parse of every real input file, as a readable dump.

Regenerate with `make goldens` (pytest --update-goldens) and review `git diff`
by eye before committing: the dump is the specification of what the parser
makes of real, messy input.
"""

from __future__ import annotations

import pytest

from flashgen import ParsedFile, parse_bytes
from tests.conftest import corpus_files, shared_relative


def _block(label: str, text: str) -> list[str]:
    if not text:
        return [f"{label}: (none)"]
    return [f"{label}: |"] + [f"  {line}".rstrip() for line in text.split("\n")]


def dump(parsed: ParsedFile) -> str:
    m = parsed.meta
    out = [
        f"file: {m.path}",
        f"source: {m.source}",
        f"part: {m.part}  variant: {m.variant}  threshold: {m.rating_threshold}  header: {m.has_header}",
        f"starting chapter: {m.starting_chapter}",
        f"questions: {parsed.questions}  cards: {len(parsed.cards)}",
        "",
    ]
    for card in parsed.cards:
        out.append(f"== card {card.index} at line {card.location.line}, rating {card.rating}")
        out.append(f"title: {card.title}")
        out += _block("context", card.context)
        out.append(f"question: {card.question}")
        out += _block("answer", card.answer)
        out.append("")
    out.append("== diagnostics")
    out += [f"{d.location.line}: {d.severity}: {d.message} [{d.code}]" for d in parsed.diagnostics]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("path", corpus_files(), ids=shared_relative)
def test_parse_golden(path, golden):
    parsed = parse_bytes(path.read_bytes(), shared_relative(path))
    golden(f"parse/{shared_relative(path)}.golden", dump(parsed))
