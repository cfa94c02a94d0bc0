"""The worker pool, and the work that runs on it: parsing books, rendering cards, assembling packages.

Workers start with fork on Linux and spawn elsewhere; either way they take nothing from the
main process but their initializer's arguments and their tasks, so both give the same bytes.
A large library's build runs them as :class:`Lanes`, so that each book is assembled on the
worker that parsed it, from the texts that worker kept.
Signals that stop a build are the main process's to handle (see ``_start_worker``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import importlib
import os
import sys
from contextlib import contextmanager
from typing import Callable, Collection, Iterator, Mapping, Sequence

from .dedupe import Deduped, combine, dedupe
from .model import FlashgenError, ParsedFile
from .parse import parse_file, text_of

PARALLEL_FROM = 64  # below this many items a process pool costs more than it saves

Progress = Callable[[str, int, int], None]  # (stage, items done, items in all)


def job_count(requested: int | None) -> int:
    """Worker processes for a build asked for ``requested`` (None or 0: every core)."""
    return max(1, requested if requested else (os.cpu_count() or 1))


def _start_method() -> str:
    """How worker processes start: fork on Linux, spawn elsewhere (Windows has only spawn).

    Workers take nothing from this process but their initializer arguments and tasks, so both
    give the same bytes (tests/test_portable.py). fork is kept where it is safe because a pool
    is ready sooner: 0.03 s against 0.2-0.5 s for spawned workers to import flashgen again
    (2 cores, Python 3.11), which counts in a one-book rebuild of about a second; on a cold
    20,000-question build the two were within the noise (12-16 s each). macOS offers fork, but
    its system libraries are not fork-safe (Python's own default there is spawn).
    """
    import multiprocessing  # only when workers might start: 7-10 ms of a one-card rebuild's 0.4 s

    methods = multiprocessing.get_all_start_methods()
    return "fork" if "fork" in methods and sys.platform.startswith("linux") else "spawn"


@contextmanager
def worker_pool(
    processes: int,
    pinned_chapters: Mapping[str, str] | None = None,
    renders: bool = True,
    packages: bool = True,
    lanes: bool = False,
) -> Iterator[object | None]:
    """A pool of ``processes`` worker processes (none: None), started now, while this process is still small.

    ``pinned_chapters`` (the lock's) is handed to each worker once, for deduplicating books there.
    What the workers will run is loaded here first, where they fork, so that they inherit it:
    mistune and pygments if they ``render`` (each makes the lexers it needs: see :func:`ends_apart`);
    genanki if they make ``packages``. A pool that only parses (``plan``: stats, preview) needs
    none of them. ``lanes``: :class:`Lanes`, whose workers can each be given work of their own.
    """
    if processes < 1:
        yield None
        return
    import multiprocessing

    context = multiprocessing.get_context(_start_method())
    if context.get_start_method() == "fork":  # loaded once here, not in each worker (0.2-0.3 s of CPU each)
        if packages:
            importlib.import_module(".package", __package__)
        if renders:
            from .render import prepare

            prepare()
    pools: list = []
    claims = context.Array("q", 3)  # for shared_map: (its call, the front item, one past the back item)
    initargs = (dict(pinned_chapters or {}), claims)
    try:
        with _stop_signals_held(), _shared_with_forks():
            for size in [1] * processes if lanes else [processes]:
                pools.append(context.Pool(size, initializer=_start_worker, initargs=initargs))
        for pool in pools:
            pool.claims = claims
        yield Lanes(pools, claims) if lanes else pools[0]
    finally:
        for pool in pools:  # also on an interrupt: workers never outlive the build
            pool.terminate()
        for pool in pools:
            pool.join()


class Lanes:
    """Worker processes that can each be given work of their own: a pool of one worker each.

    A build parses each book on one of them, which keeps the book's note texts
    (:func:`_parse_book_kept`), and assembles the book's package there
    (:func:`assembled_in_order`): the texts cross between processes once, to the main process,
    which plans from them, and not again. Otherwise they serve as one pool: :meth:`imap` hands
    each item to the first worker free, :meth:`apply_async` goes round them (so :func:`shared_map`
    gives each one call), and they share one set of claims.
    """

    def __init__(self, pools: Sequence, claims):
        self.pools = list(pools)
        self.claims = claims
        self._processes = len(self.pools)
        self._turn = 0

    def apply_async(self, function, args=()):
        pool = self.pools[self._turn % self._processes]
        self._turn += 1
        return pool.apply_async(function, args)

    def imap(self, function, items, chunksize: int = 1) -> Iterator:
        """``function(item)`` for each item, in order, each run on the first worker free."""
        return (result for _, result in self.imap_with_lanes(function, items))

    def imap_with_lanes(self, function, items) -> Iterator[tuple[int, object]]:
        """(the worker it ran on, ``function(item)``) for each item, in order; each item goes to the first worker free."""
        items = list(items)
        following = iter(range(len(items)))

        def next_for(_lane: int) -> tuple[int, object] | None:
            index = next(following, None)
            return None if index is None else (index, items[index])

        return self._run(function, next_for, ahead=1)

    def each_on_its_lane(self, function, items: Sequence, lane_of: Callable, make: Callable, ahead: int = 2) -> Iterator:
        """``function(make(item, lane))`` for each item, in order, each run on a worker: on the lane ``lane_of(item)``
        names (``make`` is given that lane), then items no lane was named for; a worker left with neither takes the
        last item waiting for another lane (``make`` is given None: the item must then carry what that lane kept).
        Each worker is kept ``ahead`` items in hand, so that it never waits for the next."""
        waiting: list[collections.deque] = [collections.deque() for _ in self.pools]
        anyone: collections.deque = collections.deque()
        for index, item in enumerate(items):
            lane = lane_of(item)
            (anyone if lane is None else waiting[lane]).append(index)

        def next_for(lane: int) -> tuple[int, object] | None:
            if waiting[lane]:
                index, kept_here = waiting[lane].popleft(), lane
            elif anyone:
                index, kept_here = anyone.popleft(), None
            else:  # from the back of the longest queue, where its lane would come last
                others = [k for k in range(self._processes) if waiting[k]]
                if not others:
                    return None
                index, kept_here = waiting[max(others, key=lambda k: (len(waiting[k]), -k))].pop(), None
            return index, make(items[index], kept_here)

        return (result for _, result in self._run(function, next_for, ahead))

    def _run(self, function, next_for: Callable[[int], tuple[int, object] | None], ahead: int) -> Iterator[tuple[int, object]]:
        """(the worker it ran on, ``function(argument)``) for each (index, argument) that ``next_for(lane)`` gives a
        worker as it frees, in the indices' order (0, 1, ...); each worker is kept ``ahead`` arguments in hand."""
        import queue

        finished: queue.SimpleQueue = queue.SimpleQueue()  # put by the pools' result threads
        done: dict[int, tuple[int, object]] = {}
        running = following = 0

        def send(lane: int) -> None:
            nonlocal running
            chosen = next_for(lane)
            if chosen is None:
                return
            index, argument = chosen
            running += 1
            self.pools[lane].apply_async(
                function,
                (argument,),
                callback=lambda result: finished.put((index, lane, result, None)),
                error_callback=lambda error: finished.put((index, lane, None, error)),
            )

        for _ in range(ahead):
            for lane in range(self._processes):
                send(lane)
        while running:
            index, lane, result, error = finished.get()
            running -= 1
            if error is not None:
                raise error
            done[index] = (lane, result)
            send(lane)
            while following in done:
                yield done.pop(following)
                following += 1


@contextmanager
def _shared_with_forks() -> Iterator[None]:
    """This process's objects kept out of the workers' garbage collections while they fork.

    A collection in a forked worker writes to every object it visits, and so copies the page
    it is on: the parent's imports and plan would be paid for again in every worker's memory.
    """
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (POSIX) while workers start: they inherit the mask, so none is
    interrupted before its initializer has set what an interrupt does there. Delivered after."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no masks, and no signals that need one
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_worker(pinned_chapters: Mapping[str, str], claims) -> None:
    """A worker's initializer: its signals, then the lock's pins and the pool's claims (:func:`shared_map`).

    Signals that stop the command are the main process's to handle: it stops the pool, the
    way the pool expects. Ctrl-C, ``timeout`` and CI runners signal the whole process group;
    a worker with Python's handlers printed a KeyboardInterrupt or BrokenPipe traceback, and a
    worker killed while waiting for work dies holding the pool's queue lock, so that stopping
    the pool then waits for ever (``timeout 3 flashgen build`` hung so). So a worker leaves
    the group (POSIX), ignores SIGINT (a Windows console sends Ctrl-C to every process in it),
    and dies quietly of SIGTERM, which is how ``pool.terminate()`` stops it.
    """
    import signal

    if hasattr(os, "setpgid"):
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    _keep(pinned_chapters, claims)


_PINNED_CHAPTERS: Mapping[str, str] = {}  # in a worker: the lock's chapter pins
_CLAIMS = None  # in a worker: its pool's claims


def _keep(pinned_chapters: Mapping[str, str], claims) -> None:
    global _PINNED_CHAPTERS, _CLAIMS
    _PINNED_CHAPTERS, _CLAIMS = pinned_chapters, claims


def _parse_book(task: tuple[tuple[str, ...], float]) -> tuple[tuple[ParsedFile, ...], Deduped]:
    """On a worker: parse one book's files and deduplicate its cards.

    The files come back without their cards, which would be most of what crosses
    between the processes: the notes hold the text that is kept.
    """
    paths, threshold = task
    parsed = tuple(parse_file(p) for p in paths)
    deduped = dedupe((c for f in parsed for c in f.cards), threshold, _PINNED_CHAPTERS)
    return tuple(dataclasses.replace(f, cards=()) for f in parsed), deduped


# In a lane (Lanes): the texts of the notes it parsed, by the key they were parsed under, until their package is
# assembled here. A book whose package another lane took (Lanes.each_on_its_lane) keeps its texts here to the end.
_KEPT: dict[str, tuple[str, str, str, str]] = {}


def _parse_book_kept(task: tuple[tuple[str, ...], float]) -> tuple[tuple[ParsedFile, ...], Deduped]:
    """On a lane (:class:`Lanes`): :func:`_parse_book`, keeping the notes' texts here for their package."""
    parsed, deduped = _parse_book(task)
    _KEPT.update((n.key, (n.title, n.question, n.answer, n.context)) for n in deduped.notes)
    return parsed, deduped


def _with_kept_texts(task):
    """A package task whose notes' texts were kept here when their book was parsed, with those texts."""
    notes = tuple(n if n.texts is not None else dataclasses.replace(n, texts=_KEPT.pop(n.kept_as)) for n in task.notes)
    return dataclasses.replace(task, notes=notes)


@contextmanager
def helper_ahead(files: Sequence[str], jobs: int, first_build: Callable[[], bool]) -> Iterator[object | None]:
    """A worker to render a small library's cards beside this process, started before its ``files``
    are parsed, and making the lexers their code blocks name while this process parses and plans; or None.

    When ``jobs`` allows a second process, the files hold cards enough to render
    (:func:`worth_rendering_on_workers`, at about 1 KB a card), and ``first_build()`` says these
    books were never built before: a rebuild finds most cards in the render cache, and there
    the helper cost more than it saved (a one-book build into a new output folder, every card
    cached, 0.61 s against 0.52 s). Once the cards are rendered the caller stops it
    (:func:`stop`), before the packages are made.
    """
    if jobs <= 1 or not files or not first_build() or not worth_rendering_on_workers(_bytes_of(files) // 1024):
        yield None
        return
    with worker_pool(1, packages=False) as pool:
        pool.apply_async(_make_lexers_for, (tuple(files),))
        yield pool


AHEAD_LANGUAGES = 32  # a helper makes the lexers of at most this many languages, those most files name


def _make_lexers_for(paths: Sequence[str]) -> None:
    """On a helper: make the lexers of the languages the files' code blocks name.

    At most :data:`AHEAD_LANGUAGES` of them (a book names 5-10): a file that names every language
    pygments knows would otherwise have the helper import them all (over 500 lexers) before it
    renders a card. A language left out is made where a card first needs it, as without a helper.
    """
    from .render import code_languages, make_lexers

    named: collections.Counter[str] = collections.Counter()
    for path in paths:
        try:
            with open(path, "rb") as handle:
                text = text_of(handle.read())
        except OSError:
            continue  # its parse reports it
        named.update(code_languages([text] if text is not None else []))
    make_lexers(_heaviest_first(named)[:AHEAD_LANGUAGES])


def stop(pool) -> None:
    """Stop a pool's workers now, before its :func:`worker_pool` block ends (which then has nothing left to stop)."""
    pool.terminate()
    pool.join()


def workers_for(files: Sequence[str], jobs: int) -> int:
    """Worker processes to start for a build on ``jobs`` cores that reads ``files``.

    Many files: one per core, and this process orchestrates and writes. A few files with
    enough in them (:func:`worth_workers`): one fewer, since this process works beside them
    (:func:`shared_map`), and every worker costs 15-20 MB it writes to its own pages.
    """
    if jobs <= 1 or not worth_workers(files):
        return 0
    return jobs if len(files) >= PARALLEL_FROM else jobs - 1


def shared_map(
    function, items: Sequence, pool, here: Callable | None = None, order: Sequence[int] | None = None, meanwhile: Callable | None = None
) -> list:
    """``[function(x) for x in items]`` on the pool's workers and in this process at once
    (``here``: what this process runs instead of ``function``, which workers run; ``meanwhile``:
    what it runs first, once the workers have their items, which then take more of them).

    Every worker is sent all the items, pickled once; the workers then claim them one by one
    from the front, and this process from the back, each the next one when it is free, so
    neither waits for the other's share. ``order``: the items' indices from front to back
    (default: as given), so that each process meets the items it is readiest for
    (:func:`ends_apart`, :func:`lexers_made_first`).

    The claims are counters in shared memory, made with the pool (:func:`worker_pool`). What is
    shared this way is small (file paths, a small library's cards, a few package tasks), so that
    every worker unpickling all of it costs little. Items handed out one
    by one through the pool instead cost this process the GIL for its feeder and result
    threads (up to 5 ms for each hand-over, sys.getswitchinterval), and the feeder sent
    workers as many items as the pipe held (30-60 cards), which this process could then not
    take: it waited 0.04-0.09 s at the end of a book's 0.23-0.29 s of rendering.
    """
    import pickle

    here = here or function
    if pool is None or len(items) < 2:
        if meanwhile is not None:
            meanwhile()
        return [here(x) for x in items]
    order = list(order) if order is not None else list(range(len(items)))
    claims = pool.claims
    with claims.get_lock():
        claims[0] += 1
        call = claims[0]
        claims[1], claims[2] = 0, len(order)
    work = pickle.dumps((function, [items[i] for i in order]), protocol=pickle.HIGHEST_PROTOCOL)
    pending = [pool.apply_async(_take_from_front, (work, call)) for _ in range(pool._processes)]
    results: list = [None] * len(items)
    try:
        if meanwhile is not None:
            meanwhile()
        while (k := _claim(claims, call, from_front=False)) is not None:
            results[order[k]] = here(items[order[k]])
    finally:
        with claims.get_lock():  # on an error here, the workers stop at their next claim
            claims[1] = claims[2]
    for taken in pending:
        for k, result in taken.get():
            results[order[k]] = result
    return results


def _claim(claims, call: int, from_front: bool) -> int | None:
    """The next item of :func:`shared_map`'s ``call``, from its front or back, or None when none is left."""
    with claims.get_lock():
        if claims[0] != call or claims[1] >= claims[2]:
            return None
        if from_front:
            claims[1] += 1
            return claims[1] - 1
        claims[2] -= 1
        return claims[2]


def _take_from_front(work: bytes, call: int) -> list[tuple[int, object]]:
    """On a worker: claim :func:`shared_map`'s items from the front and run its function on each."""
    import pickle

    function, items = pickle.loads(work)
    done = []
    while (k := _claim(_CLAIMS, call, from_front=True)) is not None:
        done.append((k, function(items[k])))
    return done


def ends_apart(kinds: Sequence[Collection[str]], workers: int) -> list[int]:
    """An order of items for :func:`shared_map`, by what each needs made (``kinds``): the kinds
    divided between the front, which ``workers`` take from, and the back, this process's, in
    proportion (by how many items need each); each kind's items together; items that need
    nothing in the middle, where the two ends meet.

    Made before workers start, all the lexers a book's cards need took 0.07-0.14 s of one
    process while the other waited; made by whichever process meets a language first, with the
    languages kept apart this way, each makes about half of them, while the other works.
    """
    weight = collections.Counter(kind for needs in kinds for kind in needs)
    back_share = sum(weight.values()) / (workers + 1)
    back: set[str] = set()
    taken = 0
    for kind in _heaviest_first(weight):  # where they fit
        if taken + weight[kind] <= back_share:
            back.add(kind)
            taken += weight[kind]

    def place(i: int) -> tuple[int, str]:
        if not kinds[i]:
            return 1, ""
        heaviest = _heaviest_first(weight, kinds[i])[0]
        return (2 if heaviest in back else 0), heaviest

    return sorted(range(len(kinds)), key=place)


def lexers_made_first(kinds: Sequence[Collection[str]]) -> list[int]:
    """An order of cards for :func:`shared_map` when the workers have made every lexer already
    (:func:`helper_ahead`) and this process none: cards with code at the front, for the workers;
    cards without at the back, for this process. Between them, the code of the commonest
    language, which this process reaches first if it runs out: one lexer made buys the most cards.
    """
    count = collections.Counter(kind for needs in kinds for kind in needs)

    def place(i: int) -> tuple[int, int, str]:
        if not kinds[i]:
            return 1, 0, ""
        commonest = _heaviest_first(count, kinds[i])[0]
        return 0, count[commonest], commonest

    return sorted(range(len(kinds)), key=place)


def _heaviest_first(weight: Mapping[str, int], among: Collection[str] | None = None) -> list[str]:
    """Kinds (of ``among`` only, if given) by their weight, the heaviest first; equal weights by name."""
    return sorted(weight if among is None else among, key=lambda kind: (-weight[kind], kind))


def worth_workers(files: Sequence[str]) -> bool:
    """Whether reading these files is work enough to start workers for: many files, or 1 MiB of
    cards (about 0.2 s of parsing) where workers fork, 8 MiB where each must start Python anew.

    Rendering, five times dearer a card, starts them later if need be (:func:`worth_rendering_on_workers`):
    so a rebuild whose cards mostly come from the render cache starts none.
    """
    if len(files) >= PARALLEL_FROM:
        return True
    return _worth_starting(_bytes_of(files), if_forked=1024 * 1024, if_spawned=8 * 1024 * 1024)


def worth_rendering_on_workers(cards: int) -> bool:
    """Whether a small library's build starts workers for ``cards`` to render: about 0.1 s of
    rendering (128 cards, 0.85 ms each here) where workers fork in milliseconds; where they start
    by spawn, each imports flashgen again (0.2-0.5 s), so only a larger batch (1,024) pays for them."""
    return _worth_starting(cards, if_forked=128, if_spawned=1024)


def _worth_starting(amount: int, if_forked: int, if_spawned: int) -> bool:
    """Whether ``amount`` of work reaches the threshold for the way workers start here; how they
    start is asked (importing multiprocessing) only between the two thresholds."""
    return amount >= if_forked and (amount >= if_spawned or _start_method() == "fork")


def parse_by_book(files: Sequence[str], book_of_file: Mapping[str, str], threshold: float, pool, progress):
    """Parse and deduplicate each book on a worker: (parsed files in input order, cardless; combined notes;
    the lane that keeps each book's note texts, where the pool is :class:`Lanes`).

    ``book_of_file`` comes from :func:`book_of`, which agrees with the parser; should a
    book's cards still turn up in two groups, the files and notes come back None (the files came
    back without their cards), no lane is named, and the caller parses and deduplicates in one piece.
    """
    groups: dict[str, list[str]] = {}
    for path in files:
        groups.setdefault(book_of_file[path], []).append(path)
    tasks = [(tuple(paths), threshold) for _, paths in sorted(groups.items())]
    # Books are few, large and uneven: handed out largest first, so that no worker is left with
    # a big book at the end while the other waits (a 117-file book among 39-file ones, named
    # last, kept one worker idle for 0.6 s of a 4 s build). The results are put back in order.
    largest_first = _largest_first([_bytes_of(paths) for paths, _ in tasks])
    if progress:
        progress("parse", 0, len(tasks))
    results: list = [None] * len(tasks)
    lanes: list = [None] * len(tasks)
    in_order = [tasks[i] for i in largest_first]
    if isinstance(pool, Lanes):
        parsed = pool.imap_with_lanes(_parse_book_kept, in_order)
    else:
        parsed = ((None, result) for result in pool.imap(_parse_book, in_order, chunksize=1))
    for done, (i, (lane, result)) in enumerate(zip(largest_first, parsed), 1):
        results[i], lanes[i] = result, lane
        if progress:
            progress("parse", done, len(tasks))
    books_seen = [{n.book for n in deduped.notes} for _, deduped in results]
    if sum(map(len, books_seen)) != len(set().union(*books_seen)):
        return None, None, {}
    by_path = {f.meta.path: f for parsed, _ in results for f in parsed}
    kept = {book: lane for books, lane in zip(books_seen, lanes) if lane is not None for book in books}
    return [by_path[p] for p in files], combine(deduped for _, deduped in results), kept


def _largest_first(sizes: Sequence[int]) -> list[int]:
    """The indices of ``sizes``, largest first; equal sizes in their given order."""
    return sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))


def _bytes_of(paths: Sequence[str]) -> int:
    """The files' total size (one that cannot be read counts nothing: its parse reports it)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):
            total += os.path.getsize(path)
    return total


def assembled_in_order(items: Sequence, pool, here_too: bool, cache, make: Callable, lane_of: Callable) -> Iterator:
    """Each item's package task (``make(item, lane)``) assembled, in order, as an :class:`~flashgen.assemble.Assembled`:
    on the pool's workers (``here_too``: by this process as well), or here when there is no pool.

    Workers open the render cache for themselves: only note texts go to them, and only package
    bytes and hashes come back. On :class:`Lanes`, an item goes to the lane ``lane_of(item)``
    names, which kept its notes' texts when it parsed them, so that they do not cross again;
    ``make`` is given that lane, or None where the task must carry the texts.
    """
    from .assemble import assemble

    if isinstance(pool, Lanes) and not here_too:
        yield from pool.each_on_its_lane(_assemble_here, items, lane_of, make)
        return
    tasks = (make(item, None) for item in items)
    if pool is None:
        for task in tasks:
            yield assemble(task, cache)
    elif here_too:
        yield from shared_map(_assemble_here, list(tasks), pool, here=lambda task: assemble(task, cache))
    else:
        yield from pool.imap(_assemble_here, tasks, chunksize=1)  # packages: few, large, uneven


_CACHES: dict[str, object] = {}  # in a worker: the render cache it opened, by folder


def _assemble_here(task):
    """:func:`flashgen.assemble.assemble` with this process's own connection to the render cache."""
    from .assemble import assemble

    cache = None
    if task.cache_dir is not None:
        if task.cache_dir not in _CACHES:
            from .cache import RenderCache

            try:
                _CACHES[task.cache_dir] = RenderCache(task.cache_dir)
            except Exception:  # noqa: BLE001 - as in the main process: no cache, everything rendered
                _CACHES[task.cache_dir] = None
        cache = _CACHES[task.cache_dir]
    if any(n.texts is None for n in task.notes):  # kept here, as this worker parsed them (Lanes)
        task = _with_kept_texts(task)
    return assemble(task, cache)


class Packaging:
    """Packages being made on the worker pool, written to temporary files here, in order, as they finish.

    Only this process writes into the output folder, and every temporary file it
    wrote is in ``prepared`` before anything else can fail, so the build can
    always commit or delete them all.
    """

    def __init__(self, pool):
        self.pool = pool
        self.queue: collections.deque = collections.deque()
        self.prepared: list[tuple[str, str]] = []  # (temporary file, final path)

    def add(self, path: str, notes: list, media: list, notetype_mod: int) -> None:
        from .package import package_bytes

        if self.pool is None:
            self.queue.append((path, _Done(package_bytes, notes, media, notetype_mod)))
        else:
            self.queue.append((path, self.pool.apply_async(package_bytes, (notes, media, notetype_mod))))

    def add_made(self, path: str, data: bytes) -> None:
        """A package already made (by :func:`assembled_in_order`), to be written in its turn."""
        self.queue.append((path, _Done(lambda: data)))

    def write_finished(self, wait: bool = False) -> None:
        """Write each package made so far to its temporary file (``wait``: every package)."""
        from .package import prepare_package

        while self.queue and (wait or self.queue[0][1].ready()):
            path, pending = self.queue.popleft()
            try:
                self.prepared.append((prepare_package(path, pending.get()), path))
            except OSError as exc:
                raise FlashgenError(f"{path}: cannot write: {exc.strerror or exc}") from None


class _Done:
    """Work done here, when there is no pool, with the face of a pool's pending result (errors raised by ``get``)."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def ready(self) -> bool:
        return True

    def get(self):
        return self.function(*self.args)
