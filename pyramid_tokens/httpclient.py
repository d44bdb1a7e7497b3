"""Named HTTP clients: ``requests`` sessions that carry an access token, retry and renew on 401.

The token goes in the ``Authorization`` request header as ``<token_type> <access_token>``
(RFC 6750 §2.1). A 401 from the resource server is its challenge that the token is missing,
expired or revoked (RFC 6750 §3, ``error="invalid_token"``), so :class:`TokenAuth` renews the token
once and replays the request once. Transient transport failures are retried by urllib3's
:class:`~urllib3.util.Retry` mounted on one :class:`~requests.adapters.HTTPAdapter` per named client,
with the configured back-off list and ``Retry-After`` (RFC 9110 §10.2.3) honoured.

A DPoP-bound token (RFC 9449, ``token_type`` ``DPoP``) goes as ``Authorization: DPoP <token>`` with a
fresh proof in the ``DPoP`` header for every request and every replay (§7.1: ``htm``, ``htu``, ``ath``,
and the origin's last server nonce). A 401 ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` with a
``DPoP-Nonce`` (§9) is answered by one replay with a proof carrying that nonce (the server refused
the request before processing it, so this replay is made for any method whose body can be resent),
before and after a renewal; nonces are remembered per origin.

``requests`` exceptions (``ConnectionError``, ``Timeout``...) reach the caller unchanged, as any
``requests`` user expects; a :class:`~pyramid_tokens.errors.TokenError` from the token source
propagates as is. This module imports no web framework.
"""
from __future__ import annotations

import functools
import re
import time
from typing import Any, Callable, Sequence
from urllib.parse import urljoin, urlsplit

from collections import OrderedDict

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import cookiejar_from_dict, extract_cookies_to_jar
from requests.hooks import default_hooks
from requests.models import DEFAULT_REDIRECT_LIMIT
from requests.utils import default_headers
from urllib3.exceptions import InvalidHeader, MaxRetryError, ReadTimeoutError
from urllib3.util import Retry

from . import metrics
from .dpop import NONCE_HEADER, USE_DPOP_NONCE, DPoPNonces, challenge_error, valid_nonce
from .errors import TokenError
from .tokens import AccessToken

#: ``token_source(force_renewal) -> AccessToken``; may raise :class:`~pyramid_tokens.errors.TokenError`.
TokenSource = Callable[[bool], AccessToken]

#: Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Statuses worth retrying: timeout, throttling and transient server/gateway failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: Upper bound on a server's ``Retry-After``, so a misbehaving server cannot park a worker for hours.
RETRY_AFTER_MAX = 60.0


