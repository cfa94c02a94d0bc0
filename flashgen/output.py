"""A build's output folder and the lock file: taken one build at a time, settled, committed as one change.

Builds into one folder queue on its build lock; builds into other folders may share the
lock file, so it is read again and merged under a lock of its own. The packages, state file
and lock then go in together through commit.py's journal, or none of them do.
"""

from __future__ import annotations

import contextlib
import errno
import os
from contextlib import contextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterator

from .lockfile import Lock, read_lock, write_lock
from .model import FlashgenError
from .state import JOURNAL, STATE_FILE, read_state, sha_of_file, state_key

if TYPE_CHECKING:
    from .build import BuildOptions


class Stale(Exception):
    """Another build changed the lock file while this one was working: start over from its result."""


@contextmanager
def exclusive(out_dir: str) -> Iterator[None]:
    """One build at a time writes into a folder: concurrent builds queue instead of mixing files.

    The operating system's own lock, so a build that dies never leaves the folder locked.
    """
    with _holding(os.path.join(out_dir, ".flashgen-build.lock")):
        yield


def _lock_guard(lock_path: str) -> str:
    """The file whose lock guards the lock file (builds into other folders may share the lock file).

    A file of its own, never the lock file itself: on Windows a locked byte cannot be read by
    anyone else, and an open file cannot be replaced, while the lock file is read by every
    build and replaced by each that changes it. Hidden, beside it; it stays, since deleting a
    lock file other processes may be waiting on would let two of them hold it.
    """
    folder, name = os.path.split(os.path.abspath(lock_path))
    return os.path.join(folder, f".{name}.flashgen-lock")


@contextmanager
def _holding(path: str, required: bool = True) -> Iterator[None]:
    """An exclusive lock on the file at ``path`` (created if need be), for as long as the block runs.

    Not ``required``: where the file cannot be made (a read-only folder), the block runs unlocked.
    """
    from .files import open_no_follow

    try:  # a link planted in the output folder must not be opened: "w" would have truncated its target
        fd = open_no_follow(path, os.O_RDWR | os.O_CREAT)
    except OSError as exc:
        if exc.errno == errno.ELOOP or required:
            raise FlashgenError(f"{path}: cannot open the build lock: {exc.strerror}") from None
        fd = None
    if fd is None:
        yield
        return
    try:
        _lock_file(fd, True)
        try:
            yield
        finally:
            _lock_file(fd, False)
    finally:
        os.close(fd)


def _lock_file(fd: int, lock: bool) -> None:
    """Take (waiting as long as it takes) or release an exclusive lock on an open file: flock on POSIX, msvcrt on Windows."""
    # The stdlib, not the filelock package: its current release adds at-fork and audit hooks to
    # the process, and this one forks its worker pool.
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)  # msvcrt locks bytes from the current position: always byte 0
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK if lock else msvcrt.LK_UNLCK, 1)
                return
            except OSError as exc:
                if not lock or exc.errno != errno.EDEADLOCK:  # EDEADLOCK: still held after 10 s of retries
                    raise
    else:
        fcntl.flock(fd, fcntl.LOCK_EX if lock else fcntl.LOCK_UN)


