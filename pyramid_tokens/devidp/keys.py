"""Signing keys and the JWK Set the provider publishes.

RSA 2048-bit keys for RS256 (RFC 7518 §3.3), published as a JWK Set (RFC 7517 §5) with
``use=sig`` and ``alg=RS256`` (RFC 7517 §4.2-4.4). The ``kid`` is the key's RFC 7638 thumbprint.
Rotation puts a new key first: it signs from then on, while old keys may stay published so
tokens they signed still verify (OpenID Connect Core §10.1.1).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ..jwk import public_jwk, thumbprint

ALGORITHM = "RS256"


@dataclass(frozen=True)
class SigningKey:
    """One RSA key pair and its key id."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        jwk = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {"kty": "RSA", "use": "sig", "alg": ALGORITHM, "kid": self.kid, "n": jwk["n"], "e": jwk["e"]}


def generate_signing_key(bits: int = 2048) -> SigningKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return SigningKey(kid=thumbprint(public_jwk(private_key)), private_key=private_key)


class KeySet:
    """The provider's keys, newest (the signing key) first; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = [generate_signing_key()]

    @property
    def current(self) -> SigningKey:
        with self._lock:
            return self._keys[0]

    def rotate(self, keep_old: bool = True) -> SigningKey:
        """Start signing with a new key; keep publishing the old ones when ``keep_old``."""
        key = generate_signing_key()
        with self._lock:
            self._keys = [key, *self._keys] if keep_old else [key]
        return key

    def find(self, kid: str | None) -> SigningKey | None:
        with self._lock:
            return next((key for key in self._keys if key.kid == kid), None)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        with self._lock:
            keys = list(self._keys)
        return {"keys": [key.public_jwk() for key in keys]}
