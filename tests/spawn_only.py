"""Python's multiprocessing as on Windows: spawn is the only start method, fork cannot be had."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from typing import Callable


def limit_to_spawn(setattr_: Callable[[object, str, object], None] = setattr) -> None:
    """Leave spawn the only start method: listed, default, and the only context ``get_context`` gives.

    ``setattr_``: plain setattr in a process of its own, pytest's ``monkeypatch.setattr`` in the test process.
    """
    context = multiprocessing.context
    spawn = context._concrete_contexts["spawn"]
    setattr_(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    setattr_(context, "_concrete_contexts", {"spawn": spawn})  # get_context("fork") -> ValueError, as on Windows
    setattr_(context._default_context, "_actual_context", spawn)
