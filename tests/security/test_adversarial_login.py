"""A hostile provider attacks the login (OpenID Foundation Basic RP certification cases and more).

Every attack goes over real HTTP: the development provider misbehaves in one named way
(``pyramid_tokens/devidp/faults.py``). Each must end in the package's failure page saying what was
wrong, with no logged-in session afterwards (a request that needs the user's token is challenged).
"""
from __future__ import annotations

import pytest

from tests.support.provider import browser_login

from .support import (assert_logged_out, assert_login_failed, attempt_login, callback_path, login,
                      provider_redirect, query_of, user_record)

#: fault -> what the failure page says (OIDC Core §3.1.3.7 unless noted)
ID_TOKEN_ATTACKS = {
    "id_token_alg_none": "the ID token's algorithm 'none' is not allowed",
    "id_token_alg_hs256": "the ID token's algorithm 'HS256' is not allowed",
    "id_token_bad_signature": "the ID token's signature is invalid",
    "id_token_unknown_kid": "no signing key with kid",
    "id_token_wrong_iss": "the ID token's issuer is not the provider",
    "id_token_wrong_aud": "the ID token's audience does not contain this client",
    "id_token_multi_aud_no_azp": "the ID token's azp is not this client",
    "id_token_multi_aud_wrong_azp": "the ID token's azp is not this client",
    "id_token_no_nonce": "the ID token's nonce does not match the login request",
    "id_token_wrong_nonce": "the ID token's nonce does not match the login request",
    "id_token_expired": "the ID token has expired",
    "id_token_iat_future": "the ID token was issued in the future",
    "id_token_exp_not_finite": "the ID token's exp is not a number",
    "id_token_wrong_at_hash": "the ID token's at_hash does not match the access token",
    "id_token_wrong_sub": None,  # harmless at login (the provider may name anyone); see the refresh test
}

OTHER_ATTACKS = {
    "token_without_id_token": "the provider returned no id_token",
    "userinfo_wrong_sub": "userinfo names another user than the ID token (sub mismatch)",
    "authorization_response_wrong_iss": "iss parameter is not the provider's issuer (RFC 9207)",
    "authorization_response_no_iss": "iss parameter is not the provider's issuer (RFC 9207)",
    "authorization_response_wrong_state": "state missing or unknown",
    "authorization_response_no_state": "state missing or unknown",
    "authorization_error": "the provider refused the login: The provider failed",
}


@pytest.mark.parametrize("fault", [name for name, message in ID_TOKEN_ATTACKS.items() if message])
def test_bad_id_token_ends_in_a_failure_page_and_no_session(app, idp, fault):
    idp.provider.misbehave(fault)
    response = attempt_login(app)
    assert idp.provider.faults.triggered == 1  # the attack really happened
    assert_login_failed(response, ID_TOKEN_ATTACKS[fault])
    assert_logged_out(app)


@pytest.mark.parametrize("fault", sorted(OTHER_ATTACKS))
def test_bad_authorization_or_userinfo_response_ends_in_a_failure_page_and_no_session(app, idp, fault):
    idp.provider.misbehave(fault)
    response = attempt_login(app)
    assert idp.provider.faults.triggered == 1
    assert_login_failed(response, OTHER_ATTACKS[fault])
    assert_logged_out(app)


def test_a_failed_login_does_not_spend_the_code_when_the_state_is_wrong(app, idp):
    idp.provider.misbehave("authorization_response_wrong_state")
    attempt_login(app)
    assert idp.provider.counters()["token"]["authorization_code"] == 0  # nothing was sent to the provider


def test_unknown_kid_is_looked_up_once_more_before_failing(make_webapp, idp, clock):
    app = make_webapp()
    login(app, "bob")  # the app has the provider's JWKS now
    app.reset()
    jwks_before = idp.provider.counters()["jwks"]
    clock.advance(60)  # past the refetch rate limit
    idp.provider.misbehave("id_token_unknown_kid")
    assert_login_failed(attempt_login(app), "no signing key with kid")
    assert idp.provider.counters()["jwks"] == jwks_before + 1  # refetched exactly once, then refused
    assert_logged_out(app)


@pytest.mark.parametrize("keep_old", [True, False])
def test_key_rotation_refetches_the_jwks_once_and_the_login_succeeds(make_idp, make_webapp, clock, keep_old):
    idp = make_idp()
    app = make_webapp(idp)
    login(app, "bob")
    app.reset()
    assert idp.provider.counters()["jwks"] == 1
    idp.provider.rotate_keys(keep_old=keep_old)
    clock.advance(60)
    login(app, "alice")
    assert app.get("/whoami").json == {"userid": "alice"}
    assert idp.provider.counters()["jwks"] == 2


def test_state_missing_in_the_callback_url(app, idp):
    location = provider_redirect(app)
    query = query_of(location)
    response = app.get("/callback", params={"code": query["code"][0], "iss": query["iss"][0]}, status=400)
    assert_login_failed(response, "state missing or unknown")
    assert_logged_out(app)
    assert idp.provider.counters()["token"]["authorization_code"] == 0


