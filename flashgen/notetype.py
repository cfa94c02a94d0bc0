"""The note type every flashgen note uses: a contract with every collection it was imported into.

Anki matches a note type by id; if the fields or templates of an incoming note
type differ in shape from the one in the collection, Anki creates a second
note type and the notes land as "conflicting" instead of being updated. So
the id, the field names and their order never change. Template wording and
CSS may change: the lock file moves the note type's modification time when
they do, and Anki then takes the new version.
"""

from __future__ import annotations

import hashlib

from .render import note_css

__all__ = ["NOTETYPE_ID", "NOTETYPE_NAME", "FIELDS", "FRONT_TEMPLATE", "BACK_TEMPLATE", "notetype_hash"]

NOTETYPE_ID = 1732719034127  # fixed forever
NOTETYPE_NAME = "flashgen: Question/Answer"
FIELDS = ("Question", "Answer", "Title", "Context", "Source")  # Question first: Anki sorts and checks duplicates on it

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


def notetype_hash() -> str:
    """Changes exactly when what Anki stores for the note type changes."""
    payload = "\x1f".join((NOTETYPE_NAME, *FIELDS, FRONT_TEMPLATE, BACK_TEMPLATE, note_css()))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
