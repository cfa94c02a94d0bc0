"""A real Anki desktop, headless, with the vendored AnkiConnect add-on: the `anki_desktop` fixture.

Each test gets its own base folder, profile, X display (Xvfb) and AnkiConnect port. Anki runs
as a child process, so Qt and aqt never load into pytest (they warn at import, and warnings
fail tests here). Anki is quit with SIGTERM, which it handles by closing the collection as its
File > Quit does, so a test can then open `collection.anki2` with the `anki` backend.

Where a piece is missing (Xvfb, Qt's system libraries, aqt) the tests skip with one line
naming it; under CI=true they fail instead, because CI must always run them.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flashgen.ankiconnect import AnkiConnect
from flashgen.model import FlashgenError

from tests.conftest import SHARED

ADDON = SHARED / "vendor" / "anki-connect" / "plugin"
PROFILE = "User 1"
STARTUP_TIMEOUT = 60.0
QUIT_TIMEOUT = 20.0
DEBIAN_PACKAGES = "xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxkbcommon-x11-0 libegl1 libgl1 libnss3"

# Run in a child Python: the profile Anki opens without its first-run language dialog
# (vendor/README.md), written by aqt's own ProfileManager.
_MAKE_PROFILE = """
import sys
from aqt.profiles import ProfileManager
pm = ProfileManager(ProfileManager.get_created_base_folder(sys.argv[1]))
pm.setupMeta()
pm.meta["defaultLang"] = "en_US"
pm.meta["firstRun"] = False
pm.create(sys.argv[2])
pm.db.execute("update profiles set data = ? where name = '_global'", pm._pickle(pm.meta))
pm.db.commit()
pm.db.close()
"""
_RUN_ANKI = "import sys, aqt; sys.argv[0] = 'anki'; aqt.run()"


def ci() -> bool:
    """Whether this is CI (CI=true, as CI services and .ci/run set it), where nothing may skip."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def missing(what: str) -> None:
    """Skip, naming what is missing; under CI=true fail, because CI must run these tests."""
    message = f"real Anki desktop needs: {what}"
    if ci():
        pytest.fail(f"{message} (CI=true: not skipping)", pytrace=False)
    pytest.skip(message)


