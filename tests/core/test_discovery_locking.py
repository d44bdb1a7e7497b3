"""The discovery document and the key set are fetched under separate locks: no caller can hang another.

Asking for an unknown ``kid`` once the cached document has expired and its refresh fails used to
re-enter the discovery lock from inside itself: the thread hung, and every later caller for that
provider with it. Time is an injected clock; the provider is the development provider, told to fail.
"""
from __future__ import annotations

import threading

import pytest

from pyramid_tokens.discovery import Discovery
from pyramid_tokens.errors import TokenError
from pyramid_tokens.transport import Transport

BOUND = 10.0  # seconds a call may take here before we call it hung (the transport times out after 2)


def in_thread(call):
    """Run ``call`` in a thread; return (finished, result or exception)."""
    outcome: list = []

    def run():
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - the test inspects whatever came out
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    return not thread.is_alive(), (outcome[0] if outcome else None)


@pytest.fixture
def discovery(idp, clock):
    d = Discovery(idp.issuer, Transport(timeout=2), clock=clock)
    assert d.metadata()["issuer"] == idp.issuer
    assert d.signing_key(None, "RS256") is not None  # document and keys loaded
    return d


def test_asking_for_a_key_first_fetches_the_document_and_the_key_set(idp, clock):
    fresh = Discovery(idp.issuer, Transport(timeout=2), clock=clock)
    finished, key = in_thread(lambda: fresh.signing_key(None, "RS256"))
    assert finished, "the first call for a key hung"
    assert not isinstance(key, BaseException) and key.algorithm_name == "RS256"


@pytest.mark.parametrize("fault", ["server_error", "connection_reset", "not_json"])
def test_an_unknown_kid_after_a_failed_discovery_refresh_returns_and_so_do_later_callers(idp, clock, discovery,
                                                                                        fault):
    clock.advance(discovery.ttl + 1)  # the cached document has expired
    idp.provider.misbehave(fault, on="discovery")
    finished, result = in_thread(lambda: discovery.signing_key("unknown-kid", "RS256"))
    assert finished, "the call for an unknown kid hung"
    assert isinstance(result, TokenError) and "unknown-kid" in result.error_description
    assert idp.provider.faults.triggered >= 1  # the refresh was really tried, and failed
    finished, result = in_thread(lambda: discovery.signing_key("another-kid", "RS256"))
    assert finished, "a later caller hung"
    assert isinstance(result, TokenError)
    finished, key = in_thread(lambda: discovery.signing_key(None, "RS256"))
    assert finished and not isinstance(key, BaseException)  # the known key still serves


def test_a_rotated_key_is_found_after_the_document_expired_and_its_refresh_failed(idp, clock, discovery):
    new_kid = idp.provider.rotate_keys(keep_old=False)
    clock.advance(discovery.ttl + 1)
    idp.provider.misbehave("server_error", on="discovery")
    finished, key = in_thread(lambda: discovery.signing_key(new_kid, "RS256"))
    assert finished and not isinstance(key, BaseException), key
    assert key.key_id == new_kid


def test_a_slow_key_set_does_not_hold_up_a_refresh_of_the_document(idp, clock, discovery):
    """While one thread waits for a slow key set, another refreshes the expired document at once."""
    idp.provider.misbehave("slow", on="jwks", seconds=1.5)
    clock.advance(discovery.jwks_refetch_interval + 1)
    slow = threading.Thread(target=lambda: pytest.raises(TokenError, discovery.signing_key, "unknown", "RS256"),
                            daemon=True)
    slow.start()
    threading.Event().wait(0.3)  # the key set fetch is under way
    clock.advance(discovery.ttl + 1)  # and now the document has expired too: its refresh needs the document lock
    finished, doc = in_thread(discovery.metadata)
    assert finished and doc["issuer"] == idp.issuer
    assert slow.is_alive()  # the document refresh did not wait for the key set
    slow.join(BOUND)
    assert not slow.is_alive()
