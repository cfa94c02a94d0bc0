"""flashgen.ankiconnect's errors without Anki: pure functions, then real sockets and servers
that are not AnkiConnect (a closed port, http.server, a listener that never answers).

The round trips with the real Anki desktop are in tests/test_ankiconnect.py.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from contextlib import closing, contextmanager

import pytest

from flashgen.ankiconnect import AnkiConnect, error_message, read_reply
from flashgen.model import FlashgenError

URL = "http://127.0.0.1:8765"
KEY_ERROR = (
    "AnkiConnect refused the API key: give flashgen the apiKey set in AnkiConnect's config "
    "(Tools > Add-ons > AnkiConnect > Config)"
)




def test_error_message_names_cause_and_fix():
    assert error_message(URL, "version", "valid api key must be provided") == f"{URL}: {KEY_ERROR}"
    assert "update the AnkiConnect add-on" in error_message(URL, "answerCards", "unsupported action")
    assert "'answerCards'" in error_message(URL, "answerCards", "unsupported action")
    assert "open a profile" in error_message(URL, "findNotes", "collection is not available")
    assert error_message(URL, "deleteNotes", "boom") == f"{URL}: AnkiConnect deleteNotes failed: boom"


def test_read_reply():
    assert read_reply(URL, "version", b'{"result": 6, "error": null}') == 6
    assert read_reply(URL, "version", b"4") == 4  # AnkiConnect before API 5: no envelope
    for body in (b"<html>hello</html>", b"AnkiConnect v.6", b'{"result": 1}', b"[]"):
        with pytest.raises(FlashgenError, match="not as AnkiConnect version 6 does: install the AnkiConnect add-on"):
            read_reply(URL, "version", body)
    with pytest.raises(FlashgenError, match="refused the API key"):
        read_reply(URL, "findNotes", b'{"result": null, "error": "valid api key must be provided"}')


def test_url_must_be_http():
    with pytest.raises(FlashgenError, match="not an AnkiConnect address"):
        AnkiConnect("127.0.0.1:8765")


# --- Real sockets, no Anki ------------------------------------------------------------------


def test_closed_port_says_start_anki():
    with closing(socket.socket()) as probe:  # a port just free: nothing listens there
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(FlashgenError) as caught:
        AnkiConnect(url).version()
    assert str(caught.value) == (
        f"{url}: nothing is listening (is Anki running?): "
        "start Anki desktop with the AnkiConnect add-on, or pass --anki-connect URL"
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test output is not the place for an access log
        pass


@contextmanager
def serving(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_web_server_that_is_not_ankiconnect(tmp_path):
    # http.server serving a folder answers a POST with 501: HTTP, but not AnkiConnect.
    with serving(lambda *a, **k: _Quiet(*a, directory=str(tmp_path), **k)) as url:
        with pytest.raises(FlashgenError) as caught:
            AnkiConnect(url).version()
    assert str(caught.value) == (
        f"{url} answers HTTP 501, not as AnkiConnect does: install the AnkiConnect add-on in Anki "
        "(Tools > Add-ons > Get Add-ons, code 2055492159) and restart Anki"
    )


def test_ankiconnect_too_old():
    class Old(_Quiet):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"result": 5, "error": None}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Old) as url, pytest.raises(FlashgenError) as caught:
        AnkiConnect(url).version()
    assert str(caught.value) == (
        f"{url}: AnkiConnect speaks API version 5, flashgen needs 6: update the AnkiConnect add-on "
        "(Tools > Add-ons > Check for Updates) and restart Anki"
    )


def test_silent_listener_times_out():
    # A socket that listens but never accepts: the connection opens, no answer ever comes.
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(FlashgenError) as caught:
            AnkiConnect(url, timeout=0.2).call("findNotes", query="deck:*")
    assert str(caught.value).startswith(f"{url}: Anki did not answer findNotes within 0.2 s: it may be busy")
