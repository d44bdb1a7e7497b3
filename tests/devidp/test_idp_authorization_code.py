"""Authorization code flow with PKCE S256 (RFC 6749 §4.1, RFC 7636, OpenID Connect Core §3.1, RFC 9207)."""
from __future__ import annotations

import base64
import hashlib

import jwt
import requests

from pyramid_tokens.devidp import DevClient, DevUser
from tests.support.provider import WEB_REDIRECT_URI, authorize_url, browser_login, pkce_pair

from .flows import claims, code_flow, exchange, login, params, refresh, token_request, verify


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_login_redirects_to_the_client_with_code_state_and_iss(idp):
    _, challenge = pkce_pair()
    location = browser_login(authorize_url(idp.issuer, code_challenge=challenge, state="xyz"), "alice")
    assert location.startswith(WEB_REDIRECT_URI + "?")
    answer = params(location)
    assert answer["code"] and answer["state"] == "xyz" and answer["iss"] == idp.issuer


def test_code_exchange_returns_bearer_tokens_that_are_not_cached(idp):
    code, verifier = login(idp)
    response = exchange(idp, code, verifier)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "openid profile email offline_access api"
    assert body["refresh_token"] and body["id_token"] and body["access_token"]


def test_id_token_verifies_against_the_jwks_and_carries_nonce_at_hash_and_profile(idp):
    body = code_flow(idp, username="alice")
    id_token = verify(idp, body["id_token"], audience="web")
    assert id_token["sub"] == "alice"
    assert id_token["nonce"] == "nonce-1"
    assert id_token["at_hash"] == at_hash(body["access_token"])
    assert id_token["exp"] - id_token["iat"] == 300
    assert isinstance(id_token["auth_time"], int)
    assert (id_token["name"], id_token["email"], id_token["role"]) == ("Alice", "alice@example.test", "user")


def test_access_token_is_an_rfc9068_jwt_for_the_default_audience(idp):
    body = code_flow(idp, username="admin")
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    token = verify(idp, body["access_token"], audience="api")
    assert token["sub"] == "admin" and token["client_id"] == "web" and token["role"] == "admin"
    assert token["scope"] == "openid profile email offline_access api"
    assert token["jti"] and token["exp"] - token["iat"] == 300


def test_claims_follow_the_scopes(idp):
    body = code_flow(idp, scope="openid api")
    token, id_token = claims(body["access_token"]), claims(body["id_token"])
    for issued in (token, id_token):
        assert "name" not in issued and "email" not in issued and "role" not in issued
    assert "refresh_token" not in body  # no offline_access, no refresh token


def test_registered_users_keep_their_claims(make_idp):
    idp = make_idp(users=[DevUser("carol", name="Carol C.", email="carol@corp.test", role="auditor")])
    id_token = claims(code_flow(idp, username="carol")["id_token"])
    assert (id_token["name"], id_token["email"], id_token["role"]) == ("Carol C.", "carol@corp.test", "auditor")


def test_denying_redirects_with_access_denied_state_and_iss(idp):
    _, challenge = pkce_pair()
    location = browser_login(authorize_url(idp.issuer, code_challenge=challenge, state="s1"), approve=False)
    answer = params(location)
    assert answer["error"] == "access_denied" and answer["state"] == "s1" and answer["iss"] == idp.issuer
    assert "code" not in answer


def test_wrong_code_verifier_is_invalid_grant(idp):
    code, _ = login(idp)
    wrong, _ = pkce_pair()
    response = exchange(idp, code, wrong)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_missing_code_challenge_is_refused_back_at_the_client(idp):
    location = browser_login(authorize_url(idp.issuer, code_challenge=None, state="s2"))
    answer = params(location)
    assert answer["error"] == "invalid_request" and answer["state"] == "s2" and answer["iss"] == idp.issuer


def test_plain_code_challenge_method_is_refused(idp):
    verifier, _ = pkce_pair()
    url = authorize_url(idp.issuer, code_challenge=verifier, code_challenge_method="plain")
    assert params(browser_login(url))["error"] == "invalid_request"


def test_code_challenge_without_method_is_refused_because_it_means_plain(idp):
    _, challenge = pkce_pair()
    url = authorize_url(idp.issuer, code_challenge=challenge, code_challenge_method=None)
    assert params(browser_login(url))["error"] == "invalid_request"


def test_unregistered_redirect_uri_gets_an_error_page_and_never_a_redirect(idp):
    _, challenge = pkce_pair()
    for redirect_uri in ("http://evil.example/callback", "http://localhost/callback/extra", "http://localhost/"):
        url = authorize_url(idp.issuer, code_challenge=challenge, redirect_uri=redirect_uri)
        response = requests.get(url, allow_redirects=False, timeout=5)
        assert response.status_code == 400
        assert "Location" not in response.headers


