"""Sections 2 and 3: whole requests through a real WSGI server, and calls through named HTTP clients.

Section 2 serves two apps at once, each by waitress in its own subprocess: ``tokens`` (pyramid_tokens,
a logged-in user, ``request.get_user_access_token()``) and ``static`` (pyramid_beaker only, the same
token set kept in the session by hand). The pure-Python keep-alive load generator drives one, then the
other, round after round; the ratio is the median of the rounds' throughput ratios. The server's CPU
time per request (from ``/proc``) is a second, less noisy view of the same thing. The in-process rows
call the WSGI apps directly (no sockets), and a last check proves that a route which never touches
tokens loads no session and fetches no discovery document.

Section 3 calls a small resource server through ``TokenManager.http_client(name)`` and through a plain
``requests.Session`` with a static ``Authorization`` header, sequentially, interleaved in rounds.
"""
from __future__ import annotations

import json
from typing import Any, Callable

import requests
import webtest
from pyramid.interfaces import ISessionFactory
from pyramid.request import Request

from pyramid_tokens import TokenManager
from pyramid_tokens.web.request import IDENTITY

from apps import STATIC_KEY, session_settings, static_app, tokens_app, tokens_settings
from fixtures import served_login
from harness import Row, interleaved, median, ns, paired_ratio, per_call, ratio_interval, spread
from hotpath import LoggedIn
from loadgen import Load, ServedApp

TARGET_TOKENS = 0.95
TARGET_PUBLIC = 0.99
TARGET_CLIENT = 0.97


def _seed_static(static: ServedApp, bench: LoggedIn) -> str:
    """Put the same token set (and login claims) in a session of the static app; its cookie."""
    body = json.dumps({STATIC_KEY: bench.static, IDENTITY: bench.identity})
    response = requests.post(static.url + "/seed", data=body, headers={"Host": "localhost"}, timeout=10)
    response.raise_for_status()
    return "sid=" + response.cookies["sid"]


def _served_runs(drivers: dict[str, tuple[ServedApp, Load]], total: int,
                 cpu: dict[str, list[float]]) -> dict[str, Callable[[], float]]:
    def runner(name: str) -> Callable[[], float]:
        served, driver = drivers[name]

        def run() -> float:
            before = served.cpu_seconds()
            rps = driver.burst(total)
            after = served.cpu_seconds()
            if before is not None and after is not None:
                cpu[name].append((after - before) / total)
            return rps

        return run

    return {name: runner(name) for name in drivers}


def _throughput_row(key: str, what: str, samples: dict[str, list[float]], cpu: dict[str, list[float]],
                    target: float) -> tuple[Row, str]:
    ratio = paired_ratio(samples["ours"], samples["baseline"])
    low, high = ratio_interval(samples["ours"], samples["baseline"])
    row = Row(key, what, f"{median(samples['ours']):,.0f} req/s", f"{median(samples['baseline']):,.0f} req/s",
              ratio, f"≥ {target:g}", ratio >= target, ratio_text=f"{ratio:.2f} (95% CI {low:.2f}–{high:.2f})",
              verdict_text="open: within noise" if ratio < target <= high else None)
    note = (f"{key}: spread (IQR/median) ours {spread(samples['ours']):.1%}, baseline "
            f"{spread(samples['baseline']):.1%}")
    if cpu["ours"] and cpu["baseline"]:
        note += (f"; server CPU per request ours {ns(median(cpu['ours']))}, baseline {ns(median(cpu['baseline']))}"
                 f" (throughput-equivalent ratio {paired_ratio(cpu['baseline'], cpu['ours']):.3f})")
    return row, note


def _wsgi_call(app: Any, path: str, cookie: str) -> Callable[[], bytes]:
    environ = Request.blank(path, headers={"Cookie": cookie, "Host": "localhost"}).environ

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise RuntimeError(f"{path}: {status}")

    def call() -> bytes:
        return b"".join(app(dict(environ), start_response))

    return call


