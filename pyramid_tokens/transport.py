"""Calls to the provider: bounded, and every failure translated into our own errors.

Token, revocation, discovery, JWKS and userinfo calls go through :class:`Transport`. It caps what
is read (a provider cannot make us buffer an endless body) and how deep its JSON nests (the parser
cannot be made to recurse), enforces a whole-call deadline (:mod:`pyramid_tokens.deadline`: a
trickling response cannot hang a worker), and turns ``requests`` exceptions and HTTP errors into
:class:`~pyramid_tokens.errors.TokenError` subclasses. Token responses are checked against
RFC 6749 §5.1/§5.2 by :mod:`pyramid_tokens.responses`; clients authenticate in :mod:`pyramid_tokens.clientauth`.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

from . import metrics
from .clientauth import apply_client_auth
from .deadline import WATCHDOG, Deadline, DeadlineAdapter, deadline
from .errors import InvalidResponse, ProviderUnavailable, TokenError
from .options import ClientCredentials
from .responses import error_from_reply

log = logging.getLogger(__name__)

#: the most we read of any provider response
MAX_BODY = 256 * 1024
#: the deepest nesting of JSON arrays and objects we parse (RFC 8259 §9 lets a parser set the limit)
MAX_DEPTH = 32


@dataclass
class Reply:
    """A provider's answer: status, headers and the JSON body (``None`` when the body was empty)."""

    status: int
    headers: Mapping[str, str]
    data: Any


#: the endpoint a call's ``what`` goes to, as the ``pyramid_tokens.endpoint`` metric attribute (few values)
ENDPOINTS = {
    "discovery": "discovery", "JWKS": "jwks", "userinfo": "userinfo", "token revocation": "revocation",
    "device authorization request": "device_authorization", "pushed authorization request": "par",
}


def endpoint_kind(what: str) -> str:
    """``token`` for every grant (``... request``, ``... exchange``), else the named endpoint, else ``other``."""
    kind = ENDPOINTS.get(what)
    if kind is not None:
        return kind
    return "token" if what.endswith((" token request", " credentials request", " exchange")) else "other"


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
        started = time.perf_counter()
        try:
            reply = self._request(method, url, what=what, data=data, headers=headers, cert=cert)
        except TokenError as exc:
            metrics.provider_duration(endpoint_kind(what), time.perf_counter() - started,
                                      status=exc.status_code, error=exc.error)
            raise
        metrics.provider_duration(endpoint_kind(what), time.perf_counter() - started, status=reply.status)
        return reply

    def _request(self, method: str, url: str, *, what: str, data: Mapping[str, Any] | None,
                 headers: Mapping[str, str] | None, cert: Any) -> Reply:
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
            raise error_from_reply(reply, what, url=url)
        if not isinstance(reply.data, dict):
            raise InvalidResponse(f"{what}: expected a JSON object", status_code=reply.status)
        return reply.data

    def post_form(self, url: str, data: Mapping[str, Any], *, what: str, client: ClientCredentials | None = None,
                  headers: Mapping[str, str] | None = None, audience: str | None = None) -> Reply:
        """POST a form, authenticating ``client`` per its credentials (``audience``: of a client assertion)."""
        form = {k: v for k, v in data.items() if v is not None}
        hdrs = {"Accept": "application/json", **(headers or {})}
        if client is not None:
            apply_client_auth(client, form, hdrs, audience=audience or url)
        return self.request("POST", url, what=what, data=form, headers=hdrs,
                            cert=client.cert if client is not None else None)
