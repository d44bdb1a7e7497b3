"""The provider's side of OpenID Connect Back-Channel Logout 1.0 (§2.1-2.5, §2.8 error handling).

Each login (an authorization grant) is a provider session: its ``sid`` is in every ID token of the
grant. When a session ends - RP-initiated logout with an ``id_token_hint``, or ``/dev/end-session?sub=``
for all of a user's sessions - the grant is revoked (its refresh tokens stop working) and every client
of it that registered a ``backchannel_logout_uri`` gets a logout token POSTed (``typ: logout+jwt``,
``events``, ``jti``, ``iat``/``exp``; ``sid`` always for one session, and for a user's sessions unless
the client did not ask for it: then one token with ``sub`` only). Delivery is best effort, as §2.8 allows:
a failure is logged and reported, never retried.
"""
from __future__ import annotations

import logging
import secrets
import threading
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:  # pragma: no cover
    from .provider import DevProvider
    from .state import Grant

log = logging.getLogger("pyramid_tokens.devidp")

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: seconds a logout token is valid
LOGOUT_TOKEN_LIFETIME = 120
#: seconds one delivery may take
DELIVERY_TIMEOUT = 5.0


class BackchannelLogout:
    """The provider's sessions (``sid -> (user, grant)``) and the logout tokens sent when they end."""

    def __init__(self, provider: "DevProvider") -> None:
        self.provider = provider
        self._sessions: dict[str, tuple[str, "Grant"]] = {}
        self._lock = threading.Lock()

    def note(self, username: str, grant: "Grant") -> str:
        """The ``sid`` of ``grant`` (a session of ``username``), remembered for its logout."""
        with self._lock:
            self._sessions[grant.grant_id] = (username, grant)
        return grant.grant_id

    def sessions_of(self, username: str) -> list[str]:
        """The ``sid`` of each live session of ``username``, oldest first."""
        with self._lock:
            return [sid for sid, (user, _) in self._sessions.items() if user == username]

    def logout_token(self, client_id: str, *, sub: str | None, sid: str | None) -> str:
        """A signed logout token for ``client_id`` (§2.4)."""
        now = int(self.provider.clock())
        claims: dict[str, Any] = {"iss": self.provider.issuer, "aud": client_id, "iat": now,
                                  "exp": now + LOGOUT_TOKEN_LIFETIME, "jti": secrets.token_urlsafe(16),
                                  "events": {LOGOUT_EVENT: {}}}
        if sub is not None:
            claims["sub"] = sub
        if sid is not None:
            claims["sid"] = sid
        return self.provider.sign(claims, {"typ": "logout+jwt"})

    def end_session(self, sid: str) -> list[dict[str, Any]]:
        """End one session: revoke its grant, notify its client; the deliveries made."""
        with self._lock:
            found = self._sessions.pop(sid, None)
        if found is None:
            return []
        username, grant = found
        self.provider.state.revoke_grant(grant)
        return [self._deliver(grant.client_id, sub=username, sid=sid)]

    def end_user(self, username: str) -> list[dict[str, Any]]:
        """End every session of ``username``: one logout token per session, or per client without ``sid``."""
        with self._lock:
            ended = {sid: grant for sid, (user, grant) in self._sessions.items() if user == username}
            for sid in ended:
                del self._sessions[sid]
        deliveries, told = [], set()
        for sid, grant in ended.items():
            self.provider.state.revoke_grant(grant)
            client = self.provider.get_client(grant.client_id)
            if client is not None and not client.backchannel_logout_session_required:
                if client.client_id not in told:  # one token with sub only ends all the user's logins there
                    told.add(client.client_id)
                    deliveries.append(self._deliver(client.client_id, sub=username, sid=None))
                continue
            deliveries.append(self._deliver(grant.client_id, sub=username, sid=sid))
        return [d for d in deliveries if d]

    def _deliver(self, client_id: str, *, sub: str | None, sid: str | None) -> dict[str, Any]:
        client = self.provider.get_client(client_id)
        if client is None or not client.backchannel_logout_uri:
            return {}
        self.provider.counter.hit("backchannel_logout")
        token = self.logout_token(client_id, sub=sub, sid=sid)
        try:
            response = requests.post(client.backchannel_logout_uri, data={"logout_token": token},
                                     timeout=DELIVERY_TIMEOUT, allow_redirects=False)
            status: int | str = response.status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        level = logging.INFO if status == 200 else logging.WARNING
        log.log(level, "devidp: back-channel logout of client %s (sid %s) at %s: %s", client_id,
                "given" if sid else "none", client.backchannel_logout_uri, status)
        return {"client_id": client_id, "sid": sid is not None, "status": status}
