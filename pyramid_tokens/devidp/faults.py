"""Misbehaviour modes: the development provider as an adversary, for tests of relying parties.

``provider.misbehave(name, on=..., times=..., **params)`` makes the provider misbehave in ONE
named way (a new call replaces the previous fault); ``provider.behave()`` ends it. The relying
party is attacked over real HTTP, exactly as a broken or hostile provider (or what sits in front
of it) would. :data:`FAULTS` is the registry; every fault has a docstring-like ``doc``.

Faults act at one of two hooks:

* ``id_token``: :meth:`DevProvider.id_token` hands the claims of every ID token it issues to the
  fault, which signs (or mis-signs) them. The OpenID Foundation's Basic RP certification cases:
  ``alg: none``, a bad signature, an unknown ``kid``, wrong ``iss``/``aud``/``azp``/``nonce``/``at_hash``,
  expired or issued in the future (OpenID Connect Core 1.0 §3.1.3.7).
* ``http``: the endpoint views are wrapped (``views.add_routes``); the fault may replace the
  response (not JSON, an HTML error page, an empty, oversized or never-ending body, a 5xx, a
  connection dropped mid-response), delay it, or rewrite the real one (userinfo ``sub``, the
  RFC 9207 ``iss`` and ``state`` of the authorization response, the discovery ``issuer``).

``on`` narrows a fault to some endpoints (route names: ``discovery``, ``jwks``, ``authorize``,
``token``, ``revoke``, ``userinfo``, ``device_authorization``) or token grants
(``authorization_code``, ``refresh_token``, ``client_credentials``, ``device_code``); ``times``
limits how often it fires. ``provider.faults.triggered`` counts how often it did, so a test can
prove that the attack really happened. Replacement responses never reach the provider's grant
logic: a bad refresh response leaves the presented refresh token valid at the provider.

Development and tests only, like the rest of :mod:`pyramid_tokens.devidp`.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from jwt.utils import base64url_decode
from webob import Response

from ..jwk import b64url

if TYPE_CHECKING:
    from .provider import DevProvider

#: token grants by the short names ``on=`` accepts
GRANT_ALIASES = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code": "device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
}
#: the endpoints that answer token-shaped JSON (a body fault's default targets)
TOKEN_CALLS = ("token", "revoke", "device_authorization")
#: grants that issue ID tokens
ID_TOKEN_GRANTS = ("authorization_code", "refresh_token", "device_code")
#: ``never_ending`` stops trickling after this long even if the client never leaves
MAX_TRICKLE = 15.0

View = Callable[[Any], Any]


class ConnectionDropped(Exception):
    """Raised inside a response body: waitress closes the connection mid-response."""


@dataclass(frozen=True)
class Fault:
    """One named way to misbehave."""

    name: str
    hook: str  # "id_token" or "http"
    on: tuple[str, ...]
    doc: str
    action: Callable[..., Any]
    #: ``applies(request)``: whether a request the fault targets is one it acts on (counted only then)
    applies: Callable[[Any], bool] | None = None


#: every fault, by name
FAULTS: dict[str, Fault] = {}


def _register(name: str, hook: str, on: tuple[str, ...], doc: str,
              applies: Callable[[Any], bool] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(action: Callable[..., Any]) -> Callable[..., Any]:
        FAULTS[name] = Fault(name, hook, on, doc, action, applies)
        return action

    return decorate


@dataclass
class ActiveFault:
    fault: Fault
    on: frozenset[str]
    times: int | None
    params: dict[str, Any]
    triggered: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)


class FaultMode:
    """The provider's current fault (at most one); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: ActiveFault | None = None
        self._last: ActiveFault | None = None  # the active one, or the last one (``times`` used up)
        self._triggered = 0

    def set(self, name: str, *, on: str | tuple[str, ...] | list[str] | None = None, times: int | None = None,
            **params: Any) -> None:
        try:
            fault = FAULTS[name]
        except KeyError:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}") from None
        targets = (on,) if isinstance(on, str) else tuple(on or fault.on)
        unknown = set(targets) - set(ENDPOINTS) - set(GRANT_ALIASES.values())
        if unknown:
            raise ValueError(f"fault {name!r}: unknown targets {sorted(unknown)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            if self._last is not None:
                self._last.cancelled.set()
            self._active = self._last = ActiveFault(fault, frozenset(targets), times, params)
            self._triggered = 0

    def clear(self) -> None:
        """No fault from now on; responses still being slowed down or trickled end at once."""
        with self._lock:
            if self._last is not None:
                self._last.cancelled.set()
            self._active = None

    @property
    def name(self) -> str | None:
        active = self._active
        return active.fault.name if active else None

    @property
    def triggered(self) -> int:
        """How often the current (or last) fault fired."""
        return self._triggered

    def take(self, hook: str, names: set[str], request: Any = None) -> ActiveFault | None:
        """The active fault if it applies at ``hook`` to a request known by ``names``; counts one use."""
        with self._lock:
            active = self._active
            if active is None or active.fault.hook != hook or not active.on & names:
                return None
            if active.fault.applies is not None and not active.fault.applies(request):
                return None
            active.triggered += 1
            self._triggered += 1
            if active.times is not None and active.triggered >= active.times:
                self._active = None  # used up; a response it is still trickling goes on until clear()
            return active


# -- hooks -----------------------------------------------------------------------------------------------
def request_names(endpoint: str, request: Any) -> set[str]:
    """The names a request answers to: its endpoint and, at the token endpoint, its grant."""
    names = {endpoint}
    if endpoint == "token":
        grant = request.POST.get("grant_type") if request.method == "POST" else request.GET.get("grant_type")
        if grant in GRANT_ALIASES:
            names.add(GRANT_ALIASES[grant])
    return names


def guard(endpoint: str, view: View, provider_of: Callable[[Any], "DevProvider"]) -> View:
    """Wrap an endpoint view so that the provider's current ``http`` fault can act on it."""

    @functools.wraps(view)
    def guarded(request: Any) -> Any:
        mode = getattr(provider_of(request), "faults", None)
        active = mode.take("http", request_names(endpoint, request), request) if mode is not None else None
        if active is None:
            return view(request)
        return active.fault.action(request, view, active, **active.params)

    return guarded


def issue_id_token(provider: "DevProvider", request: Any, claims: dict[str, Any]) -> str:
    """The ID token for ``claims``: signed normally, or as the current ``id_token`` fault says."""
    grant = GRANT_ALIASES.get(getattr(request, "grant_type", None) or "", "authorization_code")
    mode = getattr(provider, "faults", None)
    active = mode.take("id_token", {"token", grant}, request) if mode is not None else None
    if active is None:
        return provider.sign(claims)
    return active.fault.action(provider, dict(claims), **active.params)


ENDPOINTS = ("discovery", "jwks", "authorize", "token", "revoke", "userinfo", "logout", "device_authorization")


# -- JOSE helpers ------------------------------------------------------------------------------------------
def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


_stray_key: list[Any] = []


def _unpublished_key() -> Any:
    """A signing key the provider never publishes (made once per process)."""
    if not _stray_key:
        from .keys import generate_signing_key

        _stray_key.append(generate_signing_key())
    return _stray_key[0]


# -- ID token faults (OIDC Core §3.1.3.7; OpenID Foundation Basic RP tests) -----------------------------
def _id_token_fault(name: str, doc: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return _register(name, "id_token", ID_TOKEN_GRANTS, doc)


@_id_token_fault("id_token_alg_none", "the ID token is unsigned: alg none, empty signature")
def _alg_none(provider: "DevProvider", claims: dict[str, Any]) -> str:
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."


@_id_token_fault("id_token_alg_hs256", "key confusion: HS256 with the provider's public key (PEM) as the secret")
def _alg_hs256(provider: "DevProvider", claims: dict[str, Any]) -> str:
    from cryptography.hazmat.primitives import serialization

    key = provider.keys.current
    pem = key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_segment(claims)}"
    return f"{signing_input}.{b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


@_id_token_fault("id_token_bad_signature", "signed by the provider's key, then one bit of the signature flipped")
def _bad_signature(provider: "DevProvider", claims: dict[str, Any]) -> str:
    head, body, signature = provider.sign(claims).split(".")
    raw = bytearray(base64url_decode(signature))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{body}.{b64url(bytes(raw))}"


@_id_token_fault("id_token_unknown_kid", "signed by a key the provider never publishes (kid unknown even after a JWKS refetch)")
def _unknown_kid(provider: "DevProvider", claims: dict[str, Any]) -> str:
    key = _unpublished_key()
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})


