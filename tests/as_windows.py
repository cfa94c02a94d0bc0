"""Run the flashgen command as on Windows, on a POSIX machine: no POSIX-only modules, and spawn workers only.

    python tests/as_windows.py build notes/ -o decks/      (the checkout on PYTHONPATH)

Only ever run as a script: the modules are blocked on import, here and in every worker, since
spawned workers run this file again (as ``__mp_main__``) before anything else. ``msvcrt`` is
a stand-in built on POSIX record locks, with Windows' behaviour: a byte range locked from the
current position, and an EDEADLOCK error to retry when the lock stays taken.
"""

from __future__ import annotations

import errno
import multiprocessing.context
import os
import sys
import time
import types

POSIX_ONLY = ("fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog", "crypt", "spwd", "nis", "curses", "_curses", "readline")


def _msvcrt(fcntl) -> types.ModuleType:
    module = types.ModuleType("msvcrt")
    module.LK_UNLCK, module.LK_LOCK = 0, 1

    def locking(fd: int, mode: int, nbytes: int) -> None:
        start = os.lseek(fd, 0, os.SEEK_CUR)
        if mode == module.LK_UNLCK:
            return fcntl.lockf(fd, fcntl.LOCK_UN, nbytes, start)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, nbytes, start)
        except OSError:
            time.sleep(0.05)  # Windows tries for 10 s before giving up
            raise OSError(errno.EDEADLOCK, os.strerror(errno.EDEADLOCK)) from None

    module.locking = locking
    return module


def _block() -> None:
    early = [name for name in POSIX_ONLY if sys.modules.get(name) is not None and name != "fcntl"]
    if early:  # something imported them before this script ran: the simulation would not hold
        raise SystemExit(f"as_windows: already imported: {early}")
    import fcntl  # for the stand-in only, then hidden from everything else
    import subprocess  # noqa: F401 - it tells POSIX from Windows by importing msvcrt: before the stand-in exists

    sys.modules["msvcrt"] = _msvcrt(fcntl)
    for name in POSIX_ONLY:
        sys.modules[name] = None  # import raises ImportError, as on Windows

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.spawn_only import limit_to_spawn

    limit_to_spawn()


class _Counted(multiprocessing.context.SpawnProcess):
    """A spawned worker, counted, so that a test can tell that workers ran."""

    started = 0

    def start(self) -> None:
        type(self).started += 1
        super().start()


_block()

if __name__ == "__main__":
    from flashgen.cli import main

    multiprocessing.context._concrete_contexts["spawn"].Process = _Counted
    code = main()
    print(f"as_windows: {_Counted.started} spawned workers", file=sys.stderr)
    raise SystemExit(code)
