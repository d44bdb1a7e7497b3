"""On-behalf-of tokens: OAuth 2.0 Token Exchange (RFC 8693 §2.1 request, §2.2 response), cached and renewed.

``tokens.exchange.NAME`` names a downstream target (``audience`` and/or ``resource``, ``scope``).
The subject token is the logged-in user's access token (``subject = user``) or a client-credentials
token (``subject = client:NAME``); with ``actor`` a client's own token goes along as ``actor_token``
(delegation: the provider puts ``act`` in the result, §4.1). The ``issued_token_type`` of the
answer (§2.2.1, required) is kept on the :class:`~pyramid_tokens.tokens.AccessToken`.

A user's exchanged tokens live in the user's token record, under ``exchanged`` by exchange name:
every process sharing the store shares them, and they end with the login (logout, back-channel
logout, a refused refresh all delete the record). Renewal is single-flight under the handle's lock,
with the user tokens' renew_before. The exchange is a grant of its own: a refreshed subject token does not
renew it. ``invalid_grant`` means the subject token is no longer acceptable: the user token is
refreshed once and the exchange retried once, then :class:`~pyramid_tokens.errors.LoginRequired`.
A client subject's exchanged tokens are cached in the client token cache, keyed by exchange name.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import threading
from typing import Any, Callable, Mapping

from .clienttokens import ClientTokens
from .clock import Clock, system_clock
from .errors import InvalidResponse, LoginRequired, ProviderUnavailable, TokenError
from .options import ACCESS_TOKEN_TYPE, ExchangeOptions
from .responses import VSCHARS, endpoint_of
from .stores import TokenStore
from .tokenclient import TokenClient, grant_form
from .tokens import AccessToken, dumps
from .usertokens import UserTokens

log = logging.getLogger(__name__)

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
#: the longest ``issued_token_type`` we keep (RFC 8693 §3 URIs are short)
MAX_TOKEN_TYPE_LENGTH = 200
#: parsed exchanged tokens kept per process (see :meth:`TokenExchanges._fresh`); the oldest go first
PARSED_TOKENS_MAX = 1024


def login_dpop_key(record: dict[str, Any]) -> Any:
    """The login's DPoP key (RFC 9449), kept in its record: exchanges for the login prove with it."""
    if not record.get("dpop_key"):
        return None
    from .dpop import DPoPKey  # only DPoP logins need it

    return DPoPKey.from_jwk(record["dpop_key"])


def request_exchange(client: TokenClient, opts: ExchangeOptions, subject: AccessToken, *,
                     actor: AccessToken | None = None, dpop: Any = None) -> AccessToken:
    """One RFC 8693 §2.1 request; the validated §2.2.1 answer as an :class:`AccessToken`."""
    form = grant_form(TOKEN_EXCHANGE_GRANT, subject_token=subject.access_token, subject_token_type=ACCESS_TOKEN_TYPE,
                      actor_token=actor.access_token if actor is not None else None,
                      actor_token_type=ACCESS_TOKEN_TYPE if actor is not None else None,
                      requested_token_type=opts.requested_token_type, audience=opts.audience)
    what = f"token exchange {opts.name}"
    response = client.request_token(form, what=what, scope=opts.scope, resource=opts.resource, dpop=dpop)
    issued = response.raw.get("issued_token_type")
    if not isinstance(issued, str) or len(issued) > MAX_TOKEN_TYPE_LENGTH or not VSCHARS.fullmatch(issued) \
            or ":" not in issued:
        raise InvalidResponse(f"{what}: issued_token_type is missing or not a token type URI (RFC 8693 §2.2.1)",
                              status_code=200, endpoint=endpoint_of(client.token_endpoint()))
    return response.access_token.with_(issued_token_type=issued)


