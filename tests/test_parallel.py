"""Builds on worker processes: the same bytes as a build in one process, and the same all-or-nothing writes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

import pytest

import flashgen.package
from flashgen.build import BuildOptions, build
from flashgen.model import FlashgenError
from tests.conftest import CORPUS

T0 = 1_700_000_000


pytestmark = pytest.mark.usefixtures("start_methods")  # each test with fork workers, then with spawn workers only


def _outputs(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _options(tmp_path: Path, name: str, jobs: int) -> BuildOptions:
    return BuildOptions(
        out_dir=str(tmp_path / name),
        lock_path=str(tmp_path / f"{name}.lock"),
        build_time=T0,
        jobs=jobs,
        cache_dir=str(tmp_path / f"{name}-cache"),
    )


def test_workers_write_the_same_bytes_as_one_process(library, tmp_path):
    serial = build([str(library)], _options(tmp_path, "serial", jobs=1))
    parallel = build([str(library)], _options(tmp_path, "parallel", jobs=2))
    assert len(serial.written) == 3 * len({p.parent for p in CORPUS.glob("*/*.md")})
    assert (parallel.notes, parallel.merged, parallel.diagnostics) == (serial.notes, serial.merged, serial.diagnostics)
    packages = {n: d for n, d in _outputs(tmp_path / "serial").items() if n.endswith(".apkg")}
    assert packages == {n: d for n, d in _outputs(tmp_path / "parallel").items() if n.endswith(".apkg")}
    assert (tmp_path / "serial.lock").read_text() == (tmp_path / "parallel.lock").read_text()

    # every part renamed its starting chapter: the locks' chapter pins, which must reach the workers, keep the decks
    edited = tmp_path / "edited"
    shutil.copytree(library, edited)
    for path in edited.rglob("*.md"):
        path.write_text(path.read_text(encoding="utf-8").replace("**Starting Chapter:** ", "**Starting Chapter:** Renamed "))
    again = {}
    for name, jobs in (("serial", 1), ("parallel", 2)):
        options = dataclasses.replace(_options(tmp_path, name, jobs), out_dir=str(tmp_path / f"{name}-again"))
        build([str(edited)], options)
        again[name] = {n: d for n, d in _outputs(tmp_path / f"{name}-again").items() if n.endswith(".apkg")}
    assert again["serial"] == again["parallel"]
    assert (tmp_path / "serial.lock").read_text() == (tmp_path / "parallel.lock").read_text()
    assert "Renamed" not in (tmp_path / "parallel.lock").read_text()


def test_one_book_on_a_worker_beside_this_process_writes_the_same_bytes(tmp_path, monkeypatch):
    """A book too small for workers to parse (under 1 MiB) still renders on one beside this process,
    card by card, started once the cards to render are known: the same packages and lock. The
    worker is gone before the package is made here, so the two are never in memory at once."""
    import multiprocessing

    book = tmp_path / "book"
    shutil.copytree(CORPUS / "ai-engineering", book)
    serial = build([str(book)], _options(tmp_path, "serial", jobs=1))
    workers_while_packaging = []
    real = flashgen.package.package_bytes
    monkeypatch.setattr(flashgen.package, "package_bytes", lambda *a: workers_while_packaging.append(len(multiprocessing.active_children())) or real(*a))
    parallel = build([str(book)], _options(tmp_path, "parallel", jobs=2))
    assert workers_while_packaging == [0]
    assert (parallel.notes, parallel.diagnostics) == (serial.notes, serial.diagnostics) and serial.notes > 128  # a worker's worth
    packages = {n: d for n, d in _outputs(tmp_path / "serial").items() if n.endswith(".apkg")}
    assert packages and packages == {n: d for n, d in _outputs(tmp_path / "parallel").items() if n.endswith(".apkg")}
    assert (tmp_path / "serial.lock").read_bytes() == (tmp_path / "parallel.lock").read_bytes()


def test_a_package_failing_on_a_worker_leaves_every_earlier_output(library, tmp_path, monkeypatch, start_methods):
    if start_methods == "spawn-only":
        pytest.skip("the fault is planted by monkeypatching, which only forked workers inherit")
    options = _options(tmp_path, "out", jobs=2)
    build([str(library)], options)
    before = _outputs(tmp_path / "out")
    lock_before = (tmp_path / "out.lock").read_bytes()

    edited = tmp_path / "edited"
    shutil.copytree(library, edited)
    victim = next(iter(sorted(edited.rglob("*.md"))))
    victim.write_text(victim.read_text(encoding="utf-8").replace("x??", "One more line.\nx??", 1), encoding="utf-8")
    real = flashgen.package._collection_bytes
    calls = []

    def fails_on_the_third_package(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(flashgen.package, "_collection_bytes", fails_on_the_third_package)  # the fork inherits it
    with pytest.raises(FlashgenError, match="No space left on device"):
        build([str(edited)], options)
    assert _outputs(tmp_path / "out") == before  # no package, state or temporary file of the failed build
    assert (tmp_path / "out.lock").read_bytes() == lock_before
    assert not [n for n in os.listdir(tmp_path / "out") if n.endswith(".tmp")]


def test_a_book_split_across_workers_still_dedupes_as_one(library):
    """Should grouping by book ever disagree with the parser, the build dedupes all cards in one piece."""
    from flashgen.build import _plan_files
    from flashgen.collect import collect_existing
    from flashgen.lockfile import Lock
    from flashgen.organise import Settings
    from flashgen.workers import worker_pool

    inputs = collect_existing([str(library)])
    files, roots = list(inputs.files), list(inputs.roots)
    serial = _plan_files(files, roots, Settings(), 0.85, Lock())
    wrong_groups = {path: f"group {i % 2}" for i, path in enumerate(files)}  # every book split in two
    with worker_pool(2) as pool:
        split = _plan_files(files, roots, Settings(), 0.85, Lock(), pool, book_of_file=wrong_groups)
    assert split.deduped == serial.deduped
    assert split.diagnostics == serial.diagnostics



def test_books_are_parsed_largest_first_and_come_back_in_order(library, tmp_path):
    """A large book named last would keep one worker busy while the other waits: books go out largest first."""
    import re

    from flashgen.parse import book_of
    from flashgen.workers import _largest_first, parse_by_book

    assert _largest_first([3, 9, 1, 9, 4]) == [1, 3, 4, 0, 2]
    small, large = tmp_path / "a-small", tmp_path / "z-large"  # the large book sorts last
    shutil.copytree(min(p.parent for p in library.rglob("*.md")), small)
    large.mkdir()
    for i, path in enumerate(sorted(library.rglob("*.md"))):  # every card of the library, as parts of one book
        header = f"# Flashcards: Large (Part {i + 1})"
        text, headers = re.subn(r"^# (High-Quality )?Flashcards: .*", header, path.read_text(encoding="utf-8"), count=1, flags=re.M)
        (large / f"part-{i + 1:03d}.md").write_text(text if headers else f"{header}\n\n{text}", encoding="utf-8")
    files = sorted(str(p) for p in tmp_path.rglob("*.md"))
    books = {f: book_of(Path(f).read_bytes(), f) for f in files}
    assert len(set(books.values())) == 2

    class InOrderPool:  # runs the tasks here, in the order they are handed out, and notes that order
        def __init__(self):
            self.handed_out: list[str] = []

        def imap(self, function, tasks, chunksize=1):
            for task in tasks:
                self.handed_out.append(books[task[0][0]])
                yield function(task)

    pool = InOrderPool()
    parsed, deduped = parse_by_book(files, books, 0.85, pool, None)
    assert pool.handed_out == ["Large", books[files[0]]]
    assert [f.meta.path for f in parsed] == files
    assert {n.book for n in deduped.notes} == set(books.values())


def _slow_pid(_item) -> int:
    import time

    time.sleep(0.002)  # so neither end takes everything before the other starts
    return os.getpid()


def _fails_on_seven(item: int) -> int:
    if item == 7:
        raise ValueError("seven")
    return item


def test_a_shared_map_keeps_order_and_works_in_this_process_too():
    """A small library's cards are rendered by this process beside the workers: in input order, by both,
    and an error in either is the caller's."""
    from flashgen.workers import shared_map, worker_pool

    with worker_pool(1) as pool:
        assert shared_map(abs, list(range(-200, 200)), pool) == [abs(i) for i in range(-200, 200)]
        pids = shared_map(_slow_pid, list(range(200)), pool)
        with pytest.raises(ValueError, match="seven"):
            shared_map(_fails_on_seven, list(range(20)), pool)
    assert os.getpid() in pids and len(set(pids)) == 2


