"""Settings parsed once, in one place, into typed frozen option objects.

Everything else in the package receives these objects and never reads raw settings. The keys are
the public contract of ``SPEC.md`` (``oidc.*`` and ``tokens.*``); a missing or malformed value raises
:class:`~pyramid_tokens.errors.ConfigurationError` naming the key.
"""
from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from cryptography import x509

from .assertion import ClientAssertionKey
from .dpop import DPoPKey
from .errors import ConfigurationError
from .urls import url_problem

TRUE = {"true", "yes", "on", "1", "t", "y"}
FALSE = {"false", "no", "off", "0", "f", "n", ""}
CREDENTIAL_STYLES = ("basic", "post")
#: ``PREFIX.client_assertion_audience``: the ``aud`` of a client assertion
ASSERTION_AUDIENCES = ("issuer", "token_endpoint")
#: ``oidc.par``: Pushed Authorization Requests (RFC 9126)
PAR_MODES = ("auto", "require", "off")
#: ``oidc.profile``
PROFILES = ("fapi2",)
#: FAPI 2.0 Security Profile §5.4: the only signing algorithms a client may use
FAPI2_ALGORITHMS = ("PS256", "ES256")


# -- coercion (shared by the .ini parser and the code-first directives) ------------------------------
def as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ConfigurationError(key, "expected true or false", value)


