"""Notes -> an .apkg file. The only module that imports genanki.

genanki writes the legacy ``collection.anki2`` package that Anki desktop,
AnkiDroid and AnkiMobile all read. What it does not do, this module does:

* each note and its card carry their own modification time (from the lock),
  not one clock reading for all: that is what lets Anki update changed notes
  and skip unchanged ones;
* note, card and deck ids are derived, never taken from the clock;
* the zip is compressed, its entries in a fixed order with a fixed date, so
  the same notes always give the same bytes;
* the file appears atomically: written beside its target, synced, renamed.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import secrets
import sqlite3
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Sequence

import genanki

from .notetype import NOTETYPE_ID, NOTETYPE_NAME, field_configs, template_configs
from .render import note_css

__all__ = ["PackageNote", "MediaFile", "write_package", "prepare_package", "package_bytes", "deck_id", "write_atomically", "open_no_follow"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class PackageNote:
    guid: str
    fields: tuple[str, ...]  # in FIELDS order, HTML
    tags: tuple[str, ...]
    deck: str
    mod: int  # seconds
    note_id: int  # also used as the card id: one card per note


@dataclass(frozen=True, slots=True)
class MediaFile:
    name: str  # the name fields refer to
    data: bytes


def deck_id(name: str) -> int:
    """A deck's id from its name: Anki matches decks by name, so only stability matters here."""
    digest = hashlib.sha256(("flashgen-deck\x1f" + name).encode("utf-8")).digest()
    return (1 << 40) + int.from_bytes(digest[:6], "big")  # well clear of 1, the Default deck


class _Note(genanki.Note):
    """A genanki note that writes its own modification time and ids."""

    def __init__(self, model: genanki.Model, note: PackageNote, due: int):
        super().__init__(model=model, fields=list(note.fields), tags=list(note.tags), guid=note.guid, due=due)
        self._mod = note.mod
        self._id = note.note_id

    def write_to_db(self, cursor, timestamp, deck_id, id_gen):  # noqa: D102 - genanki's hook
        # genanki asks id_gen for the note id, then one id per card
        super().write_to_db(cursor, self._mod, deck_id, iter((self._id, self._id)))


def _model() -> genanki.Model:
    return genanki.Model(
        NOTETYPE_ID,
        NOTETYPE_NAME,
        # genanki writes these dicts into the note type JSON as they are, so each field and the
        # template carry their fixed id: what Anki's note type merge matches them by
        fields=field_configs(),
        templates=template_configs(),
        css=note_css(),
        sort_field_index=0,
    )


def _collection_bytes(notes: Sequence[PackageNote], notetype_mod: int, workdir: str) -> bytes:
    model = _model()
    decks: dict[str, genanki.Deck] = {}
    for due, note in enumerate(notes):
        deck = decks.get(note.deck)
        if deck is None:
            deck = decks[note.deck] = genanki.Deck(deck_id(note.deck), note.deck)
        deck.add_note(_Note(model, note, due))
    db_path = os.path.join(workdir, "collection.anki2")
    connection = sqlite3.connect(db_path)
    try:
        cursor = connection.cursor()
        package = genanki.Package([decks[name] for name in sorted(decks)])
        package.write_to_db(cursor, notetype_mod, iter(()))
        connection.commit()
        connection.execute("VACUUM")
    finally:
        connection.close()
    with open(db_path, "rb") as handle:
        return handle.read()


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


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
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
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


def write_package(path: str, notes: Sequence[PackageNote], media: Sequence[MediaFile], notetype_mod: int) -> int:
    """Write notes (in the given order) and media to an .apkg at ``path`` atomically; returns its size."""
    os.replace(prepare_package(path, package_bytes(notes, media, notetype_mod)), path)
    return os.path.getsize(path)


def package_bytes(notes: Sequence[PackageNote], media: Sequence[MediaFile], notetype_mod: int) -> bytes:
    """The .apkg file for these notes (in the given order) and media, as bytes: a pure function of its arguments.

    Builds run it on worker processes; only the process that owns the output folder writes files.
    """
    with tempfile.TemporaryDirectory(prefix="flashgen-") as workdir:
        collection = _collection_bytes(notes, notetype_mod, workdir)

    media = sorted(media, key=lambda m: m.name)
    manifest = json.dumps({str(i): m.name for i, m in enumerate(media)}, sort_keys=True)
    buffer = io.BytesIO()
    # zlib's default level 6 (entries carry no level of their own): on a 1.5 MB collection level 9
    # saves 1.3% of the bytes for twice the time, level 1 is 2.4x faster but 23% larger
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_zip_entry("collection.anki2"), collection)
        archive.writestr(_zip_entry("media"), manifest)
        for i, item in enumerate(media):
            archive.writestr(_zip_entry(str(i)), item.data)
    return buffer.getvalue()


def prepare_package(path: str, data: bytes) -> str:
    """Write package bytes to a temporary file beside ``path`` and return that file's path.

    The caller renames it into place (``os.replace``) or deletes it: a build
    commits all its packages together, or none.
    """
    return write_atomically(path, lambda handle: handle.write(data), commit=False)
