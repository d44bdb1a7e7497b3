"""Fixtures for the Redis layer: real ``redis-server`` processes on free loopback ports, in temp dirs.

``redis_server`` (session scope) is one server per pytest process, so each xdist worker has its
own. ``redis_url`` is database 0 of it, emptied before each test. ``start_redis()`` starts a further
server that a test may stop, freeze or kill (Redis going down).

The production topologies, each started once per pytest process that runs a test of it (tests of
one topology carry ``xdist_group``, so ``--dist loadgroup`` keeps them on one worker):

* ``redis_sentinel`` - a master, its replica and a Sentinel watching them (``redis-sentinel``);
* ``redis_cluster`` - three masters joined by ``redis-cli --cluster create``.

Without ``redis-server`` (or ``redis-sentinel``, ``redis-cli``) the tests skip with the reason -
except under CI (``CI=true``), where they fail: CI installs them.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")


def require_binary(name: str, package: str = "redis-server") -> str:
    binary = shutil.which(name)
    if binary is None:
        reason = f"{name} is not installed (apt-get install -y {package}; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}: CI must run the Redis tests", pytrace=False)
        pytest.skip(reason)
    return binary


def require_redis_server() -> str:
    return require_binary("redis-server")


def free_port(below: int = 65536) -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < below:
            return port


class RedisServer:
    """A ``redis-server`` on 127.0.0.1, no persistence, its files in ``directory``."""

    def __init__(self, directory, *args: str, port: int = 0) -> None:
        self.directory = str(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.args = args  # further redis-server options
        self.process: subprocess.Popen | None = None
        self.port = port  # 0: a free one

    def command(self, binary: str) -> list[str]:
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory, "--logfile", os.path.join(self.directory, f"redis-{self.port}.log"),
                *self.args]

    def start(self) -> "RedisServer":
        binary = require_redis_server()
        fixed = bool(self.port)
        for _ in range(5):  # the free port may be taken between probing and binding: try another
            if not fixed:
                self.port = free_port(below=55000)  # a Cluster node also listens on port + 10000
            self.process = subprocess.Popen(self.command(binary), stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with redis.Redis(port=self.port, socket_timeout=0.5) as client:
                        if client.ping():
                            return self
                except redis.ConnectionError:
                    time.sleep(0.02)
            self.stop()
        raise RuntimeError(f"redis-server did not start; see the logs in {self.directory}")

    def url(self, db: int = 0, **options: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"redis://127.0.0.1:{self.port}/{db}" + (f"?{query}" if query else "")

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=2)

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung Redis)."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as a crashed host's would."""
        self.thaw()
        self.process.kill()
        self.process.wait(5)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """Database 0 of this worker's server, empty."""
    with redis_server.client(0) as client:
        client.flushdb()
    return redis_server.url(0)


@pytest.fixture
def start_redis(tmp_path):
    """``start_redis()`` -> a further :class:`RedisServer` of this test's own (stopped at teardown)."""
    servers = []

    def factory() -> RedisServer:
        directory = tmp_path / f"redis{len(servers)}"
        directory.mkdir()
        servers.append(RedisServer(directory).start())
        return servers[-1]

    yield factory
    for server in servers:
        server.stop()


class SentinelServer(RedisServer):
    """A ``redis-sentinel`` watching ``service`` at ``master_port`` (quorum 1, failure detection within 2 s: less flaps on a loaded CI machine)."""

    def __init__(self, directory, service: str, master_port: int) -> None:
        super().__init__(directory)
        self.service, self.master_port = service, master_port

    def command(self, binary: str) -> list[str]:
        config = os.path.join(self.directory, f"sentinel-{self.port}.conf")  # Sentinel rewrites it
        with open(config, "w") as out:
            out.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                      f"logfile {self.directory}/sentinel-{self.port}.log\n"
                      f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 1\n"
                      f"sentinel down-after-milliseconds {self.service} 2000\n"
                      f"sentinel failover-timeout {self.service} 4000\n")
        return [require_binary("redis-sentinel", "redis-sentinel"), config]


