"""Asymmetric keys for the JWTs a client signs: loading, algorithms, JWKs and thumbprints.

* Private keys come from a PEM file (PKCS#8, PKCS#1 or SEC1, unencrypted) or a JWK file
  (RFC 7517 §4; a JWK Set with exactly one private key is accepted too).
* The algorithm (RFC 7518 §3.1) follows from the key when not configured: RSA keys sign ``RS256``,
  P-256 keys ``ES256``; ``PS256`` is available for RSA keys on request.
* Public JWKs carry only the public members; RFC 7638 thumbprints (SHA-256, base64url) name keys,
  e.g. as a DPoP ``jkt`` (RFC 9449 §6.1) or as the ``kid`` of a PEM key.

Shared by client authentication (:mod:`pyramid_tokens.assertion`) and DPoP (:mod:`pyramid_tokens.dpop`).
"""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Mapping

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from .errors import ConfigurationError

#: the signing algorithms we create and accept (RFC 7518 §3.1), asymmetric only
ALGORITHMS = ("RS256", "PS256", "ES256")
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
#: the members RFC 7638 §3.2 hashes, per key type
THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2, Appendix C), as JOSE, PKCE (RFC 7636 §4.2) and DPoP write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """The bytes of unpadded base64url text; ``ValueError`` when it is not base64url."""
    raw = text.encode("ascii") if isinstance(text, str) else text
    if not raw.isascii():
        raise ValueError("not base64url")
    return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)


def sha256_b64url(text: str | bytes) -> str:
    """base64url(SHA-256(text)): DPoP ``ath`` (RFC 9449 §4.2), ``x5t#S256`` (RFC 8705 §3.1)."""
    return b64url(hashlib.sha256(text.encode("ascii") if isinstance(text, str) else text).digest())


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, str]:
    """The public JWK of a key (no private members)."""
    public = key.public_key() if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)) else key
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        raise TypeError(f"unsupported key type {type(key).__name__}")
    return {name: data[name] for name in THUMBPRINT_MEMBERS[data["kty"]]}


def private_jwk(key: PrivateKey) -> dict[str, str]:
    """The private JWK of a key (for storing it with the tokens it is bound to)."""
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return dict(algorithm.to_jwk(key, as_dict=True))


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint (SHA-256) of a JWK: the required members, sorted, no whitespace."""
    members = THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or any(not isinstance(jwk.get(name), str) for name in members):
        raise ValueError("not an RSA or EC JWK")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return sha256_b64url(canonical.encode("utf-8"))


def infer_algorithm(key: PrivateKey | PublicKey, alg: str | None = None, *, setting: str = "alg") -> str:
    """The JWS ``alg`` for ``key``: the configured one when it fits the key, else the key's natural one."""
    is_rsa = isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey))
    if not is_rsa and not (isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey))
                           and isinstance(key.curve, ec.SECP256R1)):
        raise ConfigurationError(setting, "the key must be an RSA key or an EC key on curve P-256")
    if is_rsa and key.key_size < 2048:
        raise ConfigurationError(setting, "RSA keys must have at least 2048 bits")
    if alg is None or not str(alg).strip():
        return "RS256" if is_rsa else "ES256"
    alg = str(alg).strip().upper()
    if alg not in ALGORITHMS:
        raise ConfigurationError(setting, f"expected one of {', '.join(ALGORITHMS)}", alg)
    if is_rsa != (alg in ("RS256", "PS256")):
        raise ConfigurationError(setting, f"{alg} does not fit a {'RSA' if is_rsa else 'P-256'} key", alg)
    return alg


def load_private_key(path: Any, *, setting: str) -> tuple[PrivateKey, str | None]:
    """``(private key, kid)`` from a PEM or JWK file; a bad file is a ``ConfigurationError`` naming ``setting``.

    The ``kid`` is the JWK's own, when it has one; ``None`` for PEM keys.
    """
    text_path = str(path or "").strip()
    try:
        with open(text_path, "rb") as f:
            data = f.read(1024 * 1024)
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read the key file ({exc.strerror or type(exc).__name__})",
                                 text_path) from None
    if data.lstrip().startswith(b"{"):
        return _from_jwk_file(data, setting, text_path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        problem = "the key is encrypted; give an unencrypted key" if "encrypted" in str(exc).lower() \
            else "expected an unencrypted PEM private key or a private JWK"
        raise ConfigurationError(setting, problem, text_path) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConfigurationError(setting, "the key must be an RSA or EC private key", text_path)
    return key, None


def _from_jwk_file(data: bytes, setting: str, path: str) -> tuple[PrivateKey, str | None]:
    try:
        item = json.loads(data)
    except ValueError:
        raise ConfigurationError(setting, "the JWK file is not JSON", path) from None
    if isinstance(item, dict) and isinstance(item.get("keys"), list):
        private = [k for k in item["keys"] if isinstance(k, dict) and "d" in k]
        if len(private) != 1:
            raise ConfigurationError(setting, "a JWK Set must hold exactly one private key", path)
        item = private[0]
    if not isinstance(item, dict) or "d" not in item:
        raise ConfigurationError(setting, "expected a private JWK (with the d member)", path)
    try:
        key = jwt.PyJWK(item).key
    except (jwt.PyJWTError, ValueError, KeyError, TypeError):
        raise ConfigurationError(setting, "the JWK is not a usable RSA or EC private key", path) from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConfigurationError(setting, "the JWK must be an RSA or EC private key", path)
    kid = item.get("kid")
    return key, kid if isinstance(kid, str) and kid else None
