"""Provider metadata (OpenID Connect Discovery 1.0 §4, RFC 8414) and signing keys (RFC 7517).

Fetched lazily on first need, cached, and fetched again after a failure, so an application starts
while its provider is down and recovers when it comes back. The JWKS is fetched again (at most
once per ``jwks_refetch_interval``) when a token names a ``kid`` we do not know: providers rotate keys.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import jwt

from .clock import Clock, system_clock
from .errors import InvalidResponse, ProviderUnavailable, TokenError
from .transport import Transport

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/openid-configuration"


class Discovery:
    """The discovery document and JWKS of one issuer."""

    def __init__(self, authority: str, transport: Transport, *, clock: Clock = system_clock,
                 ttl: float = 24 * 3600, retry_after: float = 2.0, jwks_refetch_interval: float = 10.0) -> None:
        self.authority = authority.rstrip("/")
        self.transport = transport
        self.clock = clock
        self.ttl = ttl
        self.retry_after = retry_after
        self.jwks_refetch_interval = jwks_refetch_interval
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._failed: tuple[float, TokenError] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks_fetched_at: float | None = None

    # -- metadata -------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The discovery document; raises :class:`ProviderUnavailable` while it cannot be fetched."""
        doc = self._metadata
        if doc is not None and self.clock() - self._fetched_at < self.ttl:
            return doc
        with self._lock:
            now = self.clock()
            if self._metadata is not None and now - self._fetched_at < self.ttl:
                return self._metadata
            if self._failed and now - self._failed[0] < self.retry_after and self._metadata is None:
                raise self._failed[1]
            try:
                doc = self._fetch()
            except TokenError as exc:
                if not isinstance(exc, ProviderUnavailable):  # a broken document leaves the provider as unusable
                    exc = ProviderUnavailable(exc.error_description, status_code=exc.status_code)
                self._failed = (now, exc)
                if self._metadata is not None:  # keep serving the old document while the new one fails
                    log.warning("discovery refresh for %s failed (%s); keeping the cached document",
                                self.authority, exc)
                    self._fetched_at = now - self.ttl + self.retry_after
                    return self._metadata
                log.warning("discovery for %s failed: %s", self.authority, exc)
                raise exc from None
            self._metadata, self._fetched_at, self._failed = doc, now, None
            log.info("discovered %s (token endpoint %s)", self.authority, doc.get("token_endpoint"))
            return doc

    def _fetch(self) -> dict[str, Any]:
        doc = self.transport.get_json(self.authority + WELL_KNOWN, what="discovery")
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.authority:
            # OIDC Discovery §4.3: the issuer must be exactly the one we asked about.
            raise InvalidResponse(f"discovery: issuer {issuer!r} does not match the authority {self.authority!r}")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(name), str):
                raise InvalidResponse(f"discovery: {name} is missing")
        return doc

    @property
    def issuer(self) -> str:
        return self.metadata()["issuer"]

    def endpoint(self, name: str) -> str | None:
        """An endpoint URL from the document (``token_endpoint``, ``revocation_endpoint``...) or ``None``."""
        value = self.metadata().get(name)
        return value if isinstance(value, str) and value else None

    # -- keys -------------------------------------------------------------------------------------
    def signing_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The public key for a JWS header; refetches the JWKS once when ``kid`` is unknown."""
        key = self._find(kid, alg)
        if key is not None:
            return key
        with self._lock:
            key = self._find(kid, alg)
            recently = self._jwks_fetched_at is not None and \
                self.clock() - self._jwks_fetched_at < self.jwks_refetch_interval
            if key is None and not (recently and self._keys):
                self._load_jwks()
                key = self._find(kid, alg)
        if key is None:
            raise TokenError(f"no signing key with kid {kid!r} for {alg} at the provider", error="invalid_token")
        return key

    def _find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        candidates = [k for k in self._keys.values() if k.algorithm_name == alg or not k.algorithm_name]
        return candidates[0] if len(candidates) == 1 else None

    def _load_jwks(self) -> None:
        uri = self.metadata()["jwks_uri"]
        self._jwks_fetched_at = self.clock()
        data = self.transport.get_json(uri, what="JWKS")
        keys: dict[str, jwt.PyJWK] = {}
        for index, item in enumerate(data.get("keys") or []):
            if not isinstance(item, dict) or item.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(item)
            except jwt.PyJWTError:
                continue  # a key type we cannot use is not a reason to fail the others
            keys[item.get("kid") or f"#{index}"] = key
        if not keys:
            raise ProviderUnavailable("JWKS: no usable signing keys")
        self._keys = keys
        log.info("loaded %d signing key(s) from %s", len(keys), uri)
