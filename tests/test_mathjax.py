"""Every formula of the corpus, typeset by the MathJax Anki desktop ships, as Anki runs it.

Anki's reviewer loads ``/_anki/js/mathjax.js`` (its ``window.MathJax`` config: ``\\(..\\)``
and ``\\[..\\]`` only, ``noerrors`` and ``mathtools`` added, ``textmacros`` removed), then
``/_anki/js/vendor/mathjax/tex-chtml-full.js``, then typesets the card. This test serves
both files from the ``aqt`` wheel at those very paths on 127.0.0.1, so the config is Anki's
byte for byte, and has headless Chromium typeset every math field flashgen writes.

Why the wheel is downloaded here rather than installed: ``aqt`` requires PyQt6 and
PyQt6-WebEngine unconditionally (210 MB of wheels, 540 MB installed), and this test needs 4 MB of JavaScript
from it. The wheel is kept in pytest's cache folder, checked against its hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from flashgen import parse_file, render_card
from flashgen.render import finish_images
from tests.conftest import corpus_files
from tests.test_preview import BROKEN

pytestmark = pytest.mark.mathjax

CHROMIUM = shutil.which("chromium")
# One skip line for the module where the browser is missing; CI installs it (.ci/run), so
# there a missing browser is a failure instead.
if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip("chromium not installed: apt-get install chromium", allow_module_level=True)

# The Anki release the test extra's `anki` backend comes from; PyPI files never change, the hash says so.
AQT = "aqt==26.9.3"
AQT_WHEEL = "aqt-26.9.3-py3-none-any.whl"
AQT_SHA256 = "83d60a2494939128138692435ab9c65579338c6902aaba88606bce6b5ccd22d3"
WEB_JS = "_aqt/data/web/js/"  # served by Anki as /_anki/js/

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

# Runs after Anki's two scripts. Typesets as Anki's reviewer does, then reports from MathJax's
# own tree: TeX errors are 'merror' nodes (the noerrors package keeps the TeX and puts the
# message in data-mjx-error), and an undefined macro is red 'mtext' (the noundefined package,
# part of tex-full): no error node, yet the card shows '\foo' in red.
_CHECK = r"""
const qa = document.getElementById("qa");
function walk(node, found) {
  if (node.isKind("merror")) found.push(node.attributes.get("data-mjx-error") || "merror");
  else if (node.isKind("mtext") && node.attributes.get("mathcolor") === "red") found.push("undefined macro " + node.getText());
  for (const child of node.childNodes || []) if (child && child.isKind) walk(child, found);
}
function leftovers() {
  // delimiters MathJax did not pair (an unbalanced brace hides the closing one), as text
  const texts = document.createTreeWalker(qa, NodeFilter.SHOW_TEXT, n =>
    n.parentElement.closest("mjx-container") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT);
  const out = [];
  for (let n = texts.nextNode(); n; n = texts.nextNode())
    if (/\\[(\[]/.test(n.data)) out.push(n.data.slice(0, 200));
  return out;
}
function report(result) {
  const el = document.createElement("script");
  el.type = "application/json";
  el.id = "flashgen-result";
  el.textContent = JSON.stringify(result).replace(/</g, "\\u003c");
  document.body.appendChild(el);
}
MathJax.startup.promise
  .then(() => { MathJax.typesetClear(); return MathJax.typesetPromise([qa]); })
  .then(() => {
    const errors = [];
    let count = 0;
    for (const item of MathJax.startup.document.math) {
      count++;
      const found = [];
      walk(item.root, found);
      for (const message of found) errors.push({tex: item.math, display: item.display, message});
    }
    const dom = qa.querySelectorAll("mjx-merror").length;
    report({count, errors, dom_errors: dom, leftovers: leftovers()});
  })
  .catch(e => report({failure: String((e && e.stack) || e)}));
"""

# Formulas MathJax is known to reject, each a listed defect of flashgen/formulas.py (none today).
KNOWN_BAD: frozenset[str] = frozenset()


def _aqt_wheel(cache_dir: Path) -> Path:
    """Anki's aqt wheel, downloaded once into pytest's cache (no dependencies: only its files are read)."""
    wheel = cache_dir / AQT_WHEEL
    if not wheel.exists():
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--no-deps", "--only-binary=:all:", "--dest", str(cache_dir), AQT]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not wheel.exists():
            pytest.fail(f"could not download {AQT} (Anki's MathJax) from PyPI: {done.stderr.strip()[-500:]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != AQT_SHA256:
        wheel.unlink()
        pytest.fail(f"{wheel}: sha256 {digest}, expected {AQT_SHA256}; removed, run again")
    return wheel


def _serve_anki_js(wheel: Path, root: Path) -> None:
    """Lay out Anki's mathjax.js and vendored MathJax under root/_anki/js/, where Anki serves them."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n == WEB_JS + "mathjax.js" or n.startswith(WEB_JS + "vendor/mathjax/")]
        assert WEB_JS + "mathjax.js" in names and WEB_JS + "vendor/mathjax/tex-chtml-full.js" in names, names[:5]
        for name in names:
            target = root / "_anki" / "js" / name[len(WEB_JS) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))


def corpus_math_fields() -> list[str]:
    """Every distinct field flashgen writes for the corpus and seeds that holds math, as Anki stores it."""
    fields: set[str] = set()
    for path in corpus_files():
        for card in parse_file(path).cards:
            rendered = render_card(card.title, card.question, card.answer, card.context)
            for field in (rendered.title, rendered.question, rendered.answer, rendered.context):
                stored = finish_images(field, {})
                if "\\(" in stored or "\\[" in stored:
                    fields.add(stored)
    return sorted(fields)


def formula_count(fields: list[str]) -> int:
    return sum(f.count("\\(") + f.count("\\[") for f in fields)


def typeset(fields: list[str], wheel: Path, workdir: Path, chromium: str) -> dict:
    """Typeset the fields in Chromium with Anki's MathJax; MathJax's report as a dict."""
    root = workdir / "site"
    _serve_anki_js(wheel, root)
    cards = "\n".join(f'<div class="field">{field}</div>' for field in fields)
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>mathjax</title></head><body>\n'
        f'<div id="qa">\n{cards}\n</div>\n'
        '<script src="/_anki/js/mathjax.js"></script>\n'
        '<script src="/_anki/js/vendor/mathjax/tex-chtml-full.js"></script>\n'
        f"<script>{_CHECK}</script>\n</body></html>\n"
    )
    (root / "index.html").write_text(page, encoding="utf-8")

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # a request log line per file would bury pytest's output
            pass

    # file:// would not do: Anki's config names an absolute /_anki/ path, which only a server maps.
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        profile = workdir / "profile"
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=60000", "--dump-dom", url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    found = re.search(r'<script type="application/json" id="flashgen-result">(.*?)</script>', done.stdout, re.S)
    assert found, f"no result from the page (chromium exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def anki_mathjax(request, tmp_path_factory):
    if CHROMIUM is None:
        pytest.fail("chromium not installed: .ci/run should have run apt-get install chromium")
    wheel = _aqt_wheel(Path(request.config.cache.mkdir("aqt-wheel")))
    return lambda fields: typeset(fields, wheel, tmp_path_factory.mktemp("mathjax"), CHROMIUM)


