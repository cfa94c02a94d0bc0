"""Builds on worker processes: the same bytes as a build in one process, and the same all-or-nothing writes."""

from __future__ import annotations

import contextlib
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


def test_one_book_on_a_worker_beside_this_process_writes_the_same_bytes(tmp_path, monkeypatch, start_methods):
    """A book too small for workers to parse (under 1 MiB) still renders on one beside this process,
    card by card: the same packages and lock. Its first build into a folder starts that worker
    (the helper) before the files are parsed, where workers fork, unless the lock holds notes of
    the book; a rebuild that must render every card again starts one once the cards to render are
    known. Either is gone before the package is made here, so the two are never in memory at once."""
    import multiprocessing

    import importlib

    import flashgen.parse
    import flashgen.workers

    build_module = importlib.import_module("flashgen.build")  # flashgen.build is the function
    book = tmp_path / "book"
    shutil.copytree(CORPUS / "ai-engineering", book)
    serial = build([str(book)], _options(tmp_path, "serial", jobs=1))
    events = []
    real_helper, real_parse, real_package = flashgen.workers.helper_ahead, flashgen.parse.parse_file, flashgen.package.package_bytes

    @contextlib.contextmanager
    def helper(*args):
        with real_helper(*args) as pool:
            events.append("helper" if pool is not None else "no helper")
            yield pool

    monkeypatch.setattr(flashgen.workers, "helper_ahead", helper)
    monkeypatch.setattr(flashgen.parse, "parse_file", lambda path: events.append("parse") or real_parse(path))
    monkeypatch.setattr(flashgen.package, "package_bytes", lambda *a: events.append(len(multiprocessing.active_children())) or real_package(*a))
    # genanki is imported here while the helper renders, not after: then the helper renders more cards
    real_load = build_module._load_packaging
    monkeypatch.setattr(build_module, "_load_packaging", lambda: events.append(f"genanki beside {len(multiprocessing.active_children())}") or real_load())
    parallel = build([str(book)], _options(tmp_path, "parallel", jobs=2))
    if start_methods == "default":
        assert events == ["helper"] + ["parse"] * 22 + ["genanki beside 1", 0]
    else:  # spawned, a helper would start too late for one book
        assert events == ["no helper"] + ["parse"] * 22 + [0]
    assert (parallel.notes, parallel.diagnostics) == (serial.notes, serial.diagnostics) and serial.notes > 128  # a worker's worth
    packages = {n: d for n, d in _outputs(tmp_path / "serial").items() if n.endswith(".apkg")}
    assert packages and packages == {n: d for n, d in _outputs(tmp_path / "parallel").items() if n.endswith(".apkg")}
    assert (tmp_path / "serial.lock").read_bytes() == (tmp_path / "parallel.lock").read_bytes()

    # into a new output folder, with the lock kept: built before, so no helper (its cards are in the render cache)
    events.clear()
    elsewhere = dataclasses.replace(_options(tmp_path, "parallel", jobs=2), out_dir=str(tmp_path / "elsewhere"))
    assert build([str(book)], elsewhere).written and events == ["no helper"] + ["parse"] * 22 + [0]

    # a rebuild of every card (one file changed, no render cache): no helper, workers started to render
    events.clear()
    edited = book / "hq-part-04.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    again = build([str(book)], dataclasses.replace(_options(tmp_path, "parallel", jobs=2), use_cache=False))
    rendered_beside = ["genanki beside 1"] if start_methods == "default" else []  # spawned: too few cards for workers
    assert events == ["no helper"] + ["parse"] * 22 + rendered_beside + [0] and again.written
    assert (tmp_path / "serial.lock").read_bytes() == (tmp_path / "parallel.lock").read_bytes()


