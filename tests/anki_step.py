"""One step against an Anki collection, run by whichever Python has the `anki` version under test.

tests/test_anki_versions.py runs this file with an older `anki` wheel's own interpreter (and
with the suite's), so it uses only the standard library and `anki` APIs that 24.06 already has.

    python anki_step.py COLLECTION REQUEST_JSON

REQUEST_JSON: {"import": [paths], "merge_notetypes": bool, "review": {"deck": name, "count": n},
"notetype_id": id}; every key optional. Prints one JSON object: the summed import counts,
the reviewed card ids, and the state a test checks: every flashgen note's GUID with its mod and
fields, the note types whose name starts with "flashgen", and every card's scheduling.
"""

from __future__ import annotations

import json
import os
import sys
import time

from anki.collection import Collection
from anki.import_export_pb2 import ImportAnkiPackageOptions, ImportAnkiPackageRequest
from anki.scheduler.v3 import CardAnswer

KINDS = ("new", "updated", "duplicate", "conflicting", "missing_notetype")


def main(path: str, request: dict) -> dict:
    col = Collection(path)
    try:
        result: dict = {"counts": dict.fromkeys(KINDS, 0), "reviewed": []}
        started = int(time.time())
        for package in request.get("import", []):
            options = ImportAnkiPackageOptions(merge_notetypes=request.get("merge_notetypes", False))
            log = col.import_anki_package(ImportAnkiPackageRequest(package_path=package, options=options)).log
            for kind in KINDS:
                result["counts"][kind] += len(getattr(log, kind))
        result["import_started"], result["import_ended"] = started, int(time.time())
        if "review" in request:
            col.decks.select(col.decks.id_for_name(request["review"]["deck"]))
            for _ in range(request["review"]["count"]):
                queued = col.sched.get_queued_cards(fetch_limit=1).cards[0]
                card = col.get_card(queued.card.id)
                card.start_timer()
                col.sched.answer_card(col.sched.build_answer(card=card, states=queued.states, rating=CardAnswer.GOOD))
                result["reviewed"].append(card.id)
        ntid = request.get("notetype_id")
        result["notes"] = {
            guid: {"id": nid, "mod": mod, "fields": flds.split("\x1f")}
            for nid, guid, mod, flds in col.db.all("select id, guid, mod, flds from notes where mid = ?", ntid)
        }
        result["notetypes"] = [
            {"id": nt.id, "name": nt.name, "fields": [f["name"] for f in col.models.get(nt.id)["flds"]]}
            for nt in col.models.all_names_and_ids()
            if nt.name.startswith("flashgen")
        ]
        result["cards"] = {str(cid): [reps, ivl, due, did] for cid, reps, ivl, due, did in col.db.all("select id, reps, ivl, due, did from cards")}
        result["revlog"] = col.db.scalar("select count() from revlog")
        result["version"] = __import__("anki.buildinfo").buildinfo.version
        return result
    finally:
        col.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