def test_anki_mathjax_typesets_every_corpus_formula(anki_mathjax):
    fields = corpus_math_fields()
    expected = formula_count(fields)
    assert expected > 300  # the corpus has math (computational-physics): an empty page proves nothing
    result = anki_mathjax(fields)
    assert "failure" not in result, result
    errors = [e for e in result["errors"] if e["tex"] not in KNOWN_BAD]
    assert errors == [], "MathJax rejects these formulas:\n" + "\n".join(
        f"  {'display' if e['display'] else 'inline'}: {e['tex']!r}: {e['message']}" for e in errors
    )
    assert result["leftovers"] == []
    assert result["count"] == expected, f"MathJax typeset {result['count']} of the {expected} formulas flashgen wrote"
    assert result["dom_errors"] == len(result["errors"])


def test_anki_mathjax_rejects_what_the_preview_shows_in_red(anki_mathjax):
    """The preview's red boxes (tests/test_preview.py) are formulas Anki's MathJax really rejects,
    and this page sees each way it does: an error, an unknown macro, delimiters left as text."""
    fields = sorted(BROKEN)
    result = anki_mathjax(fields)
    rejected = {e["tex"] for e in result["errors"]} | set(result["leftovers"])
    assert len(rejected) == len(fields), rejected
    messages = {e["tex"]: e["message"] for e in result["errors"]}
    assert messages["a^^b"] == "Missing open brace for superscript"
    assert messages["\\foo x"] == "undefined macro \\foo"
    undefined = [e for e in result["errors"] if e["message"].startswith("undefined macro")]
    assert len(undefined) == 2  # red text, not an error node
    assert result["dom_errors"] == len(result["errors"]) - len(undefined)
