"""The command line: a thin shell over the library.

Exit codes: 0 all good; 1 problems found in the input (errors, or warnings
under --strict); 2 usage or environment errors (a missing path, an unwritable
output folder, a malformed config or lock file); 130 interrupted (SIGINT, Ctrl-C)
and 143 terminated (SIGTERM), 128 + the signal's number. Human messages go to stderr,
``--json`` output to stdout. Tracebacks only with ``-v``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence, TextIO

from . import __version__
if TYPE_CHECKING:  # imported where used, so that `flashgen --version` loads nothing it does not need
    import argparse

    from .config import Config
    from .model import Diagnostic, Severity

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM, as shells report them

_EXAMPLES = """\
examples:
  flashgen check notes/                 report problems at path:line
  flashgen build notes/ -o decks/       write one .apkg per book into decks/
  flashgen stats notes/ --json          per-book and per-chapter figures
  flashgen preview notes/ -o cards.html look at rendered cards without Anki

exit codes: 0 ok, 1 problems found in the input, 2 usage or environment error,
  130 interrupted (Ctrl-C), 143 terminated (SIGTERM)
"""


def _count(diagnostics: Sequence[Diagnostic], severity: Severity) -> int:
    return sum(1 for d in diagnostics if d.severity is severity)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _printable(text: str) -> str:
    """Text safe to write to a terminal: control and other non-printable characters as Python escapes.

    File names and messages come from the input; a name holding ESC could move the
    cursor, retitle the window or hide the lines before it. Printable text, any script, is kept.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _print_diagnostics(diagnostics: Sequence[Diagnostic], args: argparse.Namespace, stream: TextIO) -> None:
    from .model import Severity

    for d in diagnostics:
        if args.quiet and d.severity is not Severity.ERROR:
            continue
        if d.severity is Severity.NOTICE and not args.verbose:
            continue
        print(_printable(f"{d.location}: {d.severity}: {d.message}"), file=stream)