def test_a_library_assembled_in_pieces_beside_a_helper_writes_the_same_bytes(tmp_path, monkeypatch, start_methods):
    """Where workers spawn, a library of 1 to 8 MiB in under 64 files is parsed here and gets a helper, not a
    worker per core; past ALL_AT_ONCE notes it assembles packages in pieces with this process. (Forked, the
    corpus, over 1 MiB, gets one worker beside this process instead.) The same packages and lock as one process."""
    import importlib

    import flashgen.workers

    serial = build([str(CORPUS)], _options(tmp_path, "serial", jobs=1))
    helpers, shared_with = [], []
    real_helper, real_shared_map = flashgen.workers.helper_ahead, flashgen.workers.shared_map

    @contextlib.contextmanager
    def helper(*args):
        with real_helper(*args) as pool:
            helpers.append(pool)
            yield pool

    monkeypatch.setattr(flashgen.workers, "helper_ahead", helper)
    monkeypatch.setattr(flashgen.workers, "shared_map", lambda f, items, pool, **kw: shared_with.append(pool) or real_shared_map(f, items, pool, **kw))
    monkeypatch.setattr(importlib.import_module("flashgen.build"), "ALL_AT_ONCE", 100)  # the corpus's 1,009 notes: in pieces
    parallel = build([str(CORPUS)], _options(tmp_path, "parallel", jobs=2))
    (helped,) = helpers
    assert (helped is not None) == (start_methods == "spawn-only")
    assert shared_with[-1] is not None and (helped is None or shared_with[-1] is helped)  # the pieces: here and on a worker
    assert (parallel.notes, parallel.diagnostics) == (serial.notes, serial.diagnostics)
    packages = {n: d for n, d in _outputs(tmp_path / "serial").items() if n.endswith(".apkg")}
    assert packages and packages == {n: d for n, d in _outputs(tmp_path / "parallel").items() if n.endswith(".apkg")}
    assert (tmp_path / "serial.lock").read_bytes() == (tmp_path / "parallel.lock").read_bytes()


def test_a_helper_makes_the_lexers_of_the_languages_the_files_name(monkeypatch, tmp_path):
    """While this process parses, the helper makes the lexers the cards will need: those their code blocks name,
    up to AHEAD_LANGUAGES of them, the most named first (a file naming every language would have it import them all)."""
    import flashgen.render
    from flashgen.workers import AHEAD_LANGUAGES, _make_lexers_for

    made = []
    monkeypatch.setattr(flashgen.render, "_lexer", made.append)
    paths = sorted(str(p) for p in (CORPUS / "ai-engineering").glob("*.md"))
    _make_lexers_for(paths + [str(CORPUS / "no-such-file.md")])  # a file that cannot be read is its parse's to report
    named = flashgen.render.code_languages(Path(p).read_text(encoding="utf-8") for p in paths)
    assert made == sorted(named) and {"python", "java", "sql"} <= set(made) and len(made) < AHEAD_LANGUAGES

    made.clear()
    every = [f"lang{i:02}" for i in range(AHEAD_LANGUAGES + 8)]
    (tmp_path / "a.md").write_text("".join(f"```{name}\nx\n```\n" for name in every), encoding="utf-8")
    (tmp_path / "b.md").write_text("```lang39\nx\n```\n", encoding="utf-8")  # named by two files: among the most named
    _make_lexers_for([str(tmp_path / "a.md"), str(tmp_path / "b.md")])
    assert made == sorted(["lang39", *every[: AHEAD_LANGUAGES - 1]])

    # the files are read as the parser reads them: UTF-16 with its byte-order mark too
    made.clear()
    (tmp_path / "c.md").write_text("```rust\nx\n```\n", encoding="utf-16")
    _make_lexers_for([str(tmp_path / "c.md")])
    assert made == ["rust"]


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
    parsed, deduped, kept = parse_by_book(files, books, 0.85, pool, None)
    assert pool.handed_out == ["Large", books[files[0]]]
    assert [f.meta.path for f in parsed] == files
    assert {n.book for n in deduped.notes} == set(books.values())
    assert kept == {}  # a plain pool: no worker keeps anything for later


def _slow_pid(_item) -> int:
    import time

    time.sleep(0.002)  # so neither end takes everything before the other starts
    return os.getpid()


def _fails_on_seven(item: int) -> int:
    if item == 7:
        raise ValueError("seven")
    return item


def _made_where(task) -> tuple[int, object]:
    import time

    time.sleep(0.01)  # so that the idle worker takes from the other's before it is done
    return os.getpid(), task[1]


