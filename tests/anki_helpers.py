"""Opening built decks in the real Anki backend (the `anki` package from PyPI)."""

from __future__ import annotations

import os
from contextlib import contextmanager

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest
from anki.scheduler.v3 import CardAnswer

from flashgen.notetype import NOTETYPE_ID


@contextmanager
def fresh_collection(folder):
    os.makedirs(folder, exist_ok=True)
    col = Collection(os.path.join(folder, "collection.anki2"))
    try:
        yield col
    finally:
        col.close()


def import_all(col, paths):
    """Import packages the way Anki's import dialog does by default; returns summed log counts."""
    totals = {"new": 0, "updated": 0, "duplicate": 0, "conflicting": 0, "missing_notetype": 0}
    for path in paths:
        log = col.import_anki_package(
            ImportAnkiPackageRequest(package_path=os.fspath(path), options=ImportAnkiPackageOptions())
        ).log
        for key in totals:
            totals[key] += len(getattr(log, key))
    return totals


def flashgen_notes(col):
    return [col.get_note(nid) for nid in col.find_notes(f"mid:{NOTETYPE_ID}")]


def review(col, deck_name, count):
    """Answer `count` new cards of a deck 'Good'; returns their ids."""
    col.decks.select(col.decks.id_for_name(deck_name))
    reviewed = []
    for _ in range(count):
        queued = col.sched.get_queued_cards(fetch_limit=1).cards[0]
        card = col.get_card(queued.card.id)
        card.start_timer()
        col.sched.answer_card(col.sched.build_answer(card=card, states=queued.states, rating=CardAnswer.GOOD))
        reviewed.append(card.id)
    return reviewed
