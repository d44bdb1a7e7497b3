"""DPoP, Demonstrating Proof of Possession (RFC 9449), client side: keys, proofs and server nonces.

Client side (framework-free; used by :mod:`pyramid_tokens.tokenclient` and :mod:`pyramid_tokens.httpclient`):

* :class:`DPoPKey` - the key a token is bound to (ES256 generated, or loaded from a PEM/JWK file)
  and the proofs it signs (§4.2): header ``typ: dpop+jwt``, ``alg``, ``jwk`` (public key); claims
  ``jti``, ``htm``, ``htu`` (the target URI without query and fragment), ``iat``, and ``ath``
  (base64url SHA-256 of the access token) on resource requests, ``nonce`` when the server gave one.
  A key serialises to a private JWK so that it can live WITH the tokens bound to it in a store.
* :class:`DPoPNonces` - the last ``DPoP-Nonce`` (§8, §9) each origin handed out, so every later
  proof to that origin carries it; a ``use_dpop_nonce`` refusal is answered by one retry.

The server side (proof checks for the development provider and the demo API) is
:mod:`pyramid_tokens.devidp.proofs`.

Proofs use wall-clock time for ``iat``: the server checks it against its own clock.
"""
from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping, TypeGuard
from urllib.parse import urlsplit, urlunsplit
from urllib.request import parse_http_list

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from requests.utils import parse_dict_header

from .errors import TokenError
from .jwk import PrivateKey, infer_algorithm, load_private_key, private_jwk, public_jwk, sha256_b64url
from .jwk import thumbprint as jwk_thumbprint

DPOP_TYP = "dpop+jwt"
#: the response header carrying a server nonce (§8.1, §9)
NONCE_HEADER = "DPoP-Nonce"
#: the error a server answers when a proof lacks its (current) nonce (§8, §9)
USE_DPOP_NONCE = "use_dpop_nonce"
INVALID_DPOP_PROOF = "invalid_dpop_proof"
#: JWK members that only a private key has; a proof's ``jwk`` header must have none (§4.3)
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: RFC 9449 §8.1 ``nonce = 1*NQCHAR``; RFC 6749 Appendix A ``NQCHAR = %x21 / %x23-5B / %x5D-7E``
NQCHARS = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
MAX_NONCE = 1024
#: the longest ``WWW-Authenticate`` value we parse
MAX_CHALLENGE = 8192


def valid_nonce(value: Any) -> TypeGuard[str]:
    """True for an RFC 9449 §8.1 nonce: ``1*NQCHAR`` (printable ASCII but ``"`` and ``\\``), at most 1 KiB."""
    return isinstance(value, str) and len(value) <= MAX_NONCE and NQCHARS.fullmatch(value) is not None


def htu(url: str) -> str:
    """The ``htu`` of a request URL (§4.2): no query, no fragment; scheme and host lower case, default port dropped.

    A URL that does not parse (a bad port, a broken IPv6 literal) is a :class:`TokenError`: no proof is made for it.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise TokenError("cannot make a DPoP proof for a malformed URL", error="invalid_request") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: nonces are remembered per origin."""
    parts = urlsplit(htu(url))
    return f"{parts.scheme}://{parts.netloc}"


