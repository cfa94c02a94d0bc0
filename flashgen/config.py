"""Settings from ``flashgen.toml`` or ``[tool.flashgen]`` in ``pyproject.toml``.

Looked up next to the sources: in the folder of the first input path, then
its parents up to the current folder. Command-line flags override the file.
Unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import os
import string
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .model import FlashgenError


def _toml():
    """The TOML reader, imported when a config file is there to read (most builds have none)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib

__all__ = ["Config", "load_config", "find_config", "KEYS"]


@dataclass(frozen=True, slots=True)
class Config:
    """What a config file said; ``None`` means 'not set here'."""

    path: str | None = None
    titles: Mapping[str, str] = field(default_factory=dict)
    deck_template: str | None = None
    min_rating: int | None = None
    unrated: str | None = None  # "keep" | "drop"
    dedupe_threshold: float | None = None
    split: str | None = None
    lock: str | None = None  # relative paths are relative to the config file
    out: str | None = None
    jobs: int | None = None
    cache_dir: str | None = None


KEYS = {
    "titles": "table of book source or slug = title",
    "deck_template": "string with {book}, {number}, {chapter}",
    "min_rating": "integer 0-10",
    "unrated": '"keep" or "drop"',
    "dedupe_threshold": "number between 0 and 1",
    "split": '"book", "chapter" or "none"',
    "lock": "path",
    "out": "path",
    "jobs": "integer >= 1",
    "cache_dir": "path",
}


def find_config(paths: Sequence[str]) -> str | None:
    """The config file for these inputs, if there is one."""
    cwd = os.path.realpath(os.getcwd())
    start = os.path.realpath(paths[0]) if paths else cwd
    folder = start if os.path.isdir(start) else os.path.dirname(start)
    candidates = []
    while True:
        candidates.append(folder)
        if folder == cwd or os.path.dirname(folder) == folder or not folder.startswith(cwd):
            break
        folder = os.path.dirname(folder)
    if cwd not in candidates:
        candidates.append(cwd)
    for folder in candidates:
        toml = os.path.join(folder, "flashgen.toml")
        if os.path.isfile(toml):
            return toml
        pyproject = os.path.join(folder, "pyproject.toml")
        if os.path.isfile(pyproject) and _has_tool_section(pyproject):
            return pyproject
    return None


def _has_tool_section(path: str) -> bool:
    tomllib = _toml()
    try:
        with open(path, "rb") as handle:
            return "flashgen" in tomllib.load(handle).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _check(key: str, value: Any, path: str) -> Any:
    def bad() -> FlashgenError:
        return FlashgenError(f"{path}: '{key}' must be a {KEYS[key]}, not {value!r}")

    if key == "titles":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise bad()
        return dict(value)
    if key in ("min_rating", "jobs"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad()
        if (key == "min_rating" and not 0 <= value <= 10) or (key == "jobs" and value < 1):
            raise bad()
        return value
    if key == "dedupe_threshold":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
            raise bad()
        return float(value)
    if not isinstance(value, str):
        raise bad()
    if key == "unrated" and value not in ("keep", "drop"):
        raise bad()
    if key == "split" and value not in ("book", "chapter", "none"):
        raise bad()
    if key == "deck_template":
        problem = _template_problem(value)
        if problem:
            raise FlashgenError(f"{path}: 'deck_template' is not a valid template: {problem}")
    if key in ("lock", "out", "cache_dir"):
        return os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(value)))
    return value


_TEMPLATE_FIELDS = ("book", "number", "chapter")


def _template_problem(template: str) -> str | None:
    """Why a deck template is refused, or None.

    Only bare ``{book}``, ``{number}`` and ``{chapter}``: a format spec (``{book:>2000000}``)
    or conversion would let a committed config blow every deck name, and the lock, up to
    megabytes; attribute and index lookups reach into Python objects.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in _TEMPLATE_FIELDS:
            return f"unknown field {{{name}}} (known: {', '.join('{' + f + '}' for f in _TEMPLATE_FIELDS)})"
        if spec or conversion:
            return f"{{{name}}} may not carry a format ('!' or ':'); write {{{name}}} alone"
    return None


def load_config(path: str | None) -> Config:
    """Read and validate a config file; ``None`` gives the empty config."""
    if path is None:
        return Config()
    tomllib = _toml()
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise FlashgenError(f"{path}: cannot read config: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FlashgenError(f"{path}: malformed config: {exc}") from None
    if os.path.basename(path) == "pyproject.toml":
        data = data.get("tool", {}).get("flashgen", {})
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise FlashgenError(f"{path}: unknown config key '{unknown[0]}' (known: {', '.join(sorted(KEYS))})")
    values = {key: _check(key, value, path) for key, value in data.items()}
    return Config(path=path, **values)
