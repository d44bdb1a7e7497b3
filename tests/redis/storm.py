"""The scale-out rig: worker processes (waitress, 16 threads each) sharing sessions and tokens in Redis.

:func:`farm` starts the development provider in the test process (refresh-token rotation,
2-second access tokens) and four workers whose settings point at one Redis URL (one server,
Sentinel or Cluster); the workers refresh 1 s before expiry (``tokens.refresh_before_expiration = 1``),
so a new expiry window opens every second. :func:`storm` is 4 processes x 16 threads asking for the
user's token until a deadline. Everything talks over real sockets on loopback.
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import requests

from pyramid_tokens.devidp import DevClient, start_provider
from tests.support.provider import browser_login

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
class Farm:
    idp: object
    workers: list[Worker]
    redis: object
    url: str
    refresh_times: list[float] = field(default_factory=list)
    #: the workers' settings, for a further process of the same app
    settings: dict = field(default_factory=dict)

    def login(self, username: str) -> tuple[dict, str]:
        """Log in through worker 0 like a browser; returns (Cookie header, handle of the token set)."""
        browser = requests.Session()
        start = browser.get(self.workers[0].url + "/login", allow_redirects=False, timeout=10)
        assert start.status_code == 302, start.text
        done = browser.get(browser_login(start.headers["Location"], username), allow_redirects=False, timeout=10)
        assert done.status_code == 302, done.text
        [handle] = [h for h, record in self.user_records().items() if record.get("sub") == username]  # deny-list entries aside
        return {"Cookie": f"sid={browser.cookies['sid']}"}, handle

    def user_records(self) -> dict[str, dict]:
        records = {}
        for key in self.redis.scan_iter(PREFIX + "{*}"):  # a record is {prefix}{HANDLE}
            name = key.decode()[len(PREFIX) + 1:-1]
            if not name.startswith("client:"):
                records[name] = json.loads(self.redis.get(key))
        return records

    def http_token(self, url: str, headers: dict) -> dict:
        response = requests.get(url + "/token", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

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


@contextmanager
def farm(url: str, redis: Any) -> Iterator[Farm]:
    """The provider and four workers with sessions, user tokens and client tokens at ``url``."""
    idp = start_provider(clients=[DevClient("worker", "worker-secret", grant_types=["client_credentials"],
                                            scopes="api")], threads=16)
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
        rig = Farm(idp, workers, redis, url, settings=settings)
        counter = idp.provider.counter
        issued = counter.token_issued

        def recording(grant_type, client_id):  # when each refresh happened, for the per-window check
            if grant_type == "refresh_token":
                rig.refresh_times.append(time.monotonic())
            issued(grant_type, client_id)

        counter.token_issued = recording
        yield rig
    finally:
        for worker in workers:
            worker.stop()
        redis.close()
        idp.stop()


Result = tuple  # (sent, answered, status, body)


def storm(rig: Farm, headers: dict, seconds: float, during: Callable[[], None] | None = None,
          at: float = 0.0) -> list[Result]:
    """Every thread of every worker asks for the token until ``seconds`` pass; ``during()`` runs at ``at`` s."""
    results: list[Result] = []
    started = time.monotonic()
    deadline = started + seconds

    def ask(i: int) -> None:
        worker = rig.workers[i % PROCESSES]
        with requests.Session() as http:
            while time.monotonic() < deadline:
                sent = time.time()
                response = http.get(worker.url + "/token", headers=headers, timeout=30)
                results.append((sent, time.time(), response.status_code,
                                response.json() if response.status_code == 200 else response.text))
                time.sleep(0.01)

    with ThreadPoolExecutor(PROCESSES * THREADS + 1) as pool:
        asked = [pool.submit(ask, i) for i in range(PROCESSES * THREADS)]
        if during is not None:
            time.sleep(max(0.0, started + at - time.monotonic()))
            during()
        for future in asked:
            future.result()
    return results


def max_pause(results: list[Result]) -> float:
    """The longest any request waited for its answer, seconds."""
    return max(answered - sent for sent, answered, *_ in results)


def check_one_refresh_per_window(rig: Farm, handle: str, login_record: dict, results: list[Result], refreshes: int,
                                 invalid_grants: int, first_refresh: int) -> None:
    """The storm's promise: no failure, one refresh per window, as soon as it opened, no token lost."""
    cluster = rig
    failures = [r for r in results if r[2] != 200]
    assert not failures, failures[:3]
    assert cluster.invalid_grants() == invalid_grants
    done = cluster.refreshes() - refreshes
    final = cluster.record(handle)
    # one refresh per window: the provider saw exactly as many refreshes as the token set has generations
    generations = final["generation"] - login_record["generation"]
    assert done >= 3, f"{done} refreshes in the storm, {generations} generations"
    assert generations == done == final["refreshes"] + login_record["generation"] - 1, \
        f"{done} refreshes at the provider, {generations} new generations, {final['refreshes']} counted"
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