def test_items_are_handed_out_by_kind_with_the_kinds_apart_at_the_two_ends():
    """Cards that need the same lexer go together; the languages are divided between the workers' end (the
    front) and this process's (the back) in proportion to the processes at each, the most needed first
    where it fits; a card is placed by its most needed language, and cards with no code are where the two meet."""
    from flashgen.workers import ends_apart

    kinds = [{"python"}, set(), {"sql"}, {"python", "sql"}, {"java"}, {"python"}, set(), {"sql"}, {"python"}, {"r"}]
    # python is needed 4 times of 9, which fits in half: this process's, at the back
    assert ends_apart(kinds, workers=1) == [4, 9, 2, 7, 1, 6, 0, 3, 5, 8]
    # with three workers only a quarter is this process's: java and r
    assert ends_apart(kinds, workers=3) == [0, 3, 5, 8, 2, 7, 1, 6, 4, 9]
    assert ends_apart([set()] * 3, workers=1) == [0, 1, 2]
    assert ends_apart([], workers=1) == []


def test_a_shared_map_by_kind_keeps_input_order():
    from flashgen.workers import shared_map, worker_pool

    items = list(range(-100, 100))
    with worker_pool(1) as pool:
        assert shared_map(abs, items, pool, kinds=[{"odd"} if i % 2 else set() for i in items]) == [abs(i) for i in items]


def test_a_package_assembled_in_pieces_is_the_package_assembled_whole():
    """A large package goes to the workers in pieces, packaged where they meet: the same bytes, notes and problems."""
    from flashgen.assemble import assemble, joined, packaged
    from flashgen.build import MIN_PIECE, _package_task, _pieces, plan
    from flashgen.lockfile import Lock

    the_plan = plan([str(CORPUS / "ai-engineering")], jobs=1)
    (book,) = the_plan.books
    members = [(n, book, c) for c in book.chapters for n in c.notes]
    ids = {n.key: i + 1 for i, (n, _, _) in enumerate(members)}

    def task(notes, make_package: bool):
        return _package_task(notes, the_plan.roots, Lock(), ids, BuildOptions(build_time=T0), T0, T0, None, make_package)

    pieces = _pieces(members, MIN_PIECE)
    assert len(pieces) >= 3 and max(map(len, pieces)) - min(map(len, pieces)) <= 1 and sum(pieces, []) == members
    whole = assemble(task(members, True))
    in_pieces = packaged(joined([assemble(task(piece, False)) for piece in pieces]), T0)
    assert in_pieces == whole and whole.data
