"""Files written whole or not at all, and never opened through a planted link.

Kept apart from package.py so that reading the state of an output folder, or writing a lock,
costs no import of genanki.
"""

from __future__ import annotations

import errno
import os
import re
import stat

__all__ = ["write_atomically", "open_no_follow", "TEMP_NAME"]

TEMP_NAME = re.compile(r"^\.(.+)\.[0-9a-f]{12}\.tmp$")  # write_atomically's temporary files; group 1: the target

# Not on Windows; there, open_no_follow also checks os.path.islink first.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def open_no_follow(path: str, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` (OSError), so state files in a
    folder someone else prepared can never be a way to write or read another file."""
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "is a symbolic link; not followed", path)
    return os.open(path, flags | _NOFOLLOW | getattr(os, "O_BINARY", 0), mode)


def _file_mode(path: str) -> int | None:
    """The permissions to keep when replacing ``path``: those of the regular file there now, if any."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return stat.S_IMODE(info.st_mode) & 0o777 if stat.S_ISREG(info.st_mode) else None


def _create_beside(path: str) -> tuple[int, str]:
    """A new, empty temporary file beside ``path``: (descriptor, its path).

    Not ``tempfile.mkstemp``, whose files are 0600 whatever the umask: a committed 0644
    lock would come back 0600. Created 0666 less the umask, then given the mode of the
    file it replaces; O_EXCL and O_NOFOLLOW, so a planted name or link is never opened.
    """
    folder = os.path.dirname(os.path.abspath(path))
    keep = _file_mode(path)
    for _ in range(100):
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.urandom(6).hex()}.tmp")
        try:
            fd = open_no_follow(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue
        if keep is not None:
            try:
                os.chmod(tmp, keep)
            except OSError:
                pass  # a mode we cannot set is no reason to fail the write
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", path)


def write_atomically(path: str, write, commit: bool = True) -> str:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    A failure at any point (full disk, interrupt) leaves the previous file untouched.
    With ``commit=False`` the temporary file is left for the caller to rename; its path is returned.
    The new file has the mode of the one it replaces, or 0666 less the umask; a symbolic
    link at ``path`` is replaced, never written through.
    """
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if commit:
            os.replace(tmp, path)
            return path
        return tmp
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
