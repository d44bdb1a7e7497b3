"""User login without a browser callback: the OAuth 2.0 Device Authorization Grant (RFC 8628).

For notebooks, scripts and terminals, where nothing can receive a redirect:

1. §3.1 device authorization request: POST to the provider's ``device_authorization_endpoint``
   (RFC 8628 §4 metadata), authenticated like the token endpoint with the OIDC client's credentials.
2. §3.2 response: ``device_code``, ``user_code``, ``verification_uri`` and, optionally,
   ``verification_uri_complete``, ``expires_in``, ``interval`` (default 5 s). Every field is typed
   and bounded: codes are non-empty strings of bounded length, URIs absolute http(s) of printable
   ASCII; an ``interval`` below 1 s is taken as missing (5 s, so a provider cannot make the client
   poll without pause) and ``expires_in`` is capped at 30 min.
3. §3.3 user interaction: the code and the link are shown by :mod:`pyramid_tokens.prompt` (HTML
   with a clickable link inside a Jupyter kernel, plain text elsewhere, provider strings made
   inert); the user approves in any browser.
4. §3.4 device access token request: the token endpoint is polled with
   ``grant_type=urn:ietf:params:oauth:grant-type:device_code`` (built with oauthlib's ``DeviceClient``).
5. §3.5 responses: ``authorization_pending`` keeps polling, ``slow_down`` adds 5 s to the interval
   for this and all later polls, ``access_denied`` and ``expired_token`` end the login
   (:class:`~pyramid_tokens.errors.LoginFailed` carrying that ``error``); a connection failure
   doubles the interval (§3.5, "exponential backoff") until the code expires.

A returned ID token is validated as at a browser login (OIDC Core §3.1.3.7; there is no nonce in
this flow) and the token set is saved by the user-token layer (``UserTokens.save_login``), as the
manager's local user by default, so ``get_user_access_token()``, ``http_client(...)`` and
``revoke_user_refresh_token()`` work exactly as in the web app.
Token values are never printed or logged; the user code is shown to the user only.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl, urlsplit

from oauthlib.oauth2 import DeviceClient

from .errors import ConfigurationError, InvalidResponse, LoginFailed, ProviderUnavailable, TokenError
from .idtoken import validate_id_token
from .logins import login_facts
from .prompt import DevicePrompt, prompt_html, prompt_text
from .tokens import AccessToken
from .responses import TokenResponse
from .transport import Reply
from .usertokens import LOCAL_USER

if TYPE_CHECKING:
    from .oidc import OidcClient
    from .stores import TokenStore
    from .usertokens import UserTokens

log = logging.getLogger(__name__)

#: RFC 8628 §3.2: the polling interval when the provider names none (or one below :data:`MIN_INTERVAL`)
DEFAULT_INTERVAL = 5.0
#: an ``interval`` below this is no interval at all (``0`` would poll without pause): the default applies
MIN_INTERVAL = 1.0
#: the longest a code is waited for, whatever ``expires_in`` says (RFC 8628 §3.2 names no maximum)
MAX_EXPIRES_IN = 1800.0
#: bounds of the provider's strings: RFC 8628 §6.1 user codes are short; URIs as browsers accept them
MAX_USER_CODE = 64
MAX_DEVICE_CODE = 4096
MAX_URI = 2048
#: the signed-in user's name is shown to this length at most
MAX_NAME = 200
#: RFC 8628 §3.5: what ``slow_down`` adds to the interval
SLOW_DOWN_STEP = 5.0
#: a provider's ``interval`` beyond this is treated as broken
MAX_INTERVAL = 300.0
#: a connection failure doubles the interval up to this (RFC 8628 §3.5)
MAX_BACKOFF = 60.0

#: ``display(authorization)``: shows the user what to open and which code to enter
Display = Callable[["DeviceAuthorization"], Any]


@dataclass(frozen=True, repr=False)
class DeviceAuthorization:
    """A device authorization response (RFC 8628 §3.2). The ``device_code`` is never shown."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float
    #: manager-clock time at which the code was issued
    issued_at: float

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.expires_in

    @property
    def link(self) -> str:
        """What the user should open: the complete URI when there is one (§3.3.1)."""
        return self.verification_uri_complete or self.verification_uri

    def text(self) -> str:
        """The terminal prompt (§3.3), every provider-sent string made inert."""
        return prompt_text(self)

    def _repr_html_(self) -> str:
        return prompt_html(self)

    def __repr__(self) -> str:
        return (f"DeviceAuthorization(user_code={self.user_code!r}, verification_uri={self.verification_uri!r}, "
                f"expires_in={self.expires_in!r}, interval={self.interval!r}, device_code='<redacted>')")


