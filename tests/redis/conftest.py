"""Fixtures for the Redis layer: real ``redis-server`` processes on free loopback ports, in temp dirs.

``redis_server`` (session scope) is one server per pytest process, so each xdist worker has its
own. ``redis_url`` is database 0 of it, emptied before each test. ``start_redis()`` starts a further
server that a test may stop, freeze or kill (Redis going down). Without ``redis-server`` the tests
skip with the reason - except under CI (``CI=true``), where they fail: CI installs it.
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


def require_redis_server() -> str:
    if REDIS_SERVER is None:
        reason = "redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason}: CI must run the Redis tests", pytrace=False)
        pytest.skip(reason)
    return REDIS_SERVER


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A ``redis-server`` on 127.0.0.1, no persistence, its files in ``directory``."""

    def __init__(self, directory) -> None:
        self.directory = str(directory)
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> "RedisServer":
        binary = require_redis_server()
        for _ in range(5):  # the free port may be taken between probing and binding: try another
            self.port = free_port()
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self.directory, "--logfile", os.path.join(self.directory, f"redis-{self.port}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
