"""Helpers for tests that drive the development provider over real HTTP, like a browser would.

``browser_login`` walks the authorization code flow's front channel (RFC 6749 §4.1.1-4.1.2) and
returns the redirect to the client without following it; ``approve_device`` plays the user at the
RFC 8628 §3.3 verification URI. ``standard_clients`` are the clients the shared fixtures register.
"""
from __future__ import annotations

import secrets
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

import requests

from pyramid_tokens.jwk import sha256_b64url
from pyramid_tokens.devidp.models import DEVICE_CODE_GRANT, DevClient

WEB_REDIRECT_URI = "http://localhost/callback"


def standard_clients() -> list[DevClient]:
    """``web`` (every grant, secret ``web-secret``) and ``worker`` (client credentials, ``worker-secret``)."""
    return [
        DevClient(
            "web",
            "web-secret",
            redirect_uris=[WEB_REDIRECT_URI],
            post_logout_redirect_uris=["http://localhost/"],
            grant_types=["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT],
            scopes="openid profile email offline_access api",
            access_token_lifetime=300,
            id_token_lifetime=300,
        ),
        DevClient("worker", "worker-secret", grant_types=["client_credentials"], scopes="api billing.read"),
    ]


def worker_settings(idp, **extra: str) -> dict[str, str]:
    """Settings of a worker (no login) using :func:`standard_clients`' ``worker`` against ``idp``, plus ``extra``."""
    return {
        "tokens.clients.worker.authority": idp.issuer,
        "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret",
        "tokens.clients.worker.scope": "api",
        **extra,
    }


def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, code_challenge)`` for PKCE S256 (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, sha256_b64url(verifier)


def authorize_url(
    issuer: str,
    *,
    client_id: str = "web",
    redirect_uri: str | None = WEB_REDIRECT_URI,
    scope: str = "openid profile email offline_access api",
    state: str | None = "state-1",
    nonce: str | None = "nonce-1",
    code_challenge: str | None = None,
    code_challenge_method: str | None = "S256",
    **extra: str,
) -> str:
    """An authorization request URL at ``{issuer}/authorize``; ``None`` leaves a parameter out."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": code_challenge_method,
        **extra,
    }
    return f"{issuer}/authorize?{urlencode({k: v for k, v in params.items() if v is not None})}"


class _FormParser(HTMLParser):
    """The first form of a page: its action and its named input fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = self._done = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form" and not self._done:
            self._in_form, self.action = True, attributes.get("action") or ""
        elif tag == "input" and self._in_form and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def _submit(page: requests.Response, session: requests.Session, fields: dict[str, str]) -> requests.Response:
    parser = _FormParser()
    parser.feed(page.text)
    if parser.action is None:
        raise AssertionError(f"no form on the page (HTTP {page.status_code}): {page.text[:500]}")
    data = {**parser.fields, **fields}
    return session.post(urljoin(page.url, parser.action), data=data, allow_redirects=False, timeout=10)


def browser_login(
    authorize_url: str, username: str = "alice", approve: bool = True, session: requests.Session | None = None
) -> str:
    """Open ``authorize_url``, log in as ``username`` and approve (or deny); return the redirect ``Location``.

    The Location is the client's redirect URI with ``code``/``state``/``iss`` or an ``error``; it is
    not followed. A request refused before the login page (a redirect with an error) returns that
    redirect; an error page raises ``AssertionError``.
    """
    session = session or requests.Session()
    page = session.get(authorize_url, allow_redirects=False, timeout=10)
    if page.is_redirect:
        return page.headers["Location"]
    if page.status_code != 200:
        raise AssertionError(f"authorization request refused (HTTP {page.status_code}): {page.text[:500]}")
    response = _submit(page, session, {"username": username, "devidp_action": "approve" if approve else "deny"})
    if not response.is_redirect:
        raise AssertionError(f"login did not redirect (HTTP {response.status_code}): {response.text[:500]}")
    return response.headers["Location"]


def approve_device(
    verification_uri_complete: str,
    username: str = "alice",
    approve: bool = True,
    session: requests.Session | None = None,
) -> requests.Response:
    """Play the user at the verification URI: log in as ``username`` and approve (or deny) the device.

    Returns the response to the decision; raises ``AssertionError`` unless it succeeded.
    """
    session = session or requests.Session()
    page = session.get(verification_uri_complete, timeout=10)
    page.raise_for_status()
    response = _submit(page, session, {"username": username, "devidp_action": "approve" if approve else "deny"})
    if response.status_code != 200:
        raise AssertionError(f"device decision refused (HTTP {response.status_code}): {response.text[:500]}")
    return response
