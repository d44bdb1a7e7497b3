"""ID token validation (OpenID Connect Core 1.0 §3.1.3.7, §12.2 for refreshed ID tokens).

Fails closed: signature with a ``kid`` from the provider's JWKS, an allow-list of algorithms
(never ``none``, never a symmetric one), ``iss``, ``aud`` containing the client id, ``azp`` when
there are several audiences, ``exp``, ``iat`` with bounded skew, ``nonce``, and ``at_hash`` when present.
Time comes from the injected clock, not from PyJWT.
"""
from __future__ import annotations

import hashlib
import hmac
import math
from typing import Any

import jwt

from .discovery import Discovery
from .errors import InvalidIdToken, ProviderUnavailable, SubjectMismatch, TokenError
from .jwk import b64url

#: asymmetric algorithms we accept for ID tokens
ALLOWED_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def same_text(a: str, b: str) -> bool:
    """Constant-time equality of two strings; ``hmac.compare_digest`` raises TypeError on non-ASCII ``str``."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def token_hash(value: str, alg: str) -> str:
    """``at_hash``: base64url of the left half of the hash of the token (OIDC Core §3.1.3.6)."""
    digest = _HASHES.get(alg[-3:], hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return b64url(digest[: len(digest) // 2])


def validate_id_token(id_token: str, *, discovery: Discovery, client_id: str, now: float,
                      nonce: str | None = None, require_nonce: bool = False, access_token: str | None = None,
                      expected_sub: str | None = None, skew: float = 120.0, max_age: float = 600.0) -> dict[str, Any]:
    """Validate ``id_token`` and return its claims, or raise :class:`InvalidIdToken` saying why."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise InvalidIdToken("the ID token is not a well-formed JWS") from None
    alg = header.get("alg")
    supported = discovery.metadata().get("id_token_signing_alg_values_supported") or ["RS256"]
    if alg not in ALLOWED_ALGS or alg not in supported:
        raise InvalidIdToken(f"the ID token's algorithm {alg!r} is not allowed")
    try:
        key = discovery.signing_key(header.get("kid"), alg)
    except ProviderUnavailable:
        raise  # the JWKS could not be fetched: try again later, the token may well be fine
    except TokenError as exc:
        raise InvalidIdToken(exc.error_description or "no key for the ID token") from None
    issuer = discovery.issuer
    try:
        claims = jwt.decode(
            id_token, key=key, algorithms=[alg], audience=client_id, issuer=issuer,
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                     "require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.InvalidSignatureError:
        raise InvalidIdToken("the ID token's signature is invalid", check="signature") from None
    except jwt.InvalidAudienceError:
        raise InvalidIdToken("the ID token's audience does not contain this client", check="audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidIdToken("the ID token's issuer is not the provider", check="issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidIdToken(f"the ID token has no {exc.claim} claim") from None
    except jwt.PyJWTError as exc:
        raise InvalidIdToken(f"the ID token is invalid ({type(exc).__name__})") from None
    check_id_token_claims(claims, client_id=client_id, now=now, nonce=nonce, require_nonce=require_nonce,
                          expected_sub=expected_sub, skew=skew, max_age=max_age)
    if access_token is not None and "at_hash" in claims:
        if not same_text(str(claims["at_hash"]), token_hash(access_token, alg)):
            raise InvalidIdToken("the ID token's at_hash does not match the access token", check="at_hash")
    return claims


def check_id_token_claims(claims: dict[str, Any], *, client_id: str, now: float, nonce: str | None,
                          require_nonce: bool, expected_sub: str | None, skew: float, max_age: float) -> None:
    """The claim checks that need no key: azp, exp, iat, nonce, sub."""
    aud = claims["aud"]
    audiences = [aud] if isinstance(aud, str) else list(aud)
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise InvalidIdToken("the ID token's azp is not this client")
    for name in ("exp", "iat"):
        value = claims[name]  # Python's json reads NaN and Infinity: an exp of NaN would never expire
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidIdToken(f"the ID token's {name} is not a number")
    if now > claims["exp"] + skew:
        raise InvalidIdToken("the ID token has expired", check="expiry")
    if claims["iat"] > now + skew:
        raise InvalidIdToken("the ID token was issued in the future")
    if claims["iat"] < now - max_age - skew:
        raise InvalidIdToken("the ID token was issued too long ago")
    if require_nonce or nonce is not None:
        if not isinstance(claims.get("nonce"), str) or not nonce or not same_text(claims["nonce"], nonce):
            raise InvalidIdToken("the ID token's nonce does not match the login request", check="nonce")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise InvalidIdToken("the ID token's sub is empty")
    if expected_sub is not None and claims["sub"] != expected_sub:
        raise SubjectMismatch("the refreshed ID token names another user")
