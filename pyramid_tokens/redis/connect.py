"""Redis URLs, parsed and validated in one place, and the redis-py client each one names.

Three topologies, each with a TLS variant (``rediss``):

* ``redis://[user:password@]host:6379/0`` (``unix://`` for a socket) - one server, redis-py's
  ``Redis.from_url`` (any redis-py query option is passed on).
* ``redis+sentinel://[:password@]host1:26379,host2:26379/service_name/db`` - redis-py's ``Sentinel``;
  every call goes to the current master of ``service_name`` (writes and reads that must be fresh),
  found again through the Sentinels after a failover.
* ``redis+cluster://[:password@]host1:7000,host2:7001/`` - redis-py's ``RedisCluster``, which follows
  MOVED/ASK redirections itself.

Query options on every topology: ``socket_timeout`` and ``socket_connect_timeout`` (seconds), and
ours: ``prefix``, ``lock_lease`` (seconds) and ``wait_replicas`` (replicas that must confirm a
rotated token set with ``WAIT``; default 1 when the master has replicas, else 0). Sentinel and
Cluster also take ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_cert_reqs``.
A bad URL is a :class:`~pyramid_tokens.errors.ConfigurationError` naming the setting it came from.

Retries: a single server is retried once at once (a pooled connection the server closed; there is
no failover to wait for, so an unreachable server is a quick error). Sentinel and Cluster retry with
a bounded exponential back-off (about 7 s in all), the time a failover takes. On Sentinel every
reconnect, a command's retry included, asks the Sentinels which master to dial (:class:`SentinelConnection`).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection

from ..errors import ConfigurationError

DEFAULT_PREFIX = "pyramid_tokens:"
#: seconds; a Redis call (connect, or one command's answer) that takes longer is an error
DEFAULT_SOCKET_TIMEOUT = 2.0
#: seconds a lock outlives a holder that stopped renewing it (see :mod:`.lock`)
DEFAULT_LEASE = 10.0
#: Sentinel and Cluster: 16 retries, 50 ms doubling to 500 ms (about 7 s): the length of a failover
#: (the Sentinels' ``down-after-milliseconds`` plus their election and the replica's promotion)
FAILOVER_RETRY = (ExponentialBackoff(cap=0.5, base=0.025), 16)

SCHEMES = {"redis": ("single", False), "rediss": ("single", True), "unix": ("single", False),
           "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
           "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True)}
DEFAULT_PORTS = {"sentinel": 26379, "cluster": 6379}
#: query options of ours, not redis-py's
OWN_OPTIONS = ("prefix", "lock_lease", "wait_replicas")
TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs")


class SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, asking the Sentinels for the master when a command is retried.

    redis-py (8.x) re-opens a connection that failed under a command with ``connect_check_health()``,
    which dials the last master's address again, with a back-off of its own: with that master
    killed, the command is refused until its retries run out, although the Sentinels named a new
    master seconds before. Here the reconnect is one dial of the master the Sentinels name now; the
    command's own retries supply the back-off (no retry loop inside a retry loop).
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self._connect_retry()  # get_master_address(), then one connect_to() it
        super().send_packed_command(command, check_health)


class SentinelSSLConnection(SentinelConnection, SentinelManagedSSLConnection):
    """:class:`SentinelConnection` over TLS."""


@dataclass(frozen=True)
class RedisUrl:
    """One parsed Redis URL; never shows its password."""

    url: str = field(repr=False)  # may carry a password
    topology: str  # "single", "sentinel" or "cluster"
    tls: bool
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    timeouts: dict[str, float] = field(default_factory=dict)
    tls_options: dict[str, str] = field(default_factory=dict)
    prefix: str = DEFAULT_PREFIX
    lock_lease: float = DEFAULT_LEASE
    wait_replicas: int | None = None  # None: 1 when the master has replicas, else 0

    def where(self) -> str:
        """``host:port/db``, ``sentinel SERVICE at h1:p1,h2:p2/db`` or ``cluster h1:p1,...``, for messages."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.hosts)
        if self.topology == "sentinel":
            return f"sentinel {self.service} at {hosts}/{self.db}"
        if self.topology == "cluster":
            return f"cluster {hosts}"
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"{parts.path}/{self.db}"
        return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}/{self.db}"

    def connect(self) -> Any:
        """A new redis-py client for this URL (``Redis`` or ``RedisCluster``), with bounded timeouts."""
        timeouts = {name: DEFAULT_SOCKET_TIMEOUT for name in TIMEOUTS} | self.timeouts
        if self.topology == "single":  # the URL's own options win over these defaults
            return redis.Redis.from_url(split_query(self.url)[0], **timeouts, retry=Retry(NoBackoff(), 1))
        auth = {"username": self.username, "password": self.password}
        tls = {"ssl": True, **self.tls_options} if self.tls else {}
        retry = Retry(*FAILOVER_RETRY)
        if self.topology == "sentinel":
            sentinel = Sentinel(list(self.hosts), sentinel_kwargs={**timeouts, **tls}, **timeouts, **auth, **tls)
            connection_class = SentinelSSLConnection if self.tls else SentinelConnection
            return sentinel.master_for(self.service, db=self.db, retry=retry, connection_class=connection_class)
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in self.hosts], retry=retry,
                            **timeouts, **auth, **tls)


