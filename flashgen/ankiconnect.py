"""A small client for AnkiConnect, the add-on that lets programs drive a running Anki desktop.

AnkiConnect (API version 6) takes one JSON request per HTTP POST,
``{"action": ..., "version": 6, "params": {...}, "key": ...}``, and answers
``{"result": ..., "error": ...}``. This module speaks it with ``urllib`` alone and turns every
way that can fail into one :class:`~flashgen.model.FlashgenError` naming the cause and the fix.

How notes get into Anki: ``importPackage``, never ``addNote``
--------------------------------------------------------------
``addNote``/``addNotes`` cannot set a note's GUID: Anki gives each a random one, so a note
added that way and the same note imported later from a flashgen package would be two notes,
and every later import would duplicate it again. ``importPackage`` hands the ``.apkg`` to
Anki's own importer, which matches notes by GUID. Measured with Anki desktop 26.09.3 and the
vendored AnkiConnect (``tests/test_ankiconnect.py`` repeats each of these on every run):

* importing the seeds package (53 notes) through ``importPackage`` puts every note in its
  chapter deck; after Anki quits, ``collection.anki2`` holds exactly the package's GUIDs,
  note ids and note ``mod`` values. Importing the same package again adds nothing.
* a rebuild with one answer changed (so that note's ``mod`` is newer) updates that note in
  place: same note id, same card id, the card's deck, reps, queue and review log untouched,
  and the note's ``mod`` is the package's, not the import time.
* a package whose notes are *older* than the collection's changes nothing (Anki's
  "update if newer"), and neither does one with equal ``mod``.
* in Anki 26.09, AnkiConnect's ``importPackage`` runs the same importer as File > Import, with
  ``merge_notetypes``, ``with_scheduling`` and ``with_deck_configs`` on; a deck option the user
  changed (new cards a day of the Default preset) survived the import. It answers ``True``
  only: no counts of new or updated notes, so whoever imports compares ``findNotes`` /
  ``notesInfo`` before and after.

* because ``merge_notetypes`` is on, a package whose note type gained a field is merged into
  the collection's note type (no "conflicting" copy, as File > Import makes by default), but
  the merge stamps every note of that type with the current time, so the package's notes are
  then older and skipped: the new field stays empty (measured with the ``anki`` backend and
  AnkiConnect's options). A note type change is a migration the push must do itself.

``notesInfo`` shows neither a note's GUID nor its ``mod`` in this AnkiConnect version, and
Anki's search has no ``guid:``; flashgen's note ids, which Anki keeps unless they collide,
are the handle a running Anki gives back.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from http.client import HTTPException
from typing import Any

from .model import FlashgenError

__all__ = ["API_VERSION", "DEFAULT_URL", "AnkiConnect", "error_message", "read_reply"]

DEFAULT_URL = "http://127.0.0.1:8765"
API_VERSION = 6
DEFAULT_TIMEOUT = 30.0  # seconds; an import of a large deck takes a few

_START = "start Anki desktop with the AnkiConnect add-on, or pass --anki-connect URL"
_INSTALL = "install the AnkiConnect add-on in Anki (Tools > Add-ons > Get Add-ons, code 2055492159) and restart Anki"
_UPDATE = "update the AnkiConnect add-on (Tools > Add-ons > Check for Updates) and restart Anki"

# AnkiConnect reports every failure as the text of a Python exception; these are the ones
# whose cure lies with the user rather than with flashgen.
_KNOWN_ERRORS = {
    "valid api key must be provided": (
        "AnkiConnect refused the API key: give flashgen the apiKey set in AnkiConnect's config "
        "(Tools > Add-ons > AnkiConnect > Config)"
    ),
    "unsupported action": "AnkiConnect does not know the action {action!r}: " + _UPDATE,
    "collection is not available": (
        "Anki has no collection open: open a profile in Anki desktop (close the profile window) and try again"
    ),
}


def error_message(url: str, action: str, error: str) -> str:
    """The one-line message for an ``error`` AnkiConnect answered to ``action`` at ``url``."""
    known = _KNOWN_ERRORS.get(error.strip())
    if known is not None:
        return f"{url}: {known.format(action=action)}"
    return f"{url}: AnkiConnect {action} failed: {error.strip()}"


def read_reply(url: str, action: str, body: bytes) -> Any:
    """The result in an AnkiConnect reply body, or FlashgenError with its cause and fix."""
    try:
        reply = json.loads(body)
    except ValueError:
        reply = None
    return _result(url, action, reply)


def _result(url: str, action: str, reply: Any) -> Any:
    if isinstance(reply, int) and not isinstance(reply, bool) and action == "version":
        # AnkiConnect before API version 5 answers with the bare result, no envelope.
        return reply
    if not isinstance(reply, dict) or set(reply) != {"result", "error"}:
        raise FlashgenError(f"{url} answers HTTP but not as AnkiConnect version {API_VERSION} does: {_INSTALL}")
    if reply["error"] is not None:
        raise FlashgenError(error_message(url, action, str(reply["error"])))
    return reply["result"]


def _request(action: str, params: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"action": action, "version": API_VERSION, "params": dict(params)}
    if key is not None:
        request["key"] = key
    return request


class AnkiConnect:
    """A connection to AnkiConnect at ``url``; every call is one HTTP request."""

    def __init__(self, url: str = DEFAULT_URL, key: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not url.startswith(("http://", "https://")):
            raise FlashgenError(f"{url}: not an AnkiConnect address; give one like {DEFAULT_URL}")
        self.url = url
        self.key = key
        self.timeout = timeout
        # AnkiConnect listens on the user's own machine: an http_proxy set for the web must not
        # carry these requests off to a proxy that cannot reach 127.0.0.1.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        return f"AnkiConnect({self.url!r}, key={'***' if self.key else None}, timeout={self.timeout})"

    def call(self, action: str, **params: Any) -> Any:
        """Run one AnkiConnect action and return its result."""
        return read_reply(self.url, action, self._post(action, _request(action, params, self.key)))

    def multi(self, actions: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Any]:
        """Run ``(action, params)`` pairs in one request; their results, in order.

        The first action that fails raises, naming itself; AnkiConnect has run the others
        (there is no transaction), so a caller that needs all-or-nothing checks first.
        """
        requests = [_request(action, params, self.key) for action, params in actions]
        replies = self.call("multi", actions=requests)
        if not isinstance(replies, list) or len(replies) != len(requests):
            raise FlashgenError(f"{self.url}: AnkiConnect multi answered {len(requests)} actions wrongly: {_UPDATE}")
        return [
            _result(self.url, request["action"], reply)
            for request, reply in zip(requests, replies)
        ]

    def version(self) -> int:
        """AnkiConnect's API version; FlashgenError if it is older than the 6 flashgen speaks."""
        found = self.call("version")
        if not isinstance(found, int) or found < API_VERSION:
            raise FlashgenError(
                f"{self.url}: AnkiConnect speaks API version {found}, flashgen needs {API_VERSION}: {_UPDATE}"
            )
        return found

    # The helpers below are the actions a push needs, with Python names and types.

    def import_package(self, path: str | os.PathLike[str]) -> None:
        """Import an ``.apkg`` as File > Import does: notes matched by GUID, updated if newer.

        The path is made absolute here: AnkiConnect reads a relative one from the profile's
        media folder. It must name a file on the machine Anki runs on.
        """
        if self.call("importPackage", path=os.path.abspath(os.fspath(path))) is not True:
            raise FlashgenError(error_message(self.url, "importPackage", "collection is not available"))

    def find_notes(self, query: str) -> list[int]:
        """Note ids matching an Anki search, e.g. ``"tag:flashgen::book::fluent-python"``."""
        return self.call("findNotes", query=query)

    def notes_info(self, note_ids: Sequence[int]) -> list[dict[str, Any]]:
        """noteId, modelName, tags, fields (name -> {value, order}) and card ids per note; {} if gone."""
        return self.call("notesInfo", notes=list(note_ids))

    def cards_info(self, card_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Per card: deckName, note, queue (-1 suspended), type, interval, reps, lapses, due, mod."""
        return self.call("cardsInfo", cards=list(card_ids))

    def update_fields(self, note_id: int, fields: Mapping[str, str]) -> None:
        """Set some fields of one note, and check that Anki really changed them.

        AnkiConnect reports success but changes nothing while the note is open in Anki's
        browser, so the note is read back in the same request.
        """
        _, (info,) = self.multi(
            [("updateNoteFields", {"note": {"id": note_id, "fields": dict(fields)}}), ("notesInfo", {"notes": [note_id]})]
        )
        stored = {name: value["value"] for name, value in info.get("fields", {}).items()}
        if any(stored.get(name) != value for name, value in fields.items()):
            raise FlashgenError(
                f"{self.url}: Anki did not change note {note_id}: it is probably open in Anki's browser "
                "or editor; close that window and try again"
            )

    def add_tags(self, note_ids: Sequence[int], tags: Sequence[str]) -> None:
        """Add tags (Anki tags hold no spaces) to notes."""
        self.call("addTags", notes=list(note_ids), tags=" ".join(tags))

    def suspend(self, card_ids: Sequence[int]) -> bool:
        """Suspend cards; False if every one was suspended already."""
        return bool(self.call("suspend", cards=list(card_ids)))

    def delete_notes(self, note_ids: Sequence[int]) -> None:
        """Delete notes and their cards, review history included: Anki's undo is the only way back."""
        self.call("deleteNotes", notes=list(note_ids))

    def change_deck(self, card_ids: Sequence[int], deck: str) -> None:
        """Move cards to a deck, created if missing."""
        self.call("changeDeck", cards=list(card_ids), deck=deck)

    def store_media(self, name: str, data: bytes) -> str:
        """Write a file into the collection's media folder; the name Anki stored it under."""
        return self.call("storeMediaFile", filename=name, data=base64.b64encode(data).decode("ascii"))

    def deck_names(self) -> list[str]:
        return self.call("deckNames")

    def model_names(self) -> list[str]:
        return self.call("modelNames")

    def _post(self, action: str, request: Mapping[str, Any]) -> bytes:
        http = urllib.request.Request(
            self.url, data=json.dumps(request).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(http, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response; left open it warns
            raise FlashgenError(f"{self.url} answers HTTP {exc.code}, not as AnkiConnect does: {_INSTALL}") from None
        except (TimeoutError, socket.timeout):
            raise FlashgenError(self._timed_out(action)) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise FlashgenError(self._timed_out(action)) from None
            if isinstance(reason, ConnectionRefusedError):
                raise FlashgenError(f"{self.url}: nothing is listening (is Anki running?): {_START}") from None
            raise FlashgenError(f"{self.url}: cannot connect ({_reason(reason)}): {_START}") from None
        except (HTTPException, ConnectionError) as exc:
            # Something listens, but closed the connection or spoke other than HTTP.
            raise FlashgenError(f"{self.url} does not answer as AnkiConnect does ({_reason(exc)}): {_INSTALL}") from None

    def _timed_out(self, action: str) -> str:
        return (
            f"{self.url}: Anki did not answer {action} within {self.timeout:g} s: it may be busy (syncing, "
            "importing) or showing a dialog; wait, close the dialog and try again"
        )


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
