"""Refresh storm: many worker processes x threads asking for the same user's token as it expires.

    python benchmarks/refresh_storm.py                       # about a minute on 2 cores
    python benchmarks/refresh_storm.py --processes 4 --threads 16 --windows 4 --lifetime 3 --margin 1

The development provider runs in this process (refresh-token rotation on, ``--lifetime`` second
access tokens) and counts every refresh; ``redis-server`` is started on a free loopback port in a
temp dir. Each mode starts real WSGI workers (waitress, ``--threads`` threads each, in their own
processes), logs one user in through them like a browser, and then ``processes x threads`` client
threads call ``GET /token`` (a view that needs the user's access token) without pause (10 ms think
time) through ``--windows`` expiry windows (``lifetime - margin`` seconds each). Modes:

* ``memory``  - 1 process, tokens in its memory (``tokens.store = session`` with memory sessions).
* ``redis``   - N processes, sessions (``redis_json``) and tokens in Redis: cross-process lock, rotation
  records in Redis, generation compare-and-set.
* ``naive``   - the baseline: the same N processes and Redis store, but the lock is in-process only
  and rotation records stay in each process (what an in-process lock gives you, as in the .NET
  library): each process refreshes on its own with the refresh token it read.
* ``sentinel`` - the ``redis`` mode on a master + replica + Sentinel (``redis+sentinel://``).
* ``cluster``  - the ``redis`` mode on a 3-master Redis Cluster (``redis+cluster://``).
* ``failover`` - ``sentinel`` with ``SENTINEL FAILOVER`` 1.5 windows into the storm; ``killed`` - the
  same with the master process killed (SIGKILL) instead.

Reported per mode: refreshes the provider counted in each expiry window, ``invalid_grant`` answers,
failed requests (anything but 200, e.g. the 401 of a user logged out by a lost rotation), the longest
any request waited (max pause), whether the login survived (its stored refresh token is still the live one at the provider), and p50/p99 latency;
then ratios of ``redis`` against ``naive`` from the same run. Loopback only; every loop is bounded by time.
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.abspath(__file__)


# -- the worker process ---------------------------------------------------------------------------------
def worker_main(settings_json: str, threads: int, naive: bool) -> None:
    import logging

    from pyramid.config import Configurator

    from pyramid_tokens.devidp.server import serve
    from pyramid_tokens.stores import PROCESS_LOCKS, MemoryStore

    logging.basicConfig(level=logging.ERROR)

    def token_view(request):
        token = request.get_user_access_token()
        return {"access_token": token.access_token, "pid": os.getpid()}

    config = Configurator(settings=json.loads(settings_json))
    config.include("pyramid_tokens")
    config.add_route("token", "/token")
    config.add_view(token_view, route_name="token", renderer="json")
    app = config.make_wsgi_app()
    if naive:  # the baseline: single flight inside this process only, rotation records in this process only
        users = app.registry["pyramid_tokens.manager"].user_tokens
        users.store.lock = lambda key, timeout=30.0: PROCESS_LOCKS.hold(f"naive:{key}", timeout)
        users.rotations = MemoryStore()
    server = serve(app, threads=threads)
    print("READY", server.url, flush=True)
    sys.stdin.read()
    server.stop()


# -- the parent ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(directory: str) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("refresh_storm: redis-server is not installed (apt-get install -y redis-server)")
    import redis

    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", directory, "--logfile", os.path.join(directory, "log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with redis.Redis(port=port, socket_timeout=0.5) as client:
                client.ping()
                return process, port
        except redis.ConnectionError:
            time.sleep(0.02)
    process.kill()
    sys.exit("refresh_storm: redis-server did not start")


def start_server(directory: str, *args: str) -> tuple[subprocess.Popen, int]:
    """A further ``redis-server`` (with ``args``) on a free port below 55000 (Cluster bus: port + 10000)."""
    import redis

    os.makedirs(directory, exist_ok=True)
    while (port := free_port()) >= 55000:
        pass
    process = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--dir", directory, "--repl-diskless-sync-delay", "0", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        try:
            with redis.Redis(port=port, socket_timeout=0.5) as client:
                client.ping()
                return process, port
        except redis.ConnectionError:
            time.sleep(0.02)
    sys.exit("refresh_storm: redis-server did not start")


def start_sentinel(directory: str) -> tuple[list[subprocess.Popen], str, dict]:
    """Master, replica and one Sentinel (service ``tokens``); returns processes, URL and their ports."""
    import redis

    if not shutil.which("redis-sentinel"):
        sys.exit("refresh_storm: redis-sentinel is not installed (apt-get install -y redis-sentinel)")
    master, master_port = start_server(f"{directory}/master")
    replica, replica_port = start_server(f"{directory}/replica", "--replicaof", "127.0.0.1", str(master_port))
    port = free_port()
    config = f"{directory}/sentinel.conf"
    with open(config, "w") as out:
        out.write(f"port {port}\nbind 127.0.0.1\ndir {directory}\nsentinel monitor tokens 127.0.0.1 {master_port} 1\n"
                  "sentinel down-after-milliseconds tokens 1000\nsentinel failover-timeout tokens 4000\n")
    sentinel = subprocess.Popen([shutil.which("redis-sentinel"), config], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with redis.Redis(port=port, socket_timeout=0.5) as client:
                if client.sentinel_master("tokens")["num-slaves"] >= 1:
                    break
        except (redis.RedisError, KeyError):
            pass
        time.sleep(0.1)
    ports = {"sentinel": port, master_port: master, replica_port: replica}
    return [master, replica, sentinel], f"redis+sentinel://127.0.0.1:{port}/tokens", ports


def start_cluster(directory: str) -> tuple[list[subprocess.Popen], str]:
    import redis

    nodes = [start_server(f"{directory}/node{i}", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
             for i in range(3)]
    subprocess.run([shutil.which("redis-cli"), "--cluster", "create", *[f"127.0.0.1:{p}" for _, p in nodes],
                    "--cluster-yes"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = []
        for _, port in nodes:
            with redis.Redis(port=port, socket_timeout=0.5) as client:
                states.append(client.cluster("info")["cluster_state"])
        if states == ["ok"] * 3:
            break
        time.sleep(0.1)
    return [p for p, _ in nodes], "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for _, p in nodes) + "/"


def fail_over(ports: dict, kill: bool) -> None:
    """``SENTINEL FAILOVER``, or SIGKILL to the current master."""
    import redis

    with redis.Redis(port=ports["sentinel"], socket_timeout=2) as sentinel:
        if kill:
            ports[int(sentinel.sentinel_get_master_addr_by_name("tokens")[1])].kill()
        else:
            sentinel.execute_command("SENTINEL FAILOVER", "tokens")


def spawn_workers(count: int, settings: dict, threads: int, naive: bool) -> list[tuple[subprocess.Popen, str]]:
    processes = [subprocess.Popen([sys.executable, HERE, "--worker", json.dumps(settings), str(threads),
                                   "naive" if naive else "coordinated"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for _ in range(count)]
    workers = []
    for process in processes:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(30) and process.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise SystemExit("refresh_storm: a worker did not start")
        workers.append((process, ready[1]))
    return workers


def stop_workers(workers) -> None:
    for process, _ in workers:
        process.stdin.close()
    for process, _ in workers:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        process.stdout.close()


@dataclass
class Result:
    mode: str
    shape: str
    requests: int = 0
    per_window: list[int] = field(default_factory=list)
    refreshes: int = 0
    invalid_grant: int = 0
    failures: int = 0
    login_survived: bool = False
    p50: float = 0.0
    p99: float = 0.0
    max_pause: float = 0.0


def windows_of(times: list[float], window: float) -> list[int]:
    """Refresh events grouped into expiry windows: a gap of more than half a window starts a new one."""
    groups: list[int] = []
    last = None
    for t in sorted(times):
        if last is None or t - last > window / 2:
            groups.append(0)
        groups[-1] += 1
        last = t
    return groups


def run_mode(mode: str, args, idp, redis_url: str | None, refresh_times: list[float],
             during: Any = None) -> Result:
    import requests

    from pyramid_tokens.devidp import DevClient

    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repo: tests.support (not in the wheel)
    from tests.support.provider import browser_login

    processes = 1 if mode in ("memory", "redis-1") else args.processes
    settings = {
        "oidc.authority": idp.issuer, "oidc.client_id": "web", "oidc.client_secret": "web-secret",
        "oidc.scope": "openid profile offline_access api", "oidc.userinfo": "false",
        "tokens.refresh_before_expiration": str(args.margin),
        "session.key": "sid", "session.secret": "benchmark-session-secret-" + "x" * 8,
        "session.data_serializer": "json", "session.httponly": "true", "session.samesite": "Lax",
    }
    if mode == "memory":
        settings.update({"session.type": "memory", "tokens.store": "session"})
    else:
        settings.update({"session.type": "redis_json", "session.url": redis_url, "tokens.store": redis_url,
                         "session.timeout": "3600"})
    workers = spawn_workers(processes, settings, args.threads, naive=mode == "naive")
    try:
        idp.provider.add_client(DevClient(
            "web", "web-secret", redirect_uris=[url + "/callback" for _, url in workers],
            grant_types=["authorization_code", "refresh_token"], scopes="openid profile offline_access api",
            access_token_lifetime=args.lifetime, id_token_lifetime=300))
        browser = requests.Session()
        start = browser.get(workers[0][1] + "/login", allow_redirects=False, timeout=10)
        browser.get(browser_login(start.headers["Location"], f"user-{mode}"), allow_redirects=False, timeout=10)
        cookie = {"Cookie": f"sid={browser.cookies['sid']}"}
        before = idp.provider.counters()
        first_event = len(refresh_times)
        window = args.lifetime - args.margin
        deadline = time.monotonic() + args.windows * window + 0.3
        latencies: list[float] = []
        statuses: list[int] = []
        storm_started = time.monotonic()

        def storm(i: int) -> None:
            url = workers[i % processes][1] + "/token"
            with requests.Session() as http:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    status = http.get(url, headers=cookie, timeout=30).status_code
                    latencies.append(time.perf_counter() - started)
                    statuses.append(status)
                    time.sleep(0.01)

        with ThreadPoolExecutor(processes * args.threads) as pool:
            asked = [pool.submit(storm, i) for i in range(processes * args.threads)]
            if during is not None:  # a failover in the middle of the second window
                time.sleep(max(0.0, storm_started + 1.5 * window - time.monotonic()))
                during()
            for future in asked:
                future.result()
        after = idp.provider.counters()
        result = Result(mode, f"{processes}x{args.threads}", requests=len(statuses))
        result.refreshes = after["token"]["refresh_token"] - before["token"]["refresh_token"]
        result.per_window = windows_of(refresh_times[first_event:], window)
        result.invalid_grant = after["token_errors"].get("invalid_grant", 0) - \
            before["token_errors"].get("invalid_grant", 0)
        result.failures = sum(1 for s in statuses if s != 200)
        quantiles = statistics.quantiles(latencies, n=100)
        result.p50, result.p99 = quantiles[49] * 1000, quantiles[98] * 1000
        result.max_pause = max(latencies)
        result.login_survived = browser.get(workers[0][1] + "/token", headers={"Accept": "application/json"},
                                            timeout=10).status_code == 200
        if redis_url and mode != "memory":  # and the stored refresh token is the one the provider accepts next
            result.login_survived &= live_refresh_token(redis_url, f"user-{mode}", idp)
        return result
    finally:
        stop_workers(workers)


def live_refresh_token(redis_url: str, sub: str, idp) -> bool:
    """True when the user's token set in Redis holds a refresh token the provider still accepts."""
    from pyramid_tokens.redis.connect import parse_url

    client = parse_url(redis_url).connect()
    pool = getattr(client, "connection_pool", None)  # Sentinel: read the master the Sentinel names now
    if hasattr(pool, "get_master_address"):
        pool.get_master_address()
    with client:
        for key in client.scan_iter("pyramid_tokens:{*}"):  # a login's record is {prefix}{HANDLE}
            name = key.decode()
            if name.startswith("pyramid_tokens:{client:"):
                continue
            record = json.loads(client.get(key) or "null") or {}
            if record.get("sub") == sub:
                return idp.provider.state.peek_refresh_token(record.get("refresh_token")) is not None
    return False


