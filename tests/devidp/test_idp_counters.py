"""Counters prove what happened at the provider; they count, and they reset."""
from __future__ import annotations

import requests

from .flows import DEVICE_GRANT, client_credentials, code_flow, refresh


def test_a_fresh_provider_counts_nothing(idp):
    counted = idp.provider.counters()
    assert counted["token"] == {"authorization_code": 0, "refresh_token": 0, "client_credentials": 0, DEVICE_GRANT: 0}
    assert set(counted["token_errors"].values()) == {0}
    assert counted["client_auth"] == {"client_secret_basic": 0, "client_secret_post": 0, "none": 0}
    assert counted["by_client"] == {}
    for endpoint in ("authorize", "revocation", "userinfo", "discovery", "jwks", "end_session", "device_authorization"):
        assert counted[endpoint] == 0


def test_successful_tokens_are_counted_per_grant_and_per_client_and_errors_per_code(idp):
    tokens = code_flow(idp)
    refresh(idp, tokens["refresh_token"])
    refresh(idp, tokens["refresh_token"])  # refused: already rotated
    client_credentials(idp)
    client_credentials(idp, auth=("worker", "wrong"))
    counted = idp.provider.counters()
    assert counted["token"]["authorization_code"] == 1
    assert counted["token"]["refresh_token"] == 1
    assert counted["token"]["client_credentials"] == 1
    assert counted["token_errors"]["invalid_grant"] == 1
    assert counted["token_errors"]["invalid_client"] == 1
    assert counted["by_client"] == {"web": {"authorization_code": 1, "refresh_token": 1},
                                    "worker": {"client_credentials": 1}}
    assert counted["authorize"] == 1
    assert counted["client_auth"]["client_secret_basic"] == 4  # the refused refresh authenticated fine


def test_endpoint_requests_are_counted(idp):
    requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5)
    requests.get(idp.issuer + "/jwks", timeout=5)
    requests.get(idp.issuer + "/jwks", timeout=5)
    requests.get(idp.issuer + "/userinfo", timeout=5)
    counted = idp.provider.counters()
    assert (counted["discovery"], counted["jwks"], counted["userinfo"]) == (1, 2, 1)


def test_counters_are_served_as_json_and_reset_over_http(idp):
    client_credentials(idp)
    served = requests.get(idp.issuer + "/dev/counters", timeout=5).json()
    assert served == idp.provider.counters()
    assert served["token"]["client_credentials"] == 1
    reset = requests.post(idp.issuer + "/dev/counters/reset", timeout=5)
    assert reset.status_code == 200 and reset.json()["token"]["client_credentials"] == 0
    assert idp.provider.counters()["token"]["client_credentials"] == 0


def test_reset_counters_in_python(idp):
    client_credentials(idp)
    idp.provider.reset_counters()
    assert idp.provider.counters()["token"]["client_credentials"] == 0
    assert idp.provider.counters()["client_auth"]["client_secret_basic"] == 0


def test_counters_snapshot_is_a_copy(idp):
    snapshot = idp.provider.counters()
    snapshot["token"]["client_credentials"] = 99
    assert idp.provider.counters()["token"]["client_credentials"] == 0
