"""Discovery (OpenID Connect Discovery 1.0 §3-4) and the JWK Set (RFC 7517 §5)."""
from __future__ import annotations

import base64

import requests


def test_discovery_document_describes_every_endpoint_below_the_issuer(idp):
    response = requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    meta = response.json()
    assert meta["issuer"] == idp.issuer
    for name, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("jwks_uri", "/jwks"),
        ("userinfo_endpoint", "/userinfo"),
        ("revocation_endpoint", "/revoke"),
        ("end_session_endpoint", "/logout"),
        ("device_authorization_endpoint", "/device_authorization"),
    ]:
        assert meta[name] == idp.issuer + path


def test_discovery_document_advertises_what_the_provider_supports(idp):
    meta = requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5).json()
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["grant_types_supported"]) == {
        "authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code",
    }
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert meta["revocation_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert meta["subject_types_supported"] == ["public"]
    assert {"openid", "profile", "email", "offline_access", "api", "billing.read"} <= set(meta["scopes_supported"])
    assert {"sub", "name", "email", "role", "at_hash", "nonce", "auth_time"} <= set(meta["claims_supported"])
    assert meta["authorization_response_iss_parameter_supported"] is True


def test_discovery_follows_the_issuer_when_it_changes(idp):
    idp.provider.issuer = "http://127.0.0.1:1/elsewhere/"
    meta = requests.get(idp.url + "/idp/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == "http://127.0.0.1:1/elsewhere"
    assert meta["token_endpoint"] == "http://127.0.0.1:1/elsewhere/token"


def test_jwks_publishes_one_2048_bit_rs256_signing_key_with_a_kid(idp):
    response = requests.get(idp.issuer + "/jwks", timeout=5)
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["alg"] == "RS256" and key["kid"]
    modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
    assert len(modulus) * 8 == 2048
    assert "d" not in key and "p" not in key  # public parts only


def test_each_provider_generates_its_own_key(make_idp):
    first, second = make_idp(), make_idp()
    kid = lambda idp: requests.get(idp.issuer + "/jwks", timeout=5).json()["keys"][0]["kid"]  # noqa: E731
    assert kid(first) != kid(second)