def ratio(value: float, baseline: float) -> str:
    if baseline == 0:
        return "n/a" if value == 0 else "inf"
    return f"{value / baseline:.2f}x"


def print_table(results: list[Result], args) -> None:
    header = ("mode", "procs x thr", "requests", "refresh requests per window", "refreshed", "invalid_grant",
              "failed requests", "max pause s", "login kept", "p50 ms", "p99 ms")
    rows = [(r.mode, r.shape, str(r.requests), " ".join(map(str, r.per_window)) or "-", str(r.refreshes),
             str(r.invalid_grant), str(r.failures), f"{r.max_pause:.2f}", "yes" if r.login_survived else "NO",
             f"{r.p50:.1f}", f"{r.p99:.1f}") for r in results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |"  # noqa: E731
    print(f"\nrefresh storm: access tokens live {args.lifetime} s, refreshed {args.margin} s before expiry "
          f"(a window every {args.lifetime - args.margin} s), {args.windows} windows, rotation on\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    by_mode = {r.mode: r for r in results}
    if "redis" in by_mode and "naive" in by_mode:
        redis, naive = by_mode["redis"], by_mode["naive"]
        per_window = lambda r: sum(r.per_window) / max(1, len(r.per_window))  # noqa: E731
        print(f"\nredis vs naive (same run): "
              f"refresh requests per window {ratio(per_window(redis), per_window(naive))}, "
              f"invalid_grant {ratio(redis.invalid_grant, naive.invalid_grant)}, "
              f"failed requests {ratio(redis.failures, naive.failures)}, "
              f"p50 {ratio(redis.p50, naive.p50)}, p99 {ratio(redis.p99, naive.p99)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "naive")
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--lifetime", type=int, default=3, help="access token lifetime, seconds")
    parser.add_argument("--margin", type=float, default=1.0, help="tokens.refresh_before_expiration, seconds")
    parser.add_argument("--modes", default="memory,redis-1,redis,naive,sentinel,cluster,failover,killed")
    args = parser.parse_args()
    if not 0 < args.margin <= args.lifetime / 2:
        parser.error("--margin must be positive and at most half of --lifetime")

    from pyramid_tokens.devidp import start_provider

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="refresh-storm-") as directory:
        redis_process, port = start_redis(directory)
        idp = start_provider(threads=32)
        refresh_times: list[float] = []  # every refresh request the provider answered: issued or refused
        counter = idp.provider.counter
        issued, refused = counter.token_issued, counter.token_error

        def recording_issued(grant_type, client_id):
            if grant_type == "refresh_token":
                refresh_times.append(time.monotonic())
            issued(grant_type, client_id)

        def recording_refused(error, *rest):
            if error == "invalid_grant":  # during the storm only refresh requests can be refused so
                refresh_times.append(time.monotonic())
            refused(error, *rest)

        counter.token_issued, counter.token_error = recording_issued, recording_refused
        results = []
        topologies: list[subprocess.Popen] = []
        try:
            for db, mode in enumerate(args.modes.split(",")):
                during, url = None, f"redis://127.0.0.1:{port}/{db}"
                if mode == "cluster":
                    processes, url = start_cluster(f"{directory}/{mode}")
                    topologies += processes
                elif mode in ("sentinel", "failover", "killed"):
                    processes, url, ports = start_sentinel(f"{directory}/{mode}")
                    topologies += processes
                    if mode != "sentinel":
                        during = lambda ports=ports, kill=mode == "killed": fail_over(ports, kill)  # noqa: E731
                results.append(run_mode(mode, args, idp, url, refresh_times, during))
                print(f"  {mode}: done", file=sys.stderr, flush=True)
        finally:
            idp.stop()
            for process in [redis_process, *topologies]:
                if process.poll() is None:
                    process.terminate()
                    process.wait(5)
    print_table(results, args)
    print(f"\n({time.monotonic() - started:.0f} s; python {' '.join(sys.argv)})")


if __name__ == "__main__":
    threading.current_thread().name = "refresh-storm"
    main()
