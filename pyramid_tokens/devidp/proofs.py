"""DPoP proof checks on the server side (RFC 9449 §4.3, §7.1, §11.1): the development provider and the demo API.

:func:`verify_proof` implements the checks of §4.3 (and §7.1 with an access token); :class:`ReplayCache`
the ``jti`` replay check. The client side (keys, proofs, nonces) is :mod:`pyramid_tokens.dpop`.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import jwt

from ..dpop import DPOP_TYP, INVALID_DPOP_PROOF, PRIVATE_MEMBERS, USE_DPOP_NONCE, htu
from ..errors import InvalidProof
from ..jwk import ALGORITHMS, sha256_b64url
from ..jwk import thumbprint as jwk_thumbprint

__all__ = ["INVALID_DPOP_PROOF", "InvalidProof", "ReplayCache", "verify_proof"]


class ReplayCache:
    """Remembers values (proof or assertion ``jti``) until they expire; thread-safe, bounded."""

    def __init__(self, clock: Callable[[], float] = time.time, max_entries: int = 100_000) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, value: str, expires_at: float) -> bool:
        """True the first time ``value`` is seen (before it expires), False for a replay."""
        now = self.clock()
        with self._lock:
            while self._seen and (len(self._seen) >= self.max_entries or next(iter(self._seen.values())) <= now):
                self._seen.popitem(last=False)  # oldest first (entries share one lifetime per use)
            if value in self._seen and self._seen[value] > now:
                return False
            self._seen[value] = expires_at
            return True


def verify_proof(proof: str | None, *, method: str, url: str, access_token: str | None = None,
                 nonce_ok: Callable[[str | None], bool] | None = None, replay: ReplayCache | None = None,
                 now: float | None = None, max_age: float = 60, leeway: float = 5,
                 algorithms: tuple[str, ...] = ALGORITHMS) -> tuple[str, dict[str, Any]]:
    """Check one DPoP proof (§4.3, §7.1 with ``access_token``); ``(jkt, claims)`` or :class:`InvalidProof`.

    ``nonce_ok(nonce)`` decides whether the proof's nonce is current (``use_dpop_nonce`` if not);
    ``replay`` refuses a ``jti`` seen before. ``iat`` must lie within ``max_age`` seconds before
    ``now`` and ``leeway`` seconds after it.
    """
    if not proof or not isinstance(proof, str) or "," in proof:
        raise InvalidProof("exactly one DPoP proof is required")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:
        raise InvalidProof("the DPoP proof is not a JWT") from None
    if str(header.get("typ", "")).lower() != DPOP_TYP:
        raise InvalidProof("the DPoP proof must have typ dpop+jwt")
    alg = header.get("alg")
    if alg not in algorithms:
        raise InvalidProof("the DPoP proof's alg is not supported")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or PRIVATE_MEMBERS & set(jwk):
        raise InvalidProof("the DPoP proof must carry a public jwk")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
        jkt = jwk_thumbprint(jwk)
        claims = jwt.decode(proof, key.key, algorithms=[alg],
                            options={"require": ["jti", "htm", "htu", "iat"], "verify_aud": False,
                                     "verify_exp": False, "verify_iat": False, "verify_nbf": False})
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise InvalidProof("the DPoP proof's signature does not verify with its jwk") from None
    if claims.get("htm") != method.upper():
        raise InvalidProof("the DPoP proof is for another HTTP method (htm)")
    if not isinstance(claims.get("htu"), str) or htu(claims["htu"]) != htu(url):
        raise InvalidProof("the DPoP proof is for another URI (htu)")
    now = time.time() if now is None else now
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or not now - max_age <= iat <= now + leeway:
        raise InvalidProof("the DPoP proof is too old or from the future (iat)")
    if access_token is not None and claims.get("ath") != sha256_b64url(access_token):
        raise InvalidProof("the DPoP proof is not for this access token (ath)")
    if nonce_ok is not None and not nonce_ok(claims.get("nonce")):
        raise InvalidProof("a current DPoP nonce is required", USE_DPOP_NONCE)
    if not isinstance(claims.get("jti"), str) or not claims["jti"] or len(claims["jti"]) > 256:
        raise InvalidProof("the DPoP proof needs a jti")
    if replay is not None and not replay.first_use(f"{jkt}:{claims['jti']}", now + max_age + leeway):
        raise InvalidProof("the DPoP proof was used before (jti)")
    return jkt, claims