def untouched_public_route(issuer: str, counters: Callable[[], dict[str, Any]], calls: int = 200) -> Row:
    """A fresh app serving ``/public`` to a logged-in browser: sessions loaded, discovery fetched, cookies set."""
    app = tokens_app(tokens_settings(issuer))
    registry = app.registry
    factory = registry.queryUtility(ISessionFactory)
    loads: list[int] = []

    def counting_factory(request: Any) -> Any:
        loads.append(1)
        return factory(request)

    registry.registerUtility(counting_factory, ISessionFactory)
    browser = webtest.TestApp(app)
    browser.set_cookie("sid", "0" * 72)  # a browser that carries a session cookie
    before = counters()
    cookies = sum(len(browser.get("/public").headers.getall("Set-Cookie")) for _ in range(calls))
    after = counters()
    fetched = (after["discovery"] - before["discovery"]) + (after["jwks"] - before["jwks"])
    ok = not loads and not fetched and not cookies
    return Row("2e", f"/public on a fresh app, {calls} requests: Beaker sessions loaded / discovery+JWKS fetches / "
                     "Set-Cookie headers", f"{len(loads)} / {fetched} / {cookies}", "—", None, "0 / 0 / 0", ok)


def run_section2(issuer: str, counters: Callable[[], dict[str, Any]], *,
                 quick: bool = False) -> tuple[list[Row], list[str]]:
    total, rounds = (200, 8) if quick else (400, 40)
    rows: list[Row] = []
    notes: list[str] = []
    bench = LoggedIn(issuer)  # an in-process login: the realistic token set for the static app too
    served_cpu: dict[str, float] = {}
    with ServedApp("tokens", tokens_settings(issuer)) as ours, ServedApp("static", session_settings()) as static:
        cookie = served_login(ours.url)
        apps = {"ours": (ours, cookie), "baseline": (static, _seed_static(static, bench))}
        for key, path, target, what in (
                ("2a", "/token", TARGET_TOKENS, "served by waitress (subprocess), keep-alive load: a view reading "
                                                "the user's token — pyramid_tokens vs static token in the Beaker "
                                                "session"),
                ("2b", "/public", TARGET_PUBLIC, "same servers, a route that never touches tokens — app with "
                                                 "pyramid_tokens included vs without")):
            drivers = {name: (served, Load(served.port, path, headers={"Cookie": sid}))
                       for name, (served, sid) in apps.items()}
            try:
                for _, driver in drivers.values():  # warm up: imports, discovery, first session loads
                    driver.burst(total)
                cpu: dict[str, list[float]] = {"ours": [], "baseline": []}
                samples = interleaved(_served_runs(drivers, total, cpu), rounds=rounds)
                for name, (_, driver) in drivers.items():
                    if set(driver.statuses) != {200}:
                        raise RuntimeError(f"{name} {path}: unexpected statuses {driver.statuses}")
            finally:
                for _, driver in drivers.values():
                    driver.close()
            row, note = _throughput_row(key, what, samples, cpu, target)
            rows.append(row)
            notes.append(note)
            if cpu["baseline"]:
                served_cpu[path] = median(cpu["baseline"])

    static_wsgi = static_app(session_settings())
    seeded = webtest.TestApp(static_wsgi)
    seeded.post("/seed", json.dumps({STATIC_KEY: bench.static, IDENTITY: bench.identity}))
    static_cookie = f"sid={seeded.cookies['sid']}"
    number = 300 if quick else 2000
    for key, path in (("2c", "/token"), ("2d", "/public")):
        samples = per_call({"ours": _wsgi_call(bench.app, path, bench.cookie),
                            "baseline": _wsgi_call(static_wsgi, path, static_cookie)},
                           number=number, rounds=rounds + 6, collect=True)
        ratio = paired_ratio(samples["baseline"], samples["ours"])  # a throughput ratio: time inverted
        extra = median(samples["ours"]) - median(samples["baseline"])
        if path in served_cpu:
            notes.append(f"{key}: {ns(extra)} more per request, against {ns(served_cpu[path])} of server CPU per "
                         f"{path} request under waitress: a served ratio of about "
                         f"{served_cpu[path] / (served_cpu[path] + extra):.3f} once the noise is averaged out")
        rows.append(Row(key, f"in-process WSGI call of {path} (no server, no sockets), as throughput: what "
                             f"pyramid_tokens adds per request ({ns(extra)})",
                        f"{1 / median(samples['ours']):,.0f} req/s", f"{1 / median(samples['baseline']):,.0f} req/s",
                        ratio, "diagnostic", None))
    rows.append(untouched_public_route(issuer, counters))
    return rows, notes