def _exit_code(diagnostics: Sequence[Diagnostic], strict: bool) -> int:
    from .model import Severity

    if _count(diagnostics, Severity.ERROR) or (strict and _count(diagnostics, Severity.WARNING)):
        return EXIT_PROBLEMS
    return EXIT_OK


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise, so CI logs stay clean."""

    def __init__(self, enabled: bool, stream: TextIO = sys.stderr):
        self.enabled = enabled
        self.stream = stream
        self.last = 0.0
        self.shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r{stage:>7} [{'#' * filled}{' ' * (width - filled)}] {done}/{total}\x1b[K")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _config(args: argparse.Namespace) -> Config:
    from .config import find_config, load_config

    path = args.config if getattr(args, "config", None) else find_config(args.paths)
    return load_config(path)


def _settings(args: argparse.Namespace, config: Config):
    from .model import Settings

    min_rating = args.min_rating if args.min_rating is not None else config.min_rating
    unrated = args.unrated or config.unrated or "keep"
    return Settings(
        title_overrides=dict(config.titles),
        deck_template=config.deck_template or Settings().deck_template,
        min_rating=min_rating,
        keep_unrated=unrated == "keep",
    )


def _threshold(args: argparse.Namespace, config: Config) -> float:
    from .model import DEFAULT_THRESHOLD

    if args.threshold is not None:
        return args.threshold
    return config.dedupe_threshold if config.dedupe_threshold is not None else DEFAULT_THRESHOLD


def _lock_path(args: argparse.Namespace, config: Config) -> str:
    return args.lock or config.lock or "flashgen.lock"


def _plan(args: argparse.Namespace):
    """What `build` would make of the inputs, for the commands that only look (stats, preview)."""
    from .build import plan
    from .lockfile import read_lock

    config = _config(args)
    return plan(args.paths, _settings(args, config), _threshold(args, config), read_lock(_lock_path(args, config)))


def _emit_json(data: dict) -> None:
    import json

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None or (sys.stdout.encoding or "").lower().replace("-", "") == "utf8":
        sys.stdout.write(text)
        return
    # JSON is UTF-8 (RFC 8259) whatever the console's code page: a Windows pipe is cp1252 by
    # default, which cannot even encode most book titles
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


# --- commands --------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from .model import Severity

    from .collect import collect_existing
    from .parse import parse_file

    inputs = collect_existing(args.paths)
    parsed = [parse_file(path) for path in inputs.files]
    diagnostics = list(inputs.diagnostics) + [d for p in parsed for d in p.diagnostics]
    cards = sum(len(p.cards) for p in parsed)
    questions = sum(p.questions for p in parsed)
    if args.json:
        _emit_json(
            {
                "files": len(parsed),
                "questions": questions,
                "cards": cards,
                "errors": _count(diagnostics, Severity.ERROR),
                "warnings": _count(diagnostics, Severity.WARNING),
                "notices": _count(diagnostics, Severity.NOTICE),
                "diagnostics": [d.as_dict() for d in diagnostics],
            }
        )
    else:
        _print_diagnostics(diagnostics, args, sys.stderr)
        if not args.quiet:
            print(
                f"{_plural(len(parsed), 'file')}, {_plural(questions, 'question')}, {_plural(cards, 'card')}, "
                f"{_plural(_count(diagnostics, Severity.ERROR), 'error')}, "
                f"{_plural(_count(diagnostics, Severity.WARNING), 'warning')}",
                file=sys.stderr,
            )
    return _exit_code(diagnostics, args.strict)


def _build_options(args: argparse.Namespace, write: bool = True):
    from .build import BuildOptions

    config = _config(args)
    return BuildOptions(
        out_dir=args.out or config.out or "out",
        split=args.split or config.split or "book",
        lock_path=_lock_path(args, config),
        strict=args.strict,
        settings=_settings(args, config),
        threshold=_threshold(args, config),
        jobs=args.jobs or config.jobs,
        cache_dir=args.cache_dir or config.cache_dir,
        use_cache=not args.no_cache,
        write=write,
    )


def cmd_build(args: argparse.Namespace) -> int:
    from .model import Severity

    from .build import build

    options = _build_options(args)
    progress = _Progress(sys.stderr.isatty() and not args.quiet and not args.json)
    try:
        report = build(args.paths, options, progress)
    finally:
        progress.close()
    if args.json:
        _emit_json(
            {
                "files": report.files,
                "questions": report.questions,
                "notes": report.notes,
                "merged": report.merged,
                "decks": report.decks,
                "changed_notes": report.changed_notes,
                "changes": report.changes.counts(),
                "removed": [c.as_dict() for c in report.changes.removed],
                "written": list(report.written),
                "unchanged": list(report.unchanged),
                "refused": report.refused,
                "seconds": round(report.seconds, 3),
                "errors": report.count(Severity.ERROR),
                "warnings": report.count(Severity.WARNING),
                "diagnostics": [d.as_dict() for d in report.diagnostics],
            }
        )
    else:
        _print_diagnostics(report.diagnostics, args, sys.stderr)
        if report.refused:
            print(
                f"flashgen: --strict: {_plural(report.count(Severity.ERROR), 'error')}, "
                f"{_plural(report.count(Severity.WARNING), 'warning')}; nothing written",
                file=sys.stderr,
            )
        elif not args.quiet:
            packages = len(report.written) + len(report.unchanged)
            if not report.unchanged:
                made = "written"
            elif not report.written:
                made = "all unchanged"
            else:
                made = f"{len(report.written)} written, {len(report.unchanged)} unchanged"
            print(
                f"{_plural(report.files, 'file')}, {_plural(report.questions, 'question')}, "
                f"{_plural(report.notes, 'note')} ({report.merged} duplicates merged, {report.changed_notes} new or changed), "
                f"{_plural(report.decks, 'deck')} in {_plural(packages, 'package')} ({made}) in {options.out_dir.rstrip('/')}/ "
                f"in {report.seconds:.1f}s; {_plural(report.count(Severity.ERROR), 'error')}, "
                f"{_plural(report.count(Severity.WARNING), 'warning')}",
                file=sys.stderr,
            )
            _print_continuity(report.changes, sys.stderr)
    return _exit_code(report.diagnostics, args.strict)


def _print_continuity(changes, out) -> None:
    """After a build: questions reworded in place, and notes no source gives any more."""
    if changes.reworded:
        print(f"{_plural(len(changes.reworded), 'note')} reworded: same note, new question, reviews kept", file=out)
    if changes.removed:
        print(
            f"{_plural(len(changes.removed), 'note')} in the lock no source gives any more "
            "(still in Anki until removed there or by 'flashgen push'):",
            file=out,
        )
        for change in changes.removed:
            print(f"  {_printable(change.book)} › {_printable(change.question)}", file=out)


def cmd_push(args: argparse.Namespace) -> int:
    from .ankiconnect import AnkiConnect
    from .changes import KINDS
    from .push import REMOVED_TAG, PushOptions, push

    options = _build_options(args)
    client = AnkiConnect(args.anki_connect, args.api_key)
    say = (lambda line: None) if args.quiet else (lambda line: print(_printable(f"flashgen: {line}"), file=sys.stderr))
    report = push(
        args.paths,
        options,
        client,
        PushOptions(delete_removed=args.delete_removed, move=args.move, force=args.force, dry_run=args.dry_run),
        say,
    )
    counts = report.counts()
    if args.json:
        _emit_json(counts)
    else:
        _print_diagnostics(report.build.diagnostics, args, sys.stderr)
        if not args.quiet:
            done = "would change" if args.dry_run else "pushed"
            print(f"{done}: " + ", ".join(f"{counts[kind]} {kind}" for kind in KINDS), file=sys.stderr)
            if report.changes.removed and not args.dry_run:
                verb = "deleted" if report.deleted else f"tagged {REMOVED_TAG} and suspended"
                print(f"{_plural(len(report.changes.removed), 'removed note')} {verb} in Anki", file=sys.stderr)
    return _exit_code(report.build.diagnostics, args.strict)


def cmd_diff(args: argparse.Namespace) -> int:
    from .build import build
    from .changes import KINDS

    options = _build_options(args, write=False)
    report = build(args.paths, options)
    changes = report.changes
    if args.json:
        _emit_json(changes.as_dict())
        return 0
    _print_diagnostics(report.diagnostics, args, sys.stderr)
    out = sys.stdout
    for kind in KINDS:
        if kind == "unchanged":
            continue
        for change in getattr(changes, kind):
            where = changes.fresh_decks.get(change.guid)
            deck = f"{change.deck} -> {where}" if where else change.deck
            print(f"{kind:<9} {_printable(deck)} › {_printable(change.question)}", file=out)
    counts = changes.counts()
    print(", ".join(f"{counts[kind]} {kind}" for kind in KINDS), file=out)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from .stats import plan_stats

    the_plan = _plan(args)
    figures = plan_stats(the_plan)
    if args.json:
        _emit_json(figures)
    else:
        out = sys.stdout
        print(f"{'questions':>9} {'notes':>6} {'merged':>6} {'warn':>5}  book / chapter deck", file=out)
        for book in figures["books"]:
            print(
                f"{book['questions']:>9} {book['notes']:>6} {book['merged']:>6} {book['warnings']:>5}  {book['book']}",
                file=out,
            )
            for c in book["chapters"]:
                deck = c["deck"].split("::", 1)[-1]
                print(f"{c['questions']:>9} {c['notes']:>6} {c['merged']:>6} {c['warnings']:>5}    {deck}", file=out)
        print(
            f"{figures['questions']:>9} {figures['notes']:>6} {figures['merged']:>6} {figures['warnings']:>5}  "
            f"total: {_plural(figures['files'], 'file')}, {_plural(figures['errors'], 'error')}",
            file=out,
        )
        if figures["removed"]:
            print(f"{_plural(len(figures['removed']), 'note')} in the lock no source gives any more:", file=out)
            for removed in figures["removed"]:
                print(f"  {_printable(removed['book'])} › {_printable(removed['question'])}", file=out)
        if figures["pinned_elsewhere"]:
            print(
                f"{_plural(figures['pinned_elsewhere'], 'note')} kept in the deck the lock pins, not the one "
                "the book now places them in (Anki never moves an imported card)",
                file=out,
            )
    return _exit_code(the_plan.diagnostics, args.strict)


def cmd_preview(args: argparse.Namespace) -> int:
    from .model import FlashgenError

    from .files import write_atomically
    from .preview import preview_page

    the_plan = _plan(args)
    preview = preview_page(the_plan.books, limit=args.limit)
    page = preview.html
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise FlashgenError(f"{args.output}: folder does not exist or is not writable")
    try:
        write_atomically(args.output, lambda handle: handle.write(page.encode("utf-8")))
    except OSError as exc:
        raise FlashgenError(f"{args.output}: cannot write: {exc.strerror}") from None
    _print_diagnostics(the_plan.diagnostics, args, sys.stderr)
    if not args.quiet:
        print(f"preview of {sum(len(b.notes) for b in the_plan.books)} notes written to {args.output}", file=sys.stderr)
        if preview.math_errors:  # the page shows each in red; say so where the user is looking now
            print(f"{_plural(preview.math_errors, 'formula')} of {preview.formulas} cannot be typeset "
                  "(red boxes in the preview)", file=sys.stderr)  # fmt: skip
    return _exit_code(the_plan.diagnostics, args.strict)


# --- the parser ----------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="flashcard files or folders (*.md, *.txt, recursively)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    parser.add_argument("-v", "--verbose", action="store_true", help="print notices too, and tracebacks on failure")
    parser.add_argument("--strict", action="store_true", help="warnings count as problems (exit 1)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="config file (default: flashgen.toml or pyproject.toml near the inputs)")
    parser.add_argument("--lock", metavar="PATH", help="lock file (default: flashgen.lock in the current folder)")
    parser.add_argument("--min-rating", type=int, metavar="N", help="keep notes rated N or more")
    parser.add_argument(
        "--unrated", choices=("keep", "drop"), help="with --min-rating: keep (default) or drop notes with no rating"
    )
    parser.add_argument("--threshold", type=float, metavar="X", help="near-duplicate similarity, 0-1 (default 0.85)")


def _command(commands, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    import argparse

    return commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _building_command(commands, name: str, summary: str, example: str) -> argparse.ArgumentParser:
    """A command that builds: `build` itself, and `diff` and `push`, which build as `build` does
    but write no output folder (so they take, and hide, its options)."""
    import argparse

    parser = _command(commands, name, summary, example)
    _common(parser)
    _selection(parser)
    writes = name == "build"
    parser.add_argument("-o", "--out", metavar="DIR", help="output folder (default: out)" if writes else argparse.SUPPRESS)
    parser.add_argument(
        "--split",
        choices=("book", "chapter", "none"),
        help="one .apkg per book (default), chapter, or one for all" if writes else argparse.SUPPRESS,
    )
    parser.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: every core)")
    parser.add_argument("--cache-dir", metavar="DIR", help="render cache (default: the user cache folder, e.g. ~/.cache/flashgen)")
    parser.add_argument("--no-cache", action="store_true", help="render everything, read and write no cache")
    return parser


def make_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="flashgen",
        description="Turn flashcard markdown into Anki decks that update in place when you rebuild.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flashgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    build = _building_command(commands, "build", "write .apkg decks", "flashgen build notes/ -o decks/ --lock notes/flashgen.lock")
    build.set_defaults(run=cmd_build)

    diff = _building_command(
        commands,
        "diff",
        "what the next build or push changes, note by note (writes nothing)",
        "flashgen diff notes/ --lock notes/flashgen.lock --json",
    )
    diff.set_defaults(run=cmd_diff)

    push_ = _building_command(
        commands,
        "push",
        "bring a running Anki desktop up to date through AnkiConnect",
        "flashgen push notes/ --lock notes/flashgen.lock --dry-run",
    )
    push_.add_argument("--anki-connect", metavar="URL", default="http://127.0.0.1:8765", help="AnkiConnect's address (default: %(default)s)")
    push_.add_argument("--api-key", metavar="KEY", help="AnkiConnect's apiKey, if it has one")
    push_.add_argument("--delete-removed", action="store_true", help="delete notes no source gives any more (default: tag and suspend)")
    push_.add_argument("--move", action="store_true", help="move cards to the deck a fresh build would choose, and pin it")
    push_.add_argument("--force", action="store_true", help="overwrite notes edited in Anki since the last push")
    push_.add_argument("--dry-run", action="store_true", help="say what would change in the running Anki; change nothing")
    push_.set_defaults(run=cmd_push)

    check = _command(commands, "check", "parse and report every problem at path:line", "flashgen check notes/ --strict")
    _common(check)
    check.set_defaults(run=cmd_check)

    stats = _command(commands, "stats", "questions, notes, duplicates and warnings per book and chapter", "flashgen stats notes/ --json")
    _common(stats)
    _selection(stats)
    stats.set_defaults(run=cmd_stats)

    preview = _command(commands, "preview", "write one HTML page of rendered cards", "flashgen preview notes/ -o preview.html")
    _common(preview, json_flag=False)
    _selection(preview)
    preview.add_argument("-o", "--output", default="preview.html", metavar="FILE", help="the page (default: preview.html)")
    preview.add_argument("--limit", type=int, metavar="N", help="show at most N notes")
    preview.set_defaults(run=cmd_preview)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is: it unwinds as Ctrl-C does (temporary files deleted,
    a commit undone, workers stopped) instead of dying on the spot with its files half made."""


