"""Token exchange (RFC 8693) through TokenManager, against the development provider over real HTTP.

The manager's user is alice, logged in by the device flow; ``orders`` exchanges her token for one
meant for the audience ``orders``.
"""
from __future__ import annotations

import threading

import pytest
import requests

from pyramid_tokens import LoginRequired, TokenError
from pyramid_tokens.clock import FakeClock
from pyramid_tokens.demo.api import make_api_app
from pyramid_tokens.devidp.server import serve
from pyramid_tokens.usertokens import LOCAL_USER

from .conftest import exchanges, refreshes

WORKER = {"tokens.clients.worker.client_id": "worker", "tokens.clients.worker.client_secret": "worker-secret"}


def worker(idp):
    return {**WORKER, "tokens.clients.worker.authority": idp.issuer}


def test_an_exchanged_token_is_for_the_target_audience_and_the_same_user(logged_in, idp):
    manager = logged_in()
    token = manager.get_exchanged_token("orders")
    claims = token.claims()
    assert claims["aud"] == "orders" and claims["sub"] == "alice"
    assert manager.get_user_access_token().claims()["aud"] == "api"  # the user's own token is untouched
    assert token.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    assert token.access_token != manager.get_user_access_token().access_token


def test_two_calls_make_one_exchange_and_it_is_kept_with_the_login(logged_in, idp):
    manager = logged_in()
    first = manager.get_exchanged_token("orders")
    second = manager.get_exchanged_token("orders")
    assert second == first and exchanges(idp) == 1
    record = manager.user_tokens.record(LOCAL_USER)
    assert record["exchanged"]["orders"]["access_token"] == first.access_token
    assert record["exchanged"]["orders"]["issued_token_type"] == first.issued_token_type


def test_sixteen_threads_asking_at_once_make_one_exchange(logged_in, idp):
    manager = logged_in()
    start, tokens, errors = threading.Barrier(16), [], []

    def ask():
        start.wait()
        try:
            tokens.append(manager.get_exchanged_token("orders").access_token)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(tokens) == 16 and len(set(tokens)) == 1
    assert exchanges(idp) == 1


def test_a_token_due_for_renewal_is_exchanged_again_once(logged_in, idp):
    clock = FakeClock()
    manager = logged_in(clock=clock)
    first = manager.get_exchanged_token("orders")
    clock.advance(300 - 30)  # within the 60 s margin of its 300 s lifetime
    renewed = manager.get_exchanged_token("orders")
    again = manager.get_exchanged_token("orders")
    assert renewed.access_token != first.access_token and again == renewed
    assert exchanges(idp) == 2


def test_a_refreshed_user_token_leaves_the_exchanged_token_in_use_until_it_is_due(logged_in, idp):
    manager = logged_in()
    exchanged = manager.get_exchanged_token("orders")
    manager.get_user_access_token(force_renewal=True)
    assert refreshes(idp) == 1
    assert manager.get_exchanged_token("orders") == exchanged and exchanges(idp) == 1


def test_a_forced_renewal_exchanges_again(logged_in, idp):
    manager = logged_in()
    first = manager.get_exchanged_token("orders")
    assert manager.get_exchanged_token("orders", force_renewal=True).access_token != first.access_token
    assert exchanges(idp) == 2


def test_a_revoked_subject_token_is_refreshed_once_and_the_exchange_retried_once(logged_in, idp):
    manager = logged_in()
    subject = manager.get_user_access_token()
    reply = requests.post(idp.issuer + "/revoke", data={"token": subject.access_token},
                          auth=("web", "web-secret"), timeout=5)
    assert reply.status_code == 200
    token = manager.get_exchanged_token("orders")
    assert token.claims()["sub"] == "alice"
    counters = idp.provider.counters()
    assert counters["token_errors"]["invalid_grant"] == 1 and refreshes(idp) == 1 and exchanges(idp) == 1
    assert manager.get_user_access_token().access_token != subject.access_token