def as_seconds(key: str, value: Any, *, allow_zero: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(key, "expected a number of seconds", value) from None
    if number < 0 or (number == 0 and not allow_zero) or number != number or number == float("inf"):
        raise ConfigurationError(key, "expected a positive number of seconds", value)
    return number


def as_seconds_list(key: str, value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    items = value.split() if isinstance(value, str) else list(value)
    return tuple(as_seconds(key, item) for item in items)


def as_url(key: str, value: Any, *, relative_ok: bool = False, tls: bool = False) -> str:
    """An absolute http(s) URL; with ``tls``, plain http only for loopback hosts (development)."""
    text = str(value or "").strip()
    if relative_ok and text.startswith("/") and not text.startswith("//") and url_problem("http://h" + text, tls=False) is None:
        return text
    problem = url_problem(text, tls=tls)
    if problem is not None:
        raise ConfigurationError(key, problem, value)
    return text


def as_path(key: str, value: Any) -> str:
    text = str(value or "").strip()
    if not text.startswith("/") or text.startswith("//"):
        raise ConfigurationError(key, "expected a path starting with a single /", value)
    return text


def as_scope(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(value.split()) if isinstance(value, str) else " ".join(value)
    return text or None


def as_choice(key: str, value: Any, choices: Iterable[str]) -> str:
    text = str(value).strip().lower()
    choices = tuple(choices)
    if text not in choices:
        raise ConfigurationError(key, f"expected one of {', '.join(choices)}", value)
    return text


# -- option objects -----------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class ClientCredentials:
    """How one client authenticates at the provider and binds its tokens.

    RFC 6749 §2.3.1 (a secret, ``basic`` or ``post``), RFC 7523 ``private_key_jwt`` (an
    ``assertion_key`` replaces the secret), RFC 8705 mutual TLS (a client certificate; without a
    secret or assertion key the client authenticates by ``tls_client_auth``), RFC 9449 DPoP
    (``dpop``: proofs with a fresh key per login / per client, or with the configured ``dpop_key``).
    """

    client_id: str
    client_secret: str | None = None
    style: str = "basic"
    assertion_key: ClientAssertionKey | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    dpop: bool = False
    dpop_key: DPoPKey | None = None
    #: the ``aud`` of client assertions: ``issuer`` or ``token_endpoint``
    assertion_audience: str = "issuer"
    #: the TLS client certificate is self-signed: RFC 8705 §2.2 ``self_signed_tls_client_auth``
    tls_self_signed: bool = False

    @property
    def auth_method(self) -> str:
        """The RFC 8414 name of the authentication method used at the token endpoint."""
        if self.assertion_key is not None:
            return "private_key_jwt"
        if self.client_secret:
            return "client_secret_basic" if self.style == "basic" else "client_secret_post"
        if self.tls_client_cert:
            return "self_signed_tls_client_auth" if self.tls_self_signed else "tls_client_auth"
        return "none"

    @property
    def cert(self) -> str | tuple[str, str] | None:
        """The client certificate as ``requests`` takes it (``cert=``), or ``None``."""
        if not self.tls_client_cert:
            return None
        return (self.tls_client_cert, self.tls_client_key) if self.tls_client_key else self.tls_client_cert

    def __repr__(self) -> str:
        secret = "'<redacted>'" if self.client_secret else None
        extra = f", auth_method={self.auth_method!r}" if self.assertion_key or self.tls_client_cert else ""
        extra += f", dpop={self.dpop_key or self.dpop!r}" if self.dpop else ""
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret={secret}, style={self.style!r}{extra})"


#: the per-client settings of client authentication and sender-constrained tokens (SPEC table)
CLIENT_AUTH_SETTINGS = ("client_assertion_key", "client_assertion_alg", "client_assertion_audience",
                        "client_assertion_kid", "client_assertion_cert", "tls_client_cert", "tls_client_key", "dpop")


def _readable(key: str, value: Any) -> str:
    path = str(value).strip()
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigurationError(key, f"cannot read the file ({exc.strerror or type(exc).__name__})", path) from None
    return path


def _self_signed(key: str, path: str) -> bool:
    """True when the PEM certificate at ``path`` is its own issuer (RFC 8705 §2.2: the provider pins it)."""
    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read(1024 * 1024))
    except (OSError, ValueError):
        raise ConfigurationError(key, "expected a PEM certificate", path) from None
    return cert.issuer == cert.subject


def client_auth_options(prefix: str, *, client_assertion_key: Any = None, client_assertion_alg: Any = None,
                        client_assertion_audience: Any = None, client_assertion_kid: Any = None,
                        client_assertion_cert: Any = None, tls_client_cert: Any = None, tls_client_key: Any = None,
                        dpop: Any = None) -> dict[str, Any]:
    """:class:`ClientCredentials` keywords from ``PREFIX.client_assertion_key`` ... ``PREFIX.dpop``.

    Key files are read here, once, at start-up; a bad file is a ``ConfigurationError`` naming the key.
    Code-first callers may pass a :class:`ClientAssertionKey` or a :class:`DPoPKey` instead of a path.
    """
    values: dict[str, Any] = {}
    if isinstance(client_assertion_key, ClientAssertionKey):
        values["assertion_key"] = client_assertion_key
    elif client_assertion_key:
        values["assertion_key"] = ClientAssertionKey.from_file(client_assertion_key, client_assertion_alg,
                                                               prefix=prefix, kid=client_assertion_kid,
                                                               cert=client_assertion_cert)
    for name, value in (("alg", client_assertion_alg), ("audience", client_assertion_audience),
                        ("kid", client_assertion_kid), ("cert", client_assertion_cert)):
        if value and not client_assertion_key:
            raise ConfigurationError(f"{prefix}client_assertion_{name}", f"needs {prefix}client_assertion_key")
    if client_assertion_audience:
        values["assertion_audience"] = as_choice(f"{prefix}client_assertion_audience", client_assertion_audience,
                                                 ASSERTION_AUDIENCES)
    if tls_client_key and not tls_client_cert:
        raise ConfigurationError(f"{prefix}tls_client_key", f"needs {prefix}tls_client_cert")
    if tls_client_cert:
        values["tls_client_cert"] = _readable(f"{prefix}tls_client_cert", tls_client_cert)
        values["tls_self_signed"] = _self_signed(f"{prefix}tls_client_cert", values["tls_client_cert"])
    if tls_client_key:
        values["tls_client_key"] = _readable(f"{prefix}tls_client_key", tls_client_key)
    if isinstance(dpop, DPoPKey):
        values.update(dpop=True, dpop_key=dpop)
    elif dpop is not None and (isinstance(dpop, bool) or str(dpop).strip().lower() in TRUE | FALSE):
        values["dpop"] = as_bool(f"{prefix}dpop", dpop)
    elif dpop is not None:
        values.update(dpop=True, dpop_key=DPoPKey.from_file(dpop, setting=f"{prefix}dpop"))
    return values


@dataclass(frozen=True)
class OidcOptions:
    """The OpenID Connect login client (``oidc.*``)."""

    authority: str
    credentials: ClientCredentials
    scope: str = "openid profile"
    userinfo: bool = True
    name_claim: str = "name"
    role_claim: str = "role"
    login_path: str = "/login"
    callback_path: str = "/callback"
    logout_path: str = "/logout"
    post_logout_redirect: str = "/"
    #: OpenID Connect Back-Channel Logout 1.0: where the provider POSTs logout tokens
    backchannel_logout_path: str = "/backchannel-logout"
    #: Pushed Authorization Requests (RFC 9126): ``auto``, ``require`` or ``off``
    par: str = "auto"
    #: ``fapi2``: the FAPI 2.0 Security Profile's client rules were checked at start-up (and PAR and
    #: RFC 9207 ``iss`` are then required at login)
    profile: str | None = None


@dataclass(frozen=True)
class ClientCredentialsOptions:
    """A client-credentials client: the OIDC client's own identity (``name=None``) or ``tokens.clients.NAME``."""

    name: str | None
    credentials: ClientCredentials
    token_endpoint: str | None = None
    authority: str | None = None
    scope: str | None = None
    resource: str | None = None

    @classmethod
    def create(cls, name: str | None, *, prefix: str = "", client_id: Any = None, client_secret: Any = None,
               client_credential_style: Any = "basic", token_endpoint: Any = None, authority: Any = None,
               scope: Any = None, resource: Any = None, **auth: Any) -> "ClientCredentialsOptions":
        """Validate one client's values; ``prefix`` names the setting keys in errors.

        ``auth`` takes the :data:`CLIENT_AUTH_SETTINGS` (private_key_jwt, mutual TLS, DPoP).
        """
        if not client_id:
            raise ConfigurationError(f"{prefix}client_id", "is required")
        if not token_endpoint and not authority:
            raise ConfigurationError(f"{prefix}token_endpoint", "a token_endpoint or an authority is required")
        return cls(
            name=name,
            credentials=ClientCredentials(
                client_id=str(client_id),
                client_secret=str(client_secret) if client_secret else None,
                style=as_choice(f"{prefix}client_credential_style", client_credential_style, CREDENTIAL_STYLES),
                **client_auth_options(prefix, **auth),
            ),
            token_endpoint=as_url(f"{prefix}token_endpoint", token_endpoint, tls=True) if token_endpoint else None,
            authority=as_url(f"{prefix}authority", authority, tls=True).rstrip("/") if authority else None,
            scope=as_scope(scope),
            resource=as_url(f"{prefix}resource", resource) if resource else None,
        )


@dataclass(frozen=True)
class HttpClientOptions:
    """A named HTTP client (``tokens.http.NAME``)."""

    name: str
    base_url: str
    token: str = "user"  # "user", "client", "client:NAME", "exchange:NAME" or "none"
    retry: tuple[float, ...] = ()
    timeout: float = 10.0
    replay_unsafe_methods: bool = False

    @property
    def client_name(self) -> str | None:
        """The client-credentials client behind a ``client``/``client:NAME`` token."""
        return self.token.partition(":")[2] or None

    @classmethod
    def create(cls, name: str, *, prefix: str = "", base_url: Any = None, token: Any = "user", retry: Any = None,
               timeout: Any = 10, replay_unsafe_methods: Any = False) -> "HttpClientOptions":
        if not base_url:
            raise ConfigurationError(f"{prefix}base_url", "is required")
        token = str(token or "user").strip()
        if token not in ("user", "client", "none") and not (token.startswith(("client:", "exchange:")) and
                                                            token.partition(":")[2]):
            raise ConfigurationError(f"{prefix}token", "expected user, client, client:NAME, exchange:NAME or none",
                                     token)
        return cls(
            name=name,
            base_url=as_url(f"{prefix}base_url", base_url),
            token=token,
            retry=as_seconds_list(f"{prefix}retry", retry),
            timeout=as_seconds(f"{prefix}timeout", timeout, allow_zero=False),
            replay_unsafe_methods=as_bool(f"{prefix}replay_unsafe_methods", replay_unsafe_methods),
        )


#: RFC 8693 §3 token type identifiers
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class ExchangeOptions:
    """A token exchange (``tokens.exchange.NAME``, RFC 8693 §2.1): a downstream target for on-behalf-of calls."""

    name: str
    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    requested_token_type: str = ACCESS_TOKEN_TYPE
    #: ``user`` (the login's access token) or ``client:NAME`` (that client's own token; ``client``: the OIDC client's)
    subject: str = "user"
    #: ``None``, or ``client`` / ``client:NAME``: whose token goes as ``actor_token`` (delegation)
    actor: str | None = None
    #: the exchanging client's own credentials; ``None``: the OIDC client's (a client subject: that client's)
    credentials: ClientCredentials | None = None

    @property
    def subject_client(self) -> str | None:
        return self.subject.partition(":")[2] or None

    @property
    def actor_client(self) -> str | None:
        return (self.actor or "").partition(":")[2] or None

    @classmethod
    def create(cls, name: str, *, prefix: str = "", audience: Any = None, resource: Any = None, scope: Any = None,
               requested_token_type: Any = None, subject: Any = "user", actor: Any = None, client_id: Any = None,
               client_secret: Any = None, client_credential_style: Any = "basic", **auth: Any) -> "ExchangeOptions":
        if not audience and not resource:
            raise ConfigurationError(f"{prefix}audience", "an audience or a resource is required (the target)")
        subject = str(subject or "user").strip()
        if subject not in ("user", "client") and not (subject.startswith("client:") and subject[7:]):
            raise ConfigurationError(f"{prefix}subject", "expected user, client or client:NAME", subject)
        actor = str(actor).strip() if actor else None
        if actor is not None and actor != "client" and not (actor.startswith("client:") and actor[7:]):
            raise ConfigurationError(f"{prefix}actor", "expected client or client:NAME", actor)
        kind = str(requested_token_type or ACCESS_TOKEN_TYPE).strip()
        if not kind.startswith("urn:") or not kind.isprintable() or len(kind) > 200:
            raise ConfigurationError(f"{prefix}requested_token_type", "expected an RFC 8693 §3 token type URN", kind)
        credentials = None
        if client_id:
            credentials = ClientCredentials(
                client_id=str(client_id), client_secret=str(client_secret) if client_secret else None,
                style=as_choice(f"{prefix}client_credential_style", client_credential_style, CREDENTIAL_STYLES),
                **client_auth_options(prefix, **auth))
        elif client_secret or any(value is not None for value in auth.values()):
            raise ConfigurationError(f"{prefix}client_id", "is required with the exchange's own client credentials")
        return cls(
            name=name,
            audience=str(audience).strip() if audience else None,
            resource=as_url(f"{prefix}resource", resource) if resource else None,
            scope=as_scope(scope),
            requested_token_type=kind,
            subject=subject,
            actor=actor,
            credentials=credentials,
        )


#: the Beaker session types whose data lives on the server (the cookie carries only the session id)
COOKIE_ONLY = "cookie"


@dataclass(frozen=True)
class SessionOptions:
    """The part of Beaker's ``session.*`` the package reads (Beaker itself parses the rest)."""

    #: any ``session.*`` key was given (then the package includes pyramid_beaker)
    configured: bool = False
    type: str = "memory"
    #: the session cookie's name
    key: str = "beaker.session.id"
    timeout: float | None = None
    url: str | None = None
    data_dir: str | None = None
    lock_dir: str | None = None
    encrypted: bool = False
    json: bool = False
    httponly: bool = False
    samesite: str | None = None
    secure: bool = False

    @property
    def in_cookie(self) -> bool:
        """The whole session (and tokens kept in it) travels in the browser cookie."""
        return self.type == COOKIE_ONLY

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "SessionOptions":
        get = settings.get
        kind = str(get("session.type") or "memory")
        json = str(get("session.data_serializer", "pickle")).lower() == "json"
        if kind == "redis_json" and not json:
            raise ConfigurationError("session.data_serializer",
                                     "session.type = redis_json needs session.data_serializer = json "
                                     "(it never unpickles)", get("session.data_serializer", "pickle"))
        return cls(
            configured=any(key.startswith("session.") for key in settings),
            type=kind,
            key=str(get("session.key") or "beaker.session.id"),
            timeout=as_seconds("session.timeout", get("session.timeout"), allow_zero=False)
            if get("session.timeout") else None,
            url=str(get("session.url")) if get("session.url") else None,
            data_dir=str(get("session.data_dir")) if get("session.data_dir") else None,
            lock_dir=str(get("session.lock_dir")) if get("session.lock_dir") else None,
            encrypted=bool(get("session.encrypt_key")),
            json=json,
            httponly=str(get("session.httponly", "false")).lower() in TRUE,
            samesite=str(get("session.samesite")) if get("session.samesite") else None,
            secure=str(get("session.secure", "false")).lower() in TRUE,
        )


def read_ini(path: str, section: str = "app:main") -> dict[str, str]:
    """The settings of one .ini section, with pserve's ``%(here)s`` and ``%(__file__)s`` interpolation."""
    path = os.path.abspath(path)
    parser = configparser.ConfigParser(
        defaults={"here": os.path.dirname(path), "__file__": path},
        interpolation=configparser.BasicInterpolation(),
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    if not parser.read(path, encoding="utf-8"):
        raise ConfigurationError(path, "cannot read the file")
    if not parser.has_section(section):
        raise ConfigurationError(path, f"has no [{section}] section")
    return {k: v for k, v in parser.items(section) if k not in ("here", "__file__")}


@dataclass(frozen=True)
class Options:
    """Everything the package needs, parsed from settings."""

    oidc: OidcOptions | None = None
    refresh_before_expiration: float = 60.0
    revoke_on_logout: bool = True
    cache_lifetime_buffer: float = 60.0
    #: the OIDC client's own identity is under ``None``
    clients: Mapping[str | None, ClientCredentialsOptions] = field(default_factory=dict)
    http: Mapping[str, HttpClientOptions] = field(default_factory=dict)
    #: token exchanges (RFC 8693) by name
    exchange: Mapping[str, ExchangeOptions] = field(default_factory=dict)
    store: str = "session"
    cache: str = "memory"
    #: timeout of every call to the provider, seconds
    timeout: float = 10.0
    session: SessionOptions = field(default_factory=SessionOptions)

    def client(self, name: str | None) -> ClientCredentialsOptions:
        try:
            return self.clients[name]
        except KeyError:
            if name is None:
                raise ConfigurationError("oidc.client_id", "the OIDC client is not configured") from None
            raise ConfigurationError(f"tokens.clients.{name}", "no such client-credentials client") from None


def _group(settings: Mapping[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """``{"NAME": {"key": value}}`` from keys ``prefix + NAME.key``."""
    groups: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        if key.startswith(prefix):
            name, dot, sub = key[len(prefix):].partition(".")
            if not dot or not name or not sub:
                raise ConfigurationError(key, f"expected {prefix}NAME.setting")
            groups.setdefault(name, {})[sub] = value
    return groups


def _store_url(key: str, value: Any, plain: str) -> str:
    text = str(value or plain).strip()
    if text != plain and not text.startswith(("redis://", "rediss://", "unix://", "redis+", "rediss+")):
        raise ConfigurationError(key, f"expected {plain} or a redis:// URL", value)
    return text


def parse_settings(settings: Mapping[str, Any]) -> Options:
    """Build :class:`Options` from ``oidc.*`` and ``tokens.*`` settings (other keys are ignored)."""
    get = settings.get
    oidc: OidcOptions | None = None
    clients: dict[str | None, ClientCredentialsOptions] = {}
    style = get("tokens.client_credential_style", "basic")
    if get("oidc.authority"):
        authority = as_url("oidc.authority", get("oidc.authority"), tls=True).rstrip("/")
        if not get("oidc.client_id"):
            raise ConfigurationError("oidc.client_id", "is required with oidc.authority")
        credentials = ClientCredentials(
            client_id=str(get("oidc.client_id")),
            client_secret=get("oidc.client_secret") or None,
            style=as_choice("tokens.client_credential_style", style, CREDENTIAL_STYLES),
            **client_auth_options("oidc.", **{name: get(f"oidc.{name}") for name in CLIENT_AUTH_SETTINGS}),
        )
        oidc = OidcOptions(
            authority=authority,
            credentials=credentials,
            scope=as_scope(get("oidc.scope", "openid profile")) or "openid",
            userinfo=as_bool("oidc.userinfo", get("oidc.userinfo", True)),
            name_claim=str(get("oidc.name_claim", "name")),
            role_claim=str(get("oidc.role_claim", "role")),
            login_path=as_path("oidc.login_path", get("oidc.login_path", "/login")),
            callback_path=as_path("oidc.callback_path", get("oidc.callback_path", "/callback")),
            logout_path=as_path("oidc.logout_path", get("oidc.logout_path", "/logout")),
            backchannel_logout_path=as_path("oidc.backchannel_logout_path",
                                            get("oidc.backchannel_logout_path", "/backchannel-logout")),
            post_logout_redirect=as_url("oidc.post_logout_redirect", get("oidc.post_logout_redirect", "/"),
                                        relative_ok=True),
            par=as_choice("oidc.par", get("oidc.par") or "auto", PAR_MODES),
            profile=as_choice("oidc.profile", get("oidc.profile"), PROFILES) if get("oidc.profile") else None,
        )
        if oidc.profile == "fapi2":
            check_fapi2(oidc)
        if "openid" not in oidc.scope.split():
            raise ConfigurationError("oidc.scope", "must contain openid", oidc.scope)
        clients[None] = ClientCredentialsOptions(
            name=None,
            credentials=credentials,
            authority=authority,
            scope=as_scope(get("tokens.client.scope")),
            resource=as_url("tokens.client.resource", get("tokens.client.resource"))
            if get("tokens.client.resource") else None,
        )
    elif any(key.startswith("oidc.") for key in settings):
        raise ConfigurationError("oidc.authority", "is required when other oidc.* settings are given")

    for name, values in _group(settings, "tokens.clients.").items():
        values.setdefault("client_credential_style", style)
        prefix = f"tokens.clients.{name}."
        known = {"client_id", "client_secret", "client_credential_style", "token_endpoint", "authority", "scope",
                 "resource", *CLIENT_AUTH_SETTINGS}
        for sub in values:
            if sub not in known:
                raise ConfigurationError(prefix + sub, "unknown setting")
        clients[name] = ClientCredentialsOptions.create(name, prefix=prefix, **values)

    http: dict[str, HttpClientOptions] = {}
    for name, values in _group(settings, "tokens.http.").items():
        prefix = f"tokens.http.{name}."
        known = {"base_url", "token", "retry", "timeout", "replay_unsafe_methods"}
        for sub in values:
            if sub not in known:
                raise ConfigurationError(prefix + sub, "unknown setting")
        http[name] = HttpClientOptions.create(name, prefix=prefix, **values)

    exchange: dict[str, ExchangeOptions] = {}
    for name, values in _group(settings, "tokens.exchange.").items():
        prefix = f"tokens.exchange.{name}."
        known = {"audience", "resource", "scope", "requested_token_type", "subject", "actor", "client_id",
                 "client_secret", "client_credential_style", *CLIENT_AUTH_SETTINGS}
        for sub in values:
            if sub not in known:
                raise ConfigurationError(prefix + sub, "unknown setting")
        exchange[name] = ExchangeOptions.create(name, prefix=prefix, **values)

    options = Options(
        oidc=oidc,
        refresh_before_expiration=as_seconds("tokens.refresh_before_expiration",
                                             get("tokens.refresh_before_expiration", 60)),
        revoke_on_logout=as_bool("tokens.revoke_on_logout", get("tokens.revoke_on_logout", True)),
        cache_lifetime_buffer=as_seconds("tokens.cache_lifetime_buffer", get("tokens.cache_lifetime_buffer", 60)),
        clients=clients,
        http=http,
        exchange=exchange,
        store=_store_url("tokens.store", get("tokens.store"), "session"),
        cache=_store_url("tokens.cache", get("tokens.cache"), "memory"),
        timeout=as_seconds("tokens.timeout", get("tokens.timeout", 10), allow_zero=False),
        session=SessionOptions.from_settings(settings),
    )
    if oidc is not None and options.store == "session" and options.session.in_cookie and \
            not options.session.encrypted:
        raise ConfigurationError(
            "session.encrypt_key", "required with session.type = cookie and tokens.store = session: the cookie "
            "would carry the refresh token, the access token and the DPoP key, readable by anyone who sees it "
            "(Beaker only signs cookies unless told to encrypt them); set session.encrypt_key to a long random "
            "secret, or keep tokens server-side (tokens.store = redis://..., or a server-side session.type)")
    check_references(options)
    return options


def check_fapi2(oidc: OidcOptions) -> None:
    """FAPI 2.0 Security Profile §5.3.2 (client rules): refuse to start, naming every missing piece.

    PKCE S256 is not checked: every login of this package uses it.
    """
    credentials = oidc.credentials
    missing = []
    if oidc.par == "off":
        missing.append("pushed authorization requests (oidc.par is off: set require or auto)")
    if credentials.client_secret:
        missing.append("no client secret (remove oidc.client_secret)")
    if credentials.auth_method not in ("private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth"):
        missing.append("private_key_jwt or mutual TLS client authentication (oidc.client_assertion_key or "
                       "oidc.tls_client_cert)")
    if not credentials.dpop and not credentials.tls_client_cert:
        missing.append("sender-constrained tokens (oidc.dpop = true or oidc.tls_client_cert)")
    key = credentials.assertion_key
    if key is not None and key.alg not in FAPI2_ALGORITHMS:
        missing.append(f"PS256 or ES256 client assertions (oidc.client_assertion_alg is {key.alg})")
    if credentials.dpop_key is not None and credentials.dpop_key.alg not in FAPI2_ALGORITHMS:
        missing.append(f"PS256 or ES256 DPoP proofs (the oidc.dpop key is {credentials.dpop_key.alg})")
    if missing:
        raise ConfigurationError("oidc.profile", "fapi2 needs " + "; ".join(missing))


def check_references(options: Options) -> None:
    """Every named HTTP client must name a token source that exists, and so must every token exchange."""
    for exchange in options.exchange.values():
        key = f"tokens.exchange.{exchange.name}."
        if exchange.subject == "user" and options.oidc is None:
            raise ConfigurationError(key + "subject", "subject = user needs the oidc.* login settings")
        for part, client in (("subject", exchange.subject_client), ("actor", exchange.actor_client)):
            wanted = exchange.subject.startswith("client") if part == "subject" else exchange.actor is not None
            if wanted and client not in options.clients:
                target = "the OIDC client (oidc.*)" if client is None else f"tokens.clients.{client}"
                raise ConfigurationError(key + part, f"{target} is not configured")
    for http in options.http.values():
        key = f"tokens.http.{http.name}.token"
        if http.token.startswith("exchange:"):
            if http.token[9:] not in options.exchange:
                raise ConfigurationError(key, f"tokens.exchange.{http.token[9:]} is not configured", http.token)
            continue
        if http.token == "user" and options.oidc is None:
            raise ConfigurationError(key, "token = user needs the oidc.* login settings")
        if http.token.startswith("client") and http.client_name not in options.clients:
            target = "the OIDC client (oidc.*)" if http.client_name is None else f"tokens.clients.{http.client_name}"
            raise ConfigurationError(key, f"{target} is not configured", http.token)
