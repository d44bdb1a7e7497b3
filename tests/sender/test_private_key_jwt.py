"""private_key_jwt (RFC 7523, OIDC Core §9) against the development provider, over real HTTP."""
from __future__ import annotations

import jwt
import pytest
import requests
import webtest

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.assertion import JWT_BEARER, ClientAssertionKey
from pyramid_tokens.devidp import DevClient
from tests.support.provider import WEB_REDIRECT_URI
from tests.support.web import base_settings, build_app, login

FULL_SCOPE = "openid profile email offline_access api"


def jwt_clients(keys):
    return [
        DevClient("jwt-web", redirect_uris=[WEB_REDIRECT_URI], post_logout_redirect_uris=["http://localhost/"],
                  jwks=keys.jwks(keys.ec_jwk), scopes=FULL_SCOPE, token_endpoint_auth_method="private_key_jwt"),
        DevClient("jwt-worker", jwks=keys.jwks(keys.rsa_pem, "PS256"), grant_types=["client_credentials"],
                  scopes="api"),
    ]


def worker_manager(idp, key_path, **extra):
    return TokenManager.from_settings({
        "tokens.clients.worker.authority": idp.issuer,
        "tokens.clients.worker.client_id": "jwt-worker",
        "tokens.clients.worker.client_assertion_key": key_path,
        "tokens.clients.worker.scope": "api",
        **extra,
    })


def client_auth(idp):
    return idp.provider.counters()["client_auth"]


def test_client_credentials_authenticate_with_a_signed_assertion_instead_of_a_secret(make_idp, keys):
    idp = make_idp(clients=jwt_clients(keys))
    seen = []
    tm = worker_manager(idp, keys.rsa_pem, **{"tokens.clients.worker.client_assertion_alg": "PS256"})
    tm.transport.session.hooks["response"].append(lambda r, **kw: seen.append(r.request.body))
    token = tm.get_client_access_token("worker")
    assert jwt.decode(token.access_token, options={"verify_signature": False})["sub"] == "jwt-worker"
    assert client_auth(idp)["private_key_jwt"] == 1
    form = dict(pair.split("=", 1) for pair in seen[-1].split("&"))
    assert form["client_assertion_type"] == requests.utils.quote(JWT_BEARER, safe="")
    assert "client_secret" not in form
    assertion = requests.utils.unquote(form["client_assertion"])
    header, claims = jwt.get_unverified_header(assertion), jwt.decode(assertion, options={"verify_signature": False})
    assert header["alg"] == "PS256" and header["kid"] == keys.jwks(keys.rsa_pem)["keys"][0]["kid"]
    assert claims["iss"] == claims["sub"] == "jwt-worker"
    assert claims["aud"] == idp.issuer  # the issuer, as RFC 7523bis recommends
    assert claims["exp"] - claims["iat"] == 60 and len(claims["jti"]) >= 20


def test_every_assertion_is_fresh_and_a_replayed_one_is_refused(make_idp, keys):
    idp = make_idp(clients=jwt_clients(keys))
    key = ClientAssertionKey.from_file(keys.rsa_pem)
    assertion = key.assertion("jwt-worker", idp.issuer)
    form = {"grant_type": "client_credentials", "client_id": "jwt-worker", "client_assertion_type": JWT_BEARER,
            "client_assertion": assertion}
    first = requests.post(idp.issuer + "/token", data=form, timeout=5)
    assert first.status_code == 200, first.text
    replay = requests.post(idp.issuer + "/token", data=form, timeout=5)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"
    # the client itself never replays: two requests, two assertions, two tokens
    tm = worker_manager(idp, keys.rsa_pem)
    tm.get_client_access_token("worker")
    tm.get_client_access_token("worker", force_renewal=True)
    assert client_auth(idp)["private_key_jwt"] == 3


def test_a_key_the_client_did_not_register_is_refused(make_idp, keys):
    idp = make_idp(clients=jwt_clients(keys))
    with pytest.raises(TokenError) as refused:
        worker_manager(idp, keys.other_pem).get_client_access_token("worker")
    assert refused.value.error == "invalid_client"
    assert client_auth(idp).get("private_key_jwt", 0) == 0


