"""A persistent cache of rendered cards, keyed by their text.

Rendering (mistune + pygments) is most of a build's work; a card whose text
did not change renders to the same HTML, so it is rendered once and kept in a
SQLite file under the user cache folder. The key covers flashgen's version,
the renderer's version and the code themes, so an upgrade never serves stale
HTML. Values are JSON, never pickles: a cache folder is not trusted code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from typing import Iterable, Mapping

from . import __version__
from .render import DARK_STYLE, LIGHT_STYLE, RENDER_VERSION, RenderedCard, RenderedField

__all__ = ["RenderCache", "default_cache_dir", "card_key"]

_SALT = f"flashgen {__version__}\x1frender {RENDER_VERSION}\x1f{LIGHT_STYLE}\x1f{DARK_STYLE}\x1f"


def default_cache_dir() -> str:
    """The platform's user cache folder for flashgen.

    ``$XDG_CACHE_HOME/flashgen`` (else ``~/.cache/flashgen``) on Linux, ``~/Library/Caches/flashgen``
    on macOS, ``%LOCALAPPDATA%\\flashgen\\Cache`` on Windows.
    """
    import platformdirs  # only when a build uses the cache

    return platformdirs.user_cache_dir("flashgen", appauthor=False)


def card_key(title: str, question: str, answer: str, context: str) -> str:
    text = _SALT + "\x1e".join((title, question, answer, context))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(card: RenderedCard) -> str:
    fields = (card.title, card.question, card.answer, card.context)
    return json.dumps([[f.html, [list(i) for i in f.images]] for f in fields], ensure_ascii=False)


def _decode(value: str) -> RenderedCard:
    fields = [RenderedField(html, tuple(tuple(i) for i in images)) for html, images in json.loads(value)]
    return RenderedCard(*fields)


class RenderCache:
    """Rendered cards by :func:`card_key`; every failure degrades to a cache miss, never to a failed build."""

    def __init__(self, folder: str):
        self.path = os.path.join(folder, f"render-v{RENDER_VERSION}.sqlite")
        os.makedirs(folder, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cards (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get_many(self, keys: Iterable[str]) -> dict[str, RenderedCard]:
        found: dict[str, RenderedCard] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            for key, value in self._db.execute(f"SELECT key, value FROM cards WHERE key IN ({marks})", batch):
                try:
                    found[key] = _decode(value)
                except (ValueError, TypeError):
                    continue  # a damaged entry is a miss
        return found

    def put_many(self, cards: Mapping[str, RenderedCard]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO cards (key, value) VALUES (?, ?)", [(k, _encode(c)) for k, c in cards.items()]
            )

    def close(self) -> None:
        self._db.close()
