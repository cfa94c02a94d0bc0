"""The baseline: flashcard markdown to .apkg the obvious way, as a user would write it in an afternoon.

Regex parsing, mistune with the pygments renderer from mistune's documentation,
one genanki deck per book, genanki's own package writer. No dedupe, no cache.
The benchmark times flashgen against this script in the same run.

usage: python bench/plain.py INPUT_DIR OUTPUT_DIR
"""

import os
import re
import sys

import genanki
import mistune
from pygments import highlight
from pygments.formatters import html
from pygments.lexers import get_lexer_by_name


class HighlightRenderer(mistune.HTMLRenderer):
    def block_code(self, code, info=None):
        if info:
            try:
                lexer = get_lexer_by_name(info.split()[0], stripall=True)
            except Exception:
                lexer = get_lexer_by_name("text")
            formatter = html.HtmlFormatter()
            return highlight(code, lexer, formatter)
        return "<pre><code>" + mistune.escape(code) + "</code></pre>"


markdown = mistune.create_markdown(renderer=HighlightRenderer(escape=True), plugins=["math", "table"])

MODEL = genanki.Model(
    1607392319,
    "Flashcard",
    fields=[{"name": "Question"}, {"name": "Answer"}],
    templates=[{"name": "Card 1", "qfmt": "{{Question}}", "afmt": "{{FrontSide}}<hr id=answer>{{Answer}}"}],
    css=html.HtmlFormatter().get_style_defs(".highlight"),
)

CARD = re.compile(r"####\s*(.*?)\n(.*?):p\s*(.*?)\n\?\?x\n(.*?)\nx\?\?", re.S)
SEPARATOR = re.compile(r"\n---[ \t]*\n")  # cards are matched block by block: over a whole file the
# nested lazy groups backtrack cubically where a block has no match (1.06 s of ai-engineering's 1.9 s)


def main(source, out):
    decks = {}
    for folder, _, names in os.walk(source):
        for name in sorted(names):
            if not name.endswith((".md", ".txt")):
                continue
            text = open(os.path.join(folder, name), encoding="utf-8").read()
            header = re.match(r"# (?:High-Quality )?Flashcards: (.*?) \(Part", text)
            book = header.group(1) if header else folder
            if book not in decks:
                decks[book] = genanki.Deck(abs(hash(book)) % (1 << 30), book)
            cards = (card for block in SEPARATOR.split(text) for card in CARD.findall(block))
            for title, context, question, answer in cards:
                note = genanki.Note(
                    model=MODEL,
                    fields=[markdown("**" + title + "**\n\n" + question), markdown(answer) + markdown(context)],
                    guid=genanki.guid_for(book, question),
                )
                decks[book].add_note(note)
    os.makedirs(out, exist_ok=True)
    for i, deck in enumerate(decks.values()):
        genanki.Package(deck).write_to_file(os.path.join(out, f"deck-{i}.apkg"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
