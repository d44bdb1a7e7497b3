"""In-memory grants: authorization codes, refresh tokens, device authorizations, revocations.

* Authorization codes are single use and short lived (RFC 6749 §4.1.2). A code presented twice
  is refused, and the tokens already issued from it are revoked (§4.1.2, §10.5).
* Refresh tokens rotate (RFC 6749 §6, OAuth 2.0 Security BCP RFC 9700 §4.14.2): each use
  consumes the token and the response carries a new one bound to the same grant.
* Device authorizations follow RFC 8628 §3.2-3.5: pending until the user decides, then used once.
* Revocation (RFC 7009 §2.1) of a refresh token revokes the grant it belongs to, and with it
  every access token issued under that grant.

Every operation that checks and changes a record does so under one lock, so two concurrent
requests presenting the same code or refresh token cannot both succeed.
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

#: RFC 8628 §6.1: user codes from 20 consonants, case insensitive, no vowels (no words, no 0/O).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
#: how long expired device authorizations are remembered, to answer ``expired_token``
DEVICE_GRACE_SECONDS = 600


@dataclass(eq=False)
class Grant:
    """What a user (or nobody, for client credentials) authorized one client to do."""

    client_id: str
    scopes: tuple[str, ...]
    username: str | None = None
    auth_time: int | None = None
    resources: tuple[str, ...] = ()
    revoked: bool = False
    grant_id: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(eq=False)
class AuthorizationCode:
    code: str
    grant: Grant
    redirect_uri: str
    #: whether the authorization request named the redirect URI (then the token request must, too)
    redirect_uri_sent: bool
    code_challenge: str
    code_challenge_method: str
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass(eq=False)
class RefreshToken:
    token: str
    grant: Grant
    expires_at: float | None


@dataclass(eq=False)
class DeviceCode:
    device_code: str
    user_code: str
    grant: Grant
    expires_at: float
    interval: int
    status: str = "pending"  # pending | approved | denied
    last_poll: float | None = None


def normalize_user_code(user_code: str) -> str:
    """``wdjb mjht`` and ``WDJB-MJHT`` are the same code (RFC 8628 §6.1)."""
    return "".join(ch for ch in user_code.upper() if ch.isalnum())


def new_user_code() -> str:
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


class State:
    """All the provider remembers; nothing outlives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._devices: dict[str, DeviceCode] = {}
        self._user_codes: dict[str, str] = {}  # normalized user code -> device code
        self._access_tokens: dict[str, tuple[Grant | None, float]] = {}  # jti -> (grant, exp)
        self._revoked_jtis: dict[str, float] = {}  # jti -> exp
        self._pruned_at = float("-inf")

    # -- authorization codes (RFC 6749 §4.1.2, §4.1.3) ---------------------------------------------
    def add_code(self, record: AuthorizationCode, now: float) -> None:
        with self._lock:
            self._prune(now)
            self._codes[record.code] = record

    def peek_code(self, code: str | None) -> AuthorizationCode | None:
        with self._lock:
            return self._codes.get(code or "")

    def claim_code(self, code: str, client_id: str, now: float) -> AuthorizationCode | None:
        """Use a code once. A second use revokes the grant (RFC 6749 §4.1.2) and returns None."""
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.grant.client_id != client_id or now >= record.expires_at:
                return None
            if record.used:
                record.grant.revoked = True
                return None
            record.used = True
            return record

    # -- refresh tokens (RFC 6749 §6) --------------------------------------------------------------
    def add_refresh_token(self, record: RefreshToken, now: float) -> None:
        with self._lock:
            self._prune(now)
            self._refresh_tokens[record.token] = record

    def peek_refresh_token(self, token: str | None) -> RefreshToken | None:
        with self._lock:
            return self._refresh_tokens.get(token or "")

    def consume_refresh_token(self, token: str, client_id: str, now: float) -> RefreshToken | None:
        """Take a refresh token out of circulation (rotation); None when it is not usable."""
        with self._lock:
            record = self._refresh_tokens.get(token)
            if record is None or not self.refresh_token_usable(record, client_id, now):
                return None
            del self._refresh_tokens[token]
            return record

    @staticmethod
    def refresh_token_usable(record: RefreshToken, client_id: str, now: float) -> bool:
        """Issued to this client, not revoked, not expired."""
        expired = record.expires_at is not None and now >= record.expires_at
        return record.grant.client_id == client_id and not record.grant.revoked and not expired

    # -- access tokens and revocation (RFC 7009) ---------------------------------------------------
    def add_access_token(self, jti: str, grant: Grant | None, exp: float, now: float) -> None:
        with self._lock:
            self._prune(now)
            self._access_tokens[jti] = (grant, exp)

    def revoke_access_token(self, jti: str, exp: float) -> None:
        with self._lock:
            self._revoked_jtis[jti] = exp

    def access_token_grant(self, jti: str) -> Grant | None:
        """The grant an access token was issued under (``None``: unknown, or a client's own token)."""
        with self._lock:
            return self._access_tokens.get(jti, (None, 0))[0]

    def access_token_revoked(self, jti: str) -> bool:
        with self._lock:
            if jti in self._revoked_jtis:
                return True
            grant, _ = self._access_tokens.get(jti, (None, 0))
            return grant is not None and grant.revoked

    def revoke_grant(self, grant: Grant) -> None:
        """Revoke a grant: its refresh tokens stop refreshing, its access tokens stop passing userinfo."""
        with self._lock:
            grant.revoked = True

    # -- device authorizations (RFC 8628 §3.2-3.5) -------------------------------------------------
    def add_device(self, record: DeviceCode, now: float) -> DeviceCode:
        with self._lock:
            self._prune(now)
            while normalize_user_code(record.user_code) in self._user_codes:
                record.user_code = new_user_code()
            self._devices[record.device_code] = record
            self._user_codes[normalize_user_code(record.user_code)] = record.device_code
            return record

    def peek_device(self, device_code: str | None) -> DeviceCode | None:
        with self._lock:
            return self._devices.get(device_code or "")

    def device_by_user_code(self, user_code: str) -> DeviceCode | None:
        with self._lock:
            device_code = self._user_codes.get(normalize_user_code(user_code))
            return self._devices.get(device_code or "")

    def decide_device(self, user_code: str, username: str | None, approve: bool, now: float) -> str:
        """Record the user's decision: ``approved``, ``denied``, ``unknown``, ``expired`` or ``decided``."""
        with self._lock:
            record = self._devices.get(self._user_codes.get(normalize_user_code(user_code), ""))
            if record is None:
                return "unknown"
            if now >= record.expires_at:
                return "expired"
            if record.status != "pending":
                return "decided"
            if approve:
                record.grant.username, record.grant.auth_time = username, int(now)
            record.status = "approved" if approve else "denied"
            return record.status

    def poll_device(
        self, device_code: str, client_id: str, now: float
    ) -> tuple[str | None, DeviceCode | None]:
        """One token-endpoint poll (RFC 8628 §3.4-3.5): returns a status and, when authorized, the record.

        Statuses: ``authorized`` (the record is used up), ``authorization_pending``, ``slow_down``
        (polled sooner than ``interval`` seconds after the previous poll), ``access_denied``,
        ``expired_token``, or None for an unknown, used or foreign device code.
        """
        with self._lock:
            record = self._devices.get(device_code)
            if record is None or record.grant.client_id != client_id:
                return None, None
            if now >= record.expires_at:
                return "expired_token", None
            if record.status == "denied":
                return "access_denied", None
            if record.status == "approved":
                del self._devices[device_code]
                self._user_codes.pop(normalize_user_code(record.user_code), None)
                return "authorized", record
            too_soon = record.last_poll is not None and now - record.last_poll < record.interval
            record.last_poll = now
            return ("slow_down" if too_soon else "authorization_pending"), None

    # -- housekeeping ------------------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        """Forget what has expired (called with the lock held on inserts, at most once a second)."""
        if 0 <= now - self._pruned_at < 1:
            return
        self._pruned_at = now
        self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now}
        self._refresh_tokens = {
            k: v for k, v in self._refresh_tokens.items() if v.expires_at is None or v.expires_at > now
        }
        self._access_tokens = {k: v for k, v in self._access_tokens.items() if v[1] > now}
        self._revoked_jtis = {k: v for k, v in self._revoked_jtis.items() if v > now}
        expired = [k for k, v in self._devices.items() if v.expires_at + DEVICE_GRACE_SECONDS <= now]
        for device_code in expired:
            record = self._devices.pop(device_code)
            self._user_codes.pop(normalize_user_code(record.user_code), None)
