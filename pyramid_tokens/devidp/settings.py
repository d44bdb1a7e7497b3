"""``devidp.*`` settings, parsed in one place into :class:`DevProvider` keyword arguments.

.ini form::

    devidp.issuer = http://127.0.0.1:6543/idp
    devidp.audience = api
    devidp.device_interval = 5
    devidp.device_lifetime = 600
    devidp.device_auto_approve = alice            # explicit opt-in for unattended notebooks
    devidp.clients.web.secret = web-secret
    devidp.clients.web.redirect_uris = http://127.0.0.1:6543/callback
    devidp.clients.web.post_logout_redirect_uris = http://127.0.0.1:6543/
    devidp.clients.web.grant_types = authorization_code refresh_token
    devidp.clients.web.scopes = openid profile email offline_access api
    devidp.clients.web.access_token_lifetime = 300
    devidp.clients.web.id_token_lifetime = 300
    devidp.clients.web.refresh_token_lifetime = none
    devidp.clients.web.resources = https://api.example.test/
    devidp.clients.web.audiences = orders          # RFC 8693 token exchange targets
    devidp.clients.worker.jwks = %(here)s/keys/worker.jwks.json   # private_key_jwt: the client's public JWK Set
    devidp.clients.worker.tls_client_auth_subject_dn = CN=worker  # tls_client_auth (when served over TLS)
    devidp.clients.worker.token_endpoint_auth_method = private_key_jwt
    devidp.clients.worker.dpop_bound_access_tokens = true
    devidp.clients.web.backchannel_logout_uri = http://127.0.0.1:6543/backchannel-logout
    devidp.clients.web.backchannel_logout_session_required = true
    devidp.require_dpop_nonce = true
    devidp.users.alice.name = Alice Liddell
    devidp.users.alice.email = alice@example.test
    devidp.users.alice.role = admin

Python form: ``DevProvider(issuer=..., clients=[DevClient("web", "web-secret", ...)], users=[...])``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from .models import DevClient, DevUser, words

log = logging.getLogger("pyramid_tokens.devidp")

PREFIX = "devidp."
CLIENT_FIELDS = {
    "secret": "client_secret",
    "redirect_uris": "redirect_uris",
    "post_logout_redirect_uris": "post_logout_redirect_uris",
    "grant_types": "grant_types",
    "scopes": "scopes",
    "access_token_lifetime": "access_token_lifetime",
    "id_token_lifetime": "id_token_lifetime",
    "refresh_token_lifetime": "refresh_token_lifetime",
    "resources": "resources",
    "jwks": "jwks",
    "tls_client_auth_subject_dn": "tls_client_auth_subject_dn",
    "token_endpoint_auth_method": "token_endpoint_auth_method",
    "dpop_bound_access_tokens": "dpop_bound_access_tokens",
    "audiences": "audiences",
    "backchannel_logout_uri": "backchannel_logout_uri",
    "backchannel_logout_session_required": "backchannel_logout_session_required",
}
LIFETIMES = {"access_token_lifetime", "id_token_lifetime", "refresh_token_lifetime"}
USER_FIELDS = {"name", "email", "role"}
INT_OPTIONS = {"device_interval": 0, "device_lifetime": 1, "code_lifetime": 1}  # name -> minimum


def _int(key: str, value: Any, minimum: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigurationError(key, "must be a whole number of seconds", value) from None
    if number < minimum:
        raise ConfigurationError(key, f"must be at least {minimum}", value)
    return number


def provider_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``DevProvider`` keyword arguments from ``devidp.*`` settings; a malformed value names its key."""
    options: dict[str, Any] = {}
    clients: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    for key, value in settings.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        if name.startswith(("clients.", "users.")):
            kind, _, rest = name.partition(".")
            owner, _, field = rest.rpartition(".")
            if not owner or not field:
                raise ConfigurationError(key, f"expected {PREFIX}{kind}.<id>.<field>")
            if kind == "clients":
                if field not in CLIENT_FIELDS:
                    raise ConfigurationError(key, f"unknown client field; expected one of {sorted(CLIENT_FIELDS)}")
                clients.setdefault(owner, {})[CLIENT_FIELDS[field]] = _client_value(key, field, value)
            else:
                if field not in USER_FIELDS:
                    raise ConfigurationError(key, f"unknown user field; expected one of {sorted(USER_FIELDS)}")
                users.setdefault(owner, {})[field] = str(value).strip()
        elif name in INT_OPTIONS:
            options[name] = _int(key, value, INT_OPTIONS[name])
        elif name in ("issuer", "audience", "device_auto_approve"):
            options[name] = str(value).strip() or None
        elif name == "require_dpop_nonce":
            options[name] = _bool(key, value)
        else:
            log.warning("devidp: ignoring unknown setting %s", key)
    if not options.get("issuer"):
        raise ConfigurationError(PREFIX + "issuer", "is required (the URL the provider is served at)")
    if "audience" in options and not options["audience"]:
        raise ConfigurationError(PREFIX + "audience", "must not be empty")
    options["clients"] = [_build(f"{PREFIX}clients.{cid}", DevClient, cid, kw) for cid, kw in clients.items()]
    options["users"] = [_build(f"{PREFIX}users.{name}", DevUser, name, kw) for name, kw in users.items()]
    return options


def _client_value(key: str, field: str, value: Any) -> Any:
    if field in LIFETIMES:
        if field == "refresh_token_lifetime" and str(value).strip().lower() in ("", "none"):
            return None
        return _int(key, value, 1)
    if field == "secret":
        return str(value).strip() or None
    if field == "jwks":
        return _jwks(key, value)
    if field in ("tls_client_auth_subject_dn", "token_endpoint_auth_method", "backchannel_logout_uri"):
        return str(value).strip() or None
    if field in ("dpop_bound_access_tokens", "backchannel_logout_session_required"):
        return _bool(key, value)
    return words(str(value))


def _bool(key: str, value: Any) -> bool:
    from ..options import as_bool

    return as_bool(key, value)


def _jwks(key: str, value: Any) -> dict[str, Any]:
    """A client's public JWK Set from a JSON file (a single JWK is accepted too)."""
    import json

    try:
        with open(str(value).strip(), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(key, f"cannot read a JWK Set ({type(exc).__name__})", value) from None
    keys = data.get("keys") if isinstance(data, dict) and "keys" in data else [data]
    if not isinstance(keys, list) or not keys or any(not isinstance(k, dict) or "d" in k for k in keys):
        raise ConfigurationError(key, "expected public JWKs (no private members)", value)
    return {"keys": keys}


def _build(key: str, cls: type, ident: str, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(ident, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(key, str(exc)) from None
