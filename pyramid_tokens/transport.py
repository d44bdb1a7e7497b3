"""Calls to the provider: bounded, and every failure translated into our own errors.

Token, revocation, discovery, JWKS and userinfo calls go through :class:`Transport`. It caps what
is read (a provider cannot make us buffer an endless body) and how deep its JSON nests (the parser
cannot be made to recurse), enforces a whole-call deadline (:mod:`pyramid_tokens.deadline`: a
trickling response cannot hang a worker), and turns ``requests`` exceptions and HTTP errors into
:class:`~pyramid_tokens.errors.TokenError` subclasses. Token responses are checked against
RFC 6749 §5.1/§5.2 by :func:`parse_token_response`.
"""
from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote, urlsplit

import requests

from .assertion import JWT_BEARER
from .deadline import WATCHDOG, Deadline, DeadlineAdapter, deadline
from .errors import InvalidResponse, LoginRequired, ProviderUnavailable, TokenError
from .options import ClientCredentials
from .tokens import KNOWN_TOKEN_TYPES, AccessToken
from .clock import utc_from_timestamp

log = logging.getLogger(__name__)

#: the most we read of any provider response
MAX_BODY = 256 * 1024
#: the deepest nesting of JSON arrays and objects we parse (RFC 8259 §9 lets a parser set the limit)
MAX_DEPTH = 32
#: the longest token lifetime we believe (one year); more is a broken provider
MAX_EXPIRES_IN = 366 * 24 * 3600


@dataclass
class Reply:
    """A provider's answer: status, headers and the JSON body (``None`` when the body was empty)."""

    status: int
    headers: Mapping[str, str]
    data: Any


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


#: a JSON string (closed or not, consumed whole: linear time) or one bracket
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.DOTALL)
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")


def _too_deep(body: bytes, limit: int) -> bool:
    """Whether the arrays and objects of ``body`` nest deeper than ``limit``, found without recursion."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        first = body[match.start()]
        if first in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif first in _CLOSE:
            depth -= 1
    return False


class Transport:
    """Sends requests to the provider with one shared connection pool."""

    def __init__(self, session: requests.Session | None = None, *, timeout: float = 10.0,
                 max_body: int = MAX_BODY, max_depth: int = MAX_DEPTH) -> None:
        self.session = session or requests.Session()
        adapter = DeadlineAdapter()  # the whole-call deadline needs its connections, also in a given session
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.timeout = timeout
        self.max_body = max_body
        self.max_depth = max_depth

    def request(self, method: str, url: str, *, what: str, data: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, cert: Any = None) -> Reply:
        """Send one request and return the parsed reply; raises for transport failures and 5xx.

        ``timeout`` bounds the whole call (connect, status line, headers, body), however slowly the
        bytes arrive.
        """
        answered = False  # the status line and headers arrived: a late body is "not complete"
        with deadline(self.timeout) as call:
            try:
                with self.session.request(method, url, data=data, headers=dict(headers or {}), stream=True,
                                          timeout=call.remaining(), allow_redirects=False, cert=cert) as resp:
                    answered = True
                    body = self._read(resp, what, call)
                    status, reply_headers = resp.status_code, resp.headers
                    WATCHDOG.release(call)  # before the connection goes back to the pool
            except requests.Timeout:
                raise self._late(what, url, answered) from None
            except requests.RequestException as exc:
                if call.passed():
                    raise self._late(what, url, answered) from None
                raise ProviderUnavailable(f"{what}: could not reach {_host(url)} ({type(exc).__name__})") from None
            if call.expired:  # the watchdog cut the connection: what was read may be a truncated body
                raise self._late(what, url, answered)
        if status >= 500:
            raise ProviderUnavailable(f"{what}: {_host(url)} answered with a server error", status_code=status)
        return Reply(status, reply_headers, self._json(body, reply_headers, status, what))

    def _late(self, what: str, url: str, answered: bool) -> ProviderUnavailable:
        if answered:
            return ProviderUnavailable(f"{what}: response not complete within {self.timeout:g} s")
        return ProviderUnavailable(f"{what}: {_host(url)} did not answer within {self.timeout:g} s")

    def _read(self, resp: requests.Response, what: str, call: Deadline) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_content(16384):
            size += len(chunk)
            if size > self.max_body:
                raise InvalidResponse(f"{what}: response larger than {self.max_body} bytes", status_code=resp.status_code)
            chunks.append(chunk)
            if call.passed():  # also where no watchdog watches (a SOCKS proxy)
                raise self._late(what, resp.url, True)
        return b"".join(chunks)

    def _json(self, body: bytes, headers: Mapping[str, str], status: int, what: str) -> Any:
        if not body.strip():
            return None
        if _too_deep(body, self.max_depth):
            raise InvalidResponse(f"{what}: JSON nested deeper than {self.max_depth} levels", status_code=status)
        try:
            return json.loads(body)
        except ValueError:
            kind = str(headers.get("Content-Type", "no content type")).split(";")[0][:60]
            raise InvalidResponse(f"{what}: response is not JSON ({kind})", status_code=status) from None

    def get_json(self, url: str, *, what: str, headers: Mapping[str, str] | None = None,
                 cert: Any = None) -> dict[str, Any]:
        """GET a JSON object (discovery, JWKS, userinfo); any other answer is an error."""
        reply = self.request("GET", url, what=what, headers=headers, cert=cert)
        if reply.status != 200:
            raise error_from_reply(reply, what)
        if not isinstance(reply.data, dict):
            raise InvalidResponse(f"{what}: expected a JSON object", status_code=reply.status)
        return reply.data

    def post_form(self, url: str, data: Mapping[str, Any], *, what: str, client: ClientCredentials | None = None,
                  headers: Mapping[str, str] | None = None, audience: str | None = None) -> Reply:
        """POST a form, authenticating ``client`` per its credentials (``audience``: of a client assertion)."""
        form = {k: v for k, v in data.items() if v is not None}
        hdrs = {"Accept": "application/json", **(headers or {})}
        if client is not None:
            authenticate(client, form, hdrs, audience=audience or url)
        return self.request("POST", url, what=what, data=form, headers=hdrs,
                            cert=client.cert if client is not None else None)


def authenticate(client: ClientCredentials, form: dict[str, Any], headers: dict[str, str], *,
                 audience: str | None = None) -> None:
    """Client authentication at the token/revocation endpoints (RFC 6749 §2.3.1, RFC 7523, RFC 8705).

    With an assertion key, a fresh ``private_key_jwt`` assertion for ``audience`` (RFC 7523 §2.2)
    replaces any secret. ``basic`` form-encodes id and secret before base64, as §2.3.1 requires;
    ``post`` sends them in the body; a client without a secret (public client, or ``tls_client_auth``
    whose certificate goes with the connection, RFC 8705 §2) sends only its ``client_id``.
    """
    if client.assertion_key is not None:
        if not audience:
            raise ValueError("a client assertion needs an audience")
        form["client_id"] = client.client_id
        form["client_assertion_type"] = JWT_BEARER
        form["client_assertion"] = client.assertion_key.assertion(client.client_id, audience)
    elif client.client_secret and client.style == "basic":
        raw = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
    elif client.client_secret:
        form["client_id"] = client.client_id
        form["client_secret"] = client.client_secret
    else:
        form["client_id"] = client.client_id


def error_from_reply(reply: Reply, what: str) -> TokenError:
    """The error an unsuccessful reply stands for (RFC 6749 §5.2 body when there is one)."""
    data = reply.data if isinstance(reply.data, dict) else {}
    error = data.get("error")
    description = data.get("error_description")
    if not isinstance(error, str) or not error:
        return InvalidResponse(f"{what}: unexpected HTTP {reply.status} without an OAuth error",
                               status_code=reply.status)
    description = description if isinstance(description, str) else None
    text = f"{what}: {description}" if description else what
    cls = LoginRequired if error == "invalid_grant" else TokenError
    return cls(text, error=error, status_code=reply.status)


@dataclass(frozen=True, repr=False)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1), validated."""

    access_token: AccessToken
    refresh_token: str | None
    id_token: str | None
    raw: Mapping[str, Any]
    #: the DPoP key (:class:`~pyramid_tokens.dpop.DPoPKey`) the request proved, when it used DPoP (RFC 9449)
    dpop_key: Any = None

    def __repr__(self) -> str:
        return f"TokenResponse({self.access_token!r}, refresh_token={'<redacted>' if self.refresh_token else None})"


