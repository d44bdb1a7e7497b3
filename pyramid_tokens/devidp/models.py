"""The clients and users the development provider knows.

Clients follow RFC 6749 §2 (registration: client id, optional secret, exact redirect URIs, allowed
grant types and scopes); the audience a client may ask for is RFC 8707 §2 (``resources``). Users
carry the OpenID Connect Core 1.0 §5.1 standard claims the provider hands out by scope (§5.4).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT)
#: RFC 8693 token exchange (``exchange.py``): offered only to clients that list it
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access", "api")
#: Scopes that only make sense with a user; never granted to client credentials.
USER_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


def words(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """A tuple from a space separated string or an iterable of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    return tuple(str(item) for item in value)


@dataclass(frozen=True)
class DevClient:
    """A registered client. ``client_secret=None`` makes it a public client (PKCE only)."""

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = GRANT_TYPES
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    access_token_lifetime: int = 300
    id_token_lifetime: int = 300
    #: seconds; ``None`` means refresh tokens never expire
    refresh_token_lifetime: int | None = None
    #: RFC 8707 resource indicators this client may ask for; ``None`` allows any absolute URI
    resources: tuple[str, ...] | None = None
    #: RFC 7523 ``private_key_jwt``: the client's public keys, a JWK Set ``{"keys": [...]}`` or a list of JWKs
    jwks: Mapping[str, Any] | list[Any] | None = field(default=None, hash=False, compare=False, repr=False)
    #: RFC 8705 §2.1 ``tls_client_auth``: the subject DN (RFC 4514, e.g. ``CN=worker``) of its certificate
    tls_client_auth_subject_dn: str | None = None
    #: RFC 7591 ``token_endpoint_auth_method``: when set, the only method accepted from this client
    token_endpoint_auth_method: str | None = None
    #: RFC 9449 §5.2: every token request of this client must carry a DPoP proof
    dpop_bound_access_tokens: bool = False
    #: RFC 8693 §2.1 ``audience`` values this client may exchange tokens for
    audiences: tuple[str, ...] = ()
    #: OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed (``None``: never)
    backchannel_logout_uri: str | None = None
    #: §2.2: every logout token for this client carries ``sid``
    backchannel_logout_session_required: bool = False

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id must not be empty")
        set_ = object.__setattr__
        set_(self, "client_secret", self.client_secret or None)
        for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types", "scopes", "audiences"):
            set_(self, name, words(getattr(self, name)))
        if self.resources is not None:
            set_(self, "resources", words(self.resources))
        unknown = set(self.grant_types) - {*GRANT_TYPES, TOKEN_EXCHANGE_GRANT}
        if unknown:
            raise ValueError(f"client {self.client_id!r}: unsupported grant types {sorted(unknown)}")
        for name in ("access_token_lifetime", "id_token_lifetime", "refresh_token_lifetime"):
            value = getattr(self, name)
            if value is None and name == "refresh_token_lifetime":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"client {self.client_id!r}: {name} must be a positive number of seconds")

    @property
    def confidential(self) -> bool:
        """True when the client has credentials (secret, keys, certificate) and must authenticate (RFC 6749 §2.1)."""
        return self.client_secret is not None or self.jwks is not None or self.tls_client_auth_subject_dn is not None

    def public_keys(self) -> list[dict[str, Any]]:
        """The registered public JWKs (``private_key_jwt``)."""
        keys = self.jwks.get("keys") if isinstance(self.jwks, Mapping) else self.jwks
        return [dict(key) for key in keys or () if isinstance(key, Mapping)]

    def __repr__(self) -> str:  # never show the secret
        kind = "confidential" if self.confidential else "public"
        return f"DevClient({self.client_id!r}, {kind}, grant_types={self.grant_types!r})"


@dataclass(frozen=True)
class DevUser:
    """A user. Any user name may log in; unknown ones are made up by :meth:`for_username`."""

    username: str
    name: str | None = None
    email: str | None = None
    role: str = "user"

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("username must not be empty")
        if self.name is None:
            object.__setattr__(self, "name", self.username.title())
        if self.email is None:
            object.__setattr__(self, "email", f"{self.username}@example.test")

    @classmethod
    def for_username(cls, username: str) -> DevUser:
        """The made-up user for a name nobody registered; ``admin`` gets the admin role."""
        return cls(username, role="admin" if username == "admin" else "user")

    def claims(self, scopes: Iterable[str]) -> dict[str, str]:
        """Profile claims released for ``scopes`` (OIDC Core §5.4): ``profile`` also carries the role."""
        scopes = set(scopes)
        claims: dict[str, str] = {}
        if "profile" in scopes:
            claims.update(name=self.name, preferred_username=self.username, role=self.role)
        if "email" in scopes:
            claims["email"] = self.email
        return claims
