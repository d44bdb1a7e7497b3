"""Refresh with rotation (RFC 6749 §6, RFC 9700 §4.14.2) and refreshed ID tokens (OpenID Connect Core §12.2)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyramid_tokens.devidp import DevClient
from tests.support.provider import WEB_REDIRECT_URI

from .flows import claims, code_flow, refresh


def test_every_refresh_returns_a_new_refresh_token_and_the_used_one_is_refused(idp):
    first = code_flow(idp)
    response = refresh(idp, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    again = refresh(idp, first["refresh_token"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert refresh(idp, second["refresh_token"]).status_code == 200  # the new one works once


def test_refresh_returns_a_new_id_token_for_the_same_authentication_without_nonce(idp):
    first = code_flow(idp)
    second = refresh(idp, first["refresh_token"]).json()
    old, new = claims(first["id_token"]), claims(second["id_token"])
    assert new["sub"] == old["sub"] and new["aud"] == old["aud"] and new["iss"] == old["iss"]
    assert new["auth_time"] == old["auth_time"]
    assert "nonce" not in new
    assert new["at_hash"] != old["at_hash"]


def test_scope_may_be_narrowed_but_the_new_refresh_token_keeps_the_original_scope(idp):
    first = code_flow(idp)
    narrowed = refresh(idp, first["refresh_token"], scope="openid api").json()
    assert narrowed["scope"] == "openid api"
    assert claims(narrowed["access_token"])["scope"] == "openid api"
    assert "name" not in claims(narrowed["id_token"])
    full = refresh(idp, narrowed["refresh_token"]).json()
    assert full["scope"] == "openid profile email offline_access api"


def test_narrowing_to_a_scope_without_openid_returns_no_id_token(idp):
    first = code_flow(idp)
    response = refresh(idp, first["refresh_token"], scope="api").json()
    assert response["scope"] == "api" and "id_token" not in response


def test_scope_cannot_be_widened(idp):
    first = code_flow(idp, scope="openid offline_access")
    response = refresh(idp, first["refresh_token"], scope="openid offline_access api")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"
    assert refresh(idp, first["refresh_token"]).status_code == 200  # a refused request does not use it up


def test_refresh_token_is_bound_to_its_client(idp):
    idp.provider.add_client(DevClient("other", "other-secret", redirect_uris=[WEB_REDIRECT_URI]))
    first = code_flow(idp)
    response = refresh(idp, first["refresh_token"], auth=("other", "other-secret"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_refresh_token_expires_after_its_lifetime(make_idp, clock):
    idp = make_idp(clock=clock, clients=[DevClient("web", "web-secret", redirect_uris=[WEB_REDIRECT_URI],
                                                   refresh_token_lifetime=2)])
    first = code_flow(idp)
    clock.advance(2)
    response = refresh(idp, first["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_clients_without_the_refresh_grant_get_no_refresh_token(make_idp):
    idp = make_idp(clients=[DevClient("web", "web-secret", redirect_uris=[WEB_REDIRECT_URI],
                                      grant_types=["authorization_code"])])
    assert "refresh_token" not in code_flow(idp)


def test_concurrent_refreshes_with_one_token_succeed_exactly_once(idp):
    first = code_flow(idp)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: refresh(idp, first["refresh_token"]).status_code, range(8)))
    assert sorted(statuses) == [200] + [400] * 7
    assert idp.provider.counters()["token"]["refresh_token"] == 1