class DPoPKey:
    """A DPoP key pair: signs proofs; ``thumbprint`` is the ``jkt`` tokens are bound to (§6.1).

    Equal keys have equal thumbprints; the ``repr`` shows the thumbprint only, never the key.
    """

    def __init__(self, private_key: PrivateKey, alg: str | None = None, *, setting: str = "dpop") -> None:
        self._key = private_key
        self.alg = infer_algorithm(private_key, alg, setting=setting)
        self.public_jwk = public_jwk(private_key)
        self.thumbprint = jwk_thumbprint(self.public_jwk)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def generate(cls) -> "DPoPKey":
        """A fresh ES256 (P-256) key."""
        return cls(ec.generate_private_key(ec.SECP256R1()), "ES256")

    @classmethod
    def from_file(cls, path: Any, *, setting: str = "dpop") -> "DPoPKey":
        """A key from a PEM or JWK file; a bad file is a ``ConfigurationError`` naming ``setting``."""
        key, _ = load_private_key(path, setting=setting)
        return cls(key, setting=setting)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> "DPoPKey":
        """The key of a stored private JWK (see :meth:`private_jwk`); parsed once per process."""
        return _key_from_jwk(tuple(sorted((str(k), str(v)) for k, v in jwk.items())))

    def private_jwk(self) -> dict[str, str]:
        """The private JWK (with ``alg``), to be stored with the tokens bound to this key."""
        return {**private_jwk(self._key), "alg": self.alg}

    # -- proofs ---------------------------------------------------------------------------------
    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None,
              now: float | None = None) -> str:
        """A DPoP proof for one HTTP request (§4.2); ``access_token`` adds ``ath`` (§7)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": htu(url),
            "iat": int(time.time() if now is None else now),
        }
        if access_token is not None:
            claims["ath"] = sha256_b64url(access_token)
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"typ": DPOP_TYP, "jwk": self.public_jwk})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DPoPKey) and other.thumbprint == self.thumbprint

    def __hash__(self) -> int:
        return hash(self.thumbprint)

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, jkt={self.thumbprint!r})"


@functools.lru_cache(maxsize=512)
def _key_from_jwk(items: tuple[tuple[str, str], ...]) -> DPoPKey:
    data = dict(items)
    try:
        key = jwt.PyJWK(data).key
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise TokenError(f"the stored DPoP key is not a usable private JWK ({type(exc).__name__})",
                         error="invalid_dpop_key") from None
    return DPoPKey(key, data.get("alg"))


class DPoPNonces:
    """The latest server nonce per origin (§8.2, §9); thread-safe, bounded."""

    def __init__(self, max_origins: int = 256) -> None:
        self._nonces: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.max_origins = max_origins

    def get(self, url: str) -> str | None:
        with self._lock:
            return self._nonces.get(origin(url))

    def remember(self, url: str, headers: Mapping[str, str] | None) -> bool:
        """Keep the ``DPoP-Nonce`` of a response from ``url``; True when it is new for that origin.

        A nonce that is not an RFC 9449 §8.1 ``1*NQCHAR`` string (at most 1 KiB) is ignored: never sent.
        """
        nonce = (headers or {}).get(NONCE_HEADER)
        if not valid_nonce(nonce):
            return False
        key = origin(url)
        with self._lock:
            changed = self._nonces.get(key) != nonce
            self._nonces[key] = nonce
            self._nonces.move_to_end(key)
            while len(self._nonces) > self.max_origins:
                self._nonces.popitem(last=False)
        return changed

    def __repr__(self) -> str:
        return f"DPoPNonces(origins={len(self._nonces)})"


def challenges(www_authenticate: str | None) -> list[tuple[str, dict[str, str | None]]]:
    """The challenges of a ``WWW-Authenticate`` value (RFC 9110 §11.6.1): ``[(scheme lower case, params)]``.

    Hand-written only the grouping: urllib's ``parse_http_list`` splits at the commas outside quoted
    strings and requests' ``parse_dict_header`` reads the ``name=value`` pairs (a quoted value may hold ``,`` and ``=``);
    an item whose first word has no ``=`` starts a new challenge. Longer values than 8 KiB are not read.
    """
    text = www_authenticate or ""
    if not isinstance(text, str) or len(text) > MAX_CHALLENGE:
        return []
    found: list[tuple[str, list[str]]] = []
    for item in parse_http_list(text):
        first, _, rest = item.partition(" ")
        if first and "=" not in first:  # an auth-scheme, then maybe its first parameter (or a token68)
            found.append((first.lower(), []))
            item = rest.strip()
        if item and found:
            found[-1][1].append(item)
    return [(scheme, parse_dict_header(", ".join(params))) for scheme, params in found]


def challenge_error(www_authenticate: str | None, scheme: str = "dpop") -> str | None:
    """The ``error`` of the ``WWW-Authenticate`` challenge of ``scheme`` (RFC 9449 §7.1: ``DPoP``), or ``None``."""
    for name, params in challenges(www_authenticate):
        if name == scheme and isinstance(params.get("error"), str):
            return params["error"]
    return None
