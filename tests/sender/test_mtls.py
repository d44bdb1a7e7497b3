"""Mutual TLS (RFC 8705) for real: the provider and the demo API served over TLS on loopback with a test CA.

``tls_client_auth`` at the token endpoint (§2.1), certificate-bound access tokens (``cnf.x5t#S256``,
§3) checked by the API, and the client's certificate going with its token calls AND its API calls.
"""
from __future__ import annotations

import jwt
import pytest
import requests

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.demo.api import make_api_app
from pyramid_tokens.devidp import DevClient
from pyramid_tokens.devidp.clientauth import certificate_thumbprint
from pyramid_tokens.devidp.tls import serve_tls, start_tls_provider


@pytest.fixture
def trust_test_ca(pki, monkeypatch):
    """requests (token calls and named clients alike) trusts the test CA, as REQUESTS_CA_BUNDLE makes it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.ca)


@pytest.fixture
def tls_idp(pki, trust_test_ca):
    idp = start_tls_provider(
        clients=[DevClient("mtls-worker", tls_client_auth_subject_dn="CN=mtls-worker",
                           grant_types=["client_credentials"], scopes="api")],
        certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca)
    yield idp
    idp.stop()


@pytest.fixture
def tls_api(pki, tls_idp):
    server = serve_tls(make_api_app(tls_idp.issuer), certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca)
    yield server
    server.stop()


def manager(idp, pki, cn="mtls-worker", api=None):
    cert, key, _ = pki.clients[cn]
    return TokenManager.from_settings({
        "tokens.clients.w.authority": idp.issuer,
        "tokens.clients.w.client_id": "mtls-worker",
        "tokens.clients.w.tls_client_cert": cert,
        "tokens.clients.w.tls_client_key": key,
        **({"tokens.http.api.base_url": api.url + "/api/", "tokens.http.api.token": "client:w"} if api else {}),
    })


def test_tls_client_auth_issues_a_certificate_bound_token(tls_idp, pki):
    tm = manager(tls_idp, pki)
    assert tm.options.clients["w"].credentials.auth_method == "tls_client_auth"
    token = tm.get_client_access_token("w")
    claims = jwt.decode(token.access_token, options={"verify_signature": False})
    assert claims["sub"] == "mtls-worker"
    assert claims["cnf"] == {"x5t#S256": certificate_thumbprint(pki.clients["mtls-worker"][2])}
    assert tls_idp.provider.counters()["client_auth"]["tls_client_auth"] == 1


def test_without_the_registered_certificate_the_client_is_refused(tls_idp, pki):
    with pytest.raises(TokenError) as refused:
        manager(tls_idp, pki, cn="intruder").get_client_access_token("w")
    assert refused.value.error == "invalid_client"
    reply = requests.post(tls_idp.issuer + "/token", data={"grant_type": "client_credentials",
                                                           "client_id": "mtls-worker"}, timeout=5)
    assert reply.json()["error"] == "invalid_client"  # no certificate at all


def test_the_certificate_goes_with_api_calls_and_the_api_checks_the_binding(tls_idp, tls_api, pki):
    tm = manager(tls_idp, pki, api=tls_api)
    session = tm.http_client("api")
    assert session.cert == pki.clients["mtls-worker"][:2]
    reply = session.get("whoami")
    assert reply.status_code == 200 and reply.json()["sub"] == "mtls-worker"
    token = tm.get_client_access_token("w")
    url = tls_api.url + "/api/whoami"
    headers = {"Authorization": token.authorization}
    stolen = requests.get(url, headers=headers, timeout=5)  # the token without its certificate
    assert stolen.status_code == 401 and "x5t#S256" in stolen.json()["error_description"]
    other = requests.get(url, headers=headers, cert=pki.clients["intruder"][:2], timeout=5)
    assert other.status_code == 401


def test_a_required_client_certificate_refuses_connections_without_one(pki, trust_test_ca):
    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = serve_tls(ok, certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca, client_cert="required")
    try:
        assert requests.get(server.url, cert=pki.clients["intruder"][:2], timeout=5).content == b"ok"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url, timeout=5)
    finally:
        server.stop()


def test_a_web_client_logs_in_refreshes_and_calls_apis_with_its_certificate(pki, trust_test_ca):
    import webtest

    from tests.support.provider import WEB_REDIRECT_URI
    from tests.support.web import base_settings, build_app, login

    idp = start_tls_provider(clients=[DevClient("mtls-web", redirect_uris=[WEB_REDIRECT_URI],
                                                tls_client_auth_subject_dn="CN=mtls-worker",
                                                scopes="openid profile email offline_access api")],
                             certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca)
    api = serve_tls(make_api_app(idp.issuer), certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca)
    try:
        cert, key, certificate = pki.clients["mtls-worker"]
        settings = base_settings(idp, **{"oidc.client_id": "mtls-web", "oidc.client_secret": None,
                                         "oidc.tls_client_cert": cert, "oidc.tls_client_key": key,
                                         "tokens.http.api.base_url": api.url + "/api/",
                                         "tokens.http.api.token": "user"})
        app = webtest.TestApp(build_app(settings))
        login(app, "erin")  # code exchange and userinfo (with the certificate-bound token) over mutual TLS
        first = app.get("/token").json
        assert jwt.decode(first["access_token"], options={"verify_signature": False})["cnf"] == {
            "x5t#S256": certificate_thumbprint(certificate)}
        called = app.get("/call-api").json  # the API checks the token's certificate binding
        assert called["status"] == 200 and called["body"]["sub"] == "erin"
        assert app.get("/token", params={"force": "1"}).json["access_token"] != first["access_token"]
        counted = idp.provider.counters()
        assert counted["client_auth"]["tls_client_auth"] == 2 and counted["userinfo"] == 1
    finally:
        api.stop()
        idp.stop()
