"""FileStore: user tokens in a 0600 JSON file, atomically replaced, locked across processes."""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from pyramid_tokens import TokenManager
from pyramid_tokens.filestore import FileStore
from pyramid_tokens.manager import LOCAL_USER
from pyramid_tokens.errors import ConfigurationError, LockTimeout


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def manager(idp, path, clock=None):
    return TokenManager.from_settings({
        "oidc.authority": idp.issuer,
        "oidc.client_id": "web",
        "oidc.client_secret": "web-secret",
        "oidc.scope": "openid profile offline_access api",
    }, user_store=FileStore(path), **({"clock": clock} if clock else {}))


# -- permissions ---------------------------------------------------------------------------------------
def test_file_and_missing_parent_directory_are_created_owner_only(tmp_path):
    path = tmp_path / "new-dir" / "tokens.json"
    old_umask = os.umask(0o000)  # even a permissive umask gives an owner-only file
    try:
        store = FileStore(path)
        store.set("k", {"a": 1})
    finally:
        os.umask(old_umask)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(str(path) + ".lock") == 0o600


def test_tilde_in_the_path_means_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    store = FileStore("~/.pyramid_tokens/tokens.json")
    assert store.path == str(tmp_path / ".pyramid_tokens" / "tokens.json")


def test_group_or_world_readable_file_is_repaired_to_0600_with_a_warning(tmp_path, caplog):
    path = tmp_path / "tokens.json"
    FileStore(path).set("k", {"a": 1})
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="pyramid_tokens.filestore"):
        store = FileStore(path)
    assert mode(path) == 0o600
    assert "may have been exposed" in caplog.text
    assert store.get("k") == {"a": 1}


def test_a_file_that_is_not_a_token_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text('{"my": "notes"}')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigurationError) as caught:
        FileStore(path)
    assert "not a pyramid_tokens token file" in str(caught.value)
    assert path.read_text() == '{"my": "notes"}'


def test_a_symbolic_link_is_refused(tmp_path):
    target = tmp_path / "real.json"
    FileStore(target).set("k", {"a": 1})
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        FileStore(link)


def test_an_empty_file_is_an_empty_store(tmp_path):
    path = tmp_path / "tokens.json"
    path.touch(mode=0o600)
    store = FileStore(path)
    assert store.get("anything") is None
    store.set("k", {"a": 1})
    assert FileStore(path).get("k") == {"a": 1}


# -- the TokenStore contract ------------------------------------------------------------------------
def test_records_round_trip_expire_and_are_deleted(tmp_path, clock):
    store = FileStore(tmp_path / "tokens.json", clock=clock)
    store.set("forever", {"x": [1, 2]})
    store.set("brief", {"y": "z"}, ttl=10)
    assert store.get("forever") == {"x": [1, 2]}
    assert store.get("brief") == {"y": "z"}
    clock.advance(11)
    assert store.get("brief") is None
    store.delete("forever")
    store.delete("never-there")
    assert store.get("forever") is None


def test_expired_records_are_dropped_from_the_file_on_the_next_write(tmp_path, clock):
    path = tmp_path / "tokens.json"
    store = FileStore(path, clock=clock)
    store.set("rotated:abc", {"a": 1}, ttl=60)
    clock.advance(61)
    store.set("other", {"b": 2})
    assert set(json.loads(path.read_text())["records"]) == {"other"}


def test_callers_get_copies_not_the_stored_record(tmp_path):
    store = FileStore(tmp_path / "tokens.json")
    store.set("k", {"a": {"b": 1}})
    store.get("k")["a"]["b"] = 2
    assert store.get("k") == {"a": {"b": 1}}


# -- atomic writes -------------------------------------------------------------------------------------
def test_each_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "tokens.json"
    store = FileStore(path)
    store.set("k", {"n": 0})
    inode = os.stat(path).st_ino
    store.set("k", {"n": 1})
    assert os.stat(path).st_ino != inode  # a new file renamed over the old, never rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_a_write_that_fails_before_the_rename_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "tokens.json"
    store = FileStore(path)
    store.set("k", {"n": 0})
    before = path.read_bytes()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        store.set("k", {"n": 1})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert store.get("k") == {"n": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_readers_never_see_a_partial_file_while_another_thread_writes(tmp_path):
    path = tmp_path / "tokens.json"
    writer_store, reader_store = FileStore(path), FileStore(path)
    payload = {"blob": "x" * 50_000}
    writer_store.set("k", {**payload, "n": 0})
    errors: list[BaseException] = []
    done = threading.Event()

    def write():
        for n in range(1, 60):
            writer_store.set("k", {**payload, "n": n})
        done.set()

    def read():
        while not done.is_set():
            try:
                assert reader_store.get("k")["blob"] == payload["blob"]
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
                errors.append(exc)
                return

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert reader_store.get("k")["n"] == 59


# -- locking across processes ----------------------------------------------------------------------------
HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from pyramid_tokens.filestore import FileStore
    store = FileStore(sys.argv[1])
    with store.lock("local-user"):
        print("locked", flush=True)
        sys.stdin.readline()
""")

WRITE_KEYS = textwrap.dedent("""
    import sys
    from pyramid_tokens.filestore import FileStore
    store = FileStore(sys.argv[1])
    for n in range(25):
        store.set(f"{sys.argv[2]}-{n}", {"n": n})
""")


def test_lock_is_exclusive_across_processes(tmp_path):
    path = str(tmp_path / "tokens.json")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = FileStore(path)
        with pytest.raises(LockTimeout):
            with store.lock("local-user", timeout=0.2):
                pass
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(10) == 0
        with store.lock("local-user", timeout=5):
            store.set("local-user", {"refreshed": True})  # writing while holding the lock does not deadlock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert FileStore(path).get("local-user") == {"refreshed": True}


def test_processes_writing_at_once_lose_none_of_each_others_records(tmp_path):
    path = str(tmp_path / "tokens.json")
    writers = [subprocess.Popen([sys.executable, "-c", WRITE_KEYS, path, name]) for name in ("a", "b")]
    assert [w.wait(30) for w in writers] == [0, 0]
    records = json.loads(open(path).read())["records"]
    assert len(records) == 50


# -- a kernel restart keeps the login ------------------------------------------------------------------
def test_a_new_manager_on_the_same_file_uses_the_stored_login_without_logging_in_again(make_idp, tmp_path, clock):
    idp = make_idp(device_auto_approve="alice")
    path = tmp_path / "tokens.json"
    first = manager(idp, path)
    token = first.device_login(display=lambda a: None)
    assert mode(path) == 0o600
    first.close()

    restarted = manager(idp, path, clock)  # the kernel restarted: new process state, same file
    assert restarted.get_user_access_token() == token
    assert idp.provider.counters()["device_authorization"] == 1

    clock.advance(300 - 60 + 1)
    refreshed = restarted.get_user_access_token()
    assert refreshed != token
    assert manager(idp, path).get_user_access_token() == refreshed  # the refresh was written to the file
    assert idp.provider.counters()["token"]["refresh_token"] == 1


def test_html_reprs_of_a_file_backed_manager_show_no_token_value(make_idp, tmp_path):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp, tmp_path / "tokens.json")
    token = tm.device_login(display=lambda a: None)
    record = tm.user_tokens.record(LOCAL_USER)
    html = tm._repr_html_() + token._repr_html_() + repr(tm) + repr(tm.user_tokens.store)
    assert "alice" in html
    for secret in (token.access_token, record["refresh_token"], record["id_token"], "web-secret"):
        assert secret not in html