def test_unknown_client_gets_an_error_page(idp):
    _, challenge = pkce_pair()
    response = requests.get(authorize_url(idp.issuer, client_id="nobody", code_challenge=challenge),
                            allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "Location" not in response.headers


def test_openid_requests_must_name_their_redirect_uri(idp):
    _, challenge = pkce_pair()
    response = requests.get(authorize_url(idp.issuer, redirect_uri=None, code_challenge=challenge),
                            allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "Location" not in response.headers


def test_only_response_type_code_is_supported(idp):
    _, challenge = pkce_pair()
    for response_type in ("token", "code id_token", "id_token"):
        url = authorize_url(idp.issuer, code_challenge=challenge, response_type=response_type)
        assert params(browser_login(url))["error"] == "unsupported_response_type"


def test_prompt_none_answers_login_required_because_there_are_no_sessions(idp):
    _, challenge = pkce_pair()
    location = browser_login(authorize_url(idp.issuer, code_challenge=challenge, prompt="none"))
    assert params(location)["error"] == "login_required"


def test_scope_the_client_may_not_ask_for_is_invalid_scope(idp):
    _, challenge = pkce_pair()
    location = browser_login(authorize_url(idp.issuer, code_challenge=challenge, scope="openid billing.read"))
    assert params(location)["error"] == "invalid_scope"


def test_code_is_single_use_and_reuse_revokes_what_it_issued(idp):
    code, verifier = login(idp)
    first = exchange(idp, code, verifier)
    assert first.status_code == 200
    second = exchange(idp, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert refresh(idp, first.json()["refresh_token"]).json()["error"] == "invalid_grant"  # RFC 6749 §4.1.2


def test_code_expires_after_code_lifetime(make_idp, clock):
    idp = make_idp(clock=clock, code_lifetime=2)
    code, verifier = login(idp)
    clock.advance(2)
    response = exchange(idp, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(idp):
    idp.provider.add_client(DevClient("other", "other-secret", redirect_uris=[WEB_REDIRECT_URI]))
    code, verifier = login(idp)
    response = exchange(idp, code, verifier, auth=("other", "other-secret"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_token_request_must_repeat_the_redirect_uri(idp):
    code, verifier = login(idp)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    response = token_request(idp, data)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_public_client_completes_the_flow_with_pkce_alone(idp):
    idp.provider.add_client(DevClient("spa", redirect_uris=[WEB_REDIRECT_URI], scopes="openid api"))
    code, verifier = login(idp, scope="openid api", client_id="spa")
    response = exchange(idp, code, verifier, auth=None, client_id="spa")
    assert response.status_code == 200, response.text
    assert claims(response.json()["id_token"])["aud"] == "spa"
    assert idp.provider.counters()["client_auth"]["none"] == 1


def test_login_page_escapes_what_the_request_carries(idp):
    _, challenge = pkce_pair()
    url = authorize_url(idp.issuer, code_challenge=challenge, state="<script>alert(1)</script>",
                        login_hint="<b>x</b>")
    page = requests.get(url, timeout=5)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text and "<b>x</b>" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"


def test_tokens_come_with_client_secret_post_as_well(idp):
    code, verifier = login(idp)
    response = exchange(idp, code, verifier, auth=None, client_id="web", client_secret="web-secret")
    assert response.status_code == 200
    assert idp.provider.counters()["client_auth"]["client_secret_post"] == 1


def test_the_authorization_request_may_be_form_posted(idp):
    _, challenge = pkce_pair()
    query = dict(params(authorize_url(idp.issuer, code_challenge=challenge)))
    page = requests.post(idp.issuer + "/authorize", data=query, timeout=5)
    assert page.status_code == 200 and "authorization_request" in page.text


def test_a_public_client_may_name_itself_with_an_empty_basic_password(idp):
    idp.provider.add_client(DevClient("spa", redirect_uris=[WEB_REDIRECT_URI], scopes="openid api"))
    code, verifier = login(idp, scope="openid api", client_id="spa")
    assert exchange(idp, code, verifier, auth=("spa", "")).status_code == 200


def test_a_public_client_presenting_a_secret_is_refused(idp):
    idp.provider.add_client(DevClient("spa", redirect_uris=[WEB_REDIRECT_URI], scopes="openid api"))
    code, verifier = login(idp, scope="openid api", client_id="spa")
    assert exchange(idp, code, verifier, auth=("spa", "guess")).status_code == 401