def test_lanes_run_each_item_on_its_own_worker_and_an_idle_one_takes_the_last_waiting():
    """A book is assembled where it was parsed (its texts are there); a worker with nothing of its own
    left takes another's last item, made to carry what that one kept (``make`` given None)."""
    from flashgen.workers import worker_pool

    with worker_pool(2, renders=False, packages=False, lanes=True) as lanes:
        ran_on = {}
        for i, (lane, pid) in enumerate(lanes.imap_with_lanes(_slow_pid, list(range(40)))):
            assert ran_on.setdefault(lane, pid) == pid
        assert len(ran_on) == 2  # each item on the first worker free, and which one it was reported

        items = [(i, 0) for i in range(30)] + [(30, None)]  # all but the last kept on lane 0
        done = list(lanes.each_on_its_lane(_made_where, items, lambda item: item[1], lambda item, lane: (item[0], lane)))
    assert len(done) == len(items)
    on_its_own = [made for pid, made in done if pid == ran_on[0]]
    taken = [made for pid, made in done if pid == ran_on[1]]
    assert set(on_its_own) <= {0} and taken and set(taken) == {None}
    assert [made for _, made in done][:10] == [0] * 10  # lane 0 works from the front, the idle one took from the back


def test_a_book_is_assembled_where_it_was_parsed_without_its_texts_crossing_again(library, tmp_path, monkeypatch, start_methods):
    """Parsed on a worker, a book's note texts cross once, to this process, which plans from them; its package
    is assembled on that worker from the texts it kept, also for a note that took over a reworded one's identity."""
    if start_methods == "spawn-only":
        pytest.skip("the count is planted by monkeypatching, which only forked workers inherit")
    import flashgen.workers as worker_module

    counts = tmp_path / "counts"
    real = worker_module._with_kept_texts

    def counted(task):
        with open(counts, "a") as handle:
            handle.write(f"{sum(n.texts is None for n in task.notes)}\n")
        return real(task)

    monkeypatch.setattr(worker_module, "_with_kept_texts", counted)  # the fork inherits it
    serial = build([str(library)], _options(tmp_path, "serial", jobs=1))
    build([str(library)], _options(tmp_path, "parallel", jobs=2))
    kept = sum(int(line) for line in counts.read_text().split())
    assert kept >= serial.notes / 2  # the rest: books cut in pieces, and those a worker left idle took over

    edited = tmp_path / "edited"  # one question reworded wherever it is written: the note keeps its identity
    shutil.copytree(library, edited)
    folders = sorted({p.parent for p in edited.rglob("*.md")})
    book = min(folders, key=lambda f: sum(p.read_text(encoding="utf-8").count("\n:p ") for p in f.glob("*.md")))  # not cut in pieces
    question = next(line for p in sorted(book.glob("*.md")) for line in p.read_text(encoding="utf-8").splitlines() if line.startswith(":p "))
    for path in book.glob("*.md"):
        path.write_text(path.read_text(encoding="utf-8").replace(question + "\n", question + " Exactly.\n"), encoding="utf-8")
    counts.unlink()
    reports = {name: build([str(edited)], _options(tmp_path, name, jobs)) for name, jobs in (("serial", 1), ("parallel", 2))}
    assert len(reports["parallel"].changes.reworded) == 1 and reports["parallel"].changes == reports["serial"].changes
    assert sum(int(line) for line in counts.read_text().split()) >= serial.notes / 2
    packages = {n: d for n, d in _outputs(tmp_path / "serial").items() if n.endswith(".apkg")}
    assert packages == {n: d for n, d in _outputs(tmp_path / "parallel").items() if n.endswith(".apkg")}
    assert (tmp_path / "serial.lock").read_text() == (tmp_path / "parallel.lock").read_text()


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


def test_cards_with_code_go_to_workers_that_made_the_lexers_and_the_rest_to_this_process():
    """With every lexer made on the workers (the helper), this process takes the cards without code, from the back;
    the code of the commonest language is nearest them, so that if this process runs out it makes one lexer that buys the most."""
    from flashgen.workers import lexers_made_first

    kinds = [{"python"}, set(), {"sql"}, {"python", "sql"}, {"java"}, {"python"}, set(), {"sql"}, {"python"}, {"r"}]
    assert lexers_made_first(kinds) == [4, 9, 2, 7, 0, 3, 5, 8, 1, 6]
    assert lexers_made_first([set()] * 3) == [0, 1, 2] and lexers_made_first([]) == []


def test_a_shared_map_is_whole_when_the_workers_come_late_and_after_one_that_failed():
    """Items are claimed, one at a time, from shared counters: a worker busy elsewhere leaves them all to this
    process, and a worker still at an earlier call's items (one that failed here) can claim none of the next call's."""
    import time

    from flashgen.workers import shared_map, worker_pool

    with worker_pool(1) as pool:
        busy = pool.apply_async(time.sleep, (1.0,))
        assert shared_map(_slow_pid, list(range(50)), pool) == [os.getpid()] * 50
        busy.get()
        with pytest.raises(ValueError, match="seven"):  # here, at once, while the worker is at its first item
            shared_map(_slow_pid, list(range(200)), pool, here=lambda item: _fails_on_seven(7))
        pids = shared_map(_slow_pid, list(range(200)), pool)
        assert None not in pids and set(pids) == {os.getpid(), *(p.pid for p in pool._pool)}