def _terminate(signum, frame) -> None:
    raise _Terminated()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what ``timeout``, ``kill`` and CI cancellation send) handled like SIGINT, while the block runs.

    Only in the main thread, the only one Python lets set a handler: ``main`` called from another
    thread leaves signals as they are. Put back afterwards, so ``main`` has no lasting effect.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code instead of exiting.

    Stopped by a signal, it exits as shells report a process killed by one, 128 + its number:
    130 for SIGINT (Ctrl-C), 143 for SIGTERM; one line says which, and nothing is left half-written.
    """
    if list(sys.argv[1:] if argv is None else argv) == ["--version"]:  # answered before anything heavy loads
        print(f"flashgen {__version__}")
        return EXIT_OK
    from .model import FlashgenError

    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and bad usage
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    try:
        with _sigterm_as_interrupt():
            return args.run(args)
    except FlashgenError as exc:
        print(_printable(f"flashgen: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except _Terminated:
        print("flashgen: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("flashgen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a bug in flashgen, not a problem with the input
        if args.verbose:
            raise
        print(_printable(f"flashgen: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"), file=sys.stderr)
        return EXIT_USAGE


def run() -> None:
    """The ``flashgen`` command (and ``python -m flashgen``): :func:`main`, then exit with its code.

    By the time ``main`` returns, every file it wrote is closed and in place. What is left is
    Python's own clean-up at exit, which frees the interpreter's objects one by one and ends
    with a garbage collection over them all: 40-60 ms of a one-book build's 0.9 s, and an eighth
    of a one-card rebuild's. Frozen, the objects are left for the system to reclaim with the
    process; the standard streams are flushed and ``atexit`` handlers run as ever. Only the
    command does this: ``main`` itself never touches the caller's collector.
    """
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