def test_state_of_another_browser_is_refused(make_webapp, idp):
    victim, attacker = make_webapp(), make_webapp()
    victim.get("/login")  # the victim has a login in progress
    # The attacker logs in with their own account and feeds the response to the victim (login CSRF).
    location = provider_redirect(attacker, "mallory")
    response = victim.get(callback_path(location), status=400)
    assert_login_failed(response, "state missing or unknown")
    assert_logged_out(victim)


def test_error_in_the_callback_from_the_provider(app):
    start = app.get("/login")
    response = app.get(callback_path(browser_login(start.location, approve=False)), status=400)
    assert_login_failed(response, "the provider refused the login: The user denied the request")
    assert_logged_out(app)


def test_error_description_is_shown_escaped(app, idp):
    idp.provider.misbehave("authorization_error", error_description="<script>alert(1)</script>")
    response = attempt_login(app)
    assert "<script>" not in response.text
    assert_login_failed(response, "<script>alert(1)</script>")  # as text, escaped in the HTML


def test_replayed_callback_is_refused_and_does_not_reach_the_provider(app, idp):
    location = provider_redirect(app)
    app.get(callback_path(location), status=302)
    app.reset()  # even from a fresh browser
    app.get("/login")
    response = app.get(callback_path(location), status=400)
    assert_login_failed(response, "state missing or unknown")
    assert_logged_out(app)
    assert idp.provider.counters()["token"]["authorization_code"] == 1


def test_used_code_injected_into_another_login_is_refused_by_the_provider(make_webapp, idp):
    """A stolen, already redeemed code replayed with a fresh, valid state: the provider says invalid_grant."""
    victim, attacker = make_webapp(), make_webapp()
    location = provider_redirect(victim)
    stolen = query_of(location)["code"][0]
    victim.get(callback_path(location), status=302)
    start = query_of(attacker.get("/login").location)
    response = attacker.get("/callback", params={"code": stolen, "state": start["state"][0], "iss": idp.issuer},
                            status=400)
    assert_login_failed(response, "The login could not be completed")
    assert idp.provider.counters()["token_errors"]["invalid_grant"] == 1
    assert_logged_out(attacker)


def test_iss_parameter_may_not_be_dropped_when_the_provider_advertises_it(app, idp):
    location = provider_redirect(app)
    query = query_of(location)
    response = app.get("/callback", params={"code": query["code"][0], "state": query["state"][0]}, status=400)
    assert_login_failed(response, "RFC 9207")
    assert_logged_out(app)


def test_discovery_naming_another_issuer_is_refused(make_webapp, idp):
    idp.provider.misbehave("discovery_wrong_issuer")
    app = make_webapp()
    response = app.get("/login", status=503)
    assert "unavailable" in response.text
    assert app.get("/public").text == "public"
    assert idp.provider.faults.triggered >= 1


@pytest.mark.parametrize("fault, params, message", [
    ("id_token_wrong_nonce", {"nonce": "n\u00f6nce-\u2603"}, "the ID token's nonce does not match the login request"),
    ("id_token_wrong_iss", {"iss": "https://\u00e9vil.example"}, "the ID token's issuer is not the provider"),
    ("userinfo_wrong_sub", {"sub": "\u00e4lice"}, "sub mismatch"),
])
def test_non_ascii_values_from_the_provider_are_refused_not_a_crash(app, idp, fault, params, message):
    idp.provider.misbehave(fault, **params)
    assert_login_failed(attempt_login(app), message)
    assert_logged_out(app)


@pytest.mark.parametrize("sub", [["alice"], None, 7])
def test_a_userinfo_sub_that_is_not_a_string_fails_the_login(app, idp, sub):
    idp.provider.misbehave("userinfo_wrong_sub", sub=sub)
    assert_login_failed(attempt_login(app), "userinfo: sub must be a string")
    assert_logged_out(app)


# -- refreshed ID tokens (OIDC Core §12.2) --------------------------------------------------------------------------
def test_refresh_answered_for_another_user_ends_the_login(app, idp, clock):
    login(app)
    clock.advance(400)
    idp.provider.misbehave("id_token_wrong_sub", on="refresh_token")
    response = app.get("/token", headers={"Accept": "application/json"}, status=401)
    assert idp.provider.faults.triggered == 1
    assert response.json["error"] == "login_required"
    assert "another user" in response.json["error_description"]
    # The token set is gone: every later token-needing request is challenged, nothing is sent to the provider.
    manager = app.app.registry["pyramid_tokens.manager"]
    assert [k for k in manager.user_tokens.store._data if not k.startswith("rotated:")] == []
    assert app.get("/token", headers={"Accept": "application/json"}, status=401).json["error"] == "login_required"
    assert idp.provider.counters()["token"]["refresh_token"] == 1


@pytest.mark.parametrize("fault", ["id_token_bad_signature", "id_token_wrong_aud", "id_token_expired"])
def test_bad_refreshed_id_token_keeps_the_previous_one_and_the_rotated_refresh_token(app, idp, clock, fault):
    login(app)
    before = user_record(app)
    clock.advance(400)
    idp.provider.misbehave(fault, on="refresh_token")
    assert app.get("/token").json["sub"] == "alice"
    after = user_record(app)
    assert after["id_token"] == before["id_token"]  # the bad one was not stored
    assert after["refresh_token"] != before["refresh_token"]  # the rotated one was (it is the only valid one now)
