"""Fixtures of the token-exchange tests (RFC 8693): a provider whose clients may exchange, and a logged-in manager.

``idp`` replaces the shared one: ``web`` may exchange tokens for the audiences ``orders`` and
``billing``, ``worker`` for ``orders``; device logins are approved as alice at once, so
``logged_in(**settings)`` returns a :class:`TokenManager` whose ``device_login`` user is alice.
"""
from __future__ import annotations

import dataclasses

import pytest

from pyramid_tokens import TokenManager
from pyramid_tokens.devidp.models import TOKEN_EXCHANGE_GRANT
from tests.support.provider import standard_clients

SCOPE = "openid profile offline_access api"


def exchange_clients():
    web, worker = standard_clients()
    return [
        dataclasses.replace(web, grant_types=web.grant_types + (TOKEN_EXCHANGE_GRANT,),
                            audiences=("orders", "billing")),
        dataclasses.replace(worker, grant_types=worker.grant_types + (TOKEN_EXCHANGE_GRANT,), audiences=("orders",)),
    ]


def settings_for(idp, **settings):
    base = {
        "oidc.authority": idp.issuer,
        "oidc.client_id": "web",
        "oidc.client_secret": "web-secret",
        "oidc.scope": SCOPE,
        "tokens.exchange.orders.audience": "orders",
    }
    base.update(settings)
    return {k: v for k, v in base.items() if v is not None}


def exchanges(idp) -> int:
    """Token exchanges the provider answered with a token."""
    return idp.provider.counters()["token"].get(TOKEN_EXCHANGE_GRANT, 0)


def refreshes(idp) -> int:
    return idp.provider.counters()["token"]["refresh_token"]


@pytest.fixture
def idp(make_idp):
    return make_idp(clients=exchange_clients(), device_auto_approve="alice", device_interval=0)


@pytest.fixture
def logged_in(idp):
    made = []

    def factory(clock=None, **settings) -> TokenManager:
        manager = TokenManager.from_settings(settings_for(idp, **settings), **({"clock": clock} if clock else {}))
        manager.device_login(display=lambda authorization: None, sleep=lambda seconds: None)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        manager.close()
