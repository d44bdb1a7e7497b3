"""Token exchange (RFC 8693) under attack: refusals, hostile answers, and no token in any log line or repr.

The provider here is the exchange suite's (``web`` may exchange for ``orders``); a hostile token
endpoint is an :class:`~tests.security.evil.EvilServer` on a loopback socket.
"""
from __future__ import annotations

import pytest

from pyramid_tokens import LoginRequired, TokenError, TokenManager
from pyramid_tokens.errors import InvalidResponse
from pyramid_tokens.exchange import request_exchange
from pyramid_tokens.options import ClientCredentials, ExchangeOptions
from pyramid_tokens.tokenclient import TokenClient
from pyramid_tokens.tokens import AccessToken
from pyramid_tokens.transport import Transport
from pyramid_tokens.usertokens import LOCAL_USER

from ..exchange.conftest import exchange_clients, exchanges, refreshes, settings_for
from .evil import EvilServer, raw_response
from .test_secrets import all_logs, leaks, Secrets  # noqa: F401 - all_logs is a fixture

SUBJECT = AccessToken("subject-token-value-0123456789")


@pytest.fixture
def exchange_idp(make_idp):
    return make_idp(clients=exchange_clients(), device_auto_approve="alice", device_interval=0)


def logged_in(idp, **settings) -> TokenManager:
    manager = TokenManager.from_settings(settings_for(idp, **settings))
    manager.device_login(display=lambda authorization: None, sleep=lambda seconds: None)
    return manager


def test_an_exchange_refused_again_after_the_refresh_is_login_required(exchange_idp):
    manager = logged_in(exchange_idp)
    exchange_idp.provider.misbehave("oauth_error", on="token_exchange")  # invalid_grant, every time
    with pytest.raises(LoginRequired) as raised:
        manager.get_exchanged_token("orders")
    assert raised.value.error == "invalid_grant"
    assert exchange_idp.provider.faults.triggered == 2  # the exchange and one retry
    assert refreshes(exchange_idp) == 1 and exchanges(exchange_idp) == 0
    assert "exchanged" not in manager.user_tokens.record(LOCAL_USER)


def test_a_provider_error_on_exchange_is_a_token_error_with_the_providers_error(exchange_idp):
    manager = logged_in(exchange_idp)
    exchange_idp.provider.misbehave("oauth_error", on="token_exchange", error="invalid_scope")
    with pytest.raises(TokenError) as raised:
        manager.get_exchanged_token("orders")
    assert raised.value.error == "invalid_scope" and not isinstance(raised.value, LoginRequired)
    assert exchange_idp.provider.faults.triggered == 1 and refreshes(exchange_idp) == 0


def evil_exchange(body) -> tuple[EvilServer, TokenClient]:
    server = EvilServer(lambda request: raw_response(200, body))
    client = TokenClient(ClientCredentials("web", "web-secret"), transport=Transport(None, timeout=5),
                         token_endpoint=server.url + "/token")
    return server, client


@pytest.mark.parametrize("issued", [None, 42, ["urn:x"], "urn:a\r\nX-Injected: 1", "urn:" + "a" * 300, "access_token"])
def test_an_answer_without_a_proper_issued_token_type_is_refused(issued):
    body = {"access_token": "exchanged-token-value-0123456789", "token_type": "Bearer", "expires_in": 300}
    if issued is not None:
        body["issued_token_type"] = issued
    server, client = evil_exchange(body)
    try:
        with pytest.raises(InvalidResponse) as raised:
            request_exchange(client, ExchangeOptions("orders", audience="orders"), SUBJECT)
    finally:
        server.stop()
    assert "issued_token_type" in str(raised.value) and "exchanged-token-value" not in str(raised.value)
    sent = server.requests[0]["form"]
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert sent["subject_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert sent["audience"] == "orders" and sent["subject_token"] == SUBJECT.access_token and "actor_token" not in sent


def test_no_exchanged_or_subject_token_in_any_log_line_repr_or_error(all_logs, exchange_idp):  # noqa: F811
    manager = logged_in(exchange_idp, **{"tokens.exchange.orders.client_id": "web",
                                         "tokens.exchange.orders.client_secret": "web-secret"})
    seen = Secrets()
    seen.add_record(manager.user_tokens.record(LOCAL_USER))
    token = manager.get_exchanged_token("orders")
    renewed = manager.get_exchanged_token("orders", force_renewal=True)
    seen.add(token.access_token, renewed.access_token)
    exchange_idp.provider.misbehave("oauth_error", on="token_exchange")
    with pytest.raises(LoginRequired) as raised:
        manager.get_exchanged_token("orders", force_renewal=True)
    seen.add_record(manager.user_tokens.record(LOCAL_USER))
    assert exchanges(exchange_idp) == 2
    shown = [repr(token), str(token), repr(manager.options.exchange["orders"]), repr(manager), str(raised.value),
             repr(raised.value)]
    assert not [text for text in shown if seen.found_in(text)]
    assert not leaks(all_logs, seen)


def test_a_client_subject_refused_twice_is_a_token_error_not_a_login_challenge(exchange_idp):
    manager = TokenManager.from_settings(settings_for(exchange_idp, **{
        "tokens.clients.worker.authority": exchange_idp.issuer, "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret",
        "tokens.exchange.svc.audience": "orders", "tokens.exchange.svc.subject": "client:worker"}))
    exchange_idp.provider.misbehave("oauth_error", on="token_exchange")
    with pytest.raises(TokenError) as raised:
        manager.get_exchanged_token("svc")
    assert raised.value.error == "invalid_grant" and not isinstance(raised.value, LoginRequired)
    assert exchange_idp.provider.faults.triggered == 2  # the exchange and one retry with a renewed subject
    assert exchange_idp.provider.counters()["token"]["client_credentials"] == 2