def parse_token_response(reply: Reply, *, what: str, now: float, requested_scope: str | None = None,
                         resource: str | None = None, issuer: str | None = None,
                         client_id: str | None = None) -> TokenResponse:
    """Check a token endpoint reply and build the :class:`TokenResponse`, or raise saying what was wrong."""
    if reply.status != 200:
        raise error_from_reply(reply, what)
    data = reply.data
    if not isinstance(data, dict):
        raise InvalidResponse(f"{what}: expected a JSON object", status_code=reply.status)
    token = data.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise InvalidResponse(f"{what}: no access_token in the response")
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() not in KNOWN_TOKEN_TYPES:
        raise InvalidResponse(f"{what}: unsupported token_type {str(token_type)[:40]!r}")
    expires_in = data.get("expires_in")
    if expires_in is not None:
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            raise InvalidResponse(f"{what}: expires_in must be a number, got {type(expires_in).__name__}")
        if not 0 < expires_in <= MAX_EXPIRES_IN:
            raise InvalidResponse(f"{what}: expires_in {expires_in!r} is outside 1 s .. 1 year")
    for name in ("refresh_token", "id_token", "scope"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise InvalidResponse(f"{what}: {name} must be a string")
    scope = data.get("scope") or requested_scope  # RFC 6749 §5.1: omitted scope = as requested
    access = AccessToken(
        access_token=token,
        token_type=KNOWN_TOKEN_TYPES[token_type.lower()],
        expires_at=utc_from_timestamp(now + expires_in) if expires_in is not None else None,
        scope=scope,
        resource=resource,
        obtained_at=utc_from_timestamp(now),
        issuer=issuer,
        client_id=client_id,
    )
    return TokenResponse(access, data.get("refresh_token") or None, data.get("id_token") or None, data)
