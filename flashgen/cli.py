"""The command line: a thin shell over the library.

Exit codes: 0 all good; 1 problems found in the input (errors, or warnings
under --strict); 2 usage or environment errors (a missing path, an unwritable
output folder, a malformed config).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence, TextIO

from . import __version__
from .collect import collect
from .model import Diagnostic, Severity
from .parse import parse_file

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with how flashgen was called or where it runs; exit code 2."""


def _print_diagnostics(diagnostics: Sequence[Diagnostic], stream: TextIO, quiet: bool, verbose: bool) -> None:
    for d in diagnostics:
        if quiet and d.severity is not Severity.ERROR:
            continue
        if d.severity is Severity.NOTICE and not verbose:
            continue
        print(f"{d.location}: {d.severity}: {d.message}", file=stream)


def _count(diagnostics: Sequence[Diagnostic], severity: Severity) -> int:
    return sum(1 for d in diagnostics if d.severity is severity)


def _exit_code(diagnostics: Sequence[Diagnostic], strict: bool) -> int:
    if _count(diagnostics, Severity.ERROR):
        return EXIT_PROBLEMS
    if strict and _count(diagnostics, Severity.WARNING):
        return EXIT_PROBLEMS
    return EXIT_OK


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def cmd_check(args: argparse.Namespace) -> int:
    inputs = collect(args.paths)
    if inputs.missing:
        raise UsageError("; ".join(f"{d.location.path}: {d.message}" for d in inputs.missing))
    parsed = [parse_file(path) for path in inputs.files]
    diagnostics = [d for p in parsed for d in p.diagnostics]
    cards = sum(len(p.cards) for p in parsed)
    questions = sum(p.questions for p in parsed)
    if args.json:
        json.dump(
            {
                "files": len(parsed),
                "questions": questions,
                "cards": cards,
                "errors": _count(diagnostics, Severity.ERROR),
                "warnings": _count(diagnostics, Severity.WARNING),
                "notices": _count(diagnostics, Severity.NOTICE),
                "diagnostics": [d.as_dict() for d in diagnostics],
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        _print_diagnostics(diagnostics, sys.stderr, args.quiet, args.verbose)
        if not args.quiet:
            print(
                f"{_plural(len(parsed), 'file')}, {_plural(questions, 'question')}, {_plural(cards, 'card')}, "
                f"{_plural(_count(diagnostics, Severity.ERROR), 'error')}, "
                f"{_plural(_count(diagnostics, Severity.WARNING), 'warning')}",
                file=sys.stderr,
            )
    return _exit_code(diagnostics, args.strict)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="flashcard files or folders (*.md, *.txt)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument("-v", "--verbose", action="store_true", help="print notices too, and tracebacks")
    parser.add_argument("--strict", action="store_true", help="treat warnings as problems (exit 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashgen",
        description="Turn flashcard markdown into Anki decks.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 ok, 1 problems found in the input, 2 usage or environment error",
    )
    parser.add_argument("--version", action="version", version=f"flashgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="parse and report problems at path:line",
        description="Parse flashcard files and report every problem at path:line.",
        epilog="example: flashgen check notes/ --strict",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(check)
    check.set_defaults(run=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting."""
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and bad usage
        return int(exc.code or 0) and EXIT_USAGE
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"flashgen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("flashgen: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in flashgen, not in the input
        if getattr(args, "verbose", False):
            raise
        print(f"flashgen: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
