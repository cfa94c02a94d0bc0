"""Figures per book and chapter: questions read, notes kept, duplicates merged, warnings."""

from __future__ import annotations

import bisect
from typing import Any

from .model import Severity

__all__ = ["plan_stats"]


def plan_stats(plan) -> dict[str, Any]:
    """A JSON-ready summary of a build plan (see :func:`flashgen.build.plan`)."""
    # Each diagnostic is counted in the chapter of the card it sits in (the nearest ':p' above it).
    cards_by_file: dict[str, list[tuple[int, str]]] = {}
    for book in plan.books:
        for chapter in book.chapters:
            for note in chapter.notes:
                for o in note.occurrences:
                    cards_by_file.setdefault(o.location.path, []).append((o.location.line, chapter.deck))
    for entries in cards_by_file.values():
        entries.sort()
    warnings_in: dict[str, int] = {}
    for d in plan.diagnostics:
        if d.severity is Severity.NOTICE:
            continue
        entries = cards_by_file.get(d.location.path)
        if not entries:
            continue
        k = max(0, bisect.bisect_right(entries, (d.location.line, "\uffff")) - 1)
        deck = entries[k][1]
        warnings_in[deck] = warnings_in.get(deck, 0) + 1

    books = []
    for book in plan.books:
        chapters = []
        for chapter in book.chapters:
            questions = sum(len(n.occurrences) for n in chapter.notes)
            chapters.append(
                {
                    "deck": chapter.deck,
                    "chapter": chapter.name,
                    "questions": questions,
                    "notes": len(chapter.notes),
                    "merged": questions - len(chapter.notes),
                    "warnings": warnings_in.get(chapter.deck, 0),
                }
            )
        books.append(
            {
                "book": book.title,
                "source": book.id,
                "questions": sum(c["questions"] for c in chapters),
                "notes": sum(c["notes"] for c in chapters),
                "merged": sum(c["merged"] for c in chapters),
                "filtered": book.filtered,
                "pinned_elsewhere": book.pinned_elsewhere,
                "warnings": sum(c["warnings"] for c in chapters),
                "chapters": chapters,
            }
        )
    count = lambda severity: sum(1 for d in plan.diagnostics if d.severity is severity)  # noqa: E731
    return {
        "files": len(plan.files),
        "questions": plan.questions,
        "cards": sum(len(f.cards) for f in plan.files),
        "notes": sum(b["notes"] for b in books),
        "merged": plan.deduped.merged,
        "errors": count(Severity.ERROR),
        "warnings": count(Severity.WARNING),
        "pinned_elsewhere": sum(b["pinned_elsewhere"] for b in books),
        "removed": [c.as_dict() for c in plan.removed],
        "books": books,
    }
