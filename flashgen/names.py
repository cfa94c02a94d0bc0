"""Readable names from what the generator wrote: book titles, chapters, decks, tags, slugs."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .model import DEFAULT_DECK_TEMPLATE

__all__ = ["book_title", "book_author", "chapter_name", "slug", "deck_name", "tag_part", "DEFAULT_DECK_TEMPLATE"]


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


# '<id>---<Title>---<Author>': a second run of three or more dashes sets the author apart
_AUTHOR_SEPARATOR = re.compile(r"-{3,}")
# Product names written as one word: they stay whole when run-together words are split.
# Only names of this shape matter (two capitalised humps); the list is what books are about.
_COMPOUNDS = (
    "JavaScript", "TypeScript", "CoffeeScript", "ActionScript", "PostScript", "GitHub", "GitLab", "BitBucket",
    "PostgreSQL", "MySQL", "NoSQL", "GraphQL", "MongoDB", "DynamoDB", "CouchDB", "InfluxDB", "BigQuery",
    "PowerShell", "PowerPoint", "WebAssembly", "WebGL", "WebSocket", "WebSockets", "OpenAI", "OpenGL", "OpenCV",
    "OpenShift", "OpenStack", "DeepMind", "DeepSpeed", "LangChain", "LlamaIndex", "FastAPI", "DevOps", "MLOps",
    "DataOps", "GitOps", "SecOps", "YouTube", "LinkedIn", "WordPress", "CloudFormation", "ElasticSearch",
    "TensorFlow", "TensorRT", "FlatBuffers", "RabbitMQ", "ZeroMQ", "ClickHouse", "SQLite", "MariaDB",
    "HashiCorp", "CloudWatch", "SageMaker", "AutoML", "AutoGen", "LightGBM", "XGBoost", "CatBoost", "SpaCy",
    "HuggingFace", "StackOverflow", "VisualBasic", "ObjectiveC", "SwiftUI", "UIKit", "AppKit", "CoreData",
    "NetBeans", "IntelliJ", "JUnit", "TestNG", "SpringBoot", "ReactJS", "NodeJS", "NextJS", "VueJS",
)  # fmt: skip
_HUMP = re.compile(r"(?<=[a-z]{2})(?=[A-Z][a-z])")
_INITIAL = re.compile(r"\b([A-Z])\b(?![.'])")


def book_title(source: str, overrides: dict[str, str] | None = None) -> str:
    """'2A001---AI-Engineering_-Building-...-OReilly-Media-2025Chip-Huyen--_processed'
    -> 'AI Engineering: Building Applications with Foundation Models'.

    Overrides may be keyed by the source as the headers spell it, its slug, or the slug
    of the title flashgen would choose (today's or the one before authors were set apart).
    """
    if overrides:
        keys = (source, slug(source), slug(_clean_title(source)), slug(_clean_title(source, legacy=True)))
        for key in keys:
            if key in overrides:
                return overrides[key]
    return _clean_title(source)


def book_author(source: str) -> str | None:
    """'10A006---Java-Cookbook---Ian-F-Darwin_processed' -> 'Ian F. Darwin'; None when not given."""
    _, author = _title_and_author(source)
    if not author:
        return None
    # 'Rubin-H_-Landau': '_' stands for the initial's full stop, '-' for spaces
    name = re.sub(r"\s+", " ", author.replace("_", ".").replace("-", " ")).strip()
    name = _INITIAL.sub(r"\1.", name)
    return name or None


def _title_and_author(source: str) -> tuple[str, str | None]:
    name = _CATALOGUE.sub("", _PROCESSED.sub("", source.strip()))
    title, *rest = _AUTHOR_SEPARATOR.split(name, maxsplit=1)
    author = rest[0].strip("-_ ") if rest else ""
    return (title, author) if author else (name, None)


def _clean_title(source: str, legacy: bool = False) -> str:
    if legacy:  # the title before authors were set apart and run-together words split
        name = _CATALOGUE.sub("", _PROCESSED.sub("", source.strip()))
    else:
        name = _title_and_author(source)[0]
    name = _PUBLISHER_TAIL.sub("", name)
    name = _YEAR_TAIL.sub("", name)
    name = name.strip("-_ ")
    name = re.sub(r"_-|-_", ": ", name)  # the generator's stand-in for a colon
    name = name.replace("_", " ").replace("-", " ")
    name = re.sub(r"\s+", " ", name).strip(" :")
    if not legacy:
        name = " ".join(_split_run_together(word) for word in name.split(" "))
    return name or source.strip() or "Untitled"


def _split_run_together(word: str) -> str:
    """'FluentPython' -> 'Fluent Python'; 'TypeScript', 'LearningTypeScript' -> 'TypeScript', 'Learning TypeScript'."""
    if not _HUMP.search(word):
        return word
    kept = [(m.start(), m.end()) for c in _COMPOUNDS for m in re.finditer(re.escape(c), word)]
    cuts = [m.start() for m in _HUMP.finditer(word) if not any(a < m.start() < b for a, b in kept)]
    pieces = [word[a:b] for a, b in zip([0] + cuts, cuts + [len(word)])]
    return " ".join(pieces)


# '7.5 Comparison ... 7.6 Readings. 7.7 Exercises' -> the first section starts the chapter
_NEXT_SECTION = re.compile(r"\.\s+(?=(?:\d+(?:\.\d+)*|[A-Z]\.\d+)\s)")


@lru_cache(maxsize=None)  # a book's notes repeat a few dozen chapters: organising 56,499 notes asked 169,497 times
def chapter_name(raw: str | None) -> str | None:
    """Clean a 'Starting Chapter' value: underscores, doubled spaces, several joined sections."""
    if raw is None:
        return None
    # the generator writes some labels with '_' for every space; elsewhere '_' is part of a name
    name = raw.replace("_", " ") if " " not in raw.strip() else raw
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


def deck_name(
    book: str, number: int, chapter: str, template: str = DEFAULT_DECK_TEMPLATE, width: int = 2, suffix: str = ""
) -> str:
    """'AI Engineering::25 Finetuning Overview'; the number keeps Anki's alphabetical sort in book order
    ('81 Wavelets' < '81b Wavelet Basis' < '82 Discrete Wavelets': a space sorts before a letter)."""
    clean_book = book.replace("::", ":")
    return template.format(book=clean_book, number=f"{number:0{width}d}{suffix}", chapter=chapter)
