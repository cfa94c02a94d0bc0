"""What a code-fence line is: one definition for the parser and the renderer, so they never disagree."""

from __future__ import annotations

import re

__all__ = ["fence_of", "closes"]

_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})(.*)$")


def fence_of(line: str) -> tuple[str, int, str] | None:
    """(fence character, run length, info string) if ``line`` opens or closes a fenced block.

    A backtick run whose info string holds a backtick is an inline code span, not a fence (CommonMark).
    """
    if "``" not in line and "~~" not in line:
        return None
    m = _FENCE.match(line)
    if not m:
        return None
    run, info = m.group(1), m.group(2)
    if run[0] == "`" and "`" in info:
        return None
    return run[0], len(run), info


def closes(opener: tuple[str, int, str], line: str) -> bool:
    """Whether ``line`` closes a block opened by ``opener``: same character, as long or longer, no info."""
    fence = fence_of(line)
    return fence is not None and fence[0] == opener[0] and fence[1] >= opener[1] and not fence[2].strip()
