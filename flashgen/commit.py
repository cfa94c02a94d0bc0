"""Committing a build: its packages, state file and lock replace the old ones together, or not at all.

No file system offers a rename of several files as one step: ``os.replace`` is atomic
for one file on POSIX and on NTFS, and that is all there is. So a build commits with a
journal, a small file in the output folder that lists, before anything moves, every
rename it is about to make:

1. every new file is already complete in a temporary file beside its target;
2. the journal is written (and synced): target, temporary file, and the name the old
   file will be moved aside to;
3. one target at a time, in the journal's order: the old file is moved aside, the new
   one renamed in; the lock comes last, so renaming it in is the commit point;
4. the old files moved aside are deleted, then the journal.

A failure before the commit point (a rename refused: on Windows, a package Anki has
open; a full disk; an interrupt) puts every old file back, in this process. A process
killed outright leaves the journal, and the next build into the folder finishes the
job before it plans anything: forward if the lock is the one the journal names (the
commit point was passed), back otherwise. Moving the old file aside, rather than
keeping a hard link, works on every file system (FAT and network shares have no
links); the moment a target is missing is covered by the journal like any other.

Why not fewer steps: renaming packages in without a journal leaves a mix of old and
new packages when killed; keeping backups without a journal leaves them for nobody
to find. Why not the lock first: other builds may share the lock (builds into other
folders) and merge into it as soon as this one lets go of it, so a lock already
renamed in is never taken back; everything before it can be.

Everything here touches only names it can check: targets in the output folder, and
temporary files of flashgen's own pattern beside them. A journal planted by someone
else can name nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from typing import Sequence

from .files import TEMP_NAME
from .model import FlashgenError
from .state import JOURNAL, sha_of_file



@dataclass(frozen=True, slots=True)
class Rename:
    target: str  # a name in the output folder
    temp: str  # the new file, beside it
    backup: str | None  # where the old file goes meanwhile; None: there was no old file


def commit(out_dir: str, renames: Sequence[tuple[str, str]], lock: tuple[str, str] | None, removals: Sequence[tuple[str, str]]) -> None:
    """Rename each ``(temporary file, target)`` in order, then the lock ``(temporary file, path)``, as one change.

    ``removals`` (name in ``out_dir``, its sha256) are deleted once committed, if they still hold those bytes.
    On failure everything is as it was (or the journal stays for the next build) and FlashgenError is raised;
    an interrupt is undone the same way and raised as it was.
    """
    from .files import write_atomically

    entries = [_entry(out_dir, temp, target) for temp, target in renames]
    if not entries and not lock:
        _finish(out_dir, entries, removals)
        return
    # The next build tells whether the commit point was passed by the bytes there, not by which
    # temporary files are left: those may have been deleted by then.
    last = lock[0] if lock else os.path.join(out_dir, entries[-1].temp)
    journal = {
        "version": 1,
        "renames": [[e.target, e.temp, e.backup] for e in entries],
        "point": {"lock": bool(lock), "sha256": sha_of_file(last)},
        "remove": [list(r) for r in removals],
    }
    text = json.dumps(journal, indent=1).encode("utf-8")
    write_atomically(os.path.join(out_dir, JOURNAL), lambda handle: handle.write(text))
    _sync_folder(out_dir)
    try:
        for e in entries:
            if e.backup is not None:
                with contextlib.suppress(FileNotFoundError):  # gone meanwhile: nothing to put back
                    os.replace(os.path.join(out_dir, e.target), os.path.join(out_dir, e.backup))
            os.replace(os.path.join(out_dir, e.temp), os.path.join(out_dir, e.target))
        if lock:
            os.replace(lock[0], lock[1])  # the commit point
    except BaseException as exc:
        undone = _undo(out_dir, entries)
        if isinstance(exc, OSError):
            name = exc.filename if isinstance(exc.filename, str) else out_dir
            later = "" if undone else "; the next build into the folder will put the old files back"
            raise FlashgenError(f"{name}: cannot replace: {exc.strerror or exc}; nothing changed{later}") from None
        raise
    _sync_folder(out_dir)
    _finish(out_dir, entries, removals)


def recover(out_dir: str, lock_path: str) -> bool:
    """Finish or undo a commit into ``out_dir`` that a killed build left; whether there was one.

    Call with the output folder's build lock held (no commit can be under way).
    """
    path = os.path.join(out_dir, JOURNAL)
    journal = _read_journal(path)
    if journal is None:
        return False
    entries, (point_is_lock, point_sha), removals = journal
    if point_is_lock:
        committed = sha_of_file(lock_path) == point_sha
    else:  # the lock did not change: the last package or state file was the commit point
        committed = bool(entries) and sha_of_file(os.path.join(out_dir, entries[-1].target)) == point_sha
    if committed:
        for e in entries:  # all renamed in already, unless the journal lies: then this is harmless
            with contextlib.suppress(OSError):
                os.replace(os.path.join(out_dir, e.temp), os.path.join(out_dir, e.target))
        _finish(out_dir, entries, removals)
    elif _undo(out_dir, entries) is False:
        raise FlashgenError(f"{path}: an interrupted build's old files cannot be put back; it lists them")
    return True


def clean_stale_temps(folder: str, owned) -> list[str]:
    """Delete flashgen's temporary files in ``folder`` whose target name satisfies ``owned``; their names.

    Only safe while holding the lock that every writer of those targets holds: then no
    such file belongs to a running build. Called after :func:`recover`, which needs them.
    """
    if os.path.lexists(os.path.join(folder, JOURNAL)):
        return []  # an unfinished commit still needs them
    removed = []
    with contextlib.suppress(OSError):
        for name in stale_temps(folder, owned):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed.append(name)
    return removed


def stale_temps(folder: str, owned) -> list[str]:
    """flashgen's temporary files in ``folder`` whose target name satisfies ``owned`` (OSError if it cannot be listed)."""
    return [name for name in os.listdir(folder) if (match := TEMP_NAME.match(name)) and owned(match.group(1))]


