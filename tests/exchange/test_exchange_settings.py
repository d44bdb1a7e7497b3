"""``tokens.exchange.NAME.*`` settings: parsed once, every mistake a ConfigurationError naming its key."""
from __future__ import annotations

import pytest

from pyramid_tokens.errors import ConfigurationError
from pyramid_tokens.options import ACCESS_TOKEN_TYPE, parse_settings

OIDC = {"oidc.authority": "https://idp.example.test", "oidc.client_id": "web", "oidc.client_secret": "s"}
WORKER = {"tokens.clients.worker.client_id": "worker", "tokens.clients.worker.authority": "https://idp.example.test"}


def test_an_exchange_defaults_to_the_users_access_token_for_an_access_token():
    options = parse_settings({**OIDC, "tokens.exchange.orders.audience": "orders",
                              "tokens.exchange.orders.scope": "a b"})
    orders = options.exchange["orders"]
    assert (orders.subject, orders.actor, orders.requested_token_type) == ("user", None, ACCESS_TOKEN_TYPE)
    assert orders.scope == "a b" and orders.credentials is None


def test_an_exchange_with_its_own_client_keeps_the_secret_out_of_its_repr():
    options = parse_settings({**OIDC, "tokens.exchange.orders.audience": "orders",
                              "tokens.exchange.orders.client_id": "gateway",
                              "tokens.exchange.orders.client_secret": "gateway-secret-value"})
    assert options.exchange["orders"].credentials.client_id == "gateway"
    assert "gateway-secret-value" not in repr(options.exchange["orders"])


@pytest.mark.parametrize("settings, key", [
    ({"tokens.exchange.orders.scope": "api"}, "tokens.exchange.orders.audience"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.subject": "robot"},
     "tokens.exchange.orders.subject"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.actor": "user"}, "tokens.exchange.orders.actor"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.actor": "client:nobody"},
     "tokens.exchange.orders.actor"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.subject": "client:nobody"},
     "tokens.exchange.orders.subject"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.requested_token_type": "jwt"},
     "tokens.exchange.orders.requested_token_type"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.resource": "not a url"},
     "tokens.exchange.orders.resource"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.client_secret": "s"},
     "tokens.exchange.orders.client_id"),
    ({"tokens.exchange.orders.audience": "o", "tokens.exchange.orders.colour": "red"}, "tokens.exchange.orders.colour"),
    ({"tokens.http.orders.base_url": "https://orders.example.test", "tokens.http.orders.token": "exchange:nope"},
     "tokens.http.orders.token"),
])
def test_a_bad_exchange_setting_names_its_key(settings, key):
    with pytest.raises(ConfigurationError) as raised:
        parse_settings({**OIDC, **WORKER, **settings})
    assert raised.value.key == key


def test_a_user_subject_needs_the_login_settings():
    with pytest.raises(ConfigurationError) as raised:
        parse_settings({**WORKER, "tokens.exchange.orders.audience": "orders"})
    assert raised.value.key == "tokens.exchange.orders.subject"


def test_a_client_subject_needs_no_login_settings_and_exchanges_as_that_client():
    options = parse_settings({**WORKER, "tokens.exchange.orders.audience": "orders",
                              "tokens.exchange.orders.subject": "client:worker"})
    assert options.exchange["orders"].subject_client == "worker"
