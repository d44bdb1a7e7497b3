"""Named HTTP clients against real loopback sockets: base URL, timeout, token header, retries, 401 renewal."""
from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from urllib.parse import parse_qs, urljoin

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from urllib3 import HTTPResponse

from pyramid_tokens.devidp.server import serve
from pyramid_tokens.errors import TokenError
from pyramid_tokens.httpclient import BackoffRetry, NamedClient, TokenAuth, TokenSession
from pyramid_tokens.tokens import AccessToken


class RecordingApp:
    """A WSGI app that records every request and misbehaves on purpose, per path.

    ``/fail/N``  503 for the first N requests, then 200     ``/always503``  503 forever
    ``/throttled``  429 + ``Retry-After: 1`` once, then 200   ``/slow``  200 after 0.4 s
    ``/protected``  401 unless the bearer token is ``valid_token``     ``/away?to=URL``  302 to URL
    anything else echoes 200.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seen: list[dict] = []
        self.counts: dict[str, int] = {}
        self.valid_token = "t1"
        self.lock = threading.Lock()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.seen]

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        with self.lock:
            n = self.counts[path] = self.counts.get(path, 0) + 1
            self.seen.append({
                "method": environ["REQUEST_METHOD"], "path": path, "query": environ.get("QUERY_STRING", ""),
                "authorization": environ.get("HTTP_AUTHORIZATION"), "port": environ.get("REMOTE_PORT"),
                "body": body, "at": time.monotonic(),
            })
        status, headers = "200 OK", []
        if path.startswith("/fail/") and n <= int(path.rsplit("/", 1)[1]) or path == "/always503":
            status = "503 Service Unavailable"
        elif path == "/throttled" and n == 1:
            status, headers = "429 Too Many Requests", [("Retry-After", "1")]
        elif path == "/away":
            status, headers = "302 Found", [("Location", parse_qs(environ["QUERY_STRING"])["to"][0])]
        elif path == "/slow":
            time.sleep(0.4)
        elif path == "/protected" and environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.valid_token}":
            status, headers = "401 Unauthorized", [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        payload = json.dumps({"path": path, "attempt": n}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *headers])
        return [payload]


class TokenSource:
    """Counts calls; token ``t<k>`` where k is the number of forced renewals so far."""

    def __init__(self, prefix: str = "t", error: TokenError | None = None) -> None:
        self.calls: list[bool] = []
        self.prefix, self.error, self.renewals = prefix, error, 0

    def __call__(self, force_renewal: bool) -> AccessToken:
        self.calls.append(force_renewal)
        if self.error is not None:
            raise self.error
        self.renewals += force_renewal
        return AccessToken(f"{self.prefix}{self.renewals}", token_type="Bearer")


class DroppingServer:
    """A raw socket server that resets the first ``drops`` connections after reading the request."""

    def __init__(self, drops: int) -> None:
        self.drops, self.connections = drops, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                    data += chunk
                if self.connections <= self.drops:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def stop(self) -> None:
        self.sock.close()


APP = RecordingApp()


@pytest.fixture(scope="module")
def server():
    running = serve(APP, host="127.0.0.1", port=0, threads=8)
    yield running
    running.stop()


@pytest.fixture
def app(server):
    APP.reset()
    return APP


@pytest.fixture
def base(server) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def make_client(base):
    clients: list[NamedClient] = []

    def make(**kwargs) -> NamedClient:
        client = NamedClient("api", kwargs.pop("base_url", base + "/"), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def gaps(app: RecordingApp) -> list[float]:
    times = [r["at"] for r in app.seen]
    return [b - a for a, b in zip(times, times[1:])]


# -- base URL and timeout -----------------------------------------------------------------------

def test_relative_urls_join_the_base_url_as_a_directory(app, base, make_client):
    session = make_client(base_url=base + "/api").session(None)
    session.get("orders")
    session.get("orders/7?x=1")
    assert [(r["path"], r["query"]) for r in app.seen] == [("/api/orders", ""), ("/api/orders/7", "x=1")]


def test_a_leading_slash_is_relative_to_the_host_and_absolute_urls_pass_through(app, base, make_client):
    session = make_client(base_url=base + "/api/").session(None)
    session.get("/health")
    session.get(base + "/elsewhere/x")
    assert app.paths() == ["/health", "/elsewhere/x"]
    assert session.url_for("https://other.example/y") == "https://other.example/y"


def test_the_clients_timeout_applies_when_the_caller_gives_none(app, make_client):
    session = make_client(timeout=0.1).session(None)
    with pytest.raises(requests.Timeout):
        session.get("slow")


def test_read_timeouts_of_idempotent_requests_are_retried_then_raised_as_requests_timeout(app, make_client):
    with pytest.raises(requests.Timeout):
        make_client(timeout=0.1, retry=(0.01,)).session(None).get("slow")
    assert app.paths() == ["/slow", "/slow"]


def test_the_callers_timeout_wins_over_the_clients(app, make_client):
    session = make_client(timeout=0.1).session(None)
    assert session.get("slow", timeout=5).status_code == 200


# -- the token header ---------------------------------------------------------------------------

def test_every_request_carries_the_token_with_its_type(app, make_client):
    source = TokenSource()
    session = make_client().session(source)
    assert isinstance(session, TokenSession) and isinstance(session.auth, TokenAuth)
    session.get("a")
    session.post("b", data=b"x")
    assert [r["authorization"] for r in app.seen] == ["Bearer t0", "Bearer t0"]
    assert source.calls == [False, False]


def test_a_session_without_token_source_sends_no_authorization(app, make_client):
    make_client().session(None).get("a")
    assert app.seen[0]["authorization"] is None


def test_a_token_error_from_the_source_propagates_and_nothing_is_sent(app, make_client):
    session = make_client().session(TokenSource(error=TokenError("no grant", error="invalid_client")))
    with pytest.raises(TokenError) as info:
        session.get("a")
    assert info.value.error == "invalid_client"
    assert app.seen == []


def test_no_repr_shows_the_token(app, make_client):
    client = make_client()
    source = TokenSource(prefix="s3cr3t-value-")
    session = client.session(source)
    session.get("a")
    for thing in (session, session.auth, client, client.adapter.max_retries):
        assert "s3cr3t" not in repr(thing)


# -- transport retries --------------------------------------------------------------------------

def test_503_is_retried_with_the_configured_backoff_then_succeeds(app, make_client):
    response = make_client(retry=(0.05, 0.2)).session(None).get("fail/2")
    assert response.status_code == 200
    assert app.paths() == ["/fail/2"] * 3
    first, second = gaps(app)
    assert 0.05 <= first < 0.2 and 0.2 <= second < 0.5  # roughly the list, with room for a busy machine


def test_retry_after_on_429_is_honoured_instead_of_the_backoff(app, make_client):
    response = make_client(retry=(0.01,)).session(None).get("throttled")
    assert response.status_code == 200
    assert len(app.seen) == 2 and gaps(app)[0] >= 0.95


def test_post_is_not_retried_on_503(app, make_client):
    response = make_client(retry=(0.01, 0.01)).session(None).post("always503", data=b"x")
    assert response.status_code == 503 and len(app.seen) == 1


def test_exhausted_retries_return_the_last_5xx_response(app, make_client):
    response = make_client(retry=(0.01, 0.01)).session(None).get("always503")
    assert response.status_code == 503 and response.json()["attempt"] == 3
    assert len(app.seen) == 3


def test_no_retry_list_means_a_single_attempt(app, make_client):
    assert make_client().session(None).get("always503").status_code == 503
    assert len(app.seen) == 1


def test_reset_connections_are_retried_then_succeed():
    dropping = DroppingServer(drops=2)
    client = NamedClient("flaky", dropping.url, retry=(0.01, 0.01))
    try:
        assert client.session(None).get("x").text == "ok"
        assert dropping.connections == 3
    finally:
        client.close()
        dropping.stop()


def test_reset_connections_raise_requests_connection_error_when_retries_run_out():
    dropping = DroppingServer(drops=5)
    client = NamedClient("flaky", dropping.url, retry=(0.01,))
    try:
        with pytest.raises(requests.ConnectionError):
            client.session(None).get("x")
        assert dropping.connections == 2
    finally:
        client.close()
        dropping.stop()


def test_connection_refused_is_retried_with_backoff_then_raised_as_requests_connection_error():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    client = NamedClient("down", f"http://127.0.0.1:{port}/", retry=(0.1, 0.1))
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        client.session(None).get("x")
    assert time.monotonic() - started >= 0.2
    client.close()


def test_backoff_follows_the_list_repeating_the_last_delay_and_caps_retry_after():
    slept: list[float] = []
    retry = BackoffRetry.from_delays((1, 2), sleep=slept.append)
    retry = retry.new(total=10)
    for _ in range(3):
        retry = retry.increment("GET", "/x", error=None, response=HTTPResponse(status=503))
        retry.sleep()
    retry.sleep(HTTPResponse(status=429, headers={"Retry-After": "3600"}))
    retry.sleep(HTTPResponse(status=429, headers={"Retry-After": "soon"}))
    assert slept == [1.0, 2.0, 2.0, 60.0, 2.0]


# -- 401: renew once, replay once ---------------------------------------------------------------

def test_a_401_renews_the_token_once_and_replays_once(app, make_client):
    source = TokenSource()
    response = make_client().session(source).get("protected")
    assert response.status_code == 200
    assert source.calls == [False, True]
    assert [r["authorization"] for r in app.seen] == ["Bearer t0", "Bearer t1"]
    assert [r.status_code for r in response.history] == [401]
    assert response.request.headers["Authorization"] == "Bearer t1"


def test_a_second_401_is_returned_without_another_renewal(app, make_client):
    app.valid_token = "never"
    source = TokenSource()
    response = make_client().session(source).get("protected")
    assert response.status_code == 401
    assert source.calls == [False, True] and len(app.seen) == 2
    assert [r.status_code for r in response.history] == [401]


def test_a_post_401_is_not_replayed_by_default(app, make_client):
    source = TokenSource()
    response = make_client().session(source).post("protected", data=b"order")
    assert response.status_code == 401 and source.calls == [False] and len(app.seen) == 1


def test_a_post_401_is_replayed_with_its_body_when_unsafe_replay_is_enabled(app, make_client):
    source = TokenSource()
    response = make_client(replay_unsafe_methods=True).session(source).post("protected", data=b"order")
    assert response.status_code == 200 and source.calls == [False, True]
    assert [r["body"] for r in app.seen] == [b"order", b"order"]


def test_a_seekable_file_body_is_rewound_for_the_replay(app, make_client):
    response = make_client().session(TokenSource()).put("protected", data=io.BytesIO(b"file"))
    assert response.status_code == 200
    assert [r["body"] for r in app.seen] == [b"file", b"file"]


def test_a_streamed_body_is_never_replayed(app, make_client):
    source = TokenSource()
    session = make_client(replay_unsafe_methods=True).session(source)
    response = session.put("protected", data=iter([b"chunk"]))
    assert response.status_code == 401 and source.calls == [False] and len(app.seen) == 1


def test_a_401_after_a_redirect_to_another_origin_is_not_answered_with_a_renewed_token(app, server, make_client):
    source = TokenSource()
    other_origin = f"http://localhost:{server.port}/protected"  # same server, different origin
    response = make_client().session(source).get("away", params={"to": other_origin})
    assert response.status_code == 401 and source.calls == [False]
    assert [r["authorization"] for r in app.seen] == ["Bearer t0", None]


def test_the_token_is_sent_only_to_the_base_urls_origin(app, server, make_client):
    source = TokenSource()
    session = make_client().session(source)
    session.get(f"http://localhost:{server.port}/elsewhere")  # absolute URL, another origin
    session.get("here")
    assert [r["authorization"] for r in app.seen] == [None, "Bearer t0"]
    assert source.calls == [False]


# -- one connection pool per client -------------------------------------------------------------

def test_sessions_of_one_client_share_the_adapter_and_reuse_one_tcp_connection(app, make_client):
    client = make_client()
    for _ in range(3):
        with client.session(TokenSource()) as session:  # closing a session keeps the pool open
            assert session.get_adapter("http://x/") is client.adapter
            session.get("a")
    assert len({r["port"] for r in app.seen}) == 1


def test_closing_the_client_closes_its_pool(app, make_client):
    client = make_client()
    client.session(None).get("a")
    client.close()
    client.session(None).get("a")
    first, second = (r["port"] for r in app.seen)
    assert first != second


def test_a_session_starts_as_requests_session_does_with_the_clients_adapter_mounted(app, make_client):
    client = make_client()
    session, plain = client.session(None), requests.Session()
    ours = vars(session)
    for name, value in vars(plain).items():  # every attribute requests gives a new session, today and in future
        assert name in ours, name
        if name == "adapters":
            assert list(ours[name]) == list(value) and set(map(id, ours[name].values())) == {id(client.adapter)}
        elif name == "cookies":
            assert type(ours[name]) is type(value) and len(ours[name]) == 0
        else:
            assert ours[name] == value, name
    assert ours["headers"] is not plain.headers and ours["hooks"]["response"] == []
    first, second = client.session(None), client.session(None)
    first.headers["X-Only"] = "first"
    first.cookies.set("c", "1")
    assert first.get("a").request.headers["X-Only"] == "first"
    assert "X-Only" not in second.headers and len(second.cookies) == 0  # nothing shared between sessions
    assert "X-Only" not in second.get("a").request.headers


@settings(max_examples=300, deadline=None)
@given(url=st.text(alphabet="ab./?#;:=%&@-_~\\ \t", max_size=16))
@example(url="a/../b")
@example(url="./a")
@example(url="a//b")
@example(url="x?y=./z")
@example(url="\tx")
def test_url_for_resolves_every_relative_url_exactly_as_urljoin_does(url):
    for base in ("http://h/api/", "http://h", "https://h:8443/a/b/"):
        session = NamedClient("x", base).session(None)
        assert session.url_for(url) == urljoin(session.base_url, url), (base, url)
    for odd in ("http://h/a/../b/", "http://h/a//b/"):  # a base urljoin rewrites: never appended to
        session = NamedClient("x", odd).session(None)
        assert session.url_for(url) == urljoin(session.base_url, url), (odd, url)
