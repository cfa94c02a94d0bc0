"""Readable names from what the generator wrote: book titles, chapters, decks, tags, slugs."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["book_title", "chapter_name", "slug", "deck_name", "tag_part", "DEFAULT_DECK_TEMPLATE"]

DEFAULT_DECK_TEMPLATE = "{book}::{number} {chapter}"

_PROCESSED = re.compile(r"[-_ ]*processed$", re.IGNORECASE)
# '2A001---', '7A003--', '024---': a catalogue code and its dashes
_CATALOGUE = re.compile(r"^[0-9][0-9A-Z]{1,7}-{2,}")
_PUBLISHERS = (
    "OReilly",
    "O-Reilly",
    "O'Reilly",
    "Manning",
    "Packt",
    "Apress",
    "No-Starch",
    "NoStarch",
    "Wiley",
    "Addison-Wesley",
    "Pearson",
    "Pragmatic",
    "Springer",
    "MIT-Press",
    "CRC-Press",
    "Leanpub",
)
_PUBLISHER_TAIL = re.compile(r"-(?:" + "|".join(re.escape(p) for p in _PUBLISHERS) + r")\b.*$", re.IGNORECASE)
_YEAR_TAIL = re.compile(r"-(?:19|20)\d\d(?:\D.*)?$")


def book_title(source: str, overrides: dict[str, str] | None = None) -> str:
    """'2A001---AI-Engineering_-Building-...-OReilly-Media-2025Chip-Huyen--_processed'
    -> 'AI Engineering: Building Applications with Foundation Models'."""
    if overrides:
        for key in (source, slug(source), slug(_clean_title(source))):
            if key in overrides:
                return overrides[key]
    return _clean_title(source)


def _clean_title(source: str) -> str:
    name = _PROCESSED.sub("", source.strip())
    name = _CATALOGUE.sub("", name)
    name = _PUBLISHER_TAIL.sub("", name)
    name = _YEAR_TAIL.sub("", name)
    name = name.strip("-_ ")
    name = re.sub(r"_-|-_", ": ", name)  # the generator's stand-in for a colon
    name = name.replace("_", " ").replace("-", " ")
    name = re.sub(r"\s+", " ", name).strip(" :")
    return name or source.strip() or "Untitled"


# '7.5 Comparison ... 7.6 Readings. 7.7 Exercises' -> the first section starts the chapter
_NEXT_SECTION = re.compile(r"\.\s+(?=(?:\d+(?:\.\d+)*|[A-Z]\.\d+)\s)")


def chapter_name(raw: str | None) -> str | None:
    """Clean a 'Starting Chapter' value: underscores, doubled spaces, several joined sections."""
    if raw is None:
        return None
    name = raw.replace("_", " ")
    name = re.sub(r"\s+", " ", name).strip()
    name = _NEXT_SECTION.split(name, maxsplit=1)[0].strip()
    name = name.replace("::", ":")  # '::' would make a deck level of its own
    return name.rstrip(" .") or None


def slug(text: str) -> str:
    """A lowercase ASCII name for files and tags: 'AI Engineering: Building' -> 'ai-engineering-building'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "untitled"


def tag_part(text: str) -> str:
    """A tag component: Anki tags cannot hold spaces, and '::' separates levels."""
    return slug(text)


def deck_name(book: str, number: int, chapter: str, template: str = DEFAULT_DECK_TEMPLATE, width: int = 2) -> str:
    """'AI Engineering::25 Finetuning Overview'; the number keeps Anki's alphabetical sort in book order."""
    clean_book = book.replace("::", ":")
    return template.format(book=clean_book, number=f"{number:0{width}d}", chapter=chapter)
