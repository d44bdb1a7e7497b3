"""``oidc.profile = fapi2``: the FAPI 2.0 Security Profile's client rules, checked at start-up, and a
complete FAPI 2.0 client (PAR + private_key_jwt + DPoP + RFC 9207 ``iss``) logging in for real."""
from __future__ import annotations

from urllib.parse import urlsplit

import jwt
import pytest
import webtest

from pyramid_tokens import TokenManager
from pyramid_tokens.devidp import DevClient
from tests.support.provider import WEB_REDIRECT_URI, browser_login
from pyramid_tokens.errors import ConfigurationError
from tests.support.web import base_settings, build_app, login

SCOPE = "openid profile email offline_access api"


def fapi_client(keys):
    return DevClient("fapi-web", redirect_uris=[WEB_REDIRECT_URI], post_logout_redirect_uris=["http://localhost/"],
                     jwks=keys.jwks(keys.ec_jwk), scopes=SCOPE, token_endpoint_auth_method="private_key_jwt",
                     dpop_bound_access_tokens=True)


def fapi_settings(idp, keys, **overrides):
    return base_settings(idp, **{"oidc.client_id": "fapi-web", "oidc.client_secret": None,
                                 "oidc.client_assertion_key": keys.ec_jwk, "oidc.dpop": "true",
                                 "oidc.profile": "fapi2", **overrides})


def refusal(idp, keys, **overrides):
    with pytest.raises(ConfigurationError) as refused:
        TokenManager.from_settings(fapi_settings(idp, keys, **overrides))
    assert str(refused.value).startswith("oidc.profile: fapi2 needs ")
    return str(refused.value)


def test_a_complete_fapi2_client_logs_in_with_par_private_key_jwt_dpop_and_iss(make_idp, keys):
    idp = make_idp(clients=[fapi_client(keys)], par=True)
    app = webtest.TestApp(build_app(fapi_settings(idp, keys)))
    start = app.get("/login", status=302)
    assert "request_uri=" in start.location and "state=" not in start.location
    app.get("/logout")  # a fresh browser for the real login below
    login(app, "alice")
    token = jwt.decode(app.get("/token").json["access_token"], options={"verify_signature": False})
    assert token["sub"] == "alice" and "jkt" in token["cnf"]
    assert idp.provider.par.pushed == 2
    assert idp.provider.counters()["client_auth"]["private_key_jwt"] == 3  # two pushes, one code exchange


def test_fapi2_refuses_to_start_with_par_off(idp, keys):
    assert "pushed authorization requests (oidc.par is off" in refusal(idp, keys, **{"oidc.par": "off"})


def test_fapi2_refuses_to_start_with_a_client_secret(idp, keys):
    assert "no client secret" in refusal(idp, keys, **{"oidc.client_secret": "s3cret"})


def test_fapi2_refuses_to_start_without_private_key_jwt_or_mtls(idp, keys):
    assert "private_key_jwt or mutual TLS client authentication" in refusal(
        idp, keys, **{"oidc.client_assertion_key": None})


def test_fapi2_refuses_to_start_without_sender_constrained_tokens(idp, keys):
    assert "sender-constrained tokens" in refusal(idp, keys, **{"oidc.dpop": "false"})


def test_fapi2_refuses_to_start_with_rs256_client_assertions(idp, keys):
    message = refusal(idp, keys, **{"oidc.client_assertion_key": keys.rsa_pem, "oidc.client_assertion_alg": "RS256"})
    assert "PS256 or ES256 client assertions (oidc.client_assertion_alg is RS256)" in message


def test_fapi2_refuses_to_start_with_an_rs256_dpop_key(idp, keys):
    assert "PS256 or ES256 DPoP proofs" in refusal(idp, keys, **{"oidc.dpop": keys.rsa_pem})


def test_fapi2_names_every_missing_piece_at_once(idp, keys):
    message = refusal(idp, keys, **{"oidc.client_assertion_key": None, "oidc.client_secret": "s", "oidc.dpop": None,
                                    "oidc.par": "off"})
    assert len(message.split("; ")) == 4


def test_the_pyramid_app_refuses_to_start_with_an_incomplete_fapi2_configuration(idp, keys):
    with pytest.raises(Exception) as refused:
        build_app(fapi_settings(idp, keys, **{"oidc.dpop": "false"}))
    assert "oidc.profile: fapi2 needs sender-constrained tokens" in str(refused.value)


def test_fapi2_requires_par_even_in_auto_against_a_provider_without_it(make_idp, keys):
    idp = make_idp(clients=[fapi_client(keys)])
    page = webtest.TestApp(build_app(fapi_settings(idp, keys))).get("/login", status=502)
    assert "pushed_authorization_request_endpoint" in page.text


def test_fapi2_refuses_an_authorization_response_without_iss_even_when_not_advertised(make_idp, keys):
    idp = make_idp(clients=[fapi_client(keys)], par=True)
    document = idp.provider.metadata
    idp.provider.metadata = lambda: {**document(), "authorization_response_iss_parameter_supported": False}
    idp.provider.misbehave("authorization_response_no_iss")
    app = webtest.TestApp(build_app(fapi_settings(idp, keys)))
    callback = urlsplit(browser_login(app.get("/login", status=302).location, "alice"))
    assert "iss=" not in callback.query and "code=" in callback.query
    refused = app.get(callback.path + "?" + callback.query, status=400)
    assert "iss parameter is not the provider" in refused.text and "(RFC 9207)" in refused.text
    assert not idp.provider.counters()["token"].get("authorization_code")
