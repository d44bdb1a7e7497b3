"""The demo's home page shows the logged-in user's recent events, and only theirs."""
from __future__ import annotations

import re

import webtest

from pyramid_tokens.demo.recent import PER_USER, USERS, RecentEvents
from pyramid_tokens.events import ClientTokenAcquired, UserLoggedIn
from tests.support.web import login
from tests.pyramid.test_demo_pages import demo_app

HTML = {"Accept": "text/html"}


def events_shown(page: str) -> list[str]:
    section = page.split("<h2>Recent events</h2>", 1)[1]
    return re.findall(r"<td[^>]*>((?:UserLoggedIn|UserTokenRefreshed|RefreshTokenRevoked)[^<]*)</td>", section)


def test_the_home_page_lists_the_users_recent_events_newest_first(idp, clock):
    app = demo_app(idp, clock)
    login(app, "alice")
    clock.advance(250)
    home = app.get("/", headers=HTML)  # the read refreshes: due within the margin
    shown = events_shown(home.text)
    # the provider's session id (sid) rides along on the login event: back-channel logouts name it
    assert [line.split(" expires_at=")[0].split(" sid=")[0] for line in shown] == ["UserTokenRefreshed sub=alice",
                                                                                  "UserLoggedIn sub=alice"]
    assert re.fullmatch(r"UserLoggedIn sub=alice sid=\w+", shown[1])
    assert "rotated=True" in shown[0]
    bob = webtest.TestApp(app.app)  # another browser on the same app
    login(bob, "bob")
    assert [line.split(" sid=")[0] for line in events_shown(bob.get("/", headers=HTML).text)] == ["UserLoggedIn sub=bob"]


def test_recent_events_are_bounded_per_user_and_in_users_and_skip_events_without_a_user():
    recent = RecentEvents()
    for n in range(PER_USER + 5):
        recent.remember(UserLoggedIn(sub="alice", sid=str(n)))
    recent.remember(ClientTokenAcquired(client="worker", expires_at=None, from_cache=False))
    assert [line for _, line in recent.of("alice")][0] == f"UserLoggedIn sub=alice sid={PER_USER + 4}"
    assert len(recent.of("alice")) == PER_USER
    for n in range(USERS + 1):
        recent.remember(UserLoggedIn(sub=f"user-{n}"))
    assert recent.of("alice") == [] and recent.of(f"user-{USERS}") != []