def test_an_assertion_for_another_audience_or_expired_is_refused(make_idp, keys):
    idp = make_idp(clients=jwt_clients(keys))
    key = ClientAssertionKey.from_file(keys.rsa_pem)
    for assertion in (key.assertion("jwt-worker", "https://other.example/"),
                      key.assertion("jwt-worker", idp.issuer, now=1_000_000)):
        form = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER, "client_assertion": assertion}
        reply = requests.post(idp.issuer + "/token", data=form, timeout=5)
        assert reply.json()["error"] == "invalid_client"


def test_a_client_registered_for_private_key_jwt_cannot_fall_back_to_a_secret(make_idp, keys):
    clients = [DevClient("both", "both-secret", jwks=keys.jwks(keys.rsa_pem), grant_types=["client_credentials"],
                         scopes="api", token_endpoint_auth_method="private_key_jwt")]
    idp = make_idp(clients=clients)
    reply = requests.post(idp.issuer + "/token", data={"grant_type": "client_credentials"},
                          auth=("both", "both-secret"), timeout=5)
    assert reply.json()["error"] == "invalid_client"
    assert "private_key_jwt" in requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5).json()[
        "token_endpoint_auth_methods_supported"]


def test_login_refresh_and_revocation_use_private_key_jwt(make_idp, keys):
    """The web client logs in (code exchange), refreshes and revokes at logout with its JWK-file key: no secret."""
    idp = make_idp(clients=jwt_clients(keys))
    settings = base_settings(idp, **{"oidc.client_id": "jwt-web", "oidc.client_secret": None,
                                     "oidc.client_assertion_key": keys.ec_jwk})
    app = webtest.TestApp(build_app(settings))
    login(app, "alice")
    first = app.get("/token").json
    assert first["sub"] == "alice"
    renewed = app.get("/token", params={"force": "1"}).json
    assert renewed["access_token"] != first["access_token"]
    store = app.app.registry["pyramid_tokens.manager"].user_tokens.store
    (refresh_token,) = [v["refresh_token"] for k, v in store.items() if not k.startswith("rotated:")]
    app.get("/logout").forms[0].submit()
    counters = idp.provider.counters()
    assert counters["token"]["authorization_code"] == 1 and counters["token"]["refresh_token"] == 1
    assert counters["revocation"] == 1
    assert counters["client_auth"]["private_key_jwt"] == 3  # code exchange, refresh, revocation
    assert counters["client_auth"]["client_secret_basic"] == counters["client_auth"]["client_secret_post"] == 0
    # the revocation took: the refresh token is dead at the provider
    key = ClientAssertionKey.from_file(keys.ec_jwk)
    reply = requests.post(idp.issuer + "/token", timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "jwt-web",
        "client_assertion_type": JWT_BEARER, "client_assertion": key.assertion("jwt-web", idp.issuer)})
    assert reply.json()["error"] == "invalid_grant"


def test_device_login_authenticates_with_private_key_jwt(make_idp, keys):
    idp = make_idp(clients=jwt_clients(keys), device_auto_approve="bob", device_interval=0)
    tm = TokenManager.from_settings({"oidc.authority": idp.issuer, "oidc.client_id": "jwt-web",
                                     "oidc.client_assertion_key": keys.ec_jwk, "oidc.scope": FULL_SCOPE})
    token = tm.device_login(display=lambda authorization: None, sleep=lambda seconds: None)
    assert jwt.decode(token.access_token, options={"verify_signature": False})["sub"] == "bob"
    assert client_auth(idp)["private_key_jwt"] >= 2  # device authorization and the token poll


def test_an_assertion_without_an_audience_is_a_configuration_error_not_a_value_error(keys):
    from pyramid_tokens.clientauth import apply_client_auth
    from pyramid_tokens.errors import ConfigurationError
    from pyramid_tokens.options import ClientCredentials

    credentials = ClientCredentials("jwt-web", assertion_key=ClientAssertionKey.from_file(keys.ec_jwk))
    form: dict = {}
    with pytest.raises(ConfigurationError, match="client_assertion_key: a client assertion needs an audience"):
        apply_client_auth(credentials, form, {}, audience=None)
    assert form == {}  # nothing half-built