def test_a_shared_map_runs_what_this_process_does_meanwhile_once_the_workers_have_the_items():
    """A helper renders while this process imports the package stage (build._load_packaging): the
    workers can claim items from the start, and this process takes its own only after."""
    import time

    from flashgen.workers import shared_map, worker_pool

    events = []
    with worker_pool(1) as pool:

        def meanwhile() -> None:
            deadline = time.monotonic() + 60
            while pool.claims[1] == 0 and time.monotonic() < deadline:  # until a worker has claimed an item
                time.sleep(0.01)
            events.append(("meanwhile", pool.claims[1]))

        def here(item):
            events.append(("here", item))
            return _slow_pid(item)

        pids = shared_map(_slow_pid, list(range(200)), pool, here=here, meanwhile=meanwhile)
        assert None not in pids and len(pids) == 200
        assert events[0][0] == "meanwhile" and events[0][1] > 0 and all(kind == "here" for kind, _ in events[1:])
        assert pids.count(os.getpid()) == len(events) - 1
    ran = []
    assert shared_map(abs, [-1, -2], None, meanwhile=lambda: ran.append(True)) == [1, 2] and ran == [True]


def test_a_shared_map_by_kind_keeps_input_order():
    from flashgen.workers import ends_apart, shared_map, worker_pool

    items = list(range(-100, 100))
    with worker_pool(1) as pool:
        assert shared_map(abs, items, pool, order=ends_apart([{"odd"} if i % 2 else set() for i in items], 1)) == [abs(i) for i in items]


def test_packages_are_cut_in_pieces_only_where_one_would_leave_a_worker_alone_at_the_end():
    """A piece's fields cross back to the main process, which packages them: a shelf of equal books
    goes to the workers whole; a book of most of the library is cut, so that both workers share it."""
    from flashgen.build import _largest_piece, _pieces

    shelf = [553] * 9  # 8,642 questions as the bench generates them: 4,974 notes in 9 books
    assert all(len(_pieces(list(range(n)), _largest_piece(sum(shelf), 2))) == 1 for n in shelf)
    skewed = [3_318, 552, 552, 552]  # the same notes, two thirds of them in one book
    pieces = _pieces(list(range(skewed[0])), _largest_piece(sum(skewed), 2))
    assert len(pieces) >= 4 and max(map(len, pieces)) <= sum(skewed) / 2 / 4
    assert _largest_piece(sum(shelf), 1) == sum(shelf)  # one process: nothing to share


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


def test_what_crosses_between_processes_pickles_as_constructor_calls_and_comes_back_equal():
    """Records cross by the hundred thousand in a large build: each is pickled as a call of its
    constructor (model.pickled_by_constructor), not field by field in Python (three times slower)."""
    import pickle

    from flashgen.assemble import assemble
    from flashgen.build import _package_task, plan
    from flashgen.lockfile import Lock
    from flashgen.workers import _parse_book

    book = CORPUS / "ai-engineering"
    parsed, deduped = _parse_book((tuple(sorted(str(p) for p in book.glob("*.md"))), 0.9))
    the_plan = plan([str(book)], jobs=1)
    members = [(n, b, c) for b in the_plan.books for c in b.chapters for n in c.notes][:40]
    ids = {n.key: i + 1 for i, (n, _, _) in enumerate(members)}
    task = _package_task(members, the_plan.roots, Lock(), ids, BuildOptions(build_time=T0), T0, T0, None, False)
    crossing = {"parsed files": parsed, "notes": deduped, "package task": task, "fields": assemble(task)}

    records: set[type] = set()

    def seen(value) -> None:
        if dataclasses.is_dataclass(value):
            records.add(type(value))
            for f in dataclasses.fields(value):
                seen(getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                seen(item)

    for name, value in crossing.items():
        assert pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)) == value, name
        seen(value)
    assert {"Note", "Occurrence", "NoteInput", "Finished", "PackageNote", "Location"} <= {r.__name__ for r in records}
    assert sorted(r.__name__ for r in records if "__reduce__" not in vars(r)) == []
