"""Reading a valid user token: parsed once per stored token, yet always what the store holds now."""
from __future__ import annotations

import pytest

from pyramid_tokens import usertokens
from pyramid_tokens.clock import FakeClock, utc_from_timestamp
from pyramid_tokens.errors import LoginRequired
from pyramid_tokens.stores import MemoryStore
from pyramid_tokens.tokens import AccessToken
from pyramid_tokens.responses import TokenResponse
from pyramid_tokens.usertokens import UserTokens


class CountingClient:
    """A token client whose refreshes are counted and numbered; no network."""

    def __init__(self, clock):
        self.clock = clock
        self.refreshes = 0

    def refresh(self, refresh_token, *, resource=None, **kwargs):
        self.refreshes += 1
        return TokenResponse(access_token=token(f"refreshed-{self.refreshes}", self.clock(), 300),
                             refresh_token=f"rt-{self.refreshes}", id_token=None, raw={})


def token(value, now, lifetime):
    return AccessToken(value, expires_at=utc_from_timestamp(now + lifetime), obtained_at=utc_from_timestamp(now))


def record(value, now, lifetime=300):
    return {"sub": "alice", "access": token(value, now, lifetime).to_dict(), "refresh_token": "rt-0",
            "resources": {}, "generation": 1, "refreshes": 0}


@pytest.fixture
def clock():
    """The shared fixture's clock, started at a round time: deadlines here are compared to the millisecond,
    exactly representable near 10**6 but not near today's 1.7 * 10**9."""
    return FakeClock(1_000_000.0)


@pytest.fixture
def users(clock):
    return UserTokens(CountingClient(clock), MemoryStore(clock), clock=clock, renew_before=60)


def test_a_record_replaced_by_another_process_is_read_afresh(users, clock):
    users.store.set("h", record("first", clock()))
    assert users.get_access_token("h").access_token == "first"
    users.store.set("h", record("second", clock()))
    assert users.get_access_token("h").access_token == "second"


def test_a_stored_token_changed_in_place_is_read_afresh(users, clock):
    users.store.set("h", record("first", clock()))
    assert users.get_access_token("h").access_token == "first"
    users.store.get("h")["access"]["access_token"] = "patched"
    assert users.get_access_token("h").access_token == "patched"


def test_the_renewal_deadline_is_the_same_as_renewal_due(users, clock):
    users.store.set("h", record("first", clock(), lifetime=100))  # margin capped at 50 s
    reference = AccessToken.from_dict(users.store.get("h")["access"])
    clock.advance(49.999)
    assert not reference.renewal_due(60, clock())
    assert users.get_access_token("h").access_token == "first"
    clock.advance(0.001)
    assert reference.renewal_due(60, clock())
    assert users.get_access_token("h").access_token == "refreshed-1"
    assert users.client.refreshes == 1


def test_forget_drops_the_parsed_token_and_the_cache_is_bounded(users, clock, monkeypatch):
    monkeypatch.setattr(usertokens, "PARSED_TOKENS_MAX", 3)
    for n in range(5):
        users.store.set(f"h{n}", record(f"t{n}", clock()))
        users.get_access_token(f"h{n}")
    assert len(users._parsed) == 3
    users.forget("h4")
    assert ("h4", None) not in users._parsed
    with pytest.raises(LoginRequired):
        users.get_access_token("h4")


def test_an_empty_store_passed_in_is_the_one_read(users, clock):
    users.store.set("h", record("first", clock()))
    with pytest.raises(LoginRequired):
        users.get_access_token("h", store=MemoryStore(clock))


def test_an_empty_memory_store_passed_explicitly_is_used_not_replaced():
    """An empty MemoryStore is falsy (it has a length): every entry point must still use the one passed."""
    from pyramid_tokens.options import ClientCredentials
    from pyramid_tokens.tokenclient import TokenClient
    from pyramid_tokens.stores import MemoryStore
    from pyramid_tokens.transport import Transport
    from pyramid_tokens.usertokens import UserTokens

    default, given, rotations = MemoryStore(), MemoryStore(), MemoryStore()
    users = UserTokens(TokenClient(ClientCredentials("c"), transport=Transport(), token_endpoint="http://127.0.0.1:9/t"),
                       default, rotations=rotations)
    assert users.rotations is rotations
    assert users.record("h", store=given) is None
    given.set("h", {"sub": "alice", "refresh_token": None})
    users.forget("h", store=given)
    assert given.get("h") is None and len(default) == 0
