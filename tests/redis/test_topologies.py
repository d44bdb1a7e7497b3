"""Redis the way production runs it: a master + replica + Sentinel, and a 3-master Cluster.

Each topology is started once per pytest process (``redis_sentinel``, ``redis_cluster`` in
``conftest.py``) and its tests carry ``xdist_group`` so one worker runs them all. On each: the store,
the lock and a whole login (sessions in ``redis_json`` too) with refresh and rotation; on the
Cluster no operation is ever CROSSSLOT; the refresh storm of 4 processes x 16 threads; and on
Sentinel the storm through a forced failover (``SENTINEL FAILOVER``) and through a killed master.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import redis
import webtest

from pyramid_tokens.errors import LockTimeout
from pyramid_tokens.redis import RedisStore
from pyramid_tokens.redis.connect import FAILOVER_RETRY
from tests.support.web import base_settings, build_app, login

from .storm import PREFIX, WINDOW, check_one_refresh_per_window, farm, max_pause, storm

sentinel_tests = pytest.mark.xdist_group("redis-sentinel")
#: seconds redis-py keeps retrying a Sentinel or Cluster call (the sum of the back-off's sleeps)
RETRY_BUDGET = sum(FAILOVER_RETRY[0].compute(n) for n in range(FAILOVER_RETRY[1]))
cluster_tests = pytest.mark.xdist_group("redis-cluster")


@pytest.fixture(params=[pytest.param("sentinel", marks=sentinel_tests), pytest.param("cluster", marks=cluster_tests)])
def topology(request):
    """``(url, raw client)`` of an emptied Sentinel service or Cluster."""
    if request.param == "sentinel":
        topology = request.getfixturevalue("redis_sentinel")
        with topology.client() as raw:
            raw.flushall()
        raw = redis.Sentinel([("127.0.0.1", topology.sentinel.port)]).master_for(topology.SERVICE)
        yield topology.url(), raw
    else:
        topology = request.getfixturevalue("redis_cluster")
        topology.flushall()
        raw = topology.client()
        yield topology.url(), raw
    raw.close()


def test_records_compare_and_set_and_lock_work_on_each_topology(topology):
    url, raw = topology
    store, other = RedisStore(url), RedisStore(url, client=RedisStore(url).url.connect())  # two pools
    store.set("h", {"generation": 1, "refresh_token": "first"}, ttl=60)
    assert store.set("h", {"generation": 2, "refresh_token": "second"}, ttl=60)
    assert other.set("h", {"generation": 2, "refresh_token": "late"}, ttl=60) is False
    assert json.loads(raw.get(PREFIX + "{h}"))["refresh_token"] == "second"
    with store.lock("h", 1):
        with pytest.raises(LockTimeout):
            with other.lock("h", 0.2):
                pass
    with other.lock("h", 1):
        pass
    assert not store.pending.records  # every write confirmed, nothing left in the process


def test_login_refresh_and_rotation_with_sessions_and_tokens_on_each_topology(topology, idp, clock):
    url, raw = topology
    app = webtest.TestApp(build_app(base_settings(idp, **{
        "session.type": "redis_json", "session.url": url, "session.timeout": "3600", "tokens.store": url,
        "tokens.cache": url}), clock))
    login(app)
    first = app.get("/token").json["access_token"]
    clock.advance(250)
    second = app.get("/token").json["access_token"]
    assert second != first
    [handle] = [key.decode()[len(PREFIX) + 1:-1] for key in raw.scan_iter(PREFIX + "{*}")]
    record = json.loads(raw.get(PREFIX + "{" + handle + "}"))
    assert record["generation"] == 2 and idp.provider.state.peek_refresh_token(record["refresh_token"])
    assert len(list(raw.scan_iter(PREFIX + "rotated:{" + handle + "}:*"))) == 1
    assert list(raw.scan_iter(PREFIX + "session:*"))  # the session itself is in the same Redis


@cluster_tests
def test_every_key_of_one_login_shares_a_cluster_slot_and_no_code_path_is_crossslot(redis_cluster, idp, clock):
    url = redis_cluster.url()
    redis_cluster.flushall()
    raw = redis_cluster.client()
    app = webtest.TestApp(build_app(base_settings(idp, **{
        "session.type": "redis_json", "session.url": url, "session.timeout": "3600", "tokens.store": url,
        "tokens.cache": url}), clock))
    # every code path that touches Redis: login, read, refresh + rotation record, client token cache,
    # a stale token set adopting the rotation record, logout; any CROSSSLOT would be a 503 here
    login(app)
    app.get("/token")
    app.get("/client-token")
    [handle] = [key.decode()[len(PREFIX) + 1:-1] for key in raw.scan_iter(PREFIX + "{*}")
                if not key.decode().startswith(PREFIX + "{client:")]
    stale = raw.get(PREFIX + "{" + handle + "}")
    clock.advance(250)
    renewed = app.get("/token").json["access_token"]
    store = RedisStore(url)
    with store.lock(handle, 5):  # hold the lock while looking: its key is one of the login's
        keys = [key for key in raw.scan_iter("*") if ("{" + handle + "}").encode() in key]
        assert {raw.keyslot(key) for key in keys} == {raw.keyslot(handle)}
        assert len(keys) == 3  # the record, its lock and its rotation record
        # ...so one script may touch them all (Redis refuses a multi-key script across slots)
        assert raw.eval("return redis.call('EXISTS', unpack(KEYS))", len(keys), *keys) == 3
    raw.set(PREFIX + "{" + handle + "}", stale, keepttl=True)  # the pre-rotation token set is back
    assert app.get("/token").json["access_token"] == renewed  # adopted from the rotation record
    app.get("/logout", status="*")
    raw.close()


@pytest.fixture
def topology_farm(topology):
    url, raw = topology
    with farm(url, raw) as rig:
        yield rig


def test_the_refresh_storm_refreshes_once_per_window_on_each_topology(topology_farm):
    rig = topology_farm
    headers, handle = rig.login("storm")
    login_record = rig.record(handle)
    refreshes, invalid_grants, first_refresh = rig.refreshes(), rig.invalid_grants(), len(rig.refresh_times)
    results = storm(rig, headers, 3 * WINDOW + 0.4)
    check_one_refresh_per_window(rig, handle, login_record, results, refreshes, invalid_grants, first_refresh)
    print(f"\nstorm row: failed {sum(r[2] != 200 for r in results)} of {len(results)}, "
          f"max pause {max_pause(results):.3f} s")


@sentinel_tests
def test_a_command_in_flight_when_the_master_is_killed_is_answered_by_the_new_master(redis_sentinel):
    store = RedisStore(redis_sentinel.url())
    redis_sentinel.wait_until_healthy()
    # on the replica too (WAIT on the connection that wrote it), so the promoted one has it
    assert store.client.pipeline(transaction=False).set("k", "v").wait(1, 5000).execute() == [True, 1]
    answers = []
    # a command whose connection dies under it: redis-py alone re-dials the dead master until its
    # retries run out; ours asks the Sentinels again at each retry
    waiting = threading.Thread(target=lambda: answers.append(store.client.blpop(["nothing"], 1)))
    old = redis_sentinel.current_master()
    waiting.start()
    time.sleep(0.3)
    old.kill()
    try:
        waiting.join(RETRY_BUDGET + 5)
        assert answers == [None]  # BLPOP timed out on the new master: no error
        assert store.client.get("k") == b"v" and redis_sentinel.master_port() != old.port
    finally:
        redis_sentinel.restart(old)
        redis_sentinel.wait_until_healthy()


@sentinel_tests
@pytest.mark.parametrize("how", ["SENTINEL FAILOVER", "master killed"])
def test_a_failover_in_the_middle_of_a_window_keeps_the_login_and_every_rotated_token(redis_sentinel, how):
    with redis_sentinel.client() as raw:
        raw.flushall()
    raw = redis.Sentinel([("127.0.0.1", redis_sentinel.sentinel.port)]).master_for(redis_sentinel.SERVICE)
    killed = []

    def fail_over() -> None:
        if how == "SENTINEL FAILOVER":
            redis_sentinel.failover()
        else:
            killed.append(redis_sentinel.current_master())
            killed[0].kill()

    try:
        with farm(redis_sentinel.url(), raw) as rig:
            headers, handle = rig.login("failover")
            login_record = rig.record(handle)
            refreshes, invalid_grants = rig.refreshes(), rig.invalid_grants()
            # a killed master pauses the login for its detection and election (about 3 s here): the storm
            # goes on for long enough after that to see three more windows
            seconds = 5 * WINDOW + 0.4 if how == "SENTINEL FAILOVER" else 9 * WINDOW + 0.4
            results = storm(rig, headers, seconds, during=fail_over, at=1.5 * WINDOW)
            after = [rig.workers[i].url for i in range(len(rig.workers))]
            raw.connection_pool.get_master_address()  # this test's own client, too, reads the new master
            final = rig.record(handle)
            done = rig.refreshes() - refreshes
            failures = [r for r in results if r[2] != 200]
            print(f"\nfailover row ({how}): failed {len(failures)} of {len(results)}, "
                  f"max pause {max_pause(results):.3f} s, {done} refreshes")
            assert rig.invalid_grants() == invalid_grants  # no stale refresh token was ever sent
            # not one request fails: those in flight when the master died wait for the new one
            assert not failures, failures[:3]
            # a bounded pause. A killed master: the Sentinel's detection (2 s here) and election, within the
            # retries' back-off (about 7 s). SENTINEL FAILOVER: the promotion, and the locks on the new
            # master (about 2 s measured).
            assert max_pause(results) < (RETRY_BUDGET if how == "master killed" else 6.0) + 2.0
            # no token lost: every refresh the provider answered is a generation of the stored token set,
            # and the stored refresh token is the one the provider accepts next
            assert done >= 3 and final["generation"] == login_record["generation"] + done
            assert rig.idp.provider.state.peek_refresh_token(final["refresh_token"]) is not None
            # the login is kept: every worker still answers with a valid token
            for url in after:
                assert rig.http_token(url, headers)["expires_at"] > time.time()
    finally:
        raw.close()
        for server in killed:
            redis_sentinel.restart(server)
        redis_sentinel.wait_until_healthy()


@pytest.fixture
def replica_frozen(redis_sentinel):
    """``(freeze, thaw)`` of the current replica (SIGSTOP: connected, answering nothing); thawed after the test."""
    with redis_sentinel.client() as raw:
        raw.flushall()
    replica = next(server for server in redis_sentinel.servers() if server.port != redis_sentinel.master_port())
    yield replica.freeze, replica.thaw
    replica.thaw()
    redis_sentinel.wait_until_healthy()


@sentinel_tests
def test_a_lock_no_replica_confirms_is_never_used_and_never_left_behind(redis_sentinel, replica_frozen):
    freeze, thaw = replica_frozen
    store = RedisStore(redis_sentinel.url(wait_replicas=1))
    freeze()
    # a lock only the master holds would be lost with it in a failover: a second holder would take
    # it on the promoted replica and refresh with the same refresh token
    with pytest.raises(LockTimeout):
        with store.lock("h", 1.5):
            pytest.fail("ran under a lock no replica holds")
    with redis_sentinel.client() as raw:
        assert raw.get(PREFIX + "lock:{h}") is None  # each unconfirmed try was let go at once
    thaw()
    with store.lock("h", 5):
        pass


@sentinel_tests
def test_a_token_set_redis_has_not_confirmed_keeps_its_lock_until_it_is_written_back(redis_sentinel, replica_frozen):
    freeze, thaw = replica_frozen
    url = redis_sentinel.url(wait_replicas=1)
    store, other = RedisStore(url), RedisStore(url, client=RedisStore(url).url.connect())  # two processes
    store.set("h", {"generation": 1, "refresh_token": "first"}, ttl=60)
    with store.lock("h", 5):
        freeze()
        store.set("h", {"generation": 2, "refresh_token": "second"}, ttl=60)  # unconfirmed: kept in the process
        assert store.pending.records and store.get("h")["refresh_token"] == "second"
    # released by its holder, yet still held: another process must not read "first" and refresh with it
    with pytest.raises(LockTimeout):
        with other.lock("h", 1.0):
            pytest.fail("took the lock of a token set not yet in Redis")
    thaw()
    with other.lock("h", 10):  # the write-back lands, then lets the lock go
        assert other.get("h")["refresh_token"] == "second"
    assert not store.pending.records


@cluster_tests
def test_a_login_whose_slot_moves_to_another_node_keeps_every_write_and_its_lock(redis_cluster):
    redis_cluster.flushall()
    url = redis_cluster.url()
    store, other = RedisStore(url), RedisStore(url, client=RedisStore(url).url.connect())  # two processes
    store.set("h", {"generation": 1, "refresh_token": "first"}, ttl=60)
    assert store.set("h", {"generation": 2, "refresh_token": "second"}, ttl=60)
    target = redis_cluster.move_slot("{h}")  # a resharding: both clients' slot maps are now stale
    # the durable write follows the slot (straight away, or through the write-back), never lost
    assert store.set("h", {"generation": 3, "refresh_token": "third"}, ttl=60)
    deadline = time.monotonic() + 5
    while store.pending.records and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not store.pending.records
    with target.client() as node:  # on the node that owns the slot now
        assert json.loads(node.get(PREFIX + "{h}"))["refresh_token"] == "third"
    assert other.get("h")["refresh_token"] == "third"
    with other.lock("h", 5):  # the lock, too, lives on the new owner, one holder at a time
        with pytest.raises(LockTimeout):
            with store.lock("h", 0.3):
                pass
