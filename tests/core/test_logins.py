"""Ended logins (logins.py): the deny list logout and back-channel logout share."""
from __future__ import annotations

from pyramid_tokens.logins import Logins
from pyramid_tokens.stores import MemoryStore


def record(login_at, sid="s1", sub="alice", iss="https://idp.example"):
    return {"iss": iss, "sid": sid, "sub": sub, "login_at": login_at}


def test_an_ended_handle_is_ended_and_others_are_not(clock):
    logins = Logins(MemoryStore(clock), clock=clock, ttl=60)
    logins.end("h1")
    assert logins.is_ended("h1") and not logins.is_ended("h2")


def test_an_ended_handle_is_forgotten_after_the_session_lifetime(clock):
    logins = Logins(MemoryStore(clock), clock=clock, ttl=60)
    logins.end("h1")
    clock.advance(61)
    assert not logins.is_ended("h1")


def test_ending_a_provider_session_ends_the_logins_of_that_session_that_began_before(clock):
    logins = Logins(MemoryStore(clock), clock=clock)
    before = record(clock())
    other_session = record(clock(), sid="s2")
    clock.advance(5)
    logins.end_sessions("https://idp.example", sid="s1")
    clock.advance(5)
    after = record(clock())  # a new login of the same provider session, after the logout
    assert logins.is_ended("h1", before)
    assert not logins.is_ended("h2", other_session)
    assert not logins.is_ended("h3", after)
    assert not logins.is_ended("h4", record(before["login_at"], iss="https://other.example"))


def test_ending_a_user_ends_every_earlier_login_of_that_user_at_that_provider(clock):
    logins = Logins(MemoryStore(clock), clock=clock)
    first, second, bob = record(clock(), sid="a"), record(clock(), sid=None), record(clock(), sub="bob")
    clock.advance(1)
    logins.end_sessions("https://idp.example", sub="alice")
    assert logins.is_ended("h1", first) and logins.is_ended("h2", second)
    assert not logins.is_ended("h3", bob)


def test_a_record_without_login_facts_is_judged_by_its_handle_only(clock):
    logins = Logins(MemoryStore(clock), clock=clock)
    logins.end_sessions("https://idp.example", sub="alice")
    assert not logins.is_ended("h1", {"sub": "alice"})
