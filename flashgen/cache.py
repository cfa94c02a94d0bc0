"""A persistent cache of rendered cards, keyed by their text.

Rendering (mistune + pygments) is most of a build's work; a card whose text
did not change renders to the same HTML, so it is rendered once and kept in a
SQLite file under the user cache folder. The key covers flashgen's version,
the renderer's version and the code themes, so an upgrade never serves stale
HTML. Values are JSON, never pickles: a cache folder is not trusted code.

Nor is it trusted data: ``cache_dir`` can come from a committed config, so a
repository can bring its own cache. Every value is stored with an HMAC under a
per-user secret kept outside any cache folder (in the user's state folder), so
only entries this user's flashgen wrote are served; and each served field is
checked as strictly as fresh output (:func:`flashgen.render.well_formed`).
Anything else is a miss: the card is rendered again and the entry replaced.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from typing import Iterable, Mapping

from . import __version__
from .render import RENDER_VERSION, RenderedCard, RenderedField, well_formed
from .theme import DARK_STYLE, LIGHT_STYLE

__all__ = ["RenderCache", "default_cache_dir", "card_key", "secret_path"]

_SALT = f"flashgen {__version__}\x1frender {RENDER_VERSION}\x1f{LIGHT_STYLE}\x1f{DARK_STYLE}\x1f"
_MAC_LENGTH = 64  # hex digits of an HMAC-SHA256, in front of each stored value
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def default_cache_dir() -> str:
    """The platform's user cache folder for flashgen.

    ``$XDG_CACHE_HOME/flashgen`` (else ``~/.cache/flashgen``) on Linux, ``~/Library/Caches/flashgen``
    on macOS, ``%LOCALAPPDATA%\\flashgen\\Cache`` on Windows.
    """
    import platformdirs  # only when a build uses the cache

    return platformdirs.user_cache_dir("flashgen", appauthor=False)


def secret_path() -> str:
    """Where the cache's per-user secret lives: the user's state folder, never a cache folder
    (CI systems share cache folders between branches; they do not share this).

    ``$XDG_STATE_HOME/flashgen`` (else ``~/.local/state/flashgen``) on Linux,
    ``~/Library/Application Support/flashgen`` on macOS, ``%LOCALAPPDATA%\\flashgen`` on Windows.
    """
    import platformdirs

    return os.path.join(platformdirs.user_state_dir("flashgen", appauthor=False), "render-cache.key")


def _read_secret(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        secret = handle.read(200).strip()
    if len(secret) < 32:
        raise ValueError(f"{path}: cache secret is damaged; delete it to make a new one")
    return secret


def _secret(path: str) -> bytes:
    """The per-user secret, made on first use (0600, created whole: written aside, then linked into place)."""
    secret = _read_secret(path)
    if secret is not None:
        return secret
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode("ascii"))
        try:
            os.link(tmp, path)  # never replaces: a concurrent build's secret wins and both use it
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    secret = _read_secret(path)
    if secret is None:
        raise FileNotFoundError(path)
    return secret


def card_key(title: str, question: str, answer: str, context: str) -> str:
    text = _SALT + "\x1e".join((title, question, answer, context))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _encode(card: RenderedCard) -> str:
    fields = (card.title, card.question, card.answer, card.context)
    return json.dumps([[f.html, [list(i) for i in f.images]] for f in fields], ensure_ascii=False)


def _decode(value: str) -> RenderedCard | None:
    """The card a stored JSON value holds, or None when it has any other shape."""
    data = json.loads(value)
    if not isinstance(data, list) or len(data) != 4:
        return None
    fields = []
    for item in data:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            return None
        images = tuple(tuple(i) if isinstance(i, list) else i for i in item[1])
        field = RenderedField(item[0], images)
        if not well_formed(field):
            return None
        fields.append(field)
    return RenderedCard(*fields)


class RenderCache:
    """Rendered cards by :func:`card_key`; every failure degrades to a cache miss, never to a failed build."""

    def __init__(self, folder: str, secret: bytes | None = None):
        self._secret = secret if secret is not None else _secret(secret_path())
        self.path = os.path.join(folder, f"render-v{RENDER_VERSION}.sqlite")
        os.makedirs(folder, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Commits are not synced to disk: in WAL mode the file stays whole through a crash, and what a
        # power cut takes back is only a miss. Synced, each commit (one a package task, every worker)
        # waited for the disk: 8 commits of 395 cards, 15-36 ms against 11-16 ms here, more where
        # syncing is slow (Windows flushes the drive's cache).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cards (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def _mac(self, key: str, payload: str) -> str:
        message = f"{key}\x1e{payload}".encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _open(self, key: str, value) -> RenderedCard | None:
        if not isinstance(value, str):
            return None
        mac, payload = value[:_MAC_LENGTH], value[_MAC_LENGTH:]
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._mac(key, payload).encode("ascii")):
            return None  # not written by this user's flashgen, or not for this key
        try:
            return _decode(payload)
        except (ValueError, TypeError, RecursionError):
            return None

    def get_many(self, keys: Iterable[str]) -> dict[str, RenderedCard]:
        found: dict[str, RenderedCard] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            for key, value in self._db.execute(f"SELECT key, value FROM cards WHERE key IN ({marks})", batch):
                card = self._open(key, value)
                if card is not None:  # anything else is a miss: rendered again, and replaced
                    found[key] = card
        return found

    def put_many(self, cards: Mapping[str, RenderedCard]) -> None:
        rows = []
        for key, card in cards.items():
            payload = _encode(card)
            rows.append((key, self._mac(key, payload) + payload))
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO cards (key, value) VALUES (?, ?)", rows)

    def close(self) -> None:
        self._db.close()