class Sentinel:
    """A master, its replica and a Sentinel; ``url()`` is the ``redis+sentinel://`` URL of the service."""

    SERVICE = "tokens"

    def __init__(self, directory) -> None:
        self.directory = directory
        quick = ("--repl-diskless-sync-delay", "0")  # a replica syncs at once, not after 5 s
        self.master = RedisServer(directory / "a", *quick).start()
        self.replica = RedisServer(directory / "b", *quick, "--replicaof", "127.0.0.1", str(self.master.port)).start()
        self.sentinel = SentinelServer(directory / "s", self.SERVICE, self.master.port).start()
        self.wait_until_healthy()

    def url(self, db: int = 0, **options: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{self.SERVICE}/{db}" + (f"?{query}" if query else "")

    def master_port(self) -> int:
        with redis.Redis(port=self.sentinel.port, socket_timeout=1) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(self.SERVICE)[1])

    def servers(self) -> list[RedisServer]:
        return [self.master, self.replica]

    def current_master(self) -> RedisServer:
        port = self.master_port()
        return next(server for server in self.servers() if server.port == port)

    def client(self, db: int = 0) -> redis.Redis:
        """A plain client of the current master."""
        return self.current_master().client(db)

    def wait_until_healthy(self, timeout: float = 20) -> None:
        """Until the Sentinel sees a master with one connected replica in sync, and knows about it.

        A demoted master is sent ``REPLICAOF`` at once, as the Sentinel would on its next look at it
        (up to 10 s later), so that the next test starts from a healthy pair without that wait.
        """
        deadline = time.monotonic() + timeout
        master = self.master_port()
        for server in self.servers():
            if server.port != master and server.process.poll() is None:
                with server.client() as client:
                    if client.info("replication")["role"] == "master":
                        client.replicaof("127.0.0.1", master)
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.sentinel.port, socket_timeout=1) as sentinel:
                    master = sentinel.sentinel_master(self.SERVICE)
                if master["flags"] == "master" and master["num-slaves"] >= 1:
                    with self.current_master().client() as client:
                        info = client.info("replication")
                    if info["role"] == "master" and info["connected_slaves"] >= 1 and \
                            info["slave0"]["state"] == "online":
                        return
            except (redis.RedisError, ValueError, StopIteration):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinel topology did not become healthy; see the logs in {self.directory}")

    def failover(self) -> None:
        """``SENTINEL FAILOVER``: the replica becomes the master (returns when the Sentinel says so)."""
        before = self.master_port()
        with redis.Redis(port=self.sentinel.port, socket_timeout=2) as sentinel:
            sentinel.execute_command("SENTINEL FAILOVER", self.SERVICE)
        self._wait_for_new_master(before)

    def _wait_for_new_master(self, before: int, timeout: float = 20) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.master_port() != before:
                    return time.monotonic() - started
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the Sentinel did not fail over in time")

    def restart(self, server: RedisServer) -> None:
        """Start a killed server again on its port; the Sentinel makes it a replica of the new master."""
        server.start()
        self.wait_until_healthy()

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


class Cluster:
    """Three masters joined by ``redis-cli --cluster create``; ``url()`` is the ``redis+cluster://`` URL."""

    def __init__(self, directory) -> None:
        self.directory = directory
        cli = require_binary("redis-cli", "redis-tools")
        self.nodes = [RedisServer(directory / f"n{i}", "--cluster-enabled", "yes", "--cluster-config-file",
                                  "nodes.conf", "--cluster-node-timeout", "2000").start() for i in range(3)]
        subprocess.run([cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes], "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = []
            for node in self.nodes:
                with node.client() as client:
                    states.append(client.cluster("info")["cluster_state"])
            if states == ["ok"] * 3:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the Cluster did not become ready; see the logs in {directory}")

    def url(self, **options: object) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/" + \
            (f"?{query}" if query else "")

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port, socket_timeout=2)

    def move_slot(self, key: str) -> "RedisServer":
        """Migrate the slot of ``key`` (keys and ownership) to another node, as a resharding does; returns it."""
        with self.client() as cluster:
            slot = cluster.keyslot(key)
            owner = cluster.get_node_from_key(key).port
        source = next(node for node in self.nodes if node.port == owner)
        target = next(node for node in self.nodes if node.port != owner)
        with source.client() as src, target.client() as dst:
            source_id, target_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for node in self.nodes:
                with node.client() as client:
                    client.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        return target

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as client:
                client.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory):
    topology = Sentinel(tmp_path_factory.mktemp("sentinel"))
    yield topology
    topology.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    topology = Cluster(tmp_path_factory.mktemp("cluster"))
    yield topology
    topology.stop()