def test_logout_takes_the_exchanged_tokens_with_the_login(logged_in, idp):
    manager = logged_in()
    manager.get_exchanged_token("orders")
    manager.end_login()
    assert manager.user_tokens.record(LOCAL_USER) is None
    with pytest.raises(LoginRequired):
        manager.get_exchanged_token("orders")
    assert exchanges(idp) == 1


def test_without_a_login_an_exchange_is_login_required(idp):
    from pyramid_tokens import TokenManager

    from .conftest import settings_for

    with pytest.raises(LoginRequired):
        TokenManager.from_settings(settings_for(idp)).get_exchanged_token("orders")
    assert exchanges(idp) == 0


def test_delegation_puts_the_actor_in_act(logged_in, idp):
    manager = logged_in(**worker(idp), **{"tokens.exchange.orders.actor": "client:worker"})
    claims = manager.get_exchanged_token("orders").claims()
    assert claims["sub"] == "alice" and claims["act"] == {"sub": "worker"}


def test_without_an_actor_there_is_no_act(logged_in, idp):
    assert "act" not in logged_in().get_exchanged_token("orders").claims()


def test_a_clients_own_token_as_subject_is_cached_in_the_client_cache(logged_in, idp):
    manager = logged_in(**worker(idp), **{"tokens.exchange.svc.audience": "orders",
                                          "tokens.exchange.svc.subject": "client:worker"})
    token = manager.get_exchanged_token("svc")
    assert token.claims()["sub"] == "worker" and token.claims()["aud"] == "orders"
    assert token.claims()["client_id"] == "worker"  # the service exchanged its own token
    assert manager.get_exchanged_token("svc") == token and exchanges(idp) == 1
    assert "svc" not in (manager.user_tokens.record(LOCAL_USER).get("exchanged") or {})


def test_an_audience_the_provider_does_not_allow_is_a_token_error_with_its_error(logged_in, idp):
    manager = logged_in(**{"tokens.exchange.hr.audience": "hr"})
    with pytest.raises(TokenError) as raised:
        manager.get_exchanged_token("hr")
    assert raised.value.error == "invalid_target" and not isinstance(raised.value, LoginRequired)


def test_an_exchange_can_be_dpop_bound_with_the_logins_key(logged_in, idp):
    manager = logged_in(**{"oidc.dpop": "true"})
    login_key = manager.get_user_access_token().dpop_key
    token = manager.get_exchanged_token("orders")
    assert token.token_type == "DPoP" and token.dpop_key == login_key
    assert token.claims()["cnf"] == {"jkt": login_key.thumbprint}


def test_a_named_client_with_token_exchange_sends_the_exchanged_token(logged_in, idp):
    orders_api = serve(make_api_app(idp.issuer, audience="orders"))
    try:
        manager = logged_in(**{"tokens.http.orders.base_url": orders_api.url,
                               "tokens.http.orders.token": "exchange:orders"})
        answer = manager.http_client("orders").get("/api/whoami", timeout=5)
        assert answer.status_code == 200, answer.text
        assert answer.json()["claims"]["aud"] == "orders" and answer.json()["sub"] == "alice"
        assert exchanges(idp) == 1
    finally:
        orders_api.stop()


def test_an_exchanged_token_replaced_in_the_store_by_another_process_is_read_afresh(logged_in, idp):
    manager = logged_in()
    first = manager.get_exchanged_token("orders")
    record = manager.user_tokens.record(LOCAL_USER)
    # what another process sharing the store would write: a newer exchange of the same login
    replaced = first.with_(access_token="another-process-exchanged-token")
    manager.user_tokens.store.set(LOCAL_USER, {**record, "exchanged": {"orders": replaced.to_dict()}})
    assert manager.get_exchanged_token("orders").access_token == "another-process-exchanged-token"
    assert exchanges(idp) == 1
