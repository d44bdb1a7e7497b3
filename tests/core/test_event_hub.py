"""The event hub: subscribers by type, errors contained, one log line per event, nothing secret in it."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from pyramid_tokens.events import (
    ClientTokenFailed, Event, EventHub, UserLoggedIn, UserTokenRefreshed, UserTokenRefreshFailed, with_request,
)


def test_a_subscriber_hears_its_type_and_its_subclasses_only():
    hub, heard = EventHub(), []
    hub.subscribe(UserTokenRefreshFailed, heard.append)
    hub.subscribe(Event, lambda event: heard.append(("any", type(event).__name__)))
    failed = UserTokenRefreshFailed(sub="alice", error="invalid_grant", login_ended=True)
    hub.emit(failed)
    hub.emit(ClientTokenFailed(client="billing", error="invalid_client"))
    assert heard == [failed, ("any", "UserTokenRefreshFailed"), ("any", "ClientTokenFailed")]


def test_unsubscribe_stops_the_calls_and_says_whether_it_was_subscribed():
    hub, heard = EventHub(), []
    hub.subscribe(UserLoggedIn, heard.append)
    fn = hub.subscribe(UserLoggedIn, lambda event: heard.append(event.sub))
    hub.emit(UserLoggedIn(sub="alice"))
    assert hub.unsubscribe(UserLoggedIn, heard.append) is True  # a bound method made afresh: equal, so found
    assert hub.unsubscribe(UserLoggedIn, fn) is True
    assert hub.unsubscribe(UserLoggedIn, fn) is False
    hub.emit(UserLoggedIn(sub="bob"))
    assert heard == [UserLoggedIn(sub="alice"), "alice"]


def test_a_subscriber_that_raises_is_logged_and_the_others_still_hear(caplog):
    hub, heard = EventHub(), []

    def broken(event):
        raise RuntimeError("subscriber bug")

    hub.subscribe(UserLoggedIn, broken)
    hub.subscribe(UserLoggedIn, heard.append)
    hub.forward = heard.append
    with caplog.at_level(logging.ERROR, logger="pyramid_tokens.events"):
        hub.emit(UserLoggedIn(sub="alice"))  # does not raise
    assert len(heard) == 2
    assert "a subscriber of UserLoggedIn raised" in caplog.text


def test_subscribe_refuses_what_is_not_an_event_class():
    with pytest.raises(TypeError, match="event class"):
        EventHub().subscribe(dict, print)


def test_each_event_is_one_log_line_naming_what_happened_and_for_whom(caplog):
    hub = EventHub()
    expires = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with caplog.at_level(logging.INFO, logger="pyramid_tokens.events"):
        hub.emit(UserTokenRefreshed(sub="alice", expires_at=expires, rotated=True))
        hub.emit(UserLoggedIn(sub="alice", sid="s-1", claims={"email": "alice@example.test"}))
    assert caplog.messages == [
        "UserTokenRefreshed sub=alice expires_at=2026-01-02T03:04:05+00:00 rotated=True",
        "UserLoggedIn sub=alice sid=s-1",  # claims are the subscriber's to read, not the log's
    ]


def test_events_are_immutable_and_carry_the_request_only_when_given_one():
    event = UserLoggedIn(sub="alice")
    with pytest.raises(AttributeError):
        event.sub = "mallory"  # type: ignore[misc]
    request = object()
    assert with_request(event, request).request is request and event.request is None
    assert with_request(event, request) == event  # the request is context, not identity
    assert "request" not in repr(with_request(event, request))


def test_a_hostile_value_is_quoted_so_it_cannot_forge_a_log_line_or_a_field(caplog):
    hub = EventHub()
    with caplog.at_level(logging.INFO, logger="pyramid_tokens.events"):
        hub.emit(UserLoggedIn(sub="alice\nUserLoggedIn sub=admin"))
        hub.emit(UserTokenRefreshFailed(sub="bob", error="x login_ended=False", login_ended=True))
    assert caplog.messages == [
        "UserLoggedIn sub='alice\\nUserLoggedIn sub=admin'",
        "UserTokenRefreshFailed sub=bob error='x login_ended=False' login_ended=True",
    ]
    assert all("\n" not in message for message in caplog.messages)


def test_no_log_line_is_built_when_nobody_reads_it(caplog):
    built = []

    class Watched(UserLoggedIn):
        def log_line(self) -> str:
            built.append(self)
            return super().log_line()

    with caplog.at_level(logging.WARNING, logger="pyramid_tokens.events"):
        EventHub().emit(Watched(sub="alice"))
    assert built == []
