"""The demo shows back-channel logout: two browsers log in, the user's sessions end at the provider, both are out.

The app ``pserve development.ini`` builds (``tests/browser``'s ``Demo``: development.ini's settings on a free
loopback port, so its ``backchannel_logout_uri`` points at this very app), driven by two ``requests``
sessions as browsers; the provider's login form is filled like a user would.
"""
from __future__ import annotations

import re

import pytest
import requests

from tests.support.provider import browser_login

from ..browser.conftest import Demo


@pytest.fixture
def demo(tmp_path):
    running = Demo(tmp_path, {})
    yield running
    running.stop()


def log_in(demo, username="alice"):
    browser = requests.Session()
    start = browser.get(demo.url + "/login", allow_redirects=False, timeout=10)
    browser.get(browser_login(start.headers["Location"], username, session=browser), timeout=10)
    assert f"Logged in as <b>{username.title()}</b>" in browser.get(demo.url + "/", timeout=10).text
    return browser


def test_ending_the_users_sessions_at_the_provider_logs_out_both_browsers_of_the_demo(demo):
    first, second = log_in(demo), log_in(demo)
    home = first.get(demo.url + "/", timeout=10).text
    assert "End alice&#x27;s sessions at the provider" in home
    token = re.search(r"action='/end-provider-sessions'><input type='hidden' name='csrf_token' value='([^']+)'",
                      home).group(1)
    first.post(demo.url + "/end-provider-sessions", data={"csrf_token": token}, timeout=10)
    for browser in (first, second):
        assert "You are not logged in" in browser.get(demo.url + "/", timeout=10).text
        challenge = browser.get(demo.url + "/call-api", headers={"Accept": "text/html"}, allow_redirects=False,
                                timeout=10)
        assert challenge.status_code == 302 and "/login?came_from=" in challenge.headers["Location"]
    assert demo.provider.counters()["backchannel_logout"] == 2  # one logout token per session (sid required)
