"""Scale-out: four real worker processes (waitress, 16 threads each) sharing sessions and tokens in Redis.

The provider runs in the test process with refresh-token rotation and 2-second access tokens;
the workers refresh 1 s before expiry (``tokens.refresh_before_expiration = 1``), so a new expiry
window opens every second. Everything talks over real sockets on loopback.
"""
from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
import requests

from pyramid_tokens.devidp import DevClient, start_provider
from pyramid_tokens.devidp.testing import browser_login

PROCESSES, THREADS = 4, 16
LIFETIME, MARGIN = 2, 1
WINDOW = LIFETIME - MARGIN
WORKER = os.path.join(os.path.dirname(__file__), "worker.py")
PREFIX = "pyramid_tokens:"


@dataclass
class Worker:
    process: subprocess.Popen
    url: str = ""
    pid: int = 0

    @classmethod
    def spawn(cls, settings: dict, threads: int) -> "Worker":
        process = subprocess.Popen([sys.executable, WORKER, json.dumps(settings), str(threads)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return cls(process)

    def wait_ready(self, timeout: float = 30) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError("worker did not start in time")
        line = self.process.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"worker failed to start (exit code {self.process.poll()})")
        self.url, self.pid = line[1], int(line[2])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # the worker stops serving and exits
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process.stdout.close()


@dataclass
class Cluster:
    idp: object
    workers: list[Worker]
    redis: object
    url: str
    refresh_times: list[float] = field(default_factory=list)

    def login(self, username: str) -> tuple[dict, str]:
        """Log in through worker 0 like a browser; returns (Cookie header, handle of the token set)."""
        browser = requests.Session()
        start = browser.get(self.workers[0].url + "/login", allow_redirects=False, timeout=10)
        assert start.status_code == 302, start.text
        done = browser.get(browser_login(start.headers["Location"], username), allow_redirects=False, timeout=10)
        assert done.status_code == 302, done.text
        [handle] = [h for h, record in self.user_records().items() if record["sub"] == username]
        return {"Cookie": f"sid={browser.cookies['sid']}"}, handle

    def user_records(self) -> dict[str, dict]:
        records = {}
        for key in self.redis.scan_iter(PREFIX + "{*}"):  # a record is {prefix}{HANDLE}
            name = key.decode()[len(PREFIX) + 1:-1]
            if not name.startswith("client:"):
                records[name] = json.loads(self.redis.get(key))
        return records

    def record(self, handle: str) -> dict:
        return json.loads(self.redis.get(PREFIX + "{" + handle + "}"))

    def counters(self) -> dict:
        return self.idp.provider.counters()

    def refreshes(self) -> int:
        return self.counters()["token"]["refresh_token"]

    def invalid_grants(self) -> int:
        return self.counters()["token_errors"].get("invalid_grant", 0)


def wait_until_due(record: dict) -> None:
    """Sleep until the record's access token is inside the refresh margin."""
    time.sleep(max(0.0, record["access"]["expires_at"] - MARGIN - time.time() + 0.05))


@pytest.fixture(scope="module")
def cluster(redis_server):
    idp = start_provider(clients=[DevClient("worker", "worker-secret", grant_types=["client_credentials"],
                                            scopes="api")], threads=16)
    url = redis_server.url(1)  # database 1: this module's own
    redis = redis_server.client(1)
    redis.flushdb()
    settings = {
        "oidc.authority": idp.issuer, "oidc.client_id": "web", "oidc.client_secret": "web-secret",
        "oidc.scope": "openid profile offline_access api",
        "tokens.store": url, "tokens.cache": url, "tokens.refresh_before_expiration": str(MARGIN),
        "tokens.clients.worker.authority": idp.issuer, "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret", "tokens.clients.worker.scope": "api",
        "session.type": "redis_json", "session.url": url, "session.key": "sid", "session.secret": "s" * 32,
        "session.data_serializer": "json", "session.httponly": "true", "session.samesite": "Lax",
        "session.timeout": "3600",
    }
    workers = [Worker.spawn(settings, THREADS) for _ in range(PROCESSES)]
    try:
        for worker in workers:
            worker.wait_ready()
        idp.provider.add_client(DevClient(
            "web", "web-secret", redirect_uris=[w.url + "/callback" for w in workers],
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
            scopes="openid profile offline_access api", access_token_lifetime=LIFETIME, id_token_lifetime=300))
        cluster = Cluster(idp, workers, redis, url)
        counter = idp.provider.counter
        issued = counter.token_issued

        def recording(grant_type, client_id):  # when each refresh happened, for the per-window check
            if grant_type == "refresh_token":
                cluster.refresh_times.append(time.monotonic())
            issued(grant_type, client_id)

        counter.token_issued = recording
        yield cluster
    finally:
        for worker in workers:
            worker.stop()
        redis.close()
        idp.stop()


def test_four_processes_of_sixteen_threads_refresh_once_per_expiry_window_under_rotation(cluster):
    headers, handle = cluster.login("storm")
    login_record = cluster.record(handle)
    refreshes, invalid_grants = cluster.refreshes(), cluster.invalid_grants()
    first_refresh = len(cluster.refresh_times)
    results = []  # (sent, answered, status, body)
    deadline = time.monotonic() + 3 * WINDOW + 0.4  # three expiry windows

    def storm(i: int) -> None:
        worker = cluster.workers[i % PROCESSES]
        with requests.Session() as http:
            while time.monotonic() < deadline:
                sent = time.time()
                response = http.get(worker.url + "/token", headers=headers, timeout=30)
                results.append((sent, time.time(), response.status_code,
                                response.json() if response.status_code == 200 else response.text))
                time.sleep(0.01)

    with ThreadPoolExecutor(PROCESSES * THREADS) as pool:
        list(pool.map(storm, range(PROCESSES * THREADS)))

    failures = [r for r in results if r[2] != 200]
    assert not failures, failures[:3]
    assert cluster.invalid_grants() == invalid_grants
    done = cluster.refreshes() - refreshes
    final = cluster.record(handle)
    # one refresh per window: the provider saw exactly as many refreshes as the token set has generations
    assert done >= 3 and final["generation"] == login_record["generation"] + done == 1 + final["refreshes"]
    times = cluster.refresh_times[first_refresh:]
    assert all(later - earlier > 0.8 * WINDOW for earlier, later in zip(times, times[1:])), times
    # ...and each one as soon as the window opened: the last token is not yet due when the storm ended
    assert final["access"]["expires_at"] - MARGIN > max(sent for sent, *_ in results) - 0.5
    # no lost token: the stored refresh token is the one the provider will accept next
    assert cluster.idp.provider.state.peek_refresh_token(final["refresh_token"]) is not None
    # every answer was a token valid when it was given, and all four processes answered
    assert all(body["expires_at"] > answered for _, answered, _, body in results)
    assert len({body["access_token"] for *_, body in results}) <= done + 1
    assert {body["pid"] for *_, body in results} == {w.pid for w in cluster.workers}


def test_a_process_that_meets_a_pre_rotation_token_set_adopts_the_rotation_record_from_redis(cluster):
    """A stale token set (an older snapshot put back, a failover that lost the last write) must not be refreshed."""
    headers, handle = cluster.login("stale")
    stale = cluster.record(handle)
    wait_until_due(stale)
    renewed = requests.get(cluster.workers[0].url + "/token", headers=headers, timeout=10).json()
    refreshes, invalid_grants = cluster.refreshes(), cluster.invalid_grants()
    assert cluster.record(handle)["generation"] == 2
    cluster.redis.set(PREFIX + "{" + handle + "}", json.dumps(stale), keepttl=True)  # the pre-rotation token set is back

    answer = requests.get(cluster.workers[2].url + "/token", headers=headers, timeout=10).json()

    assert answer["pid"] != renewed["pid"]
    assert answer["access_token"] == renewed["access_token"]  # the result of the rotation, not a new refresh
    assert cluster.refreshes() == refreshes and cluster.invalid_grants() == invalid_grants
    assert cluster.record(handle)["generation"] == 2


def test_a_lock_left_by_a_killed_process_expires_and_the_next_caller_refreshes(cluster):
    headers, handle = cluster.login("killed")
    record = cluster.record(handle)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from pyramid_tokens.redis import RedisStore\n"
         "lock = RedisStore(sys.argv[1]).lock(sys.argv[2], 5)\n"
         "lock.__enter__()\n"
         "print('LOCKED', flush=True)\n"
         "time.sleep(60)\n", cluster.url + "?lock_lease=1", handle],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        time.sleep(0.4)  # its watchdog renews the lease once at least
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        holder.stdout.close()
    wait_until_due(record)
    refreshes = cluster.refreshes()
    left = cluster.redis.pttl(f"{PREFIX}lock:{{{handle}}}")
    assert 0 < left <= 1000  # the dead process's lock is still there, for at most one lease
    started = time.monotonic()
    response = requests.get(cluster.workers[1].url + "/token", headers=headers, timeout=10)
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["access_token"] != record["access"]["access_token"]
    assert cluster.refreshes() == refreshes + 1 and cluster.record(handle)["generation"] == 2
    assert left / 1000 - 0.1 < waited < left / 1000 + 1.0


def test_one_client_credentials_request_serves_every_process(cluster):
    for key in cluster.redis.scan_iter(PREFIX + "{client:*"):
        cluster.redis.delete(key)
    before = cluster.counters()["by_client"].get("worker", {}).get("client_credentials", 0)
    barrier = threading.Barrier(PROCESSES * THREADS)

    def ask(i: int) -> dict:
        barrier.wait(10)
        return requests.get(cluster.workers[i % PROCESSES].url + "/client-token", params={"name": "worker"},
                            timeout=30).json()

    with ThreadPoolExecutor(PROCESSES * THREADS) as pool:
        answers = list(pool.map(ask, range(PROCESSES * THREADS)))
    assert len({a["access_token"] for a in answers}) == 1
    assert len({a["pid"] for a in answers}) == PROCESSES
    assert cluster.counters()["by_client"]["worker"]["client_credentials"] == before + 1
