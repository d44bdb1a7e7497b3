"""Request counters, so tests can prove what happened at the provider ("exactly one refresh").

``token`` counts successful token responses per grant type (RFC 6749 §5.1); ``token_errors``
counts error responses per error code (RFC 6749 §5.2, RFC 8628 §3.5, RFC 8707 §2);
``client_auth`` counts successful client authentications per method; ``by_client`` counts
successful token responses per client and grant type. The other counters count requests
received at that endpoint, whatever their outcome.
"""
from __future__ import annotations

import copy
import threading
from typing import Any

from .models import GRANT_TYPES

ENDPOINTS = ("authorize", "revocation", "userinfo", "discovery", "jwks", "end_session", "device_authorization",
             "backchannel_logout")
TOKEN_ERRORS = (
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "authorization_pending",
    "slow_down",
    "access_denied",
    "expired_token",
)
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class Counters:
    """Thread-safe counters; :meth:`snapshot` returns a deep copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._data = {
                "token": dict.fromkeys(GRANT_TYPES, 0),
                "token_errors": dict.fromkeys(TOKEN_ERRORS, 0),
                "client_auth": dict.fromkeys(CLIENT_AUTH_METHODS, 0),
                "by_client": {},
                **dict.fromkeys(ENDPOINTS, 0),
            }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._data)

    def hit(self, endpoint: str) -> None:
        with self._lock:
            self._data[endpoint] += 1

    def token_issued(self, grant_type: str, client_id: str) -> None:
        with self._lock:
            self._data["token"][grant_type] = self._data["token"].get(grant_type, 0) + 1
            per_client = self._data["by_client"].setdefault(client_id, {})
            per_client[grant_type] = per_client.get(grant_type, 0) + 1

    def token_error(self, error: str) -> None:
        with self._lock:
            errors = self._data["token_errors"]
            errors[error] = errors.get(error, 0) + 1

    def client_authenticated(self, method: str) -> None:
        with self._lock:
            auth = self._data["client_auth"]  # private_key_jwt and tls_client_auth appear once used
            auth[method] = auth.get(method, 0) + 1