def split_query(url: str) -> tuple[str, dict[str, str]]:
    """``(url without our options, our options)``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OWN_OPTIONS}
    rest = urlencode([(k, v) for k, v in query if k not in OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), ours


def _number(setting: str, name: str, text: str, kind: type = float) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise ConfigurationError(setting, f"{name}: expected a number", text) from None
    if value < 0 or (kind is float and value == 0):
        raise ConfigurationError(setting, f"{name}: must be positive", text)
    return value


def _hosts(setting: str, netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        item = item.strip()
        if item.startswith("["):  # [IPv6]:port
            host, _, port = item[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        port = port or str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(setting, "expected host:port[,host:port...] in the Redis URL")
        hosts.append((host, int(port)))
    return tuple(hosts)


def parse_url(url: str, setting: str = "tokens.store") -> RedisUrl:
    """Validate ``url`` (from ``setting``); a :class:`ConfigurationError` naming ``setting`` when it is bad."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(setting, "expected a redis://, redis+sentinel:// or redis+cluster:// URL")
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ConfigurationError(setting, f"unknown Redis URL scheme {scheme[:20]!r}; expected one of "
                                          + ", ".join(SCHEMES))
    topology, tls = SCHEMES[scheme]
    _, ours = split_query(url)
    options: dict[str, Any] = {"prefix": ours.get("prefix", DEFAULT_PREFIX)}
    if "lock_lease" in ours:
        options["lock_lease"] = _number(setting, "lock_lease", ours["lock_lease"])
    if "wait_replicas" in ours:
        options["wait_replicas"] = _number(setting, "wait_replicas", ours["wait_replicas"], int)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    timeouts = {name: _number(setting, name, query[name]) for name in TIMEOUTS if name in query}
    if topology == "single":
        try:
            db = int(parts.path.strip("/") or query.get("db") or 0) if scheme != "unix" else int(query.get("db") or 0)
        except ValueError:
            raise ConfigurationError(setting, "the Redis database must be a number") from None
        return RedisUrl(url, topology, tls, db=db, timeouts=timeouts, **options)
    unknown = set(query) - set(OWN_OPTIONS) - set(TIMEOUTS) - set(TLS_OPTIONS)
    if unknown:
        raise ConfigurationError(setting, "unknown Redis URL options: " + ", ".join(sorted(unknown))[:100])
    userinfo, at, netloc = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if at else ("", "", "")
    hosts = _hosts(setting, netloc, DEFAULT_PORTS[topology])
    path = [unquote(p) for p in parts.path.split("/") if p]
    service, db = "", 0
    if topology == "sentinel":
        if not path or len(path) > 2:
            raise ConfigurationError(setting, "expected redis+sentinel://host:port,.../service_name[/db]")
        service = path[0]
        if len(path) == 2:
            if not path[1].isdigit():
                raise ConfigurationError(setting, "the Redis database must be a number")
            db = int(path[1])
    elif path not in ([], ["0"]):
        raise ConfigurationError(setting, "Redis Cluster has database 0 only: expected redis+cluster://host:port,.../")
    return RedisUrl(url, topology, tls, hosts, service, db, unquote(username) or None, unquote(password) or None,
                    timeouts, {k: v for k, v in query.items() if k in TLS_OPTIONS}, **options)


_clients: dict[str, Any] = {}
_clients_guard = threading.Lock()


def shared_client(url: RedisUrl) -> Any:
    """One redis-py client (one connection pool) per URL and process."""
    with _clients_guard:
        client = _clients.get(url.url)
        if client is None:
            client = _clients[url.url] = url.connect()
        return client
