"""The provider ends a user's session: every login of it ends, in every browser, and its tokens are gone.

Over real HTTP: the development provider POSTs its logout token to the app's back-channel route
(OpenID Connect Back-Channel Logout 1.0 §2.5), which is served on a loopback port.
"""
from __future__ import annotations

import requests
from urllib.parse import urlencode

import pytest

from pyramid_tokens.errors import LoginRequired
from pyramid_tokens.events import LOGOUT_BACKCHANNEL, UserLoggedOut

from .conftest import HTML, JSON, sign


def assert_logged_out(rp, browser, handle):
    """Anonymous, challenged for a token, and its token record gone from the store."""
    assert rp.whoami(browser) is None
    assert browser.get("/token", headers=JSON, status=401).json["error"] == "login_required"
    assert browser.get("/token", headers=HTML, status=302).location.startswith("http://localhost/login")
    with pytest.raises(LoginRequired):
        rp.manager.get_user_access_token(handle=handle)


def assert_logged_in(rp, browser, username):
    assert rp.whoami(browser) == username
    assert browser.get("/token", headers=JSON).json["sub"] == username


def test_ending_the_users_session_at_the_provider_logs_out_both_browsers_and_forgets_their_tokens(rp, idp):
    first, second = rp.login(rp.browser()), rp.login(rp.browser())
    handles = rp.handle(first), rp.handle(second)
    answer = requests.post(f"{idp.issuer}/dev/end-session", data={"sub": "alice"}, timeout=10).json()
    assert [d["status"] for d in answer["deliveries"]] == [200]  # one token with sub only ends both
    for browser, handle in zip((first, second), handles):
        assert_logged_out(rp, browser, handle)


def test_a_client_that_requires_sid_gets_one_logout_token_per_session_and_both_browsers_log_out(make_rp, idp):
    rp = make_rp(session_required=True)
    first, second = rp.login(rp.browser()), rp.login(rp.browser())
    handles = rp.handle(first), rp.handle(second)
    answer = requests.post(f"{idp.issuer}/dev/end-session", data={"sub": "alice"}, timeout=10).json()
    assert [(d["sid"], d["status"]) for d in answer["deliveries"]] == [(True, 200), (True, 200)]
    for browser, handle in zip((first, second), handles):
        assert_logged_out(rp, browser, handle)


def test_a_logout_token_with_sid_ends_that_login_only(rp, idp):
    first, second = rp.login(rp.browser()), rp.login(rp.browser())
    sid = rp.record(first)["sid"]
    handle = rp.handle(first)
    assert rp.post(sign(idp, sub="alice", sid=sid)).status_code == 200
    assert_logged_out(rp, first, handle)
    assert_logged_in(rp, second, "alice")


def test_a_logout_token_with_sub_only_ends_every_login_of_that_user_and_nobody_elses(rp, idp):
    alice1, alice2, bob = rp.login(rp.browser()), rp.login(rp.browser()), rp.login(rp.browser(), "bob")
    handles = rp.handle(alice1), rp.handle(alice2)
    answer = rp.post(sign(idp, sub="alice"))
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in answer.headers  # no session: server to server
    for browser, handle in zip((alice1, alice2), handles):
        assert_logged_out(rp, browser, handle)
    assert_logged_in(rp, bob, "bob")


def test_a_logout_token_for_nobody_logged_in_here_is_still_a_200(rp, idp):
    assert rp.post(sign(idp, sub="carol", sid="no-such-session")).status_code == 200


def test_logging_out_at_the_provider_with_an_id_token_hint_ends_the_apps_session_over_the_back_channel(rp, idp):
    browser = rp.login(rp.browser())
    handle, id_token = rp.handle(browser), rp.record(browser)["id_token"]
    page = requests.get(f"{idp.issuer}/logout?{urlencode({'id_token_hint': id_token})}", timeout=10)
    assert page.status_code == 200
    assert idp.provider.counters()["backchannel_logout"] == 1
    assert_logged_out(rp, browser, handle)


def test_the_apps_own_logout_tells_the_provider_which_tells_the_app_back_harmlessly(rp, idp):
    browser = rp.login(rp.browser())
    other = rp.login(rp.browser())
    form = browser.get("/logout").forms[0]
    to_provider = form.submit(status=302).location
    assert requests.get(to_provider, timeout=10, allow_redirects=False).status_code in (200, 302)
    assert idp.provider.counters()["backchannel_logout"] == 1
    assert rp.whoami(browser) is None
    assert_logged_in(rp, other, "alice")  # another login of the same user is another provider session


def test_the_provider_forgets_the_ended_sessions_refresh_tokens(rp, idp):
    browser = rp.login(rp.browser())
    refresh_token = rp.record(browser)["refresh_token"]
    requests.post(f"{idp.issuer}/dev/end-session", data={"sub": "alice"}, timeout=10)
    answer = requests.post(f"{idp.issuer}/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token},
                           auth=("web", "web-secret"), timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_every_ended_login_fires_one_user_logged_out_event(rp, idp):
    heard = []
    rp.manager.events.subscribe(UserLoggedOut, heard.append)
    rp.login(rp.browser()), rp.login(rp.browser())
    assert rp.post(sign(idp, sub="alice")).status_code == 200
    assert [(e.sub, e.how) for e in heard] == [("alice", LOGOUT_BACKCHANNEL)] * 2
    assert all(e.sid for e in heard)
