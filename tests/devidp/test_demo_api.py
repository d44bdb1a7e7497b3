"""The demo API validates JWT access tokens locally (RFC 9068, RFC 6750) against the provider's JWKS."""
from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from pyramid.config import Configurator

from pyramid_tokens.clock import FakeClock
from pyramid_tokens.demo.api import add_demo_api, make_api_app
from pyramid_tokens.devidp import serve

from .flows import client_credentials, code_flow


@pytest.fixture
def make_api():
    servers = []

    def factory(idp, **kwargs):
        server = serve(make_api_app(idp.issuer, **kwargs))
        servers.append(server)
        return server.url + "/api/whoami"

    yield factory
    for server in servers:
        server.stop()


def whoami(url, token=None, scheme="Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return requests.get(url, headers=headers, timeout=5)


def test_a_valid_user_token_is_accepted_and_its_claims_returned(idp, make_api):
    url = make_api(idp)
    response = whoami(url, code_flow(idp, username="alice")["access_token"])
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "alice" and body["client_id"] == "web"
    assert body["scope"] == "openid profile email offline_access api"
    assert body["claims"]["iss"] == idp.issuer and body["claims"]["aud"] == "api"


def test_a_client_credentials_token_is_accepted(idp, make_api):
    body = whoami(make_api(idp), client_credentials(idp).json()["access_token"]).json()
    assert body["sub"] == "worker" and body["client_id"] == "worker"


def test_discovery_is_fetched_lazily_once_and_keys_are_cached(idp, make_api):
    url = make_api(idp)
    assert idp.provider.counters()["discovery"] == 0
    token = client_credentials(idp).json()["access_token"]
    for _ in range(3):
        assert whoami(url, token).status_code == 200
    counted = idp.provider.counters()
    assert counted["discovery"] == 1 and counted["jwks"] == 1


def test_no_token_gets_a_challenge_without_error(idp, make_api):
    url = make_api(idp)
    for response in (whoami(url), whoami(url, "dXNlcjpwYXNz", scheme="Basic")):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="demo-api"'


def invalid_token_challenge(response) -> str:
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="demo-api", error="invalid_token", error_description="')
    return challenge


def test_an_expired_token_is_refused(make_idp, make_api):
    idp = make_idp(clock=FakeClock(time.time() - 3600))  # everything it issues expired long ago
    challenge = invalid_token_challenge(whoami(make_api(idp), client_credentials(idp).json()["access_token"]))
    assert "expired" in challenge


def test_a_token_for_another_audience_is_refused(idp, make_api):
    token = client_credentials(idp, resource="https://billing.example.test/").json()["access_token"]
    assert "aud" in invalid_token_challenge(whoami(make_api(idp), token))
    assert whoami(make_api(idp, audience="https://billing.example.test/"), token).status_code == 200


def test_a_token_signed_by_someone_else_with_the_providers_kid_is_refused(idp, make_api):
    genuine = client_credentials(idp).json()["access_token"]
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims, "sub": "admin"}, attacker_key, algorithm="RS256", headers=header)
    assert "signature" in invalid_token_challenge(whoami(make_api(idp), forged))


def test_a_tampered_token_is_refused(idp, make_api):
    head, payload, signature = client_credentials(idp).json()["access_token"].split(".")
    tampered = f"{head}.{payload}.{signature[:-6]}AAAAAA"
    invalid_token_challenge(whoami(make_api(idp), tampered))


def test_an_unsigned_token_is_refused(idp, make_api):
    claims = jwt.decode(client_credentials(idp).json()["access_token"], options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"typ": "at+jwt"})
    invalid_token_challenge(whoami(make_api(idp), unsigned))


def test_a_token_from_another_issuer_is_refused(idp, make_idp, make_api):
    other = make_idp()
    invalid_token_challenge(whoami(make_api(idp), client_credentials(other).json()["access_token"]))


def test_an_id_token_is_not_accepted_as_an_access_token(idp, make_api):
    challenge = invalid_token_challenge(whoami(make_api(idp), code_flow(idp)["id_token"]))
    assert "typ" in challenge


def test_garbage_is_refused(idp, make_api):
    invalid_token_challenge(whoami(make_api(idp), "not-a-jwt"))


def test_tokens_signed_after_key_rotation_are_accepted(idp, make_api):
    url = make_api(idp, jwks_refetch_cooldown=0)
    assert whoami(url, client_credentials(idp).json()["access_token"]).status_code == 200
    idp.provider.rotate_keys(keep_old=False)
    assert whoami(url, client_credentials(idp).json()["access_token"]).status_code == 200
    assert idp.provider.counters()["jwks"] == 2  # refetched for the unknown kid


def test_an_unreachable_issuer_is_a_503(idp, make_api):
    url = make_api(idp)
    token = client_credentials(idp).json()["access_token"]
    idp.stop()
    assert whoami(url, token).status_code == 503


def test_add_demo_api_mounts_whoami_below_its_prefix_in_a_larger_app(idp):
    config = Configurator()
    add_demo_api(config, issuer=idp.issuer, prefix="/v1")
    with serve(config.make_wsgi_app()) as server:
        token = client_credentials(idp).json()["access_token"]
        assert whoami(server.url + "/v1/whoami", token).json()["sub"] == "worker"
        assert whoami(server.url + "/api/whoami", token).status_code == 404


def test_empty_bearer_credentials_are_a_bad_request(idp, make_api):
    response = requests.get(make_api(idp), headers={"Authorization": "Bearer "}, timeout=5)
    assert response.status_code == 400 and 'error="invalid_request"' in response.headers["WWW-Authenticate"]
