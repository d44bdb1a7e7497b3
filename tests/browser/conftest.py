"""Fixtures for driving the demo in a real browser: headless Chromium through Selenium.

``demo(settings)`` serves the app ``pserve development.ini`` builds (``pyramid_tokens.demo:main``
with development.ini's settings, its own session folder, every ``:6543`` URL moved to a free loopback
port) with waitress in this process; ``browser`` is a fresh Chromium with its own profile and the
flags that keep it off the network. ``shots`` saves a screenshot of the current page under the
test's tmp folder, and under ``$PYRAMID_TOKENS_SCREENSHOTS`` when that is set.

Under ``CI=true`` a missing Chromium, chromedriver or Selenium fails the tests; elsewhere they skip.
"""
from __future__ import annotations

import base64
import os
import pickle
import re
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PYRAMID_TOKENS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PYRAMID_TOKENS_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = ("install them with `apt-get install chromium chromium-driver` (Debian/Ubuntu) and "
           "`pip install -e '.[testing]'` (Selenium)")
#: keep Chromium off the network: the machines that run this have none, and it must not phone Google
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1100,900")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "Selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} is missing"
    return None


@pytest.fixture(scope="session")
def chromium_available() -> None:
    problem = _missing()
    if problem is None:
        return
    message = f"browser tests need headless Chromium: {problem}; {INSTALL}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):  # as tests/redis/ reads it
        pytest.fail(message)
    pytest.skip(message)


class Demo:
    """The demo app served on a free loopback port; ``.url``, ``.provider`` (the DevProvider), ``.sessions``."""

    def __init__(self, tmp_path: Path, overrides: dict[str, str]) -> None:
        from pyramid.paster import get_appsettings

        from pyramid_tokens.demo import main
        from pyramid_tokens.devidp.server import serve

        holder: dict[str, Any] = {}
        # Bind first (port 0), then build the app with its real URLs: settings name the port.
        self.server = serve(lambda environ, start: holder["app"](environ, start), threads=8)
        self.url = self.server.url
        port = str(self.server.port)
        settings = {k: v.replace(":6543", f":{port}") for k, v in
                    get_appsettings(str(ROOT / "development.ini")).items()}
        self.sessions = tmp_path / "sessions"
        settings.update({"session.data_dir": str(self.sessions / "data"), "session.lock_dir": str(self.sessions / "lock")})
        settings.update(overrides)
        self.app = main({}, **settings)
        holder["app"] = self.app
        self.provider = self.app.registry["pyramid_tokens.devidp"]

    def session_texts(self) -> list[str]:
        """The JSON of every session the server keeps (Beaker's file backend: a pickle of base64(zlib(JSON)))."""
        texts = []
        for path in (self.sessions / "data").rglob("*.cache"):
            stored = pickle.loads(path.read_bytes()).get("session")  # our own test's files
            if stored:
                texts.append(zlib.decompress(base64.b64decode(stored)).decode())
        return texts

    def tokens(self) -> set[str]:
        """The access, refresh and ID tokens the server now holds for the logins in its sessions."""
        manager = self.app.registry["pyramid_tokens.manager"]
        found: set[str] = set()
        for text in self.session_texts():
            for handle in re.findall(r'"pyramid_tokens\.handle": "([^"]+)"', text):
                record = manager.user_tokens.record(handle) or {}
                found.update(v for v in (record.get("access", {}).get("access_token"), record.get("refresh_token"),
                                         record.get("id_token")) if v)
        assert found, "the server holds no token: the scenario never logged in"
        return found

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def demo(tmp_path, chromium_available):
    """``demo({setting: value})``: the development.ini app, settings overridden (e.g. a short token lifetime)."""
    running: list[Demo] = []

    def factory(overrides: dict[str, str] | None = None) -> Demo:
        running.append(Demo(tmp_path, overrides or {}))
        return running[-1]

    yield factory
    for app in running:
        app.stop()


@pytest.fixture
def browser(chromium_available):
    """A fresh headless Chromium (own profile, no network chatter) recording its console and network logs."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pyramid-tokens-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def shots(browser, tmp_path, request):
    """``shots(name)``: a PNG of the current page in the test's tmp folder (and ``$PYRAMID_TOKENS_SCREENSHOTS``)."""
    folder = os.environ.get("PYRAMID_TOKENS_SCREENSHOTS")
    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)

    def take(name: str) -> Path:
        path = tmp_path / "screenshots" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(path)), f"no screenshot of {name}"
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(folder) / f"{test}--{name}.png")
        return path

    return take
