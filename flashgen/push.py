"""Keep a running Anki desktop in step with the sources, through AnkiConnect.

The push makes the same packages as ``build``, from the same lock, and hands them to
Anki's own importer (``importPackage``), which matches notes by GUID: pushing and
importing ``.apkg`` files, in any order, never duplicates a note (ankiconnect.py says
why ``addNote`` cannot be used). Then it does what an import never does:

* notes no source gives any more are tagged ``flashgen::removed`` and suspended; they are
  deleted only with ``delete_removed``, and never after a build with errors or no notes;
* with ``move``, cards a fresh build would file elsewhere move there, and the lock pins the
  new deck;
* a note whose fields were edited in Anki since the last push, and whose source changed
  too, is held back with a warning unless ``force``: Anki keeps the user's copy.

Notes are found in Anki by their note ids, which flashgen derives from the lock and Anki
keeps; AnkiConnect shows no GUIDs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Sequence

from .ankiconnect import AnkiConnect
from .build import BuildOptions, BuildReport, build, note_ids
from .changes import KINDS, Change, Changes
from .lockfile import Lock, read_lock, write_lock
from .model import FlashgenError, Severity
from .notetype import FIELDS

__all__ = ["REMOVED_TAG", "PushOptions", "PushReport", "push", "fields_hash"]

REMOVED_TAG = "flashgen::removed"


@dataclass(frozen=True, slots=True)
class PushOptions:
    delete_removed: bool = False
    move: bool = False
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class PushReport:
    changes: Changes  # what the push did, or (dry run) would do, to the live collection
    build: BuildReport
    held_back: tuple[Change, ...] = ()  # edited in Anki since the last push: not overwritten
    deleted: int = 0

    def counts(self) -> dict[str, int]:
        return self.changes.counts()


def fields_hash(values: Sequence[str]) -> str:
    """What the push remembers of a note's fields, to see later whether they were edited in Anki."""
    return hashlib.sha256("\x1f".join(values).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def push(
    paths: Sequence[str],
    options: BuildOptions,
    client: AnkiConnect,
    push_options: PushOptions = PushOptions(),
    say: Callable[[str], None] = lambda line: None,
) -> PushReport:
    """Bring the running Anki behind ``client`` up to date with the sources (see the module docs)."""
    client.version()  # before any work: Anki running, AnkiConnect there, key right
    preview = build(paths, dataclasses.replace(options, write=False))
    lock = read_lock(options.lock_path)
    ids = note_ids({key: s.created for key, s in lock.notes.items()})
    live = _live_fields(client, [ids[c.guid] for kind in ("changed", "reworded") for c in getattr(preview.changes, kind)])
    seen_at = time.time()  # every edit found below was made by now

    edited = []
    for change in preview.changes.changed + preview.changes.reworded:
        pushed = lock.notes[change.guid].pushed
        values = live.get(ids[change.guid])
        if pushed and values is not None and fields_hash(values) != pushed:
            edited.append(change)
    for change in edited:
        say(f"{change.book} › {change.question}: edited in Anki since the last push" + (
            "; overwritten (--force)" if push_options.force else "; kept as it is in Anki (--force overwrites)"
        ))
    held_back = () if push_options.force else tuple(edited)
    if edited and push_options.force and options.build_time is None:
        # Anki takes an imported note only if it is newer than its own, to the second: an edit
        # made in this very second would win over the overwrite. Let the clock pass it.
        time.sleep(max(0.0, int(seen_at) + 1 - time.time()))

    if push_options.dry_run:
        return PushReport(_live_changes(preview.changes, client, ids, held_back), preview, held_back)

    with tempfile.TemporaryDirectory(prefix="flashgen-push-") as folder:
        hold = frozenset(c.guid for c in held_back)
        report = build(paths, dataclasses.replace(options, out_dir=folder, split="none", hold_back=hold))
        if report.refused:
            return PushReport(Changes(), report, held_back)
        for package in report.written:
            client.import_package(package)

    lock = read_lock(options.lock_path)  # as this push's build left it
    ids = note_ids({key: s.created for key, s in lock.notes.items()})
    deleted = _retire_removed(client, report, ids, push_options, say)
    moved_to = _move(client, report.changes, ids) if push_options.move else {}
    _remember(options.lock_path, lock, client, ids, report.changes, held_back, moved_to)
    changes = report.changes if push_options.move else dataclasses.replace(report.changes, moved=())
    return PushReport(changes, report, held_back, deleted)


def _existing(client: AnkiConnect, note_ids_: Sequence[int]) -> dict[int, dict]:
    """AnkiConnect's notesInfo of those notes that exist in Anki, by note id."""
    return {info["noteId"]: info for info in (client.notes_info(list(note_ids_)) if note_ids_ else []) if info}


def _live_fields(client: AnkiConnect, note_ids_: Sequence[int]) -> dict[int, list[str]]:
    """The field values (in the note type's order) of those notes that exist in Anki."""
    found = {}
    for note_id, info in _existing(client, note_ids_).items():
        fields = info["fields"]
        found[note_id] = [fields[name]["value"] for name in sorted(fields, key=lambda n: fields[n]["order"])]
    return found


def _retire_removed(client: AnkiConnect, report: BuildReport, ids: dict[str, int], options: PushOptions, say) -> int:
    """Tag and suspend notes no source gives any more; delete them only when asked and safe."""
    removed = [ids[c.guid] for c in report.changes.removed]
    present = _existing(client, removed)
    if not present:
        return 0
    note_list = sorted(present)
    client.add_tags(note_list, [REMOVED_TAG])
    client.suspend(sorted(card for info in present.values() for card in info["cards"]))
    if not options.delete_removed:
        return 0
    if report.count(Severity.ERROR) or report.notes == 0:
        raise FlashgenError(
            "--delete-removed refused: this build found errors or no notes at all, so 'removed' may only mean "
            "unreadable; the notes stay tagged flashgen::removed and suspended"
        )
    say(f"deleting {len(note_list)} removed note{'s' if len(note_list) != 1 else ''} from Anki")
    client.delete_notes(note_list)
    return len(note_list)


def _move(client: AnkiConnect, changes: Changes, ids: dict[str, int]) -> dict[str, str]:
    """Move the cards of notes a fresh build files elsewhere; returns key -> new deck."""
    moved = {}
    present = _existing(client, [ids[c.guid] for c in changes.moved])
    for change in changes.moved:
        info = present.get(ids[change.guid])
        if info is not None:
            client.change_deck(info["cards"], changes.fresh_decks[change.guid])
            moved[change.guid] = changes.fresh_decks[change.guid]
    return moved


def _remember(lock_path: str, lock: Lock, client, ids, changes: Changes, held_back, moved_to: dict[str, str]) -> None:
    """Record in the lock what this push left in Anki: fields as now stored, and moved cards' decks."""
    held = {c.guid for c in held_back}
    # read back what may differ from what the lock remembers: everything this push changed,
    # and notes no push has recorded yet (imported from a package, or from an older flashgen)
    keys = [c.guid for kind in ("new", "changed", "reworded", "moved") for c in getattr(changes, kind)]
    keys += [c.guid for c in changes.unchanged if lock.notes.get(c.guid) and not lock.notes[c.guid].pushed]
    keys = [k for k in keys if k not in held and k in lock.notes]
    live = _live_fields(client, [ids[k] for k in keys])
    notes = dict(lock.notes)
    for key in keys:
        values = live.get(ids[key])
        update = {}
        if values is not None and len(values) == len(FIELDS):
            update["pushed"] = fields_hash(values)
        if key in moved_to:
            update["deck"] = moved_to[key]
        if update:
            notes[key] = dataclasses.replace(notes[key], **update)
    if notes != dict(lock.notes):
        write_lock(lock_path, dataclasses.replace(lock, notes=MappingProxyType(notes)))


def _live_changes(changes: Changes, client: AnkiConnect, ids: dict[str, int], held_back) -> Changes:
    """A diff against the live collection: what is not in Anki at all is new, removed notes only
    where Anki still has them, held-back notes unchanged."""
    every = [c for kind in KINDS for c in getattr(changes, kind)]
    present = _existing(client, [ids[c.guid] for c in every if c.guid in ids])
    held = {c.guid for c in held_back}
    kinds: dict[str, list[Change]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        for change in getattr(changes, kind):
            in_anki = change.guid in ids and ids[change.guid] in present
            if kind == "removed":
                if in_anki and REMOVED_TAG not in present[ids[change.guid]]["tags"]:
                    kinds["removed"].append(change)
            elif not in_anki:
                kinds["new"].append(change)
            elif change.guid in held:
                kinds["unchanged"].append(change)
            else:
                kinds[kind].append(change)
    return Changes(**{kind: tuple(sorted(v)) for kind, v in kinds.items()}, fresh_decks=changes.fresh_decks)
