"""The note type every flashgen note uses: a contract with every collection it was imported into.

Anki matches a note type by id; if the field or template names of an incoming
note type differ from the one in the collection, Anki's default import creates
a second note type ("flashgen: Question/Answer+") and the notes land as
"conflicting" instead of being updated. So the id, the field names and their
order do not change lightly. Template wording and CSS may change: the lock file
moves the note type's modification time when they do, and Anki then takes the
new version.

When fields or templates must change, the import's "Merge note types" option
(Anki 23.10 and later) merges the package's note type into the collection's. It
matches a field or template by its ``id`` when both sides have one, else by
name; so every field and the template carry a fixed id (``FIELD_IDS``,
``TEMPLATE_ID``), and a renamed field is the same field, content and all, not a
new empty one beside the old. The README says what a user does on such a change.
"""

from __future__ import annotations

import hashlib

from .theme import css_sources, note_css

__all__ = [
    "NOTETYPE_ID",
    "NOTETYPE_NAME",
    "FIELDS",
    "FIELD_IDS",
    "TEMPLATE_NAME",
    "TEMPLATE_ID",
    "FRONT_TEMPLATE",
    "BACK_TEMPLATE",
    "stable_id",
    "field_configs",
    "template_configs",
    "notetype_hash",
    "notetype_sources_hash",
]

NOTETYPE_ID = 1732719034127  # fixed forever
NOTETYPE_NAME = "flashgen: Question/Answer"
FIELDS = ("Question", "Answer", "Title", "Context", "Source")  # Question first: Anki sorts and checks duplicates on it

# Fixed forever, whatever a field or the template is later called: each is stable_id(kind, the
# name it had when its id was given). A renamed field keeps its id; a new field gets stable_id
# of its first name; an id is never reused.
FIELD_IDS = {
    "Question": 9161167673293368966,
    "Answer": 3397487936735511676,
    "Title": 8332192167571751065,
    "Context": 3131342022415059314,
    "Source": 5641992672541293973,
}
TEMPLATE_NAME = "Card"
TEMPLATE_ID = 1131622534068090693

FRONT_TEMPLATE = """\
<div class="fg fg-front">
{{#Title}}<div class="fg-title">{{Title}}</div>{{/Title}}
<div class="fg-question">{{Question}}</div>
</div>"""

BACK_TEMPLATE = """\
{{FrontSide}}
<hr id="answer">
<div class="fg fg-back">
<div class="fg-answer">{{Answer}}</div>
{{#Context}}<div class="fg-context"><div class="fg-context-label">Background</div>{{Context}}</div>{{/Context}}
{{#Source}}<div class="fg-source">{{Source}}</div>{{/Source}}
</div>"""


def stable_id(kind: str, name: str) -> int:
    """The id a new field (``kind`` "field") or template ("template") called ``name`` gets:
    the first 63 bits of sha256("flashgen <kind> <name>"), a positive i64 as Anki stores them."""
    digest = hashlib.sha256(f"flashgen {kind} {name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def field_configs() -> list[dict]:
    """The note type's fields as the legacy note type JSON (``flds``) holds them, ids included."""
    return [{"name": name, "id": FIELD_IDS[name]} for name in FIELDS]


def template_configs() -> list[dict]:
    """The note type's one card template as the legacy JSON (``tmpls``) holds it, id included."""
    return [{"name": TEMPLATE_NAME, "id": TEMPLATE_ID, "qfmt": FRONT_TEMPLATE, "afmt": BACK_TEMPLATE}]


def notetype_hash() -> str:
    """Changes exactly when what Anki stores for the note type changes."""
    return _digest(note_css())


def notetype_sources_hash() -> str:
    """Changes whenever :func:`notetype_hash` can (with flashgen's version beside it), made from what
    the note type's CSS is made from rather than from the CSS itself: 11-15 ms less for every build's
    state check, a tenth of a no-op rebuild of one book. It changes also when pygments is upgraded
    without its styles changing: one build more, of the same bytes."""
    return _digest(*css_sources())


def _digest(*css: str) -> str:
    ids = [str(FIELD_IDS[name]) for name in FIELDS] + [TEMPLATE_NAME, str(TEMPLATE_ID)]
    payload = "\x1f".join((NOTETYPE_NAME, *FIELDS, *ids, FRONT_TEMPLATE, BACK_TEMPLATE, *css))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
