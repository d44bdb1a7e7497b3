"""Scale-out: four real worker processes (waitress, 16 threads each) sharing sessions and tokens in one Redis.

The rig (provider, workers, the storm) is in :mod:`.storm`; the same storm on Sentinel and Cluster,
and through failovers, is in :mod:`.test_topologies`.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from .storm import PREFIX, PROCESSES, THREADS, WINDOW, check_one_refresh_per_window, farm, storm, wait_until_due


@pytest.fixture(scope="module")
def cluster(redis_server):
    url = redis_server.url(1)  # database 1: this module's own
    redis = redis_server.client(1)
    redis.flushdb()
    try:
        with farm(url, redis) as rig:
            yield rig
    finally:
        redis.close()


def test_four_processes_of_sixteen_threads_refresh_once_per_expiry_window_under_rotation(cluster):
    headers, handle = cluster.login("storm")
    login_record = cluster.record(handle)
    refreshes, invalid_grants = cluster.refreshes(), cluster.invalid_grants()
    first_refresh = len(cluster.refresh_times)
    results = storm(cluster, headers, 3 * WINDOW + 0.4)  # three expiry windows
    check_one_refresh_per_window(cluster, handle, login_record, results, refreshes, invalid_grants, first_refresh)


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
