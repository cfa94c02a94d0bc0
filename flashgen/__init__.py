"""flashgen: flashcard markdown in, Anki decks out."""

from .model import Card, Diagnostic, FileMeta, Location, ParsedFile, Severity, Variant
from .parse import parse_bytes, parse_file, parse_text

__version__ = "0.1.0"

__all__ = [
    "Card",
    "Diagnostic",
    "FileMeta",
    "Location",
    "ParsedFile",
    "Severity",
    "Variant",
    "parse_bytes",
    "parse_file",
    "parse_text",
]