class TokenExchanges:
    """The configured exchanges: cached per login (user subjects) or per exchange (client subjects)."""

    def __init__(self, options: Mapping[str, ExchangeOptions], clients: Mapping[str, TokenClient], *,
                 users: UserTokens | None, client_tokens: ClientTokens, clock: Clock = system_clock,
                 renew_before: float = 60.0, lock_timeout: float = 30.0) -> None:
        self.options = options
        #: the client that exchanges, per exchange name
        self.clients = clients
        self.users = users
        self.client_tokens = client_tokens
        self.clock = clock
        self.renew_before = renew_before
        self.lock_timeout = lock_timeout
        #: ``(handle or cache key, name) -> (copy of the stored dict, AccessToken, renewal deadline)``
        self._parsed: dict[tuple[str, str], tuple[dict[str, Any], AccessToken, float | None]] = {}
        self._parsed_lock = threading.Lock()

    def _options(self, name: str) -> ExchangeOptions:
        try:
            return self.options[name]
        except KeyError:
            raise TokenError(f"token exchange {name!r} is not configured", error="invalid_request") from None

    def get(self, name: str, *, handle: str, store: TokenStore | None = None,
            force_renewal: bool = False) -> AccessToken:
        """The exchanged token of ``name`` (for the login ``handle`` when the subject is the user)."""
        opts = self._options(name)
        if opts.subject == "user":
            if self.users is None:
                raise LoginRequired("user tokens need the oidc.* login settings")
            return self._for_user(opts, handle, self.users.store if store is None else store, force_renewal)
        return self._for_client(opts, force_renewal)

    def _actor(self, opts: ExchangeOptions) -> AccessToken | None:
        return None if opts.actor is None else self.client_tokens.get(opts.actor_client)

    def _fresh(self, key: tuple[str, str], data: Any) -> AccessToken | None:
        """The stored token when it is not yet due for renewal.

        Parsed once (a DPoP key costs more than the store read) and reused while the stored dict
        is equal to the copy kept, so a token renewed here or in another process is parsed afresh.
        """
        if not isinstance(data, dict) or not data.get("access_token"):
            return None
        parsed = self._parsed.get(key)
        if parsed is None or parsed[0] != data:
            token = AccessToken.from_dict(data)
            parsed = (copy.deepcopy(data), token, token.renewal_deadline(self.renew_before))
            with self._parsed_lock:
                if len(self._parsed) >= PARSED_TOKENS_MAX:
                    del self._parsed[next(iter(self._parsed))]
                self._parsed[key] = parsed
        return parsed[1] if parsed[2] is None or self.clock() < parsed[2] else None

    # -- the user's token as subject --------------------------------------------------------------------
    def _for_user(self, opts: ExchangeOptions, handle: str, store: TokenStore, force: bool) -> AccessToken:
        users = self.users
        assert users is not None
        seen = store.get(handle)
        if seen is None:
            raise LoginRequired("no user is logged in")
        seen_data = (seen.get("exchanged") or {}).get(opts.name)
        if not force:
            token = self._fresh((handle, opts.name), seen_data)
            if token is not None:
                return token
        refreshed = False
        while True:
            # outside the lock: the user token's own renewal takes the same lock
            subject = users.get_access_token(handle, store=store, force_renewal=refreshed)
            with store.lock(handle, self.lock_timeout):
                record = store.get(handle)
                if record is None:
                    raise LoginRequired("the user's tokens were cleared")
                data = (record.get("exchanged") or {}).get(opts.name)
                if not force or data != seen_data:
                    token = self._fresh((handle, opts.name), data)
                    if token is not None:
                        return token  # exchanged by another caller while we waited
                try:
                    token = request_exchange(self.clients[opts.name], opts, subject, actor=self._actor(opts),
                                             dpop=login_dpop_key(record))
                except LoginRequired as exc:  # invalid_grant: the subject token is no longer acceptable
                    if refreshed:
                        log.warning("user %s: token exchange %s refused (%s) after a refresh; login required",
                                    record.get("sub"), opts.name, exc.error)
                        raise LoginRequired(f"token exchange {opts.name}: the provider no longer accepts the "
                                            "user's token; please log in again", error=exc.error,
                                            status_code=exc.status_code, endpoint=exc.endpoint) from None
                    log.info("user %s: token exchange %s refused (%s); refreshing the user token once",
                             record.get("sub"), opts.name, exc.error)
                    refreshed = True
                    continue
                except (ProviderUnavailable, InvalidResponse) as exc:
                    current = AccessToken.from_dict(data) if isinstance(data, dict) and data.get("access_token") \
                        else None
                    if current is None or force or current.is_expired(self.clock()):
                        raise
                    log.warning("user %s: token exchange %s failed (%s); using the current token until it "
                                "expires", record.get("sub"), opts.name, exc)
                    return current
                exchanged = {**(record.get("exchanged") or {}), opts.name: token.to_dict()}
                # a new generation: a shared store (Redis) only takes a write over an older one
                store.set(handle, {**record, "exchanged": exchanged,
                                   "generation": int(record.get("generation") or 0) + 1}, users.ttl)
                log.info("user %s: token exchange %s: new token (audience %s, expires at %s)", record.get("sub"),
                         opts.name, opts.audience or opts.resource, token.expires_at)
                return token

    # -- a client's token as subject ----------------------------------------------------------------------
    def cache_key(self, opts: ExchangeOptions) -> str:
        client = self.clients[opts.name]
        identity = dumps([opts.name, client.client_id, client.issuer or client._token_endpoint, opts.subject,
                          opts.actor, opts.audience, opts.resource, opts.scope, opts.requested_token_type])
        return "exchange:" + hashlib.sha256(identity.encode()).hexdigest()

    def _for_client(self, opts: ExchangeOptions, force: bool) -> AccessToken:
        cache, key = self.client_tokens.cache, self.cache_key(opts)
        seen = cache.get(key)
        if not force:
            token = self._fresh((key, opts.name), seen)
            if token is not None:
                return token
        renew_subject = False
        while True:
            subject = self.client_tokens.get(opts.subject_client, force_renewal=renew_subject)
            with cache.lock(key, self.lock_timeout):
                current = cache.get(key)
                if not force or current != seen:
                    token = self._fresh((key, opts.name), current)
                    if token is not None:
                        return token
                client = self.clients[opts.name]
                try:
                    token = request_exchange(client, opts, subject, actor=self._actor(opts),
                                             dpop=client.client_dpop_key())
                except LoginRequired as exc:  # no user to send to a login: the provider's error, as it is
                    if renew_subject:
                        raise TokenError(f"token exchange {opts.name}: the subject token was refused",
                                         error=exc.error, status_code=exc.status_code, endpoint=exc.endpoint) \
                            from None
                    renew_subject = True
                    continue
                expires_in = token.expires_in(self.clock())
                cache.set(key, token.to_dict(), ttl=expires_in)
                log.info("client %s: token exchange %s: new token (expires at %s)", opts.subject_client or "(oidc)",
                         opts.name, token.expires_at)
                return token


def exchange_clients(options: Mapping[str, ExchangeOptions], *, default: TokenClient | None,
                     clients: Mapping[str | None, TokenClient],
                     make: Callable[[ExchangeOptions, TokenClient], TokenClient]) -> dict[str, TokenClient]:
    """The exchanging client per exchange: the OIDC client for the user's token, the subject client for its own
    token; with the exchange's own credentials, a client of its own at that one's provider (``make(options, at)``)."""
    chosen: dict[str, TokenClient] = {}
    for name, opts in options.items():
        at = default if opts.subject == "user" and default is not None else clients[opts.subject_client]
        chosen[name] = make(opts, at) if opts.credentials is not None else at
    return chosen
