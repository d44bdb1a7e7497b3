"""Section 1: the hot path, ``get_user_access_token()`` with a valid token, against the alternatives.

All three contenders return the same access token string, valid for at least the same 60 s margin:

* **ours**: ``request.get_user_access_token().access_token`` (the token set lives server-side, the
  session holds its handle: one session read, one store read, the parsed token reused).
* **direct**: the token set kept in the Beaker session by hand, ``session[key]``, expiry checked.
* **Authlib**: the same token set from the session as an ``OAuth2Token``, checked by a process-wide
  ``OAuth2Session.ensure_active_token(token)`` (Authlib has no Pyramid integration; this is how its
  requests client is used with per-user tokens).

Rows: (a) per call inside a Pyramid request whose Beaker session is already loaded; (b) per
request: a new request, its Beaker session loaded, one call; (c) the core API without Pyramid;
(d), (e) as (a), (b) with file-backed sessions (the demo's ``development.ini``); (f) memory of the
parsed tokens.
"""
from __future__ import annotations

import copy
import json
import tempfile
import tracemalloc
from typing import Any

import webtest
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749 import OAuth2Token
from pyramid.request import Request, apply_request_extensions

from pyramid_tokens.stores import MemoryStore
from pyramid_tokens.tokens import AccessToken, dumps
from pyramid_tokens.usertokens import PARSED_TOKENS_MAX
from pyramid_tokens.web.request import HANDLE, IDENTITY

from apps import STATIC_KEY, static_token, tokens_app, tokens_settings
from fixtures import webtest_login
from harness import Row, ns, paired_ratio, per_call

TARGET_DIRECT = 2.0


class LoggedIn:
    """A tokens app with one logged-in user; the hand-managed token set sits in the same session."""

    def __init__(self, issuer: str, session_type: str = "memory", **extra: str) -> None:
        self.app = tokens_app(tokens_settings(issuer, session_type, **extra))
        browser = webtest.TestApp(self.app)
        webtest_login(browser)
        self.cookie = f"sid={browser.cookies['sid']}"
        self.registry = self.app.registry
        self.manager = self.registry["pyramid_tokens.manager"]
        request = self.request()
        token = request.get_user_access_token()
        self.handle = request.session[HANDLE]
        self.identity = request.session[IDENTITY]  # the login's claims, for a like-for-like static session
        record = self.manager.user_tokens.record(self.handle, store=request.user_tokens.store)
        self.static = {"access_token": token.access_token, "token_type": "Bearer",
                       "expires_at": int(token.expires_at.timestamp()), "refresh_token": record["refresh_token"],
                       "id_token": record["id_token"], "scope": token.scope}
        request.session[STATIC_KEY] = self.static  # saved with the session, so every request loads it
        request.session.save()
        request.session.persist()
        self.authlib = OAuth2Session("web", "web-secret", token_endpoint=issuer + "/token", leeway=60)

    def request(self) -> Request:
        request = Request.blank("/token", headers={"Cookie": self.cookie})
        request.registry = self.registry
        apply_request_extensions(request)
        return request


def _contenders(bench: LoggedIn, request_of: Any) -> dict[str, Any]:
    authlib = bench.authlib

    def ours() -> str:
        return request_of().get_user_access_token().access_token

    def direct() -> str:
        return static_token(request_of().session)

    def with_authlib() -> str:
        token = OAuth2Token.from_dict(request_of().session[STATIC_KEY])
        authlib.ensure_active_token(token)
        return token["access_token"]

    return {"ours": ours, "direct": direct, "authlib": with_authlib}


