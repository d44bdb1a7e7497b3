"""Client credentials (RFC 6749 §4.4), client authentication (§2.3.1) and resource indicators (RFC 8707)."""
from __future__ import annotations

import requests

from pyramid_tokens.devidp import DevClient

from .flows import WEB, WORKER, claims, client_credentials, code_flow, exchange, login, refresh, token_request, verify


def test_client_secret_basic_gets_a_token_for_the_client_itself(idp):
    response = client_credentials(idp, scope="api")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "api" and "refresh_token" not in body
    assert "id_token" not in body
    token = verify(idp, body["access_token"], audience="api")
    assert token["sub"] == "worker" and token["client_id"] == "worker" and "name" not in token
    assert idp.provider.counters()["client_auth"]["client_secret_basic"] == 1


def test_client_secret_post_works_for_the_same_client(idp):
    response = client_credentials(idp, auth=None, client_id="worker", client_secret="worker-secret")
    assert response.status_code == 200
    counted = idp.provider.counters()["client_auth"]
    assert counted["client_secret_post"] == 1 and counted["client_secret_basic"] == 0


def test_without_scope_the_client_gets_all_its_api_scopes(idp):
    assert client_credentials(idp).json()["scope"] == "api billing.read"
    assert client_credentials(idp, auth=WEB).json()["scope"] == "api"  # never openid/offline_access


def test_wrong_secret_is_401_invalid_client_with_a_basic_challenge(idp):
    response = client_credentials(idp, auth=("worker", "wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    posted = client_credentials(idp, auth=None, client_id="worker", client_secret="wrong")
    assert posted.status_code == 401 and posted.json()["error"] == "invalid_client"


def test_unknown_client_and_missing_credentials_are_invalid_client(idp):
    assert client_credentials(idp, auth=("nobody", "x")).json()["error"] == "invalid_client"
    assert client_credentials(idp, auth=None).json()["error"] == "invalid_client"
    assert client_credentials(idp, auth=None, client_id="worker").json()["error"] == "invalid_client"


def test_two_authentication_methods_in_one_request_are_refused(idp):
    response = client_credentials(idp, auth=WORKER, client_secret="worker-secret")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_only_the_grant_types_listed_for_the_client_are_allowed(idp):
    code, verifier = login(idp)
    response = exchange(idp, code, verifier, auth=WORKER)
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    restricted = DevClient("web-only", "s", redirect_uris=["http://localhost/callback"],
                           grant_types=["authorization_code"])
    idp.provider.add_client(restricted)
    response = client_credentials(idp, auth=("web-only", "s"))
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_unsupported_grant_types_are_refused(idp):
    response = token_request(idp, {"grant_type": "password", "username": "a", "password": "b"})
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_user_scopes_and_unregistered_scopes_are_invalid_scope(idp):
    assert client_credentials(idp, auth=WEB, scope="openid").json()["error"] == "invalid_scope"
    assert client_credentials(idp, scope="admin").json()["error"] == "invalid_scope"


def test_resource_becomes_the_access_token_audience(idp):
    body = client_credentials(idp, resource="https://billing.example.test/").json()
    assert verify(idp, body["access_token"], audience="https://billing.example.test/")["sub"] == "worker"
    two = client_credentials(idp, resource=["https://a.example.test/", "https://b.example.test/"]).json()
    assert claims(two["access_token"])["aud"] == ["https://a.example.test/", "https://b.example.test/"]


def test_resource_must_be_an_absolute_uri_without_fragment(idp):
    for resource in ("api", "/relative", "https://api.example.test/#frag"):
        response = client_credentials(idp, resource=resource)
        assert response.status_code == 400 and response.json()["error"] == "invalid_target"


def test_resource_must_be_one_the_client_may_ask_for(idp):
    idp.provider.add_client(DevClient("narrow", "s", grant_types=["client_credentials"], scopes="api",
                                      resources=["https://api.example.test/"]))
    assert client_credentials(idp, auth=("narrow", "s"), resource="https://api.example.test/").status_code == 200
    refused = client_credentials(idp, auth=("narrow", "s"), resource="https://other.example.test/")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"


def test_resource_works_on_code_and_refresh_grants_too(idp):
    code, verifier = login(idp)
    body = exchange(idp, code, verifier, resource="https://api.example.test/").json()
    assert claims(body["access_token"])["aud"] == "https://api.example.test/"
    refreshed = refresh(idp, body["refresh_token"], resource="https://other.example.test/").json()
    assert claims(refreshed["access_token"])["aud"] == "https://other.example.test/"


def test_resources_named_at_authorization_bound_the_token_requests(idp):
    code_with_resource, verifier = login(idp, resource="https://api.example.test/")
    body = exchange(idp, code_with_resource, verifier).json()
    assert claims(body["access_token"])["aud"] == "https://api.example.test/"
    refused = refresh(idp, body["refresh_token"], resource="https://other.example.test/")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"


def test_client_credentials_tokens_respect_the_client_lifetime(idp):
    idp.provider.add_client(DevClient("quick", "s", grant_types=["client_credentials"], scopes="api",
                                      access_token_lifetime=2))
    body = client_credentials(idp, auth=("quick", "s")).json()
    token = claims(body["access_token"])
    assert body["expires_in"] == 2 and token["exp"] - token["iat"] == 2
    assert code_flow(idp)["expires_in"] == 300


def test_a_token_request_that_is_not_form_encoded_is_invalid_request(idp):
    response = requests.post(idp.issuer + "/token", json={"grant_type": "client_credentials"}, auth=WORKER, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    raw = requests.post(idp.issuer + "/token", data=b"grant_type=\xff{}", auth=WORKER, timeout=5,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert raw.status_code == 400 and raw.json()["error"] == "invalid_request"


def test_the_token_endpoint_only_takes_post(idp):
    response = requests.get(idp.issuer + "/token", params={"grant_type": "client_credentials"}, auth=WORKER, timeout=5)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
