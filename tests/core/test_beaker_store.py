"""BeakerStore: token records in Beaker containers of the session's type, seen alike by every process."""
from __future__ import annotations

import threading

import pytest

from pyramid_tokens.beakerstores import BeakerStore
from pyramid_tokens.clock import FakeClock


@pytest.fixture(params=["file", "dbm"])
def stores(request, tmp_path):
    """Two stores on one data directory: two processes of one app on one host."""
    args = {"data_dir": str(tmp_path / "data"), "lock_dir": str(tmp_path / "lock")}
    clock = FakeClock()
    return BeakerStore(request.param, clock=clock, **args), BeakerStore(request.param, clock=clock, **args), clock


def test_each_read_sees_what_another_process_wrote_last(stores):
    one, other, _ = stores
    assert other.get("h") is None
    one.set("h", {"generation": 1})
    assert other.get("h") == {"generation": 1}
    one.set("h", {"generation": 2})
    assert other.get("h") == {"generation": 2}  # the container kept for "h" reads the file again
    other.set("h", {"generation": 3})
    assert one.get("h") == {"generation": 3}
    one.delete("h")
    assert other.get("h") is None and one.get("h") is None


def test_records_expire_and_keys_stay_apart(stores):
    one, other, clock = stores
    one.set("a", {"n": 1}, ttl=10)
    one.set("b", {"n": 2})
    assert other.get("a") == {"n": 1} and other.get("b") == {"n": 2}
    clock.advance(11)
    assert other.get("a") is None and other.get("b") == {"n": 2}


def test_readers_on_many_threads_see_a_whole_record_while_it_is_rewritten(stores):
    one, other, _ = stores
    one.set("h", {"generation": 0, "payload": "x" * 2000})
    seen, failures, stop = set(), [], threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                record = other.get("h")
                assert record is not None and record["payload"] == "x" * 2000
                seen.add(record["generation"])
        except BaseException as exc:  # reported below
            failures.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    for generation in range(1, 40):
        one.set("h", {"generation": generation, "payload": "x" * 2000})
    stop.set()
    for thread in readers:
        thread.join()
    assert not failures
    assert other.get("h")["generation"] == 39
