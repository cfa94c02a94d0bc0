"""A self-contained HTML page showing rendered cards with exactly the note type's templates and CSS."""

from __future__ import annotations

import html
import re

from .notetype import BACK_TEMPLATE, FIELDS, FRONT_TEMPLATE
from .organise import source_text
from .render import finish_images, note_css, render_card

__all__ = ["fill_template", "preview_html"]

_SECTION = re.compile(r"\{\{([#^])(\w+)\}\}(.*?)\{\{/\2\}\}", re.S)
_FIELD = re.compile(r"\{\{(\w+)\}\}")


def fill_template(template: str, fields: dict[str, str]) -> str:
    """The subset of Anki's template language flashgen's templates use: fields and sections."""

    def section(m: re.Match) -> str:
        present = bool(fields.get(m.group(2), "").strip())
        return m.group(3) if present == (m.group(1) == "#") else ""

    return _FIELD.sub(lambda m: fields.get(m.group(1), ""), _SECTION.sub(section, template))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flashgen preview</title>
<style>
{css}
/* the preview page itself, not part of the note type */
body.preview {{ margin: 0; padding: 0; background: #eef0f3; font-family: sans-serif; }}
html.night-mode body.preview {{ background: #111; }}
.preview-bar {{ position: sticky; top: 0; z-index: 1; display: flex; gap: 1em; align-items: center; padding: 8px 16px; background: #24292f; color: #fff; font-size: 14px; }}
.preview-bar button {{ font: inherit; padding: 2px 10px; }}
.preview-deck {{ margin: 20px 16px 6px; font: 600 14px sans-serif; color: #57606a; }}
.preview-card {{ margin: 10px 16px 18px; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.25); overflow: hidden; }}
</style>
</head>
<body class="preview">
<div class="preview-bar"><strong>flashgen preview</strong><span>{count} notes</span>
<button type="button" id="theme">Dark</button></div>
{cards}
<script>
document.getElementById("theme").addEventListener("click", function () {{
  var dark = document.documentElement.classList.toggle("night-mode");
  this.textContent = dark ? "Light" : "Dark";
}});
if (location.hash === "#dark") document.getElementById("theme").click();
</script>
</body>
</html>
"""


def preview_html(books, limit: int | None = None) -> str:
    """One page with the back side of every note (front included, as in Anki), deck by deck."""
    out: list[str] = []
    count = 0
    for book in books:
        for chapter in book.chapters:
            out.append(f'<div class="preview-deck">{html.escape(chapter.deck)}</div>')
            for note in chapter.notes:
                if limit is not None and count >= limit:
                    break
                card = render_card(note.title, note.question, note.answer, note.context)
                values = {
                    "Question": finish_images(card.question, {}),
                    "Answer": finish_images(card.answer, {}),
                    "Title": finish_images(card.title, {}),
                    "Context": finish_images(card.context, {}),
                    "Source": html.escape(source_text(note, book, chapter), quote=False),
                }
                assert set(values) == set(FIELDS)
                front = fill_template(FRONT_TEMPLATE, values)
                back = fill_template(BACK_TEMPLATE, {**values, "FrontSide": front})
                out.append(f'<div class="preview-card card">{back}</div>')
                count += 1
    return _PAGE.format(css=note_css(), count=count, cards="\n".join(out))
