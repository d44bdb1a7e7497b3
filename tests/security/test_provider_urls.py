"""Every URL discovery hands out keeps the authority's transport security (OIDC Discovery §3, RFC 6749 §3.1-3.2).

An ``https://`` provider (the development provider over TLS with a test CA) whose discovery document
names a plain ``http://`` endpoint: the client secret, the code, the refresh token, a client assertion
and the access token are never sent, the key set is never fetched, and the error names the member.
The attacker's endpoint is a listener on ``127.0.0.2``: reachable, but not one of the loopback names
plain http is allowed for, so it records any connection a missing check would make. Malformed URLs
(relative, other schemes, whitespace, control characters, not a string) are refused the same way.
"""
from __future__ import annotations

import json
import socket
import threading

import pytest
import webtest

from pyramid_tokens import TokenManager
from pyramid_tokens.devidp import make_wsgi_app
from pyramid_tokens.devidp.provider import DevProvider
from tests.support.provider import standard_clients
from pyramid_tokens.devidp.tls import serve_tls
from pyramid_tokens.discovery import WELL_KNOWN, Discovery
from pyramid_tokens.errors import InvalidResponse

from .support import build_app, settings_for

#: every endpoint member a document may name, today's and tomorrow's
ENDPOINTS = ["token_endpoint", "jwks_uri", "userinfo_endpoint", "revocation_endpoint",
             "device_authorization_endpoint", "end_session_endpoint", "pushed_authorization_request_endpoint",
             "introspection_endpoint", "authorization_endpoint", "backchannel_authentication_endpoint"]


class Attacker:
    """A listener on 127.0.0.2 that records every connection and what was sent on it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.2", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.2:{self.port}/{path}"

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.received.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                except OSError:
                    self.received.append(b"")

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()


@pytest.fixture
def attacker():
    listener = Attacker()
    yield listener
    listener.stop()


@pytest.fixture
def make_provider(pki, monkeypatch):  # noqa: F811
    """An https development provider whose discovery document gets ``changes`` (member -> value)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.ca)
    servers = []

    def factory(changes=None):
        provider = DevProvider("https://unbound.invalid", standard_clients())
        inner = make_wsgi_app(provider, "/idp")

        def app(environ, start_response):
            if not environ["PATH_INFO"].endswith(WELL_KNOWN) or not changes:
                return inner(environ, start_response)
            body = b"".join(inner(environ, lambda status, headers, exc_info=None: None))
            doc = {**json.loads(body), **changes}
            if "mtls_endpoint_aliases" in changes:
                doc["mtls_endpoint_aliases"] = changes["mtls_endpoint_aliases"]
            data = json.dumps(doc).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]

        server = serve_tls(app, certfile=pki.server_cert, keyfile=pki.server_key, cafile=pki.ca)
        provider.issuer = server.url + "/idp"
        servers.append(server)
        return provider

    yield factory
    for server in servers:
        server.stop()


def manager_for(provider) -> TokenManager:
    return TokenManager.from_settings({
        "oidc.authority": provider.issuer, "oidc.client_id": "web", "oidc.client_secret": "web-secret",
        "tokens.clients.w.authority": provider.issuer, "tokens.clients.w.client_id": "worker",
        "tokens.clients.w.client_secret": "worker-secret", "tokens.timeout": "3",
    })


def test_an_https_provider_with_https_endpoints_is_used(make_provider):
    manager = manager_for(make_provider())
    assert manager.get_client_access_token("w").access_token
    assert manager.oidc.discovery.signing_key(None, "RS256") is not None


@pytest.mark.parametrize("member", ENDPOINTS)
def test_a_plain_http_endpoint_of_an_https_provider_is_refused_naming_the_member(make_provider, attacker, member):
    manager = manager_for(make_provider({member: attacker.url(member)}))
    with pytest.raises(InvalidResponse) as caught:
        manager.oidc.discovery.endpoint(member)
    assert caught.value.error_description.startswith(f"discovery: {member} must use https")
    assert attacker.received == []


def test_the_client_secret_never_goes_to_a_plain_http_token_endpoint(make_provider, attacker):
    manager = manager_for(make_provider({"token_endpoint": attacker.url("token")}))
    with pytest.raises(InvalidResponse, match="token_endpoint must use https"):
        manager.get_client_access_token("w")
    assert attacker.received == []


def test_an_authorization_code_is_never_sent_to_a_plain_http_token_endpoint(make_provider, attacker):
    provider = make_provider({"token_endpoint": attacker.url("token")})
    oidc = manager_for(provider).oidc
    _, pending = oidc.begin_login("https://rp.example/callback", "/")
    with pytest.raises(InvalidResponse, match="token_endpoint must use https"):
        oidc.complete_login({"state": pending.state, "code": "an-authorization-code", "iss": provider.issuer},
                            pending)
    assert attacker.received == []


def test_a_refresh_token_is_never_sent_to_a_plain_http_token_endpoint(make_provider, attacker):
    manager = manager_for(make_provider({"token_endpoint": attacker.url("token")}))
    with pytest.raises(InvalidResponse, match="token_endpoint must use https"):
        manager.oidc.refresh("a-refresh-token")
    assert attacker.received == []


def test_a_client_assertion_is_never_sent_to_a_plain_http_token_endpoint(make_provider, attacker, keys):
    provider = make_provider({"token_endpoint": attacker.url("token")})
    manager = TokenManager.from_settings({"tokens.clients.k.authority": provider.issuer,
                                          "tokens.clients.k.client_id": "worker",
                                          "tokens.clients.k.client_assertion_key": keys.rsa_pem})
    with pytest.raises(InvalidResponse, match="token_endpoint must use https"):
        manager.get_client_access_token("k")
    assert attacker.received == []