@functools.lru_cache(maxsize=None)
def what_is_missing() -> str | None:
    """What this machine lacks to run Anki desktop headless, or None."""
    if importlib.util.find_spec("aqt") is None:
        return "aqt (make test installs it: pip install -e '.[test,desktop]')"
    if not ADDON.is_dir():
        return f"the vendored AnkiConnect add-on at {ADDON}"
    if shutil.which("Xvfb") is None:
        return f"Xvfb (apt-get install {DEBIAN_PACKAGES})"
    pyqt = importlib.util.find_spec("PyQt6")
    if pyqt is None:
        return "PyQt6 (make test installs it with aqt: pip install -e '.[test,desktop]')"
    qt = Path(pyqt.submodule_search_locations[0]) / "Qt6"
    libraries = [qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib" / "libQt6WebEngineCore.so.6"]
    if shutil.which("ldd") and all(path.exists() for path in libraries):
        found = subprocess.run(["ldd", *map(str, libraries)], capture_output=True, text=True).stdout
        absent = sorted({line.split()[0] for line in found.splitlines() if "not found" in line})
        if absent:
            return f"{', '.join(absent)} (apt-get install {DEBIAN_PACKAGES})"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Desktop:
    """One running Anki: its AnkiConnect client and its base folder."""

    client: AnkiConnect
    base: Path
    process: subprocess.Popen
    display: subprocess.Popen
    log: Path
    startup_seconds: float

    @property
    def collection_path(self) -> Path:
        return self.base / PROFILE / "collection.anki2"

    def quit(self) -> None:
        """Quit Anki as File > Quit does (the collection is closed and whole), then stop X.

        Idempotent; whatever Anki left in its process group (QtWebEngine helpers) is killed,
        so no test leaves a process behind.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # Anki's handler closes the collection
            try:
                self.process.wait(QUIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        if self.display.poll() is None:
            self.display.terminate()
            self.display.wait()
        left = _running_in_group(self.process.pid) + _running_in_group(self.display.pid)
        assert not left, f"Anki desktop left processes running: {left}"


def _running_in_group(group: int) -> list[int]:
    """Processes of a process group still running (not zombies waiting for init to reap them)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone while we looked
        if int(fields[2]) == group and fields[0] not in "ZX":
            running.append(int(stat.parent.name))
    return running


def _start_display(tmp: Path) -> tuple[subprocess.Popen, str]:
    """Xvfb on a display number it chooses itself (-displayfd), so parallel runs never collide."""
    read, write = os.pipe()
    try:
        with open(tmp / "xvfb.log", "wb") as log:
            xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", "1280x1024x24"],
                pass_fds=(write,),
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        os.close(write)
        write = -1
        number = b""
        deadline = time.monotonic() + 10
        while not number.endswith(b"\n") and time.monotonic() < deadline:
            if select.select([read], [], [], 0.5)[0]:
                chunk = os.read(read, 16)
                if not chunk:
                    break
                number += chunk
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    if not number.strip().isdigit():
        xvfb.kill()
        xvfb.wait()
        pytest.fail(f"Xvfb did not start: {(tmp / 'xvfb.log').read_text(errors='replace')[-500:]}", pytrace=False)
    return xvfb, ":" + number.decode().strip()


@functools.lru_cache(maxsize=None)
def _profile_template(folder: str) -> Path:
    """A base folder with the profile made once per session; each test copies it."""
    template = Path(folder) / "anki-profile-template"
    subprocess.run([sys.executable, "-c", _MAKE_PROFILE, str(template), PROFILE], check=True, capture_output=True)
    return template


def start_anki(tmp: Path, template: Path, api_key: str | None = None) -> Desktop:
    """Start Anki desktop under a fresh Xvfb with a copy of the profile; return once AnkiConnect answers."""
    base = tmp / "anki"
    shutil.copytree(template, base)
    addon = base / "addons21" / "ankiconnect"
    shutil.copytree(ADDON, addon, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    config = json.loads((ADDON / "config.json").read_text(encoding="utf-8"))
    config.update(webBindAddress="127.0.0.1", webBindPort=port, apiKey=api_key)
    # Anki keeps a user's add-on settings in meta.json, over the add-on's config.json defaults.
    (addon / "meta.json").write_text(json.dumps({"config": config}), encoding="utf-8")

    display, name = _start_display(tmp)
    env = dict(
        os.environ,
        DISPLAY=name,
        QT_QPA_PLATFORM="xcb",
        QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox --disable-gpu",
    )
    log = tmp / "anki.log"
    started = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_ANKI, "-b", str(base), "-p", PROFILE],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: quit() kills whatever it leaves
        )
    desktop = Desktop(AnkiConnect(f"http://127.0.0.1:{port}", key=api_key, timeout=60), base, process, display, log, 0.0)
    probe = AnkiConnect(desktop.client.url, key=api_key, timeout=2)
    while True:
        try:
            probe.version()
            break
        except FlashgenError:
            if process.poll() is not None or time.monotonic() - started > STARTUP_TIMEOUT:
                desktop.quit()
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"Anki desktop did not answer on port {port}; its log ends:\n{tail}", pytrace=False)
            time.sleep(0.1)
    desktop.startup_seconds = time.monotonic() - started
    return desktop


@pytest.fixture
def anki_desktop_factory(tmp_path, tmp_path_factory):
    """start(api_key=None) -> Desktop: a fresh Anki desktop, quit at the end of the test."""
    lacking = what_is_missing()
    if lacking:
        missing(lacking)
    template = _profile_template(str(tmp_path_factory.getbasetemp()))
    started: list[Desktop] = []

    def start(api_key: str | None = None) -> Desktop:
        folder = tmp_path / f"desktop{len(started)}"
        folder.mkdir()
        started.append(start_anki(folder, template, api_key))
        return started[-1]

    try:
        yield start
    finally:
        for desktop in started:
            desktop.quit()


@pytest.fixture
def anki_desktop(anki_desktop_factory) -> Desktop:
    """A fresh Anki desktop with AnkiConnect (no API key), quit at the end of the test."""
    return anki_desktop_factory()