def _entry(out_dir: str, temp: str, target: str) -> Rename:
    name, temp_name = os.path.basename(target), os.path.basename(temp)
    assert os.path.dirname(os.path.abspath(target)) == os.path.abspath(out_dir) == os.path.dirname(os.path.abspath(temp))
    backup = None
    if os.path.lexists(target):
        while backup is None or os.path.lexists(os.path.join(out_dir, backup)):
            backup = f".{name}.{secrets.token_hex(6)}.tmp"  # the temporary pattern: a stale one is cleaned like any
    return Rename(name, temp_name, backup)


def _undo(out_dir: str, entries: Sequence[Rename]) -> bool:
    """Put every old file back and delete the new ones; False if some could not be (the journal then stays).

    Idempotent, so the next build can run it again.
    """
    ok = True
    for e in reversed(entries):
        target = os.path.join(out_dir, e.target)
        try:
            if e.backup is not None and os.path.lexists(os.path.join(out_dir, e.backup)):
                os.replace(os.path.join(out_dir, e.backup), target)
            elif e.backup is None and not os.path.lexists(os.path.join(out_dir, e.temp)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(target)  # renamed in where there was nothing: nothing again
        except OSError:
            ok = False
    if ok:
        for e in entries:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(out_dir, e.temp))
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(out_dir, JOURNAL))
    return ok


def _finish(out_dir: str, entries: Sequence[Rename], removals: Sequence[tuple[str, str]]) -> None:
    """After the commit point: delete the old files moved aside, the leftovers to remove, then the journal."""
    for e in entries:
        if e.backup is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(out_dir, e.backup))
    for name, sha in removals:
        path = os.path.join(out_dir, name)
        if sha_of_file(path) == sha:  # still the bytes flashgen wrote: never a file someone put there since
            with contextlib.suppress(OSError):
                os.unlink(path)
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(out_dir, JOURNAL))


def _read_journal(path: str):
    """(renames, (commit point is the lock, its sha256), removals) from a journal, checked; None if there is none.

    Names must be plain names in the folder and temporary files of their own target, so
    a planted journal can move or delete nothing else; a malformed one is deleted.
    """
    from .files import open_no_follow

    try:
        with os.fdopen(open_no_follow(path, os.O_RDONLY), "rb") as handle:
            data = json.loads(handle.read(1_000_000).decode("utf-8"))
        entries = []
        for target, temp, backup in data["renames"]:
            for name in (temp, backup):
                if name is not None and not (TEMP_NAME.match(name) and TEMP_NAME.match(name).group(1) == target):
                    raise ValueError(name)
            if not _plain_name(target):
                raise ValueError(target)
            entries.append(Rename(target, temp, backup))
        point = (data["point"]["lock"] is True, data["point"]["sha256"])
        if not re.fullmatch(r"[0-9a-f]{64}", point[1]):
            raise ValueError(point)
        removals = [(name, sha) for name, sha in data["remove"] if _plain_name(name) and name.endswith(".apkg") and isinstance(sha, str)]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        with contextlib.suppress(OSError):
            os.unlink(path)  # a link itself, never its target
        return None
    return entries, point, removals


def _plain_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and os.path.basename(name) == name and "/" not in name and "\\" not in name


def _sync_folder(folder: str) -> None:
    """Make the renames in ``folder`` durable before the next step depends on them (POSIX; NTFS journals its own)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