class BackoffRetry(Retry):
    """urllib3 ``Retry`` whose n-th retry waits the n-th configured delay (the last one repeats).

    ``Retry-After``, when the response has one, replaces the delay (capped at
    :data:`RETRY_AFTER_MAX`). ``sleep`` is injectable so tests need not wait.
    """

    #: Retry-After only sets the delay; which statuses are retried is ``status_forcelist`` alone.
    RETRY_AFTER_STATUS_CODES: frozenset[int] = frozenset()

    def __init__(self, *args: Any, delays: Sequence[float] = (),
                 sleep: Callable[[float], None] = time.sleep, client: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delays = tuple(float(d) for d in delays)
        self._sleep = sleep
        #: the named client's name, for the ``pyramid_tokens.http.retries`` counter
        self.client = client

    @classmethod
    def from_delays(cls, delays: Sequence[float], *, sleep: Callable[[float], None] = time.sleep,
                    client: str = "") -> "BackoffRetry":
        """The policy of a named client: ``len(delays)`` retries of idempotent requests.

        Connection failures (the request never left) are retried for any method; read errors and
        the :data:`RETRY_STATUSES` only for idempotent ones. When retries run out on a status the
        last response is returned rather than raised.
        """
        return cls(total=len(delays), allowed_methods=IDEMPOTENT_METHODS,
                   status_forcelist=RETRY_STATUSES, raise_on_status=False, delays=delays, sleep=sleep, client=client)

    def new(self, **kw: Any) -> "BackoffRetry":
        retry = super().new(**kw)
        retry.delays, retry._sleep, retry.client = self.delays, self._sleep, self.client
        return retry

    def increment(self, *args: Any, **kwargs: Any) -> "BackoffRetry":
        """urllib3 calls this for each failure; returning (not raising) means one more attempt follows."""
        try:
            retry = super().increment(*args, **kwargs)
        except MaxRetryError as exhausted:
            if isinstance(exhausted.reason, ReadTimeoutError):
                raise exhausted.reason  # so requests reports a Timeout, not a ConnectionError
            raise
        metrics.http_retry(self.client)
        return retry

    def get_backoff_time(self) -> float:
        """The configured delay for the retry about to happen (``history`` counts the failures)."""
        if not self.delays or not self.history:
            return 0.0
        return self.delays[min(len(self.history), len(self.delays)) - 1]

    def sleep(self, response: Any = None) -> None:
        try:
            use_header = response is not None and self.respect_retry_after_header
            delay = self.get_retry_after(response) if use_header else None
        except InvalidHeader:  # an unparseable Retry-After leaves our own back-off in charge
            delay = None
        delay = self.get_backoff_time() if delay is None else min(delay, RETRY_AFTER_MAX)
        if delay > 0:
            self._sleep(delay)


#: a relative reference that urljoin only appends to a directory base: no scheme, authority or absolute path,
#: no dot or empty segment, no empty query or fragment (urljoin drops those), no space, control or non-ASCII
#: character (checked against urljoin by a property test)
_APPENDABLE = re.compile(r"(?!/)(?!.*//)(?!.*(?:^|/)\.\.?(?:[/?#;]|$))(?!.*\?(?:#|$))(?!.*#$)"
                         r"[A-Za-z0-9_~%!$&'()*+,=@?#/.\-]*")


def _body_position(body: Any) -> int | None | bool:
    """Where a replay must rewind the body to: ``None`` for in-memory bodies, an offset for a
    seekable file, ``False`` when the body is a stream or generator that cannot be sent again."""
    if body is None or isinstance(body, (bytes, str)):
        return None
    try:
        return int(body.tell()) if hasattr(body, "seek") else False
    except (OSError, ValueError):
        return False


def _origin(url: str | None) -> tuple[str, ...]:
    parts = urlsplit(url or "")
    return parts.scheme, parts.hostname or "", str(parts.port)


class TokenAuth(requests.auth.AuthBase):
    """Attaches ``Authorization: <token_type> <token>`` and, on a 401, renews once and replays once.

    Only idempotent requests are replayed unless ``replay_unsafe_methods`` is true; a request whose
    body cannot be sent again is never replayed. A second 401 is returned to the caller unchanged.
    The token is fetched per request and never stored here, so ``repr`` cannot show it.
    """

    def __init__(self, token_source: TokenSource, *, replay_unsafe_methods: bool = False,
                 origin: str | None = None, dpop_nonces: DPoPNonces | None = None, client: str = "") -> None:
        self.token_source = token_source
        #: the named client's name, for the replay and nonce-retry counters
        self.client = client
        self.replay_unsafe_methods = replay_unsafe_methods
        #: when set, the token goes only to this origin (the client's base URL): never to other hosts
        self.origin = _origin(origin) if origin else None
        #: DPoP server nonces per origin (RFC 9449 §9); the manager shares one set with token requests
        self.dpop_nonces = dpop_nonces if dpop_nonces is not None else DPoPNonces()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        origin = _origin(r.url)  # once: urlsplit is about a microsecond
        if self.origin is not None and origin != self.origin:
            return r
        self.attach(r, self.token_source(False))
        hook = functools.partial(self.handle_401, body_pos=_body_position(r.body), origin=origin)
        r.register_hook("response", hook)
        return r

    def attach(self, r: requests.PreparedRequest, token: AccessToken) -> None:
        """Set ``Authorization`` and, for a DPoP-bound token, a fresh ``DPoP`` proof for this request."""
        if token.token_type == "DPoP" and token.dpop_key is None:  # RFC 9449 §7.1: never without a proof
            raise TokenError("a DPoP token cannot be sent without its key's proof", error="invalid_token")
        r.headers["Authorization"] = token.authorization
        if token.dpop_key is not None and token.token_type == "DPoP":
            url = r.url or ""
            r.headers["DPoP"] = token.dpop_key.proof(r.method or "GET", url, access_token=token.access_token,
                                                     nonce=self.dpop_nonces.get(url))
        elif "DPoP" in r.headers:  # a replay with a token that is not DPoP-bound
            del r.headers["DPoP"]

    def _nonce_retry_due(self, r: requests.Response, body_pos: int | None | bool, origin: tuple[str, ...]) -> bool:
        """A DPoP request refused for want of a nonce (RFC 9449 §9) that we have not retried yet."""
        request = r.request
        return (
            r.status_code == 401
            and body_pos is not False
            and "DPoP" in request.headers
            and valid_nonce(r.headers.get(NONCE_HEADER))  # a malformed nonce is never sent (RFC 9449 §8.1)
            and not getattr(request, "_dpop_nonce_retried", False)
            and _origin(request.url) == origin
            and challenge_error(r.headers.get("WWW-Authenticate")) == USE_DPOP_NONCE
        )

    def _should_replay(self, r: requests.Response, body_pos: int | None | bool, origin: tuple[str, ...]) -> bool:
        request = r.request
        return (
            r.status_code == 401
            and body_pos is not False
            and not getattr(request, "_token_replayed", False)
            # after a redirect to another origin, never send that server a freshly renewed token
            and _origin(request.url) == origin
            and (self.replay_unsafe_methods or (request.method or "").upper() in IDEMPOTENT_METHODS)
            # a nonce challenge is not an expired token: renewing would not help
            and challenge_error(r.headers.get("WWW-Authenticate")) != USE_DPOP_NONCE
        )

    def handle_401(self, r: requests.Response, body_pos: int | None | bool = None,
                   origin: tuple[str, ...] = (), **kwargs: Any) -> requests.Response:
        """Response hook: the RFC 6750 §3 challenge answered with one renewal and one replay.

        A DPoP nonce challenge (RFC 9449 §9) is answered with one replay carrying the nonce, before
        and again after the renewal; at most four requests in all.
        """
        if "DPoP" in r.request.headers:
            self.dpop_nonces.remember(r.request.url or "", r.headers)
        if self._nonce_retry_due(r, body_pos, origin):
            r = self._replay(r, body_pos, self.token_source(False), kwargs, nonce_retry=True)
        if self._should_replay(r, body_pos, origin):
            r = self._replay(r, body_pos, self.token_source(True), kwargs, renewal=True)
            if self._nonce_retry_due(r, body_pos, origin):
                r = self._replay(r, body_pos, self.token_source(False), kwargs, nonce_retry=True)
        return r

    def _replay(self, r: requests.Response, body_pos: int | None | bool, token: AccessToken, kwargs: dict[str, Any],
                *, renewal: bool = False, nonce_retry: bool = False) -> requests.Response:
        """Send ``r``'s request again with ``token`` (and a new proof); the answer keeps ``r`` in its history."""
        r.content  # read and release the connection so the replay can reuse it
        r.close()
        if body_pos is not None:
            r.request.body.seek(body_pos)  # type: ignore[union-attr]
        prep = r.request.copy()
        extract_cookies_to_jar(prep._cookies, r.request, r.raw)  # type: ignore[attr-defined]
        prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        self.attach(prep, token)
        prep._token_replayed = renewal or getattr(r.request, "_token_replayed", False)  # type: ignore[attr-defined]
        prep._dpop_nonce_retried = nonce_retry  # type: ignore[attr-defined]
        if renewal:
            metrics.http_replay(self.client)
        if nonce_retry:
            metrics.dpop_nonce_retry("resource")
        replay = r.connection.send(prep, **kwargs)  # type: ignore[attr-defined]
        replay.history = [*r.history, r]
        replay.request = prep
        if "DPoP" in prep.headers:
            self.dpop_nonces.remember(prep.url or "", replay.headers)
        return replay

    def __repr__(self) -> str:
        return f"{type(self).__name__}(replay_unsafe_methods={self.replay_unsafe_methods!r})"


class TokenSession(requests.Session):
    """A ``requests.Session`` of a :class:`NamedClient`: base URL, default timeout, token auth.

    Relative URLs are joined to ``base_url`` taken as a directory (``http://h/api`` + ``orders`` is
    ``http://h/api/orders``); as with :func:`urllib.parse.urljoin`, a leading ``/`` is relative to
    the host (``/orders`` is ``http://h/orders``) and absolute URLs pass through. When the caller
    gives no ``timeout`` the client's applies; an explicit ``timeout=None`` means wait forever, as in
    ``requests``. Closing the session leaves the client's shared connection pool open.
    """

    def __init__(self, client: "NamedClient", auth: TokenAuth | None = None) -> None:
        # requests.Session.__init__ minus its two default HTTPAdapters (a pool manager each), which would be
        # built only to be replaced by the client's shared one; a test compares this with requests.Session().
        self.headers = default_headers()
        self.auth = auth
        self.proxies = {}
        self.hooks = default_hooks()
        self.params = {}
        self.stream = False
        self.verify = True
        self.cert = None
        self.max_redirects = DEFAULT_REDIRECT_LIMIT
        self.trust_env = True
        self.cookies = cookiejar_from_dict({})
        self.adapters = OrderedDict([("https://", client.adapter), ("http://", client.adapter)])
        self.client = client
        self.base_url = client.base_url
        self.timeout = client.timeout

    def url_for(self, url: str | bytes) -> str:
        """``url`` resolved against the base URL (see the class docstring)."""
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        if self.client.appends and _APPENDABLE.fullmatch(url):
            return self.base_url + url  # what urljoin returns for it, without urljoin's ~5 µs
        return urljoin(self.base_url, url)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, self.url_for(url), *args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)  # prepared requests sent directly get it too
        return super().send(request, **kwargs)

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """On a redirect: a DPoP proof is for one method and URI, so make a new one or drop it with the token."""
        super().rebuild_auth(prepared_request, response)
        if "DPoP" not in prepared_request.headers:
            return
        auth = self.auth
        if isinstance(auth, TokenAuth) and "Authorization" in prepared_request.headers and \
                (auth.origin is None or _origin(prepared_request.url) == auth.origin):
            auth.attach(prepared_request, auth.token_source(False))
        else:
            del prepared_request.headers["DPoP"]

    def close(self) -> None:
        """Close adapters the caller mounted; the client's shared adapter stays open."""
        for adapter in self.adapters.values():
            if adapter is not self.client.adapter:
                adapter.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.client.name!r} base_url={self.base_url!r} auth={self.auth!r}>"


