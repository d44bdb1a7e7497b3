"""Logout token validation (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6).

A provider that ended a user's session POSTs a signed *logout token* to the client. Every check
fails closed with :class:`~pyramid_tokens.errors.InvalidLogoutToken` naming it (``check``), and
the caller logs that name, never the token:

``size`` / ``jws`` (a bounded compact JWS), ``typ`` (``logout+jwt`` when present; ``JWT`` too, real
providers send it), ``alg`` (the ID token allow-list, never ``none``), ``signature`` (the provider's
JWKS by ``kid``, one refetch: :meth:`~pyramid_tokens.discovery.Discovery.signing_key`, as for ID
tokens), ``iss``, ``aud`` (and ``azp`` as for ID tokens), ``iat`` (present, not in the future beyond
the skew), ``exp`` (honoured when present; otherwise at most :data:`MAX_AGE` after ``iat``),
``events`` (the back-channel logout member, a JSON object), ``sub`` / ``sid`` (at least one, bounded
strings), ``nonce`` (absent, §2.4) and last ``jti`` (present, and accepted once: ``first_use``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import jwt

from .discovery import Discovery
from .errors import InvalidLogoutToken, ProviderUnavailable, TokenError
from .idtoken import ALLOWED_ALGS

#: the ``events`` member that makes a JWT a logout token (§2.4)
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: header ``typ`` values accepted (§2.3 recommends ``logout+jwt``; many providers send ``JWT``)
ACCEPTED_TYPES = ("logout+jwt", "application/logout+jwt", "jwt")
#: seconds a logout token without ``exp`` is accepted after its ``iat``
MAX_AGE = 120.0
#: the longest logout token read (real ones are well under 2 KB)
MAX_TOKEN_LENGTH = 8192
#: the longest ``sub``, ``sid`` or ``jti`` accepted
MAX_CLAIM_LENGTH = 255


@dataclass(frozen=True)
class LogoutClaims:
    """What a valid logout token says: whose session ended (``sid`` and/or ``sub``) at which issuer."""

    iss: str
    sub: str | None
    sid: str | None
    jti: str


def _refuse(check: str, description: str) -> InvalidLogoutToken:
    return InvalidLogoutToken(f"the logout token {description}", check=check)


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims[name]  # Python's json reads NaN and Infinity: an exp of NaN would never expire
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(name, f"{name} is not a number")
    return float(value)


def _short_text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_CLAIM_LENGTH:
        raise _refuse(name, f"{name} is not a string of 1 to {MAX_CLAIM_LENGTH} characters")
    return value


def validate_logout_token(token: Any, *, discovery: Discovery, client_id: str, now: float,
                          first_use: Callable[[str, str, float], bool], skew: float = 120.0,
                          max_age: float = MAX_AGE) -> LogoutClaims:
    """Check ``token`` (§2.6) and return its claims; ``first_use(iss, jti, ttl)`` is the replay cache."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _refuse("size", f"is missing or longer than {MAX_TOKEN_LENGTH} characters")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _refuse("jws", "is not a well-formed JWS") from None
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES):
        raise _refuse("typ", "has a typ header that is not logout+jwt")
    alg = header.get("alg")
    supported = discovery.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS or alg not in supported:
        raise _refuse("alg", "is signed with an algorithm that is not allowed")
    try:
        key = discovery.signing_key(header.get("kid"), alg)
    except ProviderUnavailable:
        raise  # the JWKS could not be fetched: the provider may retry, the token may well be fine
    except TokenError:
        raise _refuse("signature", "names no key of the provider") from None
    issuer = discovery.issuer
    try:
        claims = jwt.decode(token, key=key, algorithms=[alg], audience=client_id, issuer=issuer,
                            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                     "require": ["iss", "aud", "iat", "jti"]})
    except jwt.InvalidSignatureError:
        raise _refuse("signature", "has an invalid signature") from None
    except jwt.InvalidAudienceError:
        raise _refuse("aud", "is not addressed to this client") from None
    except jwt.InvalidIssuerError:
        raise _refuse("iss", "was not issued by the provider") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _refuse(exc.claim if exc.claim in ("iss", "aud", "iat", "jti") else "claims",
                      f"has no {exc.claim} claim") from None
    except jwt.PyJWTError as exc:  # PyJWT's own claim type checks (InvalidJTIError, InvalidSubjectError...)
        check = {"InvalidJTIError": "jti", "InvalidSubjectError": "sub"}.get(type(exc).__name__, "jws")
        raise _refuse(check, f"is invalid ({type(exc).__name__})") from None
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else list(aud)
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise _refuse("azp", "names another authorized party (azp)")
    iat = _number(claims, "iat")
    if iat > now + skew:
        raise _refuse("iat", "was issued in the future")
    if claims.get("exp") is not None:
        if now > _number(claims, "exp") + skew:
            raise _refuse("exp", "has expired")
        until = _number(claims, "exp") + skew
    else:
        until = iat + max_age + skew
        if now > until:
            raise _refuse("iat", "was issued too long ago")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise _refuse("events", "has no back-channel logout event")
    sub, sid = _short_text(claims, "sub"), _short_text(claims, "sid")
    if sub is None and sid is None:
        raise _refuse("sub", "names neither a sub nor a sid")
    if "nonce" in claims:
        raise _refuse("nonce", "carries a nonce (it could be an ID token)")
    jti = _short_text(claims, "jti")
    if jti is None or not first_use(issuer, jti, until - now):
        raise _refuse("jti", "was already used (a replayed jti)")
    return LogoutClaims(iss=issuer, sub=sub, sid=sid, jti=jti)
