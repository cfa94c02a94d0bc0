"""An independent check for live markup, by the standard library's HTML parser.

flashgen has its own check (flashgen.render.unsafe_markup); tests use this one
so that they do not trust the code they test.
"""

from __future__ import annotations

from html.parser import HTMLParser


class _LiveMarkup(HTMLParser):
    """What a browser would treat as markup, by the standard library's HTML parser
    (independent of flashgen's own check)."""

    ALLOWED = {"a", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
               "i", "img", "li", "ol", "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul"}  # fmt: skip

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.ALLOWED:
            self.found.append(tag)
        for name, value in attrs:
            value = (value or "").strip().lower()
            if name.startswith("on") or name == "style" or name == "srcdoc":
                self.found.append(f"{tag}[{name}]")
            if name in ("href", "src") and not value.startswith(("https://", "http://")) and ":" in value:
                self.found.append(f"{tag}[{name}={value}]")

    def handle_comment(self, data):
        self.found.append("comment")


def live_markup(fragment: str) -> list[str]:
    checker = _LiveMarkup()
    checker.feed(fragment)
    checker.close()
    return checker.found