def _rows(key: str, what: str, samples: dict[str, list[float]]) -> Row:
    ours, direct, authlib = (sorted(samples[n])[len(samples[n]) // 2] for n in ("ours", "direct", "authlib"))
    vs_direct = paired_ratio(samples["ours"], samples["direct"])
    vs_authlib = paired_ratio(samples["ours"], samples["authlib"])
    return Row(key, what, ns(ours), f"direct read {ns(direct)}; Authlib {ns(authlib)}", vs_direct,
               f"≤ {TARGET_DIRECT:g} vs direct; < 1 vs Authlib", vs_direct <= TARGET_DIRECT and vs_authlib < 1,
               ratio_text=f"{vs_direct:.2f} vs direct; {vs_authlib:.2f} vs Authlib")


def per_call_loaded(bench: LoggedIn, *, number: int, rounds: int) -> dict[str, list[float]]:
    request = bench.request()
    request.get_user_access_token()  # loads the session and binds the user
    return per_call(_contenders(bench, lambda: request), number=number, rounds=rounds)


def breakdown(bench: LoggedIn, *, number: int) -> list[str]:
    """Where the time of one call goes, step by step (each step timed alone)."""
    request = bench.request()
    request.get_user_access_token()
    session, binding, manager = request.session, request.user_tokens, bench.manager
    users, store, handle = manager.user_tokens, request.user_tokens.store, bench.handle
    record = store.get(handle)
    steps = {
        "session[handle] (Beaker proxy)": lambda: session[HANDLE],
        "direct read incl. expiry check": lambda: static_token(session),
        "binding.require_handle()": binding.require_handle,
        "store.get(handle)": lambda: store.get(handle),
        "user_tokens.get_access_token()": lambda: users.get_access_token(handle, store=store),
        "manager.get_user_access_token()": lambda: manager.get_user_access_token(handle=handle, store=store),
        "request.get_user_access_token()": request.get_user_access_token,
        "AccessToken.from_dict (avoided per call)": lambda: AccessToken.from_dict(record["access"]),
    }
    samples = per_call(steps, number=number, rounds=5)
    return [f"{name}: {ns(sorted(v)[len(v) // 2])}" for name, v in samples.items()]


class JsonCopyStore(MemoryStore):
    """A memory store that answers with a fresh copy, as the JSON stores (Beaker files, Redis) do."""

    def get(self, key: str) -> Any:
        value = super().get(key)
        return None if value is None else json.loads(dumps(value))


def parsed_token_memory(bench: LoggedIn, store: MemoryStore, users_count: int = 1000) -> float:
    """Bytes the parsed-token cache holds per logged-in user, its records read from ``store``."""
    users = bench.manager.user_tokens
    record = users.record(bench.handle)
    for n in range(users_count):
        rec = copy.deepcopy(record)
        rec["access"] = {**rec["access"], "access_token": rec["access"]["access_token"][:-6] + f"{n:06d}"}
        store.set(f"bench-{n}", rec)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(users_count):
        users.get_access_token(f"bench-{n}", store=store)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for n in range(users_count):
        users.forget(f"bench-{n}", store=store)
    return (after - before) / users_count


def run(issuer: str, *, quick: bool = False) -> tuple[list[Row], list[str]]:
    number, rounds = (2000, 5) if quick else (20000, 15)
    rows: list[Row] = []
    notes: list[str] = []

    bench = LoggedIn(issuer)
    samples = per_call_loaded(bench, number=number, rounds=rounds)
    rows.append(_rows("1a", "get_user_access_token(), per call, in a request with its Beaker session loaded "
                            "(memory sessions)", samples))

    fresh = _contenders(bench, bench.request)
    request_samples = per_call(fresh, number=max(200, number // 20), rounds=rounds, collect=True)
    rows.append(_rows("1b", "per request: new request + Beaker session load + one call (memory sessions)",
                      request_samples))

    manager, handle, static = bench.manager, bench.handle, dict(bench.static)
    long_lived = OAuth2Session("web", "web-secret", token_endpoint=issuer + "/token", leeway=60,
                               token=dict(bench.static))
    core = per_call({
        "ours": lambda: manager.get_user_access_token(handle=handle).access_token,
        "direct": lambda: static_token({STATIC_KEY: static}),
        "authlib": lambda: (long_lived.ensure_active_token(), long_lived.token["access_token"])[1],
    }, number=number, rounds=rounds)
    rows.append(_rows("1c", "core API, no Pyramid: TokenManager.get_user_access_token(handle) vs a dict vs a "
                            "long-lived OAuth2Session", core))

    with tempfile.TemporaryDirectory(prefix="pyramid_tokens-bench-") as tmp:
        files = LoggedIn(issuer, "file", **{"session.data_dir": f"{tmp}/data", "session.lock_dir": f"{tmp}/lock"})
        file_samples = per_call_loaded(files, number=max(500, number // 10), rounds=rounds)
        rows.append(_rows("1d", "as 1a with file sessions (development.ini): the token record is read from its "
                                "own Beaker file, once per request", file_samples))
        notes += [f"1d breakdown — {line}" for line in breakdown(files, number=max(200, number // 40))]
        file_requests = per_call(_contenders(files, files.request), number=max(100, number // 40), rounds=rounds,
                                 collect=True)
        rows.append(_rows("1e", "as 1b with file sessions: the session and the token record each read from "
                                "their file", file_requests))

    shared = parsed_token_memory(bench, MemoryStore())
    copied = parsed_token_memory(bench, JsonCopyStore())
    rows.append(Row("1f", f"memory of the parsed-token cache (tracemalloc) per logged-in user: memory store / "
                          f"JSON stores (own copy of the token); bounded at {PARSED_TOKENS_MAX} users",
                    f"{shared / 1024:.1f} KiB / {copied / 1024:.1f} KiB", "—", None,
                    f"≤ {PARSED_TOKENS_MAX * max(shared, copied) / 2**20:.1f} MiB in all", None))
    notes += [f"1a breakdown — {line}" for line in breakdown(bench, number=number)]
    return rows, notes


if __name__ == "__main__":  # python benchmarks/hotpath.py: this section alone
    from fixtures import provider, quiet
    from harness import table

    quiet()
    with provider() as idp:
        found, extra = run(idp.issuer, quick=True)
    print(table(found))
    print("\n".join(extra))
