"""Provider metadata (OpenID Connect Discovery 1.0 §3-4, RFC 8414 §2-3) and signing keys (RFC 7517 §4-5).

Fetched lazily on first need, cached, and fetched again after a failure, so an application starts
while its provider is down and recovers when it comes back. The JWKS is fetched again (at most
once per ``jwks_refetch_interval``) when a token names a ``kid`` we do not know: providers rotate keys.

Everything in the document is typed before use: the members we read are checked when the document
arrives (a wrong one makes the document unusable), and every endpoint URL is checked where it is
read, by :meth:`Discovery.endpoint`, against the rule of :mod:`pyramid_tokens.urls` (https unless
loopback): a document cannot send a secret, a code or a token somewhere in the clear.

Locking: the document and the key set each have their own lock, and no I/O for one happens under
the other's lock (the JWKS URL is read first, then the key set is fetched under its own lock).
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Literal, Mapping, overload

import jwt

from .clock import Clock, system_clock
from .errors import InvalidResponse, ProviderUnavailable, TokenError
from .transport import Transport
from .urls import url_problem

if TYPE_CHECKING:
    from .options import ClientCredentials

log = logging.getLogger(__name__)

WELL_KNOWN = "/.well-known/openid-configuration"
#: the members without which no login or token call can work (OIDC Discovery §3)
REQUIRED = ("authorization_endpoint", "token_endpoint", "jwks_uri")
#: the most keys we keep from one JWKS
MAX_KEYS = 100


def _is_url_member(name: str) -> bool:
    return name.endswith("_endpoint") or name.endswith("_uri")


def check_document(doc: Mapping[str, Any], authority: str) -> None:
    """Raise :class:`InvalidResponse` naming the first member of ``doc`` whose type is wrong."""
    issuer = doc.get("issuer")
    if not isinstance(issuer, str) or issuer.rstrip("/") != authority:
        # OIDC Discovery §4.3: the issuer must be exactly the one we asked about.
        raise InvalidResponse(f"discovery: issuer {str(issuer)[:100]!r} does not match the authority {authority!r}")
    for name in REQUIRED:
        if name not in doc:
            raise InvalidResponse(f"discovery: {name} is missing")
    for name, value in doc.items():
        if value is None:
            continue
        if _is_url_member(name) and not isinstance(value, str):
            raise InvalidResponse(f"discovery: {name} must be a string")
        # plural names list values (response_types_supported, ..._alg_values_supported), the others are flags
        if name.endswith("s_supported") and (
                not isinstance(value, list) or not all(isinstance(item, str) for item in value)):
            raise InvalidResponse(f"discovery: {name} must be a list of strings")
        if name.endswith("_supported") and not name.endswith("s_supported") and not isinstance(value, bool):
            raise InvalidResponse(f"discovery: {name} must be true or false")
    aliases = doc.get("mtls_endpoint_aliases")  # RFC 8705 §5
    if aliases is not None and (not isinstance(aliases, dict) or not all(
            isinstance(value, str) for value in aliases.values())):
        raise InvalidResponse("discovery: mtls_endpoint_aliases must be an object of URLs")


def parse_jwks(data: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWK Set by ``kid`` (RFC 7517 §5); keys we cannot use are skipped (§5)."""
    items = data.get("keys")
    if not isinstance(items, list):
        raise InvalidResponse("JWKS: keys must be a list")
    keys: dict[str, jwt.PyJWK] = {}
    for index, item in enumerate(items[:MAX_KEYS]):
        if not isinstance(item, dict):
            raise InvalidResponse(f"JWKS: keys[{index}] must be an object")
        for member in ("kid", "use", "alg", "kty"):
            if item.get(member) is not None and not isinstance(item[member], str):
                raise InvalidResponse(f"JWKS: keys[{index}].{member} must be a string")
        if item.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(item)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, AttributeError):
            continue  # a key type (or a key) we cannot use is not a reason to fail the others
        keys[item.get("kid") or f"#{index}"] = key
    return keys


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
        self._doc_lock = threading.Lock()
        self._jwks_lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._failed: tuple[float, TokenError] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._jwks_fetched_at: float | None = None
        #: client ids whose authentication method was checked against the document
        self._auth_checked: set[str] = set()

    @classmethod
    def from_document(cls, authority: str, document: Mapping[str, Any], *, jwks: Mapping[str, Any] | None = None,
                      transport: Transport | None = None, clock: Clock = system_clock,
                      **kwargs: Any) -> "Discovery":
        """A discovery whose document (and key set, when given) is already known, checked as if fetched."""
        discovery = cls(authority, transport or Transport(), clock=clock, **kwargs)
        doc = dict(document)
        check_document(doc, discovery.authority)
        discovery._metadata, discovery._fetched_at = doc, clock()
        if jwks is not None:
            discovery._keys, discovery._jwks_fetched_at = parse_jwks(jwks), clock()
        return discovery

    # -- metadata -------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The discovery document; raises :class:`ProviderUnavailable` while it cannot be fetched."""
        doc = self._metadata
        if doc is not None and self.clock() - self._fetched_at < self.ttl:
            return doc
        with self._doc_lock:
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
            log.info("discovered %s", self.authority)
            return doc

    def _fetch(self) -> dict[str, Any]:
        doc = self.transport.get_json(self.authority + WELL_KNOWN, what="discovery")
        check_document(doc, self.authority)
        return doc

    @property
    def issuer(self) -> str:
        return self.metadata()["issuer"]

    @overload
    def endpoint(self, name: str, *, required: Literal[True], mtls: bool = False) -> str: ...
    @overload
    def endpoint(self, name: str, *, required: bool = False, mtls: bool = False) -> str | None: ...

    def endpoint(self, name: str, *, required: bool = False, mtls: bool = False) -> str | None:
        """An endpoint URL (``token_endpoint``, ``jwks_uri``, ``revocation_endpoint``...), checked; ``None`` if absent.

        Every URL the document hands out is read here. One that is not an absolute http(s) URL, holds
        whitespace or control characters, or is plain http to a host other than loopback is an
        :class:`InvalidResponse` naming the member. ``mtls``: prefer the RFC 8705 §5 alias.
        """
        doc = self.metadata()
        member, value = name, doc.get(name)
        aliases = doc.get("mtls_endpoint_aliases")
        if mtls and isinstance(aliases, dict) and aliases.get(name):
            member, value = f"mtls_endpoint_aliases.{name}", aliases[name]
        if value is None or value == "":
            if required:
                raise InvalidResponse(f"discovery: {member} is missing")
            return None
        if not isinstance(value, str):
            raise InvalidResponse(f"discovery: {member} must be a string")
        problem = url_problem(value)
        if problem is not None:
            raise InvalidResponse(f"discovery: {member} {problem}")
        return value

    def check_client_auth(self, credentials: "ClientCredentials") -> None:
        """At a client's first call: warn (once) when the document does not list its authentication method or
        assertion alg (RFC 8414 §2 ``token_endpoint_auth_*_supported``). Not an error: documents are often
        incomplete, and the provider's answer is what counts."""
        if credentials.client_id in self._auth_checked:
            return
        doc = self.metadata()
        self._auth_checked.add(credentials.client_id)
        key = credentials.assertion_key
        methods = doc.get("token_endpoint_auth_methods_supported")
        algs = doc.get("token_endpoint_auth_signing_alg_values_supported")
        unlisted = [what for what, value, listed in (("method " + credentials.auth_method, credentials.auth_method,
                                                      methods),
                                                     ("alg " + (key.alg if key else ""), key and key.alg, algs))
                    if value and isinstance(listed, list) and value not in listed]
        if unlisted:  # repr: the lists come from the provider, so no control characters reach the log
            log.warning("client %s: %s not advertised by %s (token_endpoint_auth_methods_supported: %r; "
                        "token_endpoint_auth_signing_alg_values_supported: %r); trying anyway",
                        credentials.client_id, " and ".join(unlisted), self.authority,
                        (methods or [])[:20], (algs or [])[:20])

    # -- keys -------------------------------------------------------------------------------------
    def signing_key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The public key for a JWS header; refetches the JWKS once when ``kid`` is unknown."""
        if kid is not None and not isinstance(kid, str):
            raise TokenError("the token's kid is not a string", error="invalid_token")
        key = self._find(kid, alg)
        if key is not None:
            return key
        uri = self.endpoint("jwks_uri", required=True)  # may fetch the document: before, not under, the JWKS lock
        with self._jwks_lock:
            key = self._find(kid, alg)
            recently = self._jwks_fetched_at is not None and \
                self.clock() - self._jwks_fetched_at < self.jwks_refetch_interval
            if key is None and not (recently and self._keys):
                self._load_jwks(uri)
                key = self._find(kid, alg)
        if key is None:
            raise TokenError(f"no signing key with kid {str(kid)[:64]!r} for {alg} at the provider",
                             error="invalid_token")
        return key

    def _find(self, kid: str | None, alg: str) -> jwt.PyJWK | None:
        keys = self._keys  # one read: the JWKS lock replaces the whole dict, never mutates it
        if kid is not None:
            return keys.get(kid)
        candidates = [k for k in keys.values() if k.algorithm_name == alg or not k.algorithm_name]
        return candidates[0] if len(candidates) == 1 else None

    def _load_jwks(self, uri: str) -> None:
        self._jwks_fetched_at = self.clock()
        keys = parse_jwks(self.transport.get_json(uri, what="JWKS"))
        if not keys:
            raise ProviderUnavailable("JWKS: no usable signing keys")
        self._keys = keys
        log.info("loaded %d signing key(s) from %s", len(keys), uri)
