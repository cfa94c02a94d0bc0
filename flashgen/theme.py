"""The note type's CSS: card layout, code colours from pygments, a light and a night theme.

Apart from render.py so that making it costs pygments' formatter and styles, not mistune and
the lexers; the state check of every build, no-op included, needs only what it is made from.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["note_css", "css_sources", "LIGHT_STYLE", "DARK_STYLE"]

LIGHT_STYLE, DARK_STYLE = "default", "github-dark"
_NIGHT = (".nightMode", ".night_mode", ".night-mode")

_BASE_CSS = """\
.card {
  font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 18px; line-height: 1.5; text-align: left;
  color: #1f2328; background-color: #ffffff;
  margin: 0; padding: 16px;
  overflow-wrap: break-word;
}
.fg { max-width: 46rem; margin: 0 auto; }
.fg-title { font-size: 0.8em; font-weight: 600; letter-spacing: 0.02em; color: #59636e; margin-bottom: 0.4em; }
.fg-question { font-size: 1.1em; font-weight: 600; }
.fg-question p:first-child, .fg-answer p:first-child { margin-top: 0; }
hr#answer { border: none; border-top: 1px solid #d1d9e0; margin: 1em 0; }
.fg-answer { margin-top: 0.5em; }
.fg-context { margin-top: 1.4em; padding: 0.6em 0.9em; border-left: 3px solid #d1d9e0; color: #424a53; font-size: 0.92em; }
.fg-context-label { font-size: 0.75em; font-weight: 700; text-transform: uppercase; letter-spacing: 0.06em; color: #59636e; margin-bottom: 0.3em; }
.fg-source { margin-top: 1.4em; font-size: 0.72em; color: #6e7781; }
.fg-missing-image { color: #9a6700; font-style: italic; }
.fg code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.88em; }
.fg :not(pre) > code { background-color: rgba(175, 184, 193, 0.25); padding: 0.1em 0.35em; border-radius: 4px; }
.fg .highlight { border-radius: 6px; margin: 0.8em 0; max-width: 100%; overflow-x: auto; }
.fg .highlight pre { margin: 0; padding: 0.7em 0.9em; overflow-x: auto; white-space: pre; line-height: 1.4; font-size: 0.82em; -webkit-overflow-scrolling: touch; }
.fg table { border-collapse: collapse; display: block; max-width: 100%; overflow-x: auto; }
.fg th, .fg td { border: 1px solid #d1d9e0; padding: 0.25em 0.6em; }
.fg img { max-width: 100%; height: auto; }
.fg blockquote { margin: 0.6em 0; padding-left: 0.9em; border-left: 3px solid #d1d9e0; color: #59636e; }
.fg mjx-container { overflow-x: auto; overflow-y: hidden; max-width: 100%; }
@media (max-width: 600px) {
  .card { font-size: 16px; padding: 10px; }
  .fg .highlight pre { font-size: 12.5px; padding: 0.55em 0.7em; }
}
"""

_DARK_CARD = "{cards} {{ color: #e6edf3; background-color: #1e1e1e; }}"
_DARK_SCOPED = """\
{scope} .fg-title, {scope} .fg-context-label {{ color: #9198a1; }}
{scope} hr#answer {{ border-top-color: #3d444d; }}
{scope} .fg-context {{ border-left-color: #3d444d; color: #c9d1d9; }}
{scope} .fg-source {{ color: #8b949e; }}
{scope} .fg :not(pre) > code {{ background-color: rgba(110, 118, 129, 0.4); }}
{scope} .fg th, {scope} .fg td {{ border-color: #3d444d; }}
{scope} .fg blockquote {{ border-left-color: #3d444d; color: #9198a1; }}
{scope} .fg a {{ color: #4493f8; }}
{scope} .fg-missing-image {{ color: #d29922; }}
"""


def _pygments_css(style: str, selectors: list[str]) -> str:
    from pygments.formatters import HtmlFormatter

    css = HtmlFormatter(style=style, cssclass="highlight").get_style_defs(selectors)
    # drop the line-number rules pygments adds unscoped: they would restyle every <pre>
    return "\n".join(line for line in css.splitlines() if not line.startswith(("pre {", "td.", "span.linenos")))


def css_sources() -> tuple[str, ...]:
    """What :func:`note_css` is made from, without making it: every constant of this module (its
    rules, style names and night-mode selectors, and any added later), and the version of
    pygments, whose styles give the code colours.

    Making the CSS means loading pygments' formatter and styles (11-15 ms); this costs a version
    lookup. The state check of every build, no-op included, keys on it (state.settings_key).
    """
    from pygments import __version__ as pygments_version

    constants = sorted((name, value) for name, value in globals().items() if not name.startswith("__") and isinstance(value, (str, tuple)))
    return (*(f"{name}={value!r}" for name, value in constants), f"pygments {pygments_version}")


@lru_cache(maxsize=None)
def note_css() -> str:
    """The note type's CSS: card layout, pygments light theme, and a dark theme for night mode.

    Anki desktop marks night mode with ``nightMode night_mode`` on the card and
    ``night-mode`` on ``<html>``; AnkiDroid with ``night_mode nightMode``.
    """
    light = _pygments_css(LIGHT_STYLE, [".fg .highlight"])
    dark = _pygments_css(DARK_STYLE, [f"{night} .fg .highlight" for night in _NIGHT])
    cards = ".card.nightMode, .card.night_mode, .night-mode .card"
    dark_rules = _DARK_CARD.format(cards=cards) + "\n" + "".join(_DARK_SCOPED.format(scope=n) for n in _NIGHT)
    return f"{_BASE_CSS}\n/* code, light */\n{light}\n\n/* night mode */\n{dark_rules}\n/* code, dark */\n{dark}\n"
