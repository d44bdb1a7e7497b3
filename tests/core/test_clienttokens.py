"""Client-credentials tokens through TokenManager, against the development provider over real HTTP."""
from __future__ import annotations

import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.stores import MemoryStore
from tests.support.provider import worker_settings


def manager(idp, clock=None, **settings):
    return TokenManager.from_settings(worker_settings(idp, **settings), **({"clock": clock} if clock else {}))


def cc_requests(idp):
    return idp.provider.counters()["token"]["client_credentials"]


def test_cached_token_serves_many_calls_with_one_token_request(idp):
    tm = manager(idp)
    tokens = {tm.get_client_access_token("worker").access_token for _ in range(20)}
    assert len(tokens) == 1
    assert cc_requests(idp) == 1


def test_token_is_renewed_inside_the_cache_buffer_and_not_before(idp, clock):
    tm = manager(idp, clock)
    first = tm.get_client_access_token("worker")
    clock.advance(300 - 60 - 5)
    assert tm.get_client_access_token("worker") == first
    clock.advance(10)
    assert tm.get_client_access_token("worker") != first
    assert cc_requests(idp) == 2


def test_force_renewal_and_evict_request_a_new_token(idp):
    tm = manager(idp)
    first = tm.get_client_access_token("worker")
    second = tm.get_client_access_token("worker", force_renewal=True)
    assert second != first
    tm.client_tokens.evict("worker")
    assert tm.get_client_access_token("worker") not in (first, second)
    assert cc_requests(idp) == 3


def test_a_token_another_manager_renewed_in_a_shared_cache_is_used_on_the_next_call(idp):
    cache = MemoryStore()
    settings = {"tokens.clients.worker.authority": idp.issuer, "tokens.clients.worker.client_id": "worker",
                "tokens.clients.worker.client_secret": "worker-secret", "tokens.clients.worker.scope": "api"}
    one, other = (TokenManager.from_settings(settings, client_cache=cache) for _ in range(2))
    first = one.get_client_access_token("worker")
    assert other.get_client_access_token("worker") == first and one.get_client_access_token("worker") == first
    renewed = other.get_client_access_token("worker", force_renewal=True)
    assert renewed != first
    assert one.get_client_access_token("worker") == renewed  # the cached branch still asks the store
    other.client_tokens.evict("worker")
    third = one.get_client_access_token("worker")
    assert third not in (first, renewed)
    assert cc_requests(idp) == 3


def test_the_managers_client_token_call_keeps_its_signature(idp):
    tm = manager(idp)
    documented = inspect.signature(TokenManager.get_client_access_token)
    assert [p.name for p in inspect.signature(tm.get_client_access_token).parameters.values()] == \
        [p.name for p in documented.parameters.values()][1:]  # the same names, in order, without self
    assert tm.get_client_access_token(name="worker", scope=None, resource=None, parameters=None,
                                      force_renewal=False) == tm.get_client_access_token("worker")


def test_scope_and_resource_are_cached_apart(idp):
    tm = manager(idp)
    api = tm.get_client_access_token("worker")
    billing = tm.get_client_access_token("worker", scope="billing.read")
    resource = tm.get_client_access_token("worker", resource="https://billing.example/")
    assert len({api.access_token, billing.access_token, resource.access_token}) == 3
    assert billing.scope == "billing.read"
    assert jwt.decode(resource.access_token, options={"verify_signature": False})["aud"] == "https://billing.example/"
    assert tm.get_client_access_token("worker", scope="billing.read") == billing
    assert cc_requests(idp) == 3


@pytest.mark.parametrize("style, counted", [("basic", "client_secret_basic"), ("post", "client_secret_post")])
def test_both_credential_styles(idp, style, counted):
    tm = manager(idp, **{"tokens.clients.worker.client_credential_style": style})
    tm.get_client_access_token("worker")
    assert idp.provider.counters()["client_auth"][counted] == 1


def test_oidc_clients_own_identity_is_name_none(idp):
    tm = TokenManager.from_settings({"oidc.authority": idp.issuer, "oidc.client_id": "web",
                                     "oidc.client_secret": "web-secret", "tokens.client.scope": "api"})
    token = tm.get_client_access_token()
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["client_id"] == "web" and claims["sub"] == "web"
    assert token.scope == "api"


def test_static_token_endpoint_works_without_discovery(idp):
    tm = TokenManager.from_settings({
        "tokens.clients.worker.token_endpoint": idp.issuer + "/token",
        "tokens.clients.worker.client_id": "worker", "tokens.clients.worker.client_secret": "worker-secret"})
    assert tm.get_client_access_token("worker").access_token
    assert idp.provider.counters()["discovery"] == 0


def test_wrong_secret_is_a_token_error_with_the_providers_error(idp):
    tm = manager(idp, **{"tokens.clients.worker.client_secret": "wrong"})
    with pytest.raises(TokenError) as info:
        tm.get_client_access_token("worker")
    assert info.value.error == "invalid_client"
    assert "wrong" not in str(info.value)
    assert cc_requests(idp) == 0


def test_scope_not_allowed_is_a_token_error_and_not_cached(idp):
    tm = manager(idp)
    for _ in range(2):
        with pytest.raises(TokenError) as info:
            tm.get_client_access_token("worker", scope="admin")
        assert info.value.error == "invalid_scope"
    assert idp.provider.counters()["token_errors"]["invalid_scope"] == 2


def test_unknown_client_name_is_a_token_error(idp):
    with pytest.raises(TokenError, match="not configured"):
        manager(idp).get_client_access_token("nope")


def test_thirty_two_threads_on_a_cold_cache_cause_one_token_request(idp):
    tm = manager(idp)
    barrier = threading.Barrier(32)

    def call(_):
        barrier.wait()
        return tm.get_client_access_token("worker").access_token

    with ThreadPoolExecutor(32) as pool:
        assert len(set(pool.map(call, range(32)))) == 1
    assert cc_requests(idp) == 1


def test_repr_of_token_and_manager_show_no_secrets(idp):
    tm = manager(idp)
    token = tm.get_client_access_token("worker")
    for text in (repr(token), str(token), repr(tm), repr(tm.options), token._repr_html_()):
        assert token.access_token not in text
        assert "worker-secret" not in text


def test_revocation_at_a_provider_without_an_endpoint_is_a_logged_notice(idp, caplog):
    from pyramid_tokens.options import ClientCredentials
    from pyramid_tokens.tokenclient import TokenClient
    from pyramid_tokens.transport import Transport

    client = TokenClient(ClientCredentials("worker", "worker-secret"), transport=Transport(),
                         token_endpoint=idp.issuer + "/token")  # no discovery: no revocation endpoint known
    with caplog.at_level("INFO", logger="pyramid_tokens"):
        assert client.revoke("a-refresh-token") is False
    assert "no revocation endpoint" in caplog.text and "a-refresh-token" not in caplog.text
    assert idp.provider.counters()["revocation"] == 0
