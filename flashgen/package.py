"""Notes -> an .apkg file. The only module that imports genanki.

genanki writes the legacy ``collection.anki2`` package that Anki desktop,
AnkiDroid and AnkiMobile all read. What it does not do, this module does:

* each note and its card carry their own modification time (from the lock),
  not one clock reading for all: that is what lets Anki update changed notes
  and skip unchanged ones;
* note, card and deck ids are derived, never taken from the clock;
* the zip is compressed, its entries in a fixed order with a fixed date, so
  the same notes always give the same bytes;
* the file appears atomically (files.py): written beside its target, synced, renamed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import json
import os
import sqlite3
import sys
import tempfile
import types
import zipfile
from dataclasses import dataclass
from typing import Sequence

from .files import write_atomically
from .model import pickled_by_constructor
from .notetype import NOTETYPE_ID, NOTETYPE_NAME, field_configs, template_configs
from .theme import note_css

__all__ = ["PackageNote", "MediaFile", "write_package", "prepare_package", "package_bytes", "deck_id"]


class _ImportedOnUse(types.ModuleType):
    """A module that is imported when one of its names is first used, not before."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:  # still standing in: the real one cannot be imported yet
            raise AttributeError(name)
        return getattr(importlib.import_module(self.__name__), name)


def _import_genanki() -> types.ModuleType:
    """genanki, imported without two imports of its own that flashgen never uses.

    At import, genanki.model and genanki.note import ``cached_property`` (a backport of
    functools.cached_property, whose only addition is support for coroutines: it imports
    asyncio for that, and asyncio imports ssl) and genanki.model imports PyYAML (used only
    for a note type's fields or templates given as YAML text; flashgen gives lists). Of
    genanki's 43 ms of import in a book's build, those took 23 ms and 16 ms, and asyncio
    7.5 MB. So while genanki is imported, ``cached_property`` stands for
    functools.cached_property (genanki decorates plain methods only) and PyYAML is imported
    when genanki first uses it. Either stands in only if nothing imported the real one
    before, and only during genanki's import: an import of either afterwards, by anyone,
    gets the real package. A genanki that fails to import so (one that used PyYAML as it is
    imported) is imported again, with the real ones.
    """
    stand_ins: dict[str, types.ModuleType] = {}
    if "cached_property" not in sys.modules:
        backport = stand_ins["cached_property"] = types.ModuleType("cached_property")
        backport.cached_property = functools.cached_property  # type: ignore[attr-defined]
    if "yaml" not in sys.modules:
        stand_ins["yaml"] = _ImportedOnUse("yaml")
    sys.modules.update(stand_ins)
    try:
        return importlib.import_module("genanki")
    except Exception:  # noqa: BLE001 - a genanki that uses PyYAML as it is imported: imported with the real ones below
        pass
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return importlib.import_module("genanki")


genanki = _import_genanki()

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Deflate was half of packaging at zlib's default level, 6. On a 1.5 MB collection (552 notes),
# best of 5: level 6 29.7 ms and 232 KB, level 3 10.3 ms and 263 KB (13% larger), level 1 9.0 ms
# and 285 KB. Packages stay far under the plain script's (0.11-0.20x its bytes at level 6).
_ZIP_LEVEL = 3


@pickled_by_constructor
@dataclass(frozen=True, slots=True)
class PackageNote:
    guid: str
    fields: tuple[str, ...]  # in FIELDS order, HTML
    tags: tuple[str, ...]
    deck: str
    mod: int  # seconds
    note_id: int  # also used as the card id: one card per note


@pickled_by_constructor
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


def _collection_bytes(notes: Sequence[PackageNote], notetype_mod: int) -> bytes:
    model = _model()
    decks: dict[str, genanki.Deck] = {}
    for due, note in enumerate(notes):
        deck = decks.get(note.deck)
        if deck is None:
            deck = decks[note.deck] = genanki.Deck(deck_id(note.deck), note.deck)
        deck.add_note(_Note(model, note, due))
    # built in memory and taken out whole: no journal, no fsync, no temporary folder
    # (Python 3.10 has no serialize(), so there the database goes through a temporary file)
    in_memory = hasattr(sqlite3.Connection, "serialize")
    with tempfile.TemporaryDirectory(prefix="flashgen-") if not in_memory else contextlib.nullcontext() as workdir:
        db_path = os.path.join(workdir, "collection.anki2") if workdir else ":memory:"
        connection = sqlite3.connect(db_path)
        try:
            package = genanki.Package([decks[name] for name in sorted(decks)])
            package.write_to_db(connection.cursor(), notetype_mod, iter(()))
            connection.commit()  # no VACUUM: it was a third of the packaging time, for a package 5% smaller
            if in_memory:
                return connection.serialize()
        finally:
            connection.close()
        with open(db_path, "rb") as handle:
            return handle.read()


def _zip_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def write_package(path: str, notes: Sequence[PackageNote], media: Sequence[MediaFile], notetype_mod: int) -> int:
    """Write notes (in the given order) and media to an .apkg at ``path`` atomically; returns its size."""
    os.replace(prepare_package(path, package_bytes(notes, media, notetype_mod)), path)
    return os.path.getsize(path)


def package_bytes(notes: Sequence[PackageNote], media: Sequence[MediaFile], notetype_mod: int) -> bytes:
    """The .apkg file for these notes (in the given order) and media, as bytes: a pure function of its arguments.

    Builds run it on worker processes; only the process that owns the output folder writes files.
    """
    collection = _collection_bytes(notes, notetype_mod)

    media = sorted(media, key=lambda m: m.name)
    manifest = json.dumps({str(i): m.name for i, m in enumerate(media)}, sort_keys=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_zip_entry("collection.anki2"), collection, compresslevel=_ZIP_LEVEL)
        archive.writestr(_zip_entry("media"), manifest, compresslevel=_ZIP_LEVEL)
        for i, item in enumerate(media):
            archive.writestr(_zip_entry(str(i)), item.data, compresslevel=_ZIP_LEVEL)
    return buffer.getvalue()


def prepare_package(path: str, data: bytes) -> str:
    """Write package bytes to a temporary file beside ``path`` and return that file's path.

    The caller renames it into place (``os.replace``) or deletes it: a build
    commits all its packages together, or none.
    """
    return write_atomically(path, lambda handle: handle.write(data), commit=False)