class NamedClient:
    """One configured named client; builds sessions that share one connection pool.

    A session per request is cheap: every session mounts the same ``HTTPAdapter``, so calls from
    successive requests (or threads) reuse keep-alive TCP connections, up to ``pool_maxsize`` per host.
    """

    def __init__(self, name: str, base_url: str, *, retry: Sequence[float] = (), timeout: float = 10.0,
                 replay_unsafe_methods: bool = False, pool_maxsize: int = 16) -> None:
        self.name = name
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.retry = tuple(retry)
        self.timeout = timeout
        self.replay_unsafe_methods = replay_unsafe_methods
        #: ``urljoin(base_url, x)`` is ``base_url + x`` for every :data:`_APPENDABLE` x (no query, fragment,
        #: dot segment or empty segment in the base that urljoin would rewrite)
        self.appends = urljoin(self.base_url, "a/b?c#d") == self.base_url + "a/b?c#d" and \
            not urlsplit(self.base_url).query and "#" not in self.base_url
        self.adapter = HTTPAdapter(pool_maxsize=pool_maxsize,
                                   max_retries=BackoffRetry.from_delays(self.retry, client=name))

    def session(self, token_source: TokenSource | None, *, cert: Any = None,
                dpop_nonces: DPoPNonces | None = None) -> TokenSession:
        """A new session; with a ``token_source`` every request carries its token.

        ``cert``: the TLS client certificate of the token's client (RFC 8705), as ``requests`` takes it.
        """
        auth = None
        if token_source is not None:
            auth = TokenAuth(token_source, replay_unsafe_methods=self.replay_unsafe_methods, origin=self.base_url,
                             dpop_nonces=dpop_nonces, client=self.name)
        session = TokenSession(self, auth)
        if cert is not None:
            session.cert = cert
        return session

    def close(self) -> None:
        """Close the shared connection pool (sessions made afterwards reconnect on demand)."""
        self.adapter.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} base_url={self.base_url!r} retry={self.retry!r}>"