# -- protocol -----------------------------------------------------------------------------------------
def _number(data: dict[str, Any], name: str, default: float | None) -> float:
    value = data.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidResponse(f"device authorization response: {name} must be a number")
    return float(value)


def _string(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if value is None or value == "":
        raise InvalidResponse(f"device authorization response: {name} is missing")
    if not isinstance(value, str):
        raise InvalidResponse(f"device authorization response: {name} must be a string")
    if len(value) > limit:
        raise InvalidResponse(f"device authorization response: {name} is longer than {limit} characters")
    return value


def _uri(data: dict[str, Any], name: str) -> str:
    """An absolute http(s) URI (RFC 8628 §3.2) of printable ASCII: a browser opens it, a terminal shows it."""
    value = _string(data, name, MAX_URI)
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or \
            not all(0x21 <= ord(ch) < 0x7f for ch in value):
        raise InvalidResponse(f"device authorization response: {name} must be an absolute http(s) URI")
    return value


def parse_device_authorization(reply: Reply, *, now: float) -> DeviceAuthorization:
    """Check a device authorization response (RFC 8628 §3.2) or raise saying what is wrong.

    ``interval`` below :data:`MIN_INTERVAL` is taken as missing (:data:`DEFAULT_INTERVAL`), and
    ``expires_in`` is capped at :data:`MAX_EXPIRES_IN`: a provider cannot make the client poll
    without pause, or wait for ever.
    """
    if reply.status != 200:
        from .responses import error_from_reply

        raise error_from_reply(reply, "device authorization request")
    data = reply.data
    if not isinstance(data, dict):
        raise InvalidResponse("device authorization response: expected a JSON object", status_code=reply.status)
    device_code = _string(data, "device_code", MAX_DEVICE_CODE)
    user_code = _string(data, "user_code", MAX_USER_CODE)
    verification_uri = _uri(data, "verification_uri")
    complete = _uri(data, "verification_uri_complete") if data.get("verification_uri_complete") is not None else None
    expires_in = _number(data, "expires_in", None)
    interval = _number(data, "interval", DEFAULT_INTERVAL)
    if expires_in <= 0:
        raise InvalidResponse("device authorization response: expires_in must be positive")
    if interval > MAX_INTERVAL:
        raise InvalidResponse(f"device authorization response: interval must be at most {MAX_INTERVAL:g} s")
    if interval < MIN_INTERVAL:
        log.warning("device authorization response: interval %g s is too short; polling every %g s instead",
                    interval, DEFAULT_INTERVAL)
        interval = DEFAULT_INTERVAL
    if expires_in > MAX_EXPIRES_IN:
        log.warning("device authorization response: expires_in %g s capped at %g s", expires_in, MAX_EXPIRES_IN)
        expires_in = MAX_EXPIRES_IN
    return DeviceAuthorization(
        device_code=device_code, user_code=user_code, verification_uri=verification_uri,
        verification_uri_complete=complete, expires_in=expires_in, interval=interval, issued_at=now,
    )


def _scope_with_openid(scope: str | None, default: str) -> str:
    words = (scope if scope is not None else default).split()
    return " ".join(words if "openid" in words else ["openid", *words])


def device_login(oidc: "OidcClient | None", users: "UserTokens | None", *, handle: str = LOCAL_USER,
                 scope: str | None = None, display: Display | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: float | None = None,
                 store: "TokenStore | None" = None) -> AccessToken:
    """Log the user in with the device flow and store their tokens under ``handle``; returns the access token.

    ``oidc`` is the login client (its provider, credentials and clock), ``users`` the user-token
    layer the login is saved in (``store`` overrides its store). ``scope`` defaults to ``oidc.scope``
    (``openid`` is always requested: the login needs the user's identity; add ``offline_access`` for
    a refresh token). ``display(authorization)`` replaces the built-in prompt
    (:class:`~pyramid_tokens.prompt.DevicePrompt`: HTML in a Jupyter kernel, text on stderr elsewhere).
    ``sleep`` waits between polls; ``timeout`` (seconds) gives up sooner than the code expires.
    Raises :class:`~pyramid_tokens.errors.LoginFailed` with ``error`` ``access_denied`` or
    ``expired_token`` when the user refuses or does not answer in time.
    """
    if oidc is None or users is None or oidc.discovery is None:
        raise ConfigurationError("oidc.authority", "device_login needs the oidc.* login settings")
    clock = oidc.clock
    endpoint = oidc.discovery.endpoint("device_authorization_endpoint", mtls=oidc.credentials.cert is not None)
    if not endpoint:
        raise TokenError("the provider offers no device authorization endpoint (RFC 8628 §4)",
                         error="unsupported_grant_type")
    scope = _scope_with_openid(scope, oidc.options.scope)

    reply = oidc.post_form(endpoint, {"scope": scope}, what="device authorization request")
    authorization = parse_device_authorization(reply, now=clock())
    deadline = authorization.expires_at if timeout is None else min(authorization.expires_at, clock() + timeout)
    prompt = DevicePrompt(display)
    prompt.show(authorization)
    log.info("device login for client %s started; waiting for the user (code expires in %g s)",
             oidc.client_id, authorization.expires_in)

    try:
        tokens = _poll(oidc, authorization, deadline=deadline, sleep=sleep, dpop=oidc.new_login_dpop_key())
        if tokens.access_token.scope is None:
            tokens = TokenResponse(tokens.access_token.with_(scope=scope), tokens.refresh_token, tokens.id_token,
                                   tokens.raw)
        if not tokens.id_token:
            raise InvalidResponse("device access token response: the provider returned no id_token")
        claims = validate_id_token(tokens.id_token, discovery=oidc.discovery, client_id=oidc.client_id,
                                   now=clock(), access_token=tokens.access_token.access_token)
    except TokenError as exc:
        prompt.finish(False, f"Sign-in failed: {exc.error_description or exc.error}")
        raise
    except KeyboardInterrupt:  # the kernel's "interrupt": leave no live-looking link behind
        prompt.finish(False, "Sign-in cancelled.")
        raise
    sub = claims["sub"]
    users.save_login(handle, tokens, sub, store=store, extra=login_facts(claims, clock()))
    log.info("device login: user %s signed in (client %s, refresh token: %s)", sub, oidc.client_id,
             "yes" if tokens.refresh_token else "no")
    name = claims.get("name") or claims.get("preferred_username") or sub
    prompt.finish(True, f"Signed in as {str(name)[:MAX_NAME]}.")
    return tokens.access_token


def _poll(oidc: "OidcClient", authorization: DeviceAuthorization, *, deadline: float,
          sleep: Callable[[float], None], dpop: Any = None) -> TokenResponse:
    """Poll the token endpoint until the user decides or the code expires (RFC 8628 §3.4-3.5).

    ``dpop``: the login's DPoP key (RFC 9449); every poll carries a proof made with it.
    """
    clock = oidc.clock
    form = dict(parse_qsl(DeviceClient(oidc.client_id).prepare_request_body(authorization.device_code)))
    interval = authorization.interval
    while True:
        try:
            return oidc.request_token(form, what="device access token request", scope=None, dpop=dpop)
        except ProviderUnavailable as exc:
            interval = min(max(interval, 1.0) * 2, MAX_BACKOFF)
            log.warning("device login: %s; polling again in %g s", exc, interval)
        except TokenError as exc:
            if exc.error == "authorization_pending":
                pass
            elif exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
                log.info("device login: the provider asked to slow down; polling every %g s", interval)
            elif exc.error == "access_denied":
                raise LoginFailed("the sign-in request was denied", error="access_denied") from None
            elif exc.error == "expired_token":
                raise LoginFailed("the sign-in code expired before it was approved; please try again",
                                  error="expired_token") from None
            else:
                raise
        if clock() + interval > deadline:
            raise LoginFailed("the sign-in was not approved in time; please try again", error="expired_token")
        sleep(interval)