def run_section3(issuer: str, *, quick: bool = False) -> tuple[list[Row], list[str]]:
    calls, rounds = (150, 3) if quick else (300, 15)
    rows: list[Row] = []
    with ServedApp("api") as api:
        manager = TokenManager.from_settings({
            "tokens.clients.worker.token_endpoint": issuer + "/token",
            "tokens.clients.worker.client_id": "worker",
            "tokens.clients.worker.client_secret": "worker-secret",
            "tokens.clients.worker.scope": "api",
            "tokens.http.api.base_url": api.url + "/",
            "tokens.http.api.token": "client:worker",
        })
        named = manager.http_client("api")
        plain = requests.Session()
        plain.headers["Authorization"] = manager.get_client_access_token("worker").authorization
        url = api.url + "/whoami"

        def calls_per_second(call: Callable[[], requests.Response]) -> Callable[[], float]:
            def run() -> float:
                import time

                start = time.perf_counter()
                for _ in range(calls):
                    if call().status_code != 200:
                        raise RuntimeError("the resource server refused the call")
                return calls / (time.perf_counter() - start)

            return run

        def per_view() -> requests.Response:
            session = manager.http_client("api")  # what request.http_client(name) does in every view
            try:
                return session.get("whoami")
            finally:
                session.close()

        for warm_up in (lambda: named.get("whoami"), lambda: plain.get(url, timeout=10)):
            calls_per_second(warm_up)()  # connections, token cache
        samples = interleaved({
            "ours": calls_per_second(lambda: named.get("whoami")),
            "per_view": calls_per_second(per_view),
            "baseline": calls_per_second(lambda: plain.get(url, timeout=10)),
        }, rounds=rounds)
        for key, name, what in (("3a", "ours", "named client session kept: http_client('api').get('whoami') vs a "
                                               "plain requests.Session with a static Authorization header"),
                                ("3b", "per_view", "http_client('api') made per call (as request.http_client in each "
                                                   "view) vs the same long-lived plain session")):
            ratio = paired_ratio(samples[name], samples["baseline"])
            low, high = ratio_interval(samples[name], samples["baseline"])
            rows.append(Row(key, what, f"{median(samples[name]):,.0f} calls/s",
                            f"{median(samples['baseline']):,.0f} calls/s", ratio, f"≥ {TARGET_CLIENT:g}",
                            ratio >= TARGET_CLIENT, ratio_text=f"{ratio:.2f} (95% CI {low:.2f}–{high:.2f})",
                            verdict_text="open: within noise" if ratio < TARGET_CLIENT <= high else None))
        auth = named.auth

        def attach() -> Any:
            return auth(requests.Request("GET", url).prepare())

        steps = per_call({
            "3b: making a session, http_client('api') + close()": lambda: manager.http_client("api").close(),
            "3b: making a session, requests.Session() + close()": lambda: requests.Session().close(),
            "3a: preparing a GET (both)": lambda: requests.Request("GET", url).prepare(),
            "3a: preparing a GET + TokenAuth attaching the token": attach,
            "3a: of which get_client_access_token('worker')": lambda: manager.get_client_access_token("worker"),
            "3a: TokenSession.url_for('whoami')": lambda: named.url_for("whoami"),
        }, number=500, rounds=5)
        notes = [f"{name}: {ns(median(values))}" for name, values in steps.items()]
        plain.close()
        manager.close()
    return rows, notes