def test_a_refresh_token_is_never_revoked_at_a_plain_http_endpoint(make_provider, attacker):
    manager = manager_for(make_provider({"revocation_endpoint": attacker.url("revoke")}))
    with pytest.raises(InvalidResponse, match="revocation_endpoint must use https"):
        manager.oidc.revoke("a-refresh-token")
    assert attacker.received == []


def test_an_access_token_is_never_sent_to_a_plain_http_userinfo_endpoint(make_provider, attacker):
    manager = manager_for(make_provider({"userinfo_endpoint": attacker.url("userinfo")}))
    with pytest.raises(InvalidResponse, match="userinfo_endpoint must use https"):
        manager.oidc.userinfo("Bearer an-access-token")
    assert attacker.received == []


def test_the_key_set_is_never_fetched_over_plain_http(make_provider, attacker):
    manager = manager_for(make_provider({"jwks_uri": attacker.url("jwks")}))
    with pytest.raises(InvalidResponse, match="jwks_uri must use https"):
        manager.oidc.discovery.signing_key("any-kid", "RS256")
    assert attacker.received == []


def test_logout_never_redirects_to_a_plain_http_end_session_endpoint(make_provider, attacker):
    manager = manager_for(make_provider({"end_session_endpoint": attacker.url("logout")}))
    assert manager.oidc.end_session_url(id_token_hint="an-id-token", post_logout_redirect_uri="https://rp/") is None
    assert attacker.received == []


def test_an_mtls_alias_over_plain_http_is_refused(make_provider, attacker):
    provider = make_provider({"mtls_endpoint_aliases": {"token_endpoint": attacker.url("mtls-token")}})
    discovery = manager_for(provider).oidc.discovery
    assert discovery.endpoint("token_endpoint").startswith("https://")
    with pytest.raises(InvalidResponse, match="mtls_endpoint_aliases.token_endpoint must use https"):
        discovery.endpoint("token_endpoint", mtls=True)
    assert attacker.received == []


def test_login_with_a_plain_http_authorization_endpoint_is_a_clear_failure_not_a_500(make_provider, attacker):
    provider = make_provider({"authorization_endpoint": attacker.url("authorize")})
    app = webtest.TestApp(build_app(settings_for(provider)))
    response = app.get("/login", expect_errors=True)
    assert response.status_int in (400, 502, 503)
    assert "authorization_endpoint must use https" in response.text
    assert attacker.received == []


# -- malformed URLs, whatever the authority ---------------------------------------------------------------------
ISSUER = "https://idp.example"
BASE = {"issuer": ISSUER, "authorization_endpoint": ISSUER + "/authorize", "token_endpoint": ISSUER + "/token",
        "jwks_uri": ISSUER + "/jwks"}


@pytest.mark.parametrize("value, problem", [
    ("http://attacker.invalid/token", "must use https"),
    ("/token", "expected an absolute http(s) URL"),
    ("//attacker.invalid/token", "expected an absolute http(s) URL"),
    ("javascript:alert(1)", "expected an absolute http(s) URL"),
    ("ftp://idp.example/token", "expected an absolute http(s) URL"),
    ("https://[::1/token", "expected an absolute http(s) URL"),
    ("https://idp.example:99999/token", "expected an absolute http(s) URL"),
    ("https://idp.example/to ken", "must not contain whitespace or control characters"),
    ("https://idp.example/token\r\nX-Injected: 1", "must not contain whitespace or control characters"),
    ("https://idp.example/token\x00", "must not contain whitespace or control characters"),
    ("https://idp.example/token\u2028", "must not contain whitespace or control characters"),
])
def test_a_malformed_endpoint_url_is_refused_naming_the_member(value, problem):
    discovery = Discovery.from_document(ISSUER, {**BASE, "revocation_endpoint": value})
    with pytest.raises(InvalidResponse) as caught:
        discovery.endpoint("revocation_endpoint")
    assert caught.value.error_description.startswith(f"discovery: revocation_endpoint {problem}")


@pytest.mark.parametrize("value", [["https://idp.example/revoke"], {"url": "x"}, 42, True])
def test_an_endpoint_that_is_not_a_string_makes_the_document_unusable(value):
    with pytest.raises(InvalidResponse, match="discovery: revocation_endpoint must be a string"):
        Discovery.from_document(ISSUER, {**BASE, "revocation_endpoint": value})


def test_plain_http_stays_possible_for_a_provider_on_this_machine():
    local = "http://127.0.0.1:8080"
    discovery = Discovery.from_document(local, {"issuer": local, "authorization_endpoint": local + "/authorize",
                                                "token_endpoint": "http://localhost:8080/token",
                                                "jwks_uri": "http://[::1]:8080/jwks"})
    assert discovery.endpoint("token_endpoint") == "http://localhost:8080/token"
    assert discovery.endpoint("jwks_uri") == "http://[::1]:8080/jwks"
    assert discovery.endpoint("revocation_endpoint") is None


def test_a_loopback_provider_cannot_send_secrets_to_another_host_in_the_clear():
    local = "http://127.0.0.1:8080"
    discovery = Discovery.from_document(local, {"issuer": local, "authorization_endpoint": local + "/authorize",
                                                "token_endpoint": "http://attacker.invalid/token",
                                                "jwks_uri": local + "/jwks"})
    with pytest.raises(InvalidResponse, match="token_endpoint must use https"):
        discovery.endpoint("token_endpoint")


@pytest.mark.parametrize("issuer", [ISSUER + ".evil", "https://evil.example", 42, ["https://idp.example"], None])
def test_the_issuer_must_be_the_authority(issuer):
    with pytest.raises(InvalidResponse, match="discovery: issuer"):
        Discovery.from_document(ISSUER, {**BASE, "issuer": issuer})