def prepare_out_dir(out_dir: str) -> None:
    """Create the output folder if need be; refuse one this build cannot write in."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise FlashgenError(f"{out_dir}: cannot create output folder: {exc.strerror}") from None
    if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK | os.X_OK):
        raise FlashgenError(f"{out_dir}: output folder is not writable")


def settle(options: BuildOptions, lock: Lock, lock_sha_read: str | None, touched: set[str]) -> bool:
    """With the output folder's build lock just taken: whether this build must start over.

    It must if a killed build's commit was still to be finished or undone (the folder is not
    what this build planned from), or if another build changed the lock under the notes this
    one is about to write. Stale temporary files of the folder go.
    """
    from .commit import recover

    with _holding(_lock_guard(options.lock_path), required=False):  # the lock is read while no build replaces it
        if recover(options.out_dir, options.lock_path):
            return True
    clean_out_dir(options)
    if sha_of_file(options.lock_path) == lock_sha_read:
        return False
    return _lock_moved(lock, read_lock(options.lock_path), touched, None)


def _lock_moved(before: Lock, now: Lock, touched: set[str], notetype: tuple[str, int] | None) -> bool:
    """Whether ``now`` differs from ``before`` in what this build's packages rest on: its notes' entries, the note type.

    Entries of other notes may change: builds into other folders sharing the lock add theirs.
    A note type as this build would write it is no change (builds of one version agree on it).
    """
    now_type, before_type = (now.notetype_hash, now.notetype_mod), (before.notetype_hash, before.notetype_mod)
    if now_type != before_type and now_type != notetype:
        return True
    return any(now.notes.get(key) != before.notes.get(key) for key in touched)


def clean_out_dir(options: BuildOptions) -> None:
    """Delete temporary packages and state files in the output folder (the build lock held: none is a running build's)."""
    from .commit import clean_stale_temps

    clean_stale_temps(options.out_dir, _out_dir_owns(options))


def _out_dir_owns(options: BuildOptions):
    """Whether a temporary file for this target name is the output folder's to clean (the lock's are cleaned under its own lock)."""
    lock_folder, lock_name = os.path.split(os.path.abspath(options.lock_path))
    mine = lock_name if os.path.abspath(options.out_dir) == lock_folder else None
    return lambda target: target != mine and (target.endswith(".apkg") or target in (STATE_FILE, JOURNAL))


def left_behind(options: BuildOptions) -> bool:
    """Whether a build that stopped half-way left something here: a commit to finish, or temporary
    files that :func:`clean_out_dir` and the commit would clean (a folder that cannot be listed counts)."""
    from .commit import stale_temps

    lock_folder, lock_name = os.path.split(os.path.abspath(options.lock_path))
    try:
        return (
            os.path.lexists(os.path.join(options.out_dir, JOURNAL))
            or bool(stale_temps(options.out_dir, _out_dir_owns(options)))
            or bool(stale_temps(lock_folder, lambda target: target == lock_name))
        )
    except OSError:
        return True


def commit_build(
    options: BuildOptions, lock: Lock, lock_sha_read: str | None, states, touched, notetype, prepared, state_file, kept, inputs_by_book
) -> None:
    """Put this build's packages (``prepared``: [(temporary file, path)]), state file and lock in place as one change.

    Under the lock file's own lock, the lock is read again and this build's entries merged
    into it, so builds into other folders that share it keep theirs; if one of them changed
    an entry of a note this build wrote, the build starts over. Packages an earlier build of
    this lock wrote into the folder for these books, and this build does not (a changed
    ``--split``, a renamed chapter), are removed. See commit.py for how the commit is one change.
    """
    from .commit import clean_stale_temps, commit

    lock_folder, lock_name = os.path.split(os.path.abspath(options.lock_path))
    # not required: a lock folder this build cannot write in is one where it can change nothing
    # (if the lock must change, writing it fails below, with the reason)
    with _holding(_lock_guard(options.lock_path), required=False):
        clean_stale_temps(lock_folder, lambda target: target == lock_name)
        # read again only if another build changed it since this one did (at 100,000 questions
        # the lock is 36 MB and takes over a second to read)
        current = lock if sha_of_file(options.lock_path) == lock_sha_read else read_lock(options.lock_path)
        if _lock_moved(lock, current, touched, notetype):
            raise Stale()
        notes = dict(current.notes)
        notes.update((key, states[key]) for key in touched)
        changed = notes != dict(current.notes) or notetype != (current.notetype_hash, current.notetype_mod)
        lock_temp = state_temp = None
        committed = False
        try:
            if changed or not os.path.exists(options.lock_path):
                try:
                    lock_temp, lock_sha = write_lock(options.lock_path, Lock(MappingProxyType(notes), *notetype), commit=False)
                except OSError as exc:
                    raise FlashgenError(f"{options.lock_path}: cannot write lock file: {exc.strerror}") from None
            else:
                lock_sha = sha_of_file(options.lock_path)
            renames = list(prepared)
            try:
                lock_books = {s.book for s in notes.values() if s.book is not None}
                state_temp = state_file(lock_sha, lock_books, {path: temp for temp, path in prepared}, changed)
            except OSError as exc:
                raise FlashgenError(f"{os.path.join(options.out_dir, STATE_FILE)}: cannot write: {exc.strerror}") from None
            if state_temp is not None:
                renames.append((state_temp, os.path.join(options.out_dir, STATE_FILE)))
            removals = _leftovers(options, {os.path.basename(path) for _, path in prepared} | set(kept), inputs_by_book)
            commit(options.out_dir, renames, (lock_temp, options.lock_path) if lock_temp else None, removals)
            committed = True
        finally:
            for temp in (lock_temp, state_temp) if not committed else ():
                if temp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)


def _leftovers(options: BuildOptions, keep: set[str], inputs_by_book) -> list[tuple[str, str]]:
    """(name, sha256) of packages the last build of this lock wrote for these books that this one does not write or keep.

    Only names the state file records as flashgen's, still holding the bytes it recorded:
    a file someone put in the folder, or changed since, is never removed.
    """
    previous = read_state(options.out_dir)  # again: the build lock is held now
    if previous.get("lock_path", state_key(options.lock_path, options.out_dir)) != state_key(options.lock_path, options.out_dir):
        return []  # another library's packages (a state file written before the key existed is taken as this lock's)
    found = set()
    for book, record in previous.get("books", {}).items():
        if book not in inputs_by_book or not isinstance(record, dict) or not isinstance(record.get("packages"), dict):
            continue
        for name, sha in record["packages"].items():
            plain = isinstance(name, str) and os.path.basename(name) == name and name.endswith(".apkg")
            if plain and name not in keep and isinstance(sha, str) and sha_of_file(os.path.join(options.out_dir, name)) == sha:
                found.add((name, sha))
    return sorted(found)
