"""The records that flow between pipeline stages.

Every record is a frozen dataclass: stages are pure functions from records to
records, so a stage can never change what an earlier stage produced.
"""

from __future__ import annotations

import dataclasses
import enum
import operator
from dataclasses import dataclass, field
from typing import Mapping


def pickled_by_constructor(cls):
    """Pickle a frozen slots dataclass as a call of its constructor.

    Builds send these records between worker processes by the hundred thousand;
    the dataclass default pickles field by field in Python, two to three times slower.
    """
    values = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))
    many = len(dataclasses.fields(cls)) > 1
    cls.__reduce__ = lambda self: (cls, values(self) if many else (values(self),))
    return cls


class Severity(str, enum.Enum):
    """How serious a diagnostic is; ordered from worst to mildest."""

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"

    def __str__(self) -> str:
        return self.value


class Variant(str, enum.Enum):
    """Which flavour of the generator wrote a file."""

    PLAIN = "plain"
    HIGH_QUALITY = "high-quality"

    def __str__(self) -> str:
        return self.value


@pickled_by_constructor
@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A place in an input file; ``line`` is 1-based, 0 means the whole file."""

    path: str
    line: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in the input, carried as a value until the CLI prints it."""

    severity: Severity
    code: str
    message: str
    location: Location

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message} [{self.code}]"

    def as_dict(self) -> dict:
        return {
            "path": self.location.path,
            "line": self.location.line,
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
        }


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class FileMeta:
    """What a file's header says about the cards in it."""

    path: str
    source: str  # the book as the header names it, catalogue prefix and all
    part: int | None
    variant: Variant
    rating_threshold: int | None = None
    starting_chapter: str | None = None
    has_header: bool = True


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class Card:
    """One question with its answer, as written in one place of one file.

    Text fields keep the input's markdown; rendering happens later.
    """

    title: str
    context: str
    question: str
    answer: str
    rating: int | None
    location: Location  # the line of the ``:p``
    index: int  # 0-based position among the file's cards
    meta: FileMeta = field(repr=False, compare=False)


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class ParsedFile:
    """The outcome of parsing one file: its header, its cards, its problems."""

    meta: FileMeta
    cards: tuple[Card, ...]
    diagnostics: tuple[Diagnostic, ...]
    questions: int  # every ``:p`` seen: each became a card or an error

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)


class FlashgenError(Exception):
    """A problem with how flashgen was called or where it runs (exit code 2), not with the input text."""


# Bump when the HTML produced for the same input changes: it keys the render cache.
RENDER_VERSION = "3"
DEFAULT_THRESHOLD = 0.85  # dedupe: how alike two cards' answers are before they are one note
DEFAULT_DECK_TEMPLATE = "{book}::{number} {chapter}"


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user can choose about names and selection (config file or flags)."""

    title_overrides: Mapping[str, str] = field(default_factory=dict)
    deck_template: str = DEFAULT_DECK_TEMPLATE
    min_rating: int | None = None
    keep_unrated: bool = True  # plain files carry no ratings: dropping them is opt-in
