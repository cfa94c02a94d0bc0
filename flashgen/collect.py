"""Paths given on the command line -> the sorted list of input files."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .model import Diagnostic, FlashgenError, Location, Severity

__all__ = ["Inputs", "collect", "collect_existing", "within", "INPUT_SUFFIXES"]

INPUT_SUFFIXES = (".md", ".txt")


@dataclass(frozen=True, slots=True)
class Inputs:
    """The files to read, each with the root it was found under."""

    files: tuple[str, ...]
    roots: tuple[str, ...]  # for each file, the folder (or file) named on the command line
    diagnostics: tuple[Diagnostic, ...]

    @property
    def missing(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.code == "missing-path")


def within(path: str, root: str) -> bool:
    """Whether ``path``, with every symlink resolved, lies inside ``root`` (resolved too).

    The one containment rule for everything flashgen reads because of the input:
    input files found under a folder, and the images cards name.
    """
    real_root = os.path.realpath(root)
    try:
        return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root
    except ValueError:  # Windows: a link to another drive is outside
        return False


def _walk(root: str) -> list[tuple[str, bool]]:
    """The input files under ``root``, each with whether it lies inside ``root`` (:func:`within`).

    Symlinked folders are not followed: that is what makes symlink loops harmless. A folder is
    resolved once, not once per file in it: a file that is no link, in a folder inside the root,
    is inside too (resolving every one took 0.2 s for the 4,095 files of 100,000 questions).
    """
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        folder_inside = None
        for name in names:
            if name.startswith(".") or not name.lower().endswith(INPUT_SUFFIXES):
                continue
            file = os.path.join(folder, name)
            if folder_inside is None:
                folder_inside = within(folder, root)  # a Windows junction is walked into, and may lead out
            found.append((file, within(file, root) if not folder_inside or os.path.islink(file) else True))
    return found


def collect(paths: list[str] | tuple[str, ...]) -> Inputs:
    """Expand files and folders (``*.md`` and ``*.txt``, recursively) into sorted, unique files.

    A path that does not exist is a ``missing-path`` error; the rest are still collected.
    """
    seen: dict[str, str] = {}
    diagnostics = []
    for raw in paths:
        path = os.path.normpath(os.fspath(raw))
        if os.path.isdir(path):
            for file, inside in _walk(path):
                if inside:
                    seen.setdefault(file, path)
                elif file not in seen:  # a link out of the tree: its target is never opened
                    message = "input file links outside the input folder; not read"
                    diagnostics.append(Diagnostic(Severity.ERROR, "unsafe-input", message, Location(file)))
        elif os.path.lexists(path):
            seen.setdefault(path, os.path.dirname(path) or ".")
        else:
            diagnostics.append(
                Diagnostic(Severity.ERROR, "missing-path", "no such file or folder", Location(os.fspath(raw)))
            )
    files = tuple(sorted(seen))
    return Inputs(files=files, roots=tuple(seen[f] for f in files), diagnostics=tuple(diagnostics))


def collect_existing(paths: list[str] | tuple[str, ...]) -> Inputs:
    """:func:`collect`, but a path that does not exist is a FlashgenError (a usage error), naming every such path."""
    inputs = collect(paths)
    if inputs.missing:
        raise FlashgenError("; ".join(f"{d.location.path}: {d.message}" for d in inputs.missing))
    return inputs