def _claims_fault(name: str, doc: str, change: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    def action(provider: "DevProvider", claims: dict[str, Any], **params: Any) -> str:
        change(claims, params)
        return provider.sign(claims)

    _id_token_fault(name, doc)(action)


def _now(claims: dict[str, Any]) -> int:
    return int(claims.get("iat") or time.time())


_claims_fault("id_token_wrong_iss", "iss is another issuer",
              lambda c, p: c.update(iss=p.get("iss", "https://evil.example")))
_claims_fault("id_token_wrong_aud", "aud (and azp) name another client, not this one",
              lambda c, p: c.update(aud="someone-else", azp="someone-else"))
_claims_fault("id_token_multi_aud_no_azp", "several audiences including this client, and no azp",
              lambda c, p: (c.update(aud=[c["aud"], "someone-else"]), c.pop("azp", None)))
_claims_fault("id_token_multi_aud_wrong_azp", "several audiences including this client, azp names the other",
              lambda c, p: c.update(aud=[c["aud"], "someone-else"], azp="someone-else"))
_claims_fault("id_token_no_nonce", "the nonce claim is left out", lambda c, p: c.pop("nonce", None))
_claims_fault("id_token_wrong_nonce", "the nonce is not the one of the login request",
              lambda c, p: c.update(nonce=p.get("nonce", "forged-nonce")))
_claims_fault("id_token_expired", "exp lies five minutes in the past",
              lambda c, p: c.update(iat=_now(c) - 400, exp=_now(c) - 300))
_claims_fault("id_token_iat_future", "iat (and exp) lie an hour in the future",
              lambda c, p: c.update(iat=_now(c) + 3600, exp=_now(c) + 3900))
_claims_fault("id_token_exp_not_finite", "exp is the JSON number NaN (Python's json accepts it)",
              lambda c, p: c.update(exp=float("nan")))
_claims_fault("id_token_wrong_at_hash", "at_hash is the hash of another access token",
              lambda c, p: c.update(at_hash=b64url(hashlib.sha256(b"another token").digest()[:16])))
_claims_fault("id_token_wrong_sub", "sub names another user (a refreshed ID token must not, §12.2)",
              lambda c, p: c.update(sub=p.get("sub", "mallory")))


# -- HTTP faults: replacement bodies ----------------------------------------------------------------------
def _body(status: int, content_type: str, body: bytes) -> Response:
    response = Response(status=status, body=body)
    response.content_type = content_type
    response.cache_control = "no-store"
    return response


def _json_fault(name: str, doc: str, data: Callable[[], dict[str, Any]]) -> None:
    def action(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
        return _body(int(params.get("status", 200)), "application/json", json.dumps(data()).encode())

    _register(name, "http", TOKEN_CALLS, doc)(action)


def _fake_token() -> str:
    return "fault-" + secrets.token_urlsafe(24)


def _token(**changes: Any) -> dict[str, Any]:
    data = {"access_token": _fake_token(), "token_type": "Bearer", "expires_in": 300}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@_register("not_json", "http", TOKEN_CALLS, "200 with a form-encoded text/plain body instead of JSON")
def _not_json(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    return _body(200, "text/plain", urlencode({"access_token": _fake_token(), "token_type": "bearer"}).encode())


@_register("html_error_page", "http", TOKEN_CALLS, "an HTML error page (a proxy or WAF), HTTP 403 by default")
def _html_error_page(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    return _body(int(params.get("status", 403)), "text/html",
                 b"<!doctype html><html><body><h1>403 Forbidden</h1><p>Request blocked.</p></body></html>")


@_register("empty_body", "http", TOKEN_CALLS, "HTTP 200 with an empty body")
def _empty_body(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    return _body(int(params.get("status", 200)), "application/json", b"")


_json_fault("missing_access_token", "a token response without access_token",
            lambda: _token(access_token=None))
_json_fault("expires_in_string", 'expires_in is the string "300"', lambda: _token(expires_in="300"))
_json_fault("expires_in_negative", "expires_in is -300", lambda: _token(expires_in=-300))
_json_fault("expires_in_zero", "expires_in is 0", lambda: _token(expires_in=0))
_json_fault("expires_in_huge", "expires_in is 10**10 s (three centuries)", lambda: _token(expires_in=10**10))


@_register("oauth_error", "http", TOKEN_CALLS,
           "an RFC 6749 §5.2 error (error=, invalid_grant by default; status=, 400); the real grant is untouched")
def _oauth_error(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    body = {"error": str(params.get("error", "invalid_grant"))}
    return _body(int(params.get("status", 400)), "application/json", json.dumps(body).encode())


_json_fault("unknown_token_type", "token_type MAC (nobody knows how to present it)", lambda: _token(token_type="MAC"))


@_register("oversized_body", "http", TOKEN_CALLS, "a JSON body that goes on for megabytes (size= bytes, 8 MiB)")
def _oversized_body(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    size = int(params.get("size", 8 * 1024 * 1024))
    chunk = b"x" * 65536

    def body() -> Iterator[bytes]:
        yield b'{"access_token": "'
        for _ in range(size // len(chunk)):
            if active.cancelled.is_set():
                return
            yield chunk
        yield b'", "token_type": "Bearer"}'

    return Response(status=200, content_type="application/json", app_iter=body())


@_register("never_ending", "http", TOKEN_CALLS,
           "headers at once, then one byte every interval= s (0.05) and never the end of the body")
def _never_ending(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    interval = float(params.get("interval", 0.05))

    def body() -> Iterator[bytes]:
        yield b"{"
        deadline = time.monotonic() + MAX_TRICKLE
        while time.monotonic() < deadline and not active.cancelled.wait(interval):
            yield b" "

    return Response(status=200, content_type="application/json", app_iter=body())


@_register("server_error", "http", TOKEN_CALLS + ("discovery", "jwks", "userinfo"),
           "a 5xx with an HTML body (status=, 503 by default)")
def _server_error(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    status = int(params.get("status", 503))
    return _body(status, "text/html", f"<html><body><h1>{status} Service Unavailable</h1></body></html>".encode())


@_register("connection_reset", "http", TOKEN_CALLS + ("discovery", "jwks", "userinfo"),
           "the connection is dropped in the middle of the response (after the headers and a few bytes)")
def _connection_reset(request: Any, view: View, active: ActiveFault, **params: Any) -> Response:
    def body() -> Iterator[bytes]:
        yield b'{"access_token": "'
        raise ConnectionDropped(f"devidp fault connection_reset at {request.path}")

    response = Response(status=200, content_type="application/json", app_iter=body())
    response.content_length = 4096
    return response


@_register("slow", "http", TOKEN_CALLS + ("discovery", "jwks", "userinfo"),
           "the real response after a delay of seconds= (1.0); a 503 instead if the fault ends meanwhile")
def _slow(request: Any, view: View, active: ActiveFault, **params: Any) -> Any:
    if active.cancelled.wait(float(params.get("seconds", 1.0))):
        # The test moved on (the client gave up long ago): do not, say, rotate a refresh token behind its back.
        return _server_error(request, view, active)
    return view(request)


# -- HTTP faults: the real response, rewritten --------------------------------------------------------------
def _rewrite_json(response: Any, change: Callable[[dict[str, Any]], None]) -> Any:
    if response.status_int != 200:
        return response
    data = json.loads(response.body)
    change(data)
    response.body = json.dumps(data).encode()
    return response


@_register("token_without_id_token", "http", ("authorization_code", "device_code"),
           "the real token response with the id_token left out")
def _token_without_id_token(request: Any, view: View, active: ActiveFault, **params: Any) -> Any:
    return _rewrite_json(view(request), lambda data: data.pop("id_token", None))


@_register("userinfo_wrong_sub", "http", ("userinfo",), "userinfo names another user than the ID token")
def _userinfo_wrong_sub(request: Any, view: View, active: ActiveFault, **params: Any) -> Any:
    return _rewrite_json(view(request), lambda data: data.update(sub=params.get("sub", "mallory")))


@_register("discovery_wrong_issuer", "http", ("discovery",),
           "the discovery document names another issuer (a mix-up attempt)")
def _discovery_wrong_issuer(request: Any, view: View, active: ActiveFault, **params: Any) -> Any:
    return _rewrite_json(view(request), lambda data: data.update(issuer=params.get("issuer", "https://evil.example")))


def _redirect_fault(name: str, doc: str, change: Callable[[list[tuple[str, str]], dict[str, Any]], list[tuple[str, str]]]) -> None:
    def action(request: Any, view: View, active: ActiveFault, **params: Any) -> Any:
        response = view(request)
        location = response.headers.get("Location") if 300 <= response.status_int < 400 else None
        if not location:
            return response
        parts = urlsplit(location)
        fragment = bool(parts.fragment) and not parts.query
        query = parse_qsl(parts.fragment if fragment else parts.query, keep_blank_values=True)
        query = urlencode(change(query, params))
        response.headers["Location"] = urlunsplit(parts._replace(**({"fragment": query} if fragment else {"query": query})))
        return response

    _register(name, "http", ("authorize",), doc, applies=_is_decision)(action)


def _is_decision(request: Any) -> bool:
    """The login form's submission, which the provider answers with the redirect back to the client."""
    return request.method == "POST" and "devidp_action" in request.POST


def _replace(query: list[tuple[str, str]], name: str, value: str | None) -> list[tuple[str, str]]:
    kept = [(k, v) for k, v in query if k != name]
    return kept + ([(name, value)] if value is not None else [])


_redirect_fault("authorization_response_wrong_iss", "RFC 9207: the authorization response's iss is another issuer",
                lambda q, p: _replace(q, "iss", p.get("iss", "https://evil.example")))
_redirect_fault("authorization_response_no_iss", "RFC 9207: the authorization response carries no iss",
                lambda q, p: _replace(q, "iss", None))
_redirect_fault("authorization_response_wrong_state", "the authorization response carries another state",
                lambda q, p: _replace(q, "state", p.get("state", "forged-state")))
_redirect_fault("authorization_response_no_state", "the authorization response carries no state",
                lambda q, p: _replace(q, "state", None))
_redirect_fault("authorization_error", "an error response (error=, error_description=) instead of the code",
                lambda q, p: _replace(_replace(_replace(q, "code", None), "error", p.get("error", "server_error")),
                                      "error_description", p.get("error_description", "The provider failed")))
