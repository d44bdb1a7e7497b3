"""User login without a browser callback: the OAuth 2.0 Device Authorization Grant (RFC 8628).

For notebooks, scripts and terminals, where nothing can receive a redirect:

1. §3.1 device authorization request: POST to the provider's ``device_authorization_endpoint``
   (RFC 8628 §4 metadata), authenticated like the token endpoint with the OIDC client's credentials.
2. §3.2 response: ``device_code``, ``user_code``, ``verification_uri`` and, optionally,
   ``verification_uri_complete``, ``expires_in``, ``interval`` (default 5 s).
3. §3.3 user interaction: the code and the link are shown (HTML with a clickable link inside a
   Jupyter kernel, plain text elsewhere); the user approves in any browser.
4. §3.4 device access token request: the token endpoint is polled with
   ``grant_type=urn:ietf:params:oauth:grant-type:device_code`` (built with oauthlib's ``DeviceClient``).
5. §3.5 responses: ``authorization_pending`` keeps polling, ``slow_down`` adds 5 s to the interval
   for this and all later polls, ``access_denied`` and ``expired_token`` end the login
   (:class:`~pyramid_tokens.errors.LoginFailed` carrying that ``error``); a connection failure
   doubles the interval (§3.5, "exponential backoff") until the code expires.

A returned ID token is validated as at a browser login (OIDC Core §3.1.3.7; there is no nonce in
this flow) and the token set is stored as the manager's local user, so ``get_user_access_token()``,
``http_client(...)`` and ``revoke_user_refresh_token()`` work exactly as in the web app.
Token values are never printed or logged; the user code is shown to the user only.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl

from oauthlib.oauth2 import DeviceClient

from .errors import ConfigurationError, InvalidResponse, LoginFailed, ProviderUnavailable, TokenError
from .idtoken import validate_id_token
from .tokens import AccessToken
from .responses import TokenResponse
from .transport import Reply

if TYPE_CHECKING:
    from .manager import TokenManager
    from .stores import TokenStore

log = logging.getLogger(__name__)

#: RFC 8628 §3.2: the polling interval when the provider names none
DEFAULT_INTERVAL = 5.0
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
        """The terminal prompt (§3.3)."""
        minutes = max(1, round(self.expires_in / 60))
        lines = ["To sign in, open this link in a browser and approve the request:", f"    {self.link}"]
        if self.verification_uri_complete:
            lines.append(f"(or open {self.verification_uri} and enter the code {self.user_code})")
        else:
            lines.append(f"and enter the code {self.user_code}")
        lines.append(f"The code expires in about {minutes} min.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from .display import device_prompt_html

        return device_prompt_html(self)

    def __repr__(self) -> str:
        return (f"DeviceAuthorization(user_code={self.user_code!r}, verification_uri={self.verification_uri!r}, "
                f"expires_in={self.expires_in!r}, interval={self.interval!r}, device_code='<redacted>')")


# -- display ------------------------------------------------------------------------------------------
def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel. Never imports IPython: a kernel has loaded it already."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an odd or partial IPython: behave as a terminal
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Prompt:
    """Shows the prompt and, in a kernel, replaces it with the outcome once the login ends."""

    def __init__(self, display: Display | None) -> None:
        self.custom = display
        self.handle: Any = None

    def show(self, authorization: DeviceAuthorization) -> None:
        if self.custom is not None:
            self.custom(authorization)
        elif in_kernel():
            from IPython.display import display  # type: ignore[import-not-found]

            bundle = {"text/html": authorization._repr_html_(), "text/plain": authorization.text()}
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            print(authorization.text(), file=sys.stderr, flush=True)

    def finish(self, ok: bool, message: str) -> None:
        if self.custom is not None:
            return
        if self.handle is not None:
            from .display import device_outcome_html

            self.handle.update({"text/html": device_outcome_html(ok, message), "text/plain": message}, raw=True)
        else:
            print(message, file=sys.stderr, flush=True)


# -- protocol -----------------------------------------------------------------------------------------
def _number(data: dict[str, Any], name: str, default: float | None) -> float:
    value = data.get(name, default)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidResponse(f"device authorization response: {name} must be a number")
    return float(value)


def parse_device_authorization(reply: Reply, *, now: float) -> DeviceAuthorization:
    """Check a device authorization response (RFC 8628 §3.2) or raise saying what is wrong."""
    if reply.status != 200:
        from .responses import error_from_reply

        raise error_from_reply(reply, "device authorization request")
    data = reply.data
    if not isinstance(data, dict):
        raise InvalidResponse("device authorization response: expected a JSON object", status_code=reply.status)
    for name in ("device_code", "user_code", "verification_uri"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise InvalidResponse(f"device authorization response: {name} is missing")
    complete = data.get("verification_uri_complete")
    if complete is not None and (not isinstance(complete, str) or not complete):
        raise InvalidResponse("device authorization response: verification_uri_complete must be a string")
    expires_in = _number(data, "expires_in", None)
    interval = _number(data, "interval", DEFAULT_INTERVAL)
    if expires_in <= 0:
        raise InvalidResponse("device authorization response: expires_in must be positive")
    if not 0 <= interval <= MAX_INTERVAL:
        raise InvalidResponse(f"device authorization response: interval must be 0 .. {MAX_INTERVAL:g} s")
    return DeviceAuthorization(
        device_code=data["device_code"], user_code=data["user_code"], verification_uri=data["verification_uri"],
        verification_uri_complete=complete, expires_in=expires_in, interval=interval, issued_at=now,
    )


def _scope_with_openid(scope: str | None, default: str) -> str:
    words = (scope if scope is not None else default).split()
    return " ".join(words if "openid" in words else ["openid", *words])


def device_login(manager: "TokenManager", *, scope: str | None = None, display: Display | None = None,
                 sleep: Callable[[float], None] = time.sleep, timeout: float | None = None,
                 handle: str | None = None, store: "TokenStore | None" = None) -> AccessToken:
    """Log the user in with the device flow and store their tokens; returns the access token.

    ``scope`` defaults to ``oidc.scope`` (``openid`` is always requested: the login needs the
    user's identity; add ``offline_access`` for a refresh token). ``display(authorization)``
    replaces the built-in prompt (HTML in a Jupyter kernel, text on stderr elsewhere).
    ``sleep`` waits between polls; ``timeout`` (seconds) gives up sooner than the code expires.
    Raises :class:`~pyramid_tokens.errors.LoginFailed` with ``error`` ``access_denied`` or
    ``expired_token`` when the user refuses or does not answer in time.
    """
    from .manager import LOCAL_USER

    oidc = manager.oidc
    users = manager.user_tokens
    if oidc is None or users is None or oidc.discovery is None:
        raise ConfigurationError("oidc.authority", "device_login needs the oidc.* login settings")
    clock = manager.clock
    endpoint = oidc.discovery.endpoint("device_authorization_endpoint")
    if not endpoint:
        raise TokenError("the provider offers no device authorization endpoint (RFC 8628 §4)",
                         error="unsupported_grant_type")
    scope = _scope_with_openid(scope, oidc.options.scope)

    reply = oidc.post_form(endpoint, {"scope": scope}, what="device authorization request")
    authorization = parse_device_authorization(reply, now=clock())
    deadline = authorization.expires_at if timeout is None else min(authorization.expires_at, clock() + timeout)
    prompt = _Prompt(display)
    prompt.show(authorization)
    log.info("device login for client %s started; waiting for the user (code expires in %g s)",
             oidc.client_id, authorization.expires_in)

    try:
        tokens = _poll(manager, authorization, scope, deadline=deadline, sleep=sleep, dpop=oidc.new_login_dpop_key())
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
    users.save_login(handle or LOCAL_USER, tokens, sub, store=store)
    log.info("device login: user %s signed in (client %s, refresh token: %s)", sub, oidc.client_id,
             "yes" if tokens.refresh_token else "no")
    name = claims.get("name") or claims.get("preferred_username") or sub
    prompt.finish(True, f"Signed in as {name}.")
    return tokens.access_token


def _poll(manager: "TokenManager", authorization: DeviceAuthorization, scope: str, *, deadline: float,
          sleep: Callable[[float], None], dpop: Any = None) -> TokenResponse:
    """Poll the token endpoint until the user decides or the code expires (RFC 8628 §3.4-3.5).

    ``dpop``: the login's DPoP key (RFC 9449); every poll carries a proof made with it.
    """
    oidc = manager.oidc
    assert oidc is not None
    clock = manager.clock
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
