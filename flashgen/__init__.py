"""flashgen: flashcard markdown in, Anki decks out.

The pipeline, one module per stage::

    collect -> parse -> dedupe -> organise -> render -> package
                         (build wires them together; cli is a thin shell)
"""

__version__ = "0.1.0"  # first: modules below read it

from .build import BuildOptions, BuildReport, build, plan
from .dedupe import Note, dedupe
from .model import Card, Diagnostic, FileMeta, FlashgenError, Location, ParsedFile, Severity, Variant
from .organise import Book, Chapter, Settings, organise
from .parse import parse_bytes, parse_file, parse_text
from .render import render_card, render_markdown

__all__ = [
    "Book",
    "BuildOptions",
    "BuildReport",
    "Card",
    "Chapter",
    "Diagnostic",
    "FileMeta",
    "FlashgenError",
    "Location",
    "Note",
    "ParsedFile",
    "Settings",
    "Severity",
    "Variant",
    "build",
    "dedupe",
    "organise",
    "parse_bytes",
    "parse_file",
    "parse_text",
    "plan",
    "render_card",
    "render_markdown",
]
