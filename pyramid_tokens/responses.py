"""Token endpoint answers (RFC 6749 §5.1 success, §5.2 error), typed and bounded before anything uses them.

:func:`parse_token_response` checks every field of a successful answer for its type, and every
value that will go into a request header for its syntax, so a hostile provider cannot make us send
control characters, CR/LF or non-ASCII (header injection) and no token value is ever quoted back in
an error: ``access_token`` is an RFC 6750 §2.1 ``b64token`` (the ``token68`` of ``Authorization``,
also RFC 9449 §7.1's), ``refresh_token`` and ``id_token`` are printable ASCII (RFC 6749 Appendix
A.17 ``VSCHAR``), ``scope`` likewise (§3.3), ``token_type`` one we can present.

:func:`error_from_reply` maps a §5.2 error to its :class:`~pyramid_tokens.errors.TokenError`
subclass, with the HTTP status and the endpoint (the URL without query) as context.

oauthlib's ``parse_token_response`` is not used: it accepts any JSON, coerces ``expires_in`` with
``int()`` and checks no syntax, so this one stays hand-written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from .clock import utc_from_timestamp
from .errors import (InvalidClient, InvalidResponse, InvalidScope, LoginRequired, TokenError,
                     UnauthorizedClient)
from .tokens import KNOWN_TOKEN_TYPES, AccessToken

if TYPE_CHECKING:  # transport imports this module (error_from_reply); Reply is only a type here
    from .transport import Reply

#: the longest token lifetime we believe (one year); more is a broken provider
MAX_EXPIRES_IN = 366 * 24 * 3600
#: the longest token value we accept: a header line must stay well under servers' 8 KiB limits
MAX_TOKEN_LENGTH = 8192

#: RFC 6750 §2.1 ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: RFC 6749 Appendix A ``VSCHAR = %x20-7E`` (printable ASCII, no controls)
VSCHARS = re.compile(r"[\x20-\x7e]+")

#: RFC 6749 §5.2 error codes with their own exception (``invalid_grant``: the refresh token or code is dead)
ERROR_CLASSES: dict[str, type[TokenError]] = {
    "invalid_grant": LoginRequired,
    "invalid_client": InvalidClient,
    "invalid_scope": InvalidScope,
    "unauthorized_client": UnauthorizedClient,
}


def endpoint_of(url: str | None) -> str | None:
    """The endpoint as errors name it: the URL without query and fragment (they may carry values)."""
    if not url:
        return None
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def error_from_reply(reply: "Reply", what: str, *, url: str | None = None) -> TokenError:
    """The error an unsuccessful reply stands for (its RFC 6749 §5.2 body when there is one); ``url`` is named."""
    context = {"status_code": reply.status, "endpoint": endpoint_of(url)}
    data = reply.data if isinstance(reply.data, dict) else {}
    error = data.get("error")
    if not isinstance(error, str) or not error or len(error) > 100 or not VSCHARS.fullmatch(error):
        return InvalidResponse(f"{what}: unexpected HTTP {reply.status} without an OAuth error", **context)
    description = data.get("error_description")
    if not isinstance(description, str) or not VSCHARS.fullmatch(description):
        description = None  # RFC 6749 §5.2: printable ASCII; anything else is not worth showing
    text = f"{what}: {description[:300]}" if description else what
    uri = data.get("error_uri")
    uri = uri if isinstance(uri, str) and VSCHARS.fullmatch(uri) and len(uri) <= 1024 else None
    return ERROR_CLASSES.get(error, TokenError)(text, error=error, error_uri=uri, **context)


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


def _string(data: Mapping[str, Any], name: str, syntax: re.Pattern[str], what: str, **context: Any) -> str | None:
    """An optional string field of the required syntax; the message names the field, never the value."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidResponse(f"{what}: {name} must be a string", **context)
    if len(value) > MAX_TOKEN_LENGTH or not syntax.fullmatch(value):
        raise InvalidResponse(f"{what}: {name} has characters or a length a token may not have", **context)
    return value


def parse_token_response(reply: "Reply", *, what: str, now: float, requested_scope: str | None = None,
                         resource: str | None = None, issuer: str | None = None,
                         client_id: str | None = None, url: str | None = None) -> TokenResponse:
    """Check a token endpoint reply and build the :class:`TokenResponse`, or raise saying what was wrong.

    ``url``: the endpoint, named in errors.
    """
    if reply.status != 200:
        raise error_from_reply(reply, what, url=url)
    context = {"status_code": reply.status, "endpoint": endpoint_of(url)}
    data = reply.data
    if not isinstance(data, dict):
        raise InvalidResponse(f"{what}: expected a JSON object", **context)
    token = data.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise InvalidResponse(f"{what}: no access_token in the response", **context)
    _string(data, "access_token", B64TOKEN, what, **context)
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() not in KNOWN_TOKEN_TYPES:
        shown = token_type if isinstance(token_type, str) and VSCHARS.fullmatch(token_type) else type(token_type).__name__
        raise InvalidResponse(f"{what}: unsupported token_type {str(shown)[:40]!r}", **context)
    expires_in = data.get("expires_in")
    if expires_in is not None:
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)):
            raise InvalidResponse(f"{what}: expires_in must be a number, got {type(expires_in).__name__}", **context)
        if not 0 < expires_in <= MAX_EXPIRES_IN:  # also refuses NaN (Python's json reads it)
            raise InvalidResponse(f"{what}: expires_in {expires_in!r} is outside 1 s .. 1 year", **context)
    refresh_token = _string(data, "refresh_token", VSCHARS, what, **context)
    id_token = _string(data, "id_token", VSCHARS, what, **context)
    scope = _string(data, "scope", VSCHARS, what, **context) or requested_scope  # §5.1: omitted = as requested
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
    return TokenResponse(access, refresh_token, id_token, data)
