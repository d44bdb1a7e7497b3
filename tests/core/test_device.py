"""Device-flow login (RFC 8628) through TokenManager, against the development provider over real HTTP.

The provider decides; the test plays the user (``approve_device``, like a browser) from inside the
injected ``sleep``, which also records the waits, so no test waits for real.
"""
from __future__ import annotations

import json
import threading

import pytest
from webob import Request

from pyramid_tokens import LoginRequired, TokenError, TokenManager
from pyramid_tokens.clock import FakeClock
from pyramid_tokens.demo.api import make_api_app
from pyramid_tokens.device import DeviceAuthorization
from pyramid_tokens.prompt import in_kernel
from pyramid_tokens.devidp import DevClient, DevProvider, DevUser, make_wsgi_app
from pyramid_tokens.devidp.models import DEVICE_CODE_GRANT
from pyramid_tokens.devidp.server import RunningProvider, serve
from tests.support.provider import approve_device, standard_clients
from pyramid_tokens.errors import InvalidIdToken, InvalidResponse, LoginFailed
from pyramid_tokens.usertokens import LOCAL_USER

SCOPE = "openid profile offline_access api"


def manager(idp, clock=None, **settings):
    base = {
        "oidc.authority": idp.issuer,
        "oidc.client_id": "web",
        "oidc.client_secret": "web-secret",
        "oidc.scope": SCOPE,
    }
    base.update(settings)
    return TokenManager.from_settings({k: v for k, v in base.items() if v is not None},
                                      **({"clock": clock} if clock else {}))


class User:
    """Plays the person at the verification URI and records every wait of the polling loop."""

    def __init__(self, *, decide_on_wait=1, approve=True, clock=None):
        self.decide_on_wait = decide_on_wait
        self.approve = approve
        self.clock = clock
        self.authorizations: list[DeviceAuthorization] = []
        self.waits: list[float] = []

    def display(self, authorization):
        self.authorizations.append(authorization)

    def sleep(self, seconds):
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)
        if len(self.waits) == self.decide_on_wait:
            approve_device(self.authorizations[0].verification_uri_complete, "alice", approve=self.approve)


def counters(idp):
    return idp.provider.counters()


def token_errors(idp):
    return counters(idp)["token_errors"]


def device_grants(idp):
    return counters(idp)["token"][DEVICE_CODE_GRANT]


# -- outcomes of the polling loop ------------------------------------------------------------------------
def test_auto_approved_device_login_returns_and_stores_the_users_token(make_idp):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp)
    user = User()
    token = tm.device_login(display=user.display, sleep=user.sleep)
    assert user.waits == []  # approved before the first poll
    assert tm.get_user_access_token() == token
    assert tm.user_tokens.record(LOCAL_USER)["sub"] == "alice"
    assert tm.user_tokens.record(LOCAL_USER)["refresh_token"]
    assert set(token.scope.split()) >= {"openid", "api"}
    assert device_grants(idp) == 1
    assert counters(idp)["device_authorization"] == 1


def test_user_approving_in_a_browser_while_the_device_waits_completes_the_login(make_idp):
    idp = make_idp(device_interval=1)
    tm = manager(idp)
    approver: list[threading.Thread] = []

    def display(authorization):
        thread = threading.Thread(target=approve_device, args=(authorization.verification_uri_complete, "alice"))
        thread.start()
        approver.append(thread)

    waits: list[float] = []

    def sleep(seconds):
        waits.append(seconds)
        approver[0].join(10)

    token = tm.device_login(display=display, sleep=sleep)
    assert tm.get_user_access_token() == token
    assert tm.user_tokens.record(LOCAL_USER)["sub"] == "alice"
    assert waits in ([], [1.0])  # the browser may beat the first poll


def test_pending_authorization_keeps_polling_at_the_providers_interval_until_approved(make_idp, clock):
    idp = make_idp(device_interval=2, clock=clock)
    tm = manager(idp, clock)
    user = User(decide_on_wait=3, clock=clock)
    tm.device_login(display=user.display, sleep=user.sleep)
    assert user.waits == [2.0, 2.0, 2.0]
    assert token_errors(idp)["authorization_pending"] == 3
    assert token_errors(idp)["slow_down"] == 0
    assert device_grants(idp) == 1


def test_polling_faster_than_the_interval_gets_slow_down_and_adds_five_seconds_each_time(make_idp):
    idp = make_idp(device_interval=1)  # the provider's real clock; the injected sleep does not wait
    tm = manager(idp)
    user = User(decide_on_wait=3)
    tm.device_login(display=user.display, sleep=user.sleep)
    assert user.waits == [1.0, 6.0, 11.0]
    assert token_errors(idp)["authorization_pending"] == 1
    assert token_errors(idp)["slow_down"] == 2
    assert tm.user_tokens.record(LOCAL_USER)["sub"] == "alice"


def test_denied_request_raises_access_denied_and_logs_nobody_in(make_idp):
    idp = make_idp(device_interval=1)
    tm = manager(idp)
    user = User(approve=False)
    with pytest.raises(LoginFailed) as caught:
        tm.device_login(display=user.display, sleep=user.sleep)
    assert caught.value.error == "access_denied"
    assert isinstance(caught.value, TokenError)
    assert token_errors(idp)["access_denied"] == 1
    with pytest.raises(LoginRequired):
        tm.get_user_access_token()


def test_code_expiring_unapproved_raises_expired_token_from_the_provider(make_idp):
    provider_clock = FakeClock()
    idp = make_idp(device_interval=1, device_lifetime=2, clock=provider_clock)
    tm = manager(idp)  # its own (real) clock: the provider, not the client, declares the expiry
    waits: list[float] = []

    def sleep(seconds):  # the user never answers; provider time runs past the code's lifetime
        waits.append(seconds)
        provider_clock.advance(seconds + 5)

    with pytest.raises(LoginFailed) as caught:
        tm.device_login(display=lambda a: None, sleep=sleep)
    assert caught.value.error == "expired_token"
    assert waits == [1.0]
    assert token_errors(idp)["expired_token"] == 1
    assert tm.user_tokens.record(LOCAL_USER) is None


def test_timeout_gives_up_before_the_code_expires(make_idp, clock):
    idp = make_idp(device_interval=1, clock=clock)
    tm = manager(idp, clock)
    user = User(decide_on_wait=0, clock=clock)
    with pytest.raises(LoginFailed) as caught:
        tm.device_login(display=user.display, sleep=user.sleep, timeout=3)
    assert caught.value.error == "expired_token"
    assert sum(user.waits) <= 3
    assert token_errors(idp)["expired_token"] == 0  # the client stopped; the code itself is still valid


def test_client_not_allowed_the_device_grant_gets_unauthorized_client(make_idp):
    idp = make_idp(clients=[DevClient("web", "web-secret", grant_types=("authorization_code", "refresh_token"))])
    with pytest.raises(TokenError) as caught:
        manager(idp).device_login(display=lambda a: None, sleep=lambda s: None)
    assert caught.value.error == "unauthorized_client"


def test_public_client_logs_in_by_its_client_id_alone(make_idp):
    idp = make_idp(clients=[DevClient("cli")], device_auto_approve="bob")
    tm = manager(idp, **{"oidc.client_id": "cli", "oidc.client_secret": None})
    tm.device_login(display=lambda a: None)
    assert tm.user_tokens.record(LOCAL_USER)["sub"] == "bob"
    assert counters(idp)["client_auth"]["none"] >= 2  # device authorization and token request


def test_id_token_is_validated_like_at_a_browser_login(make_idp):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp, FakeClock(start=FakeClock()() + 3600))  # an hour ahead: the ID token looks expired
    with pytest.raises(InvalidIdToken):
        tm.device_login(display=lambda a: None)
    with pytest.raises(LoginRequired):
        tm.get_user_access_token()


def test_openid_is_always_requested_because_the_login_needs_the_users_identity(make_idp):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp)
    token = tm.device_login(scope="api offline_access", display=lambda a: None)
    assert "openid" in token.scope.split()
    assert tm.user_tokens.record(LOCAL_USER)["sub"] == "alice"


# -- afterwards: the user token behaves as in the web app ------------------------------------------------
def test_user_token_is_refreshed_when_due_and_the_refresh_token_rotates(make_idp, clock):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp, clock)
    first = tm.device_login(display=lambda a: None)
    refresh_token = tm.user_tokens.record(LOCAL_USER)["refresh_token"]
    clock.advance(300 - 60 - 5)
    assert tm.get_user_access_token() == first
    clock.advance(10)
    second = tm.get_user_access_token()
    assert second != first
    assert counters(idp)["token"]["refresh_token"] == 1
    assert tm.user_tokens.record(LOCAL_USER)["refresh_token"] != refresh_token


def test_named_http_client_calls_the_api_as_the_device_login_user(make_idp):
    idp = make_idp(device_auto_approve="alice")
    api = serve(make_api_app(idp.issuer, audience="api"))
    try:
        tm = manager(idp, **{"tokens.http.api.base_url": api.url + "/api/", "tokens.http.api.token": "user"})
        tm.device_login(display=lambda a: None)
        reply = tm.http_client("api").get("whoami")
        assert reply.status_code == 200
        assert reply.json()["sub"] == "alice"
    finally:
        api.stop()


def test_revoking_after_device_login_is_counted_by_the_provider_and_ends_refreshing(make_idp, clock):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp, clock)
    tm.device_login(display=lambda a: None)
    assert tm.revoke_user_refresh_token() is True
    assert counters(idp)["revocation"] == 1
    assert tm.revoke_user_refresh_token() is False  # nothing left to revoke
    clock.advance(301)
    with pytest.raises(LoginRequired):
        tm.get_user_access_token()


# -- what the user sees --------------------------------------------------------------------------------
def test_terminal_prompt_goes_to_stderr_with_link_and_code_and_no_token(make_idp, capsys):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp)
    assert not in_kernel()
    token = tm.device_login()
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{idp.issuer}/device?user_code=" in err
    assert "Signed in as" in err
    record = tm.user_tokens.record(LOCAL_USER)
    for secret in (token.access_token, record["refresh_token"], record["id_token"], "web-secret"):
        assert secret not in err


def device_authorization(**overrides):
    values = dict(device_code="DEVICE-CODE-SECRET-123", user_code="WDJB-MJHT",
                  verification_uri="https://idp.example/device",
                  verification_uri_complete="https://idp.example/device?user_code=WDJB-MJHT",
                  expires_in=600.0, interval=5.0, issued_at=0.0)
    values.update(overrides)
    return DeviceAuthorization(**values)


def test_device_prompt_html_links_the_complete_uri_and_never_shows_the_device_code():
    authorization = device_authorization()
    html = authorization._repr_html_()
    assert 'href="https://idp.example/device?user_code=WDJB-MJHT"' in html
    assert "WDJB-MJHT" in html
    for text in (html, repr(authorization), authorization.text()):
        assert "DEVICE-CODE-SECRET-123" not in text


def test_device_prompt_does_not_make_a_non_http_verification_uri_clickable():
    html = device_authorization(verification_uri="javascript:alert(1)", verification_uri_complete=None)._repr_html_()
    assert "href" not in html
    assert "javascript:alert(1)" in html  # shown as text


def test_token_manager_html_shows_clients_user_and_http_clients_but_no_token_or_secret(make_idp):
    idp = make_idp(device_auto_approve="alice")
    tm = manager(idp, **{
        "tokens.clients.worker.authority": idp.issuer,
        "tokens.clients.worker.client_id": "worker",
        "tokens.clients.worker.client_secret": "worker-secret",
        "tokens.clients.worker.scope": "api",
        "tokens.http.api.base_url": "https://svc:pass@api.example/v1/",
        "tokens.http.api.token": "client:worker",
    })
    before = tm._repr_html_()
    assert "not logged in" in before
    user_token = tm.device_login(display=lambda a: None)
    client_token = tm.get_client_access_token("worker")
    html = tm._repr_html_()
    assert idp.issuer in html
    assert "alice" in html and "worker" in html and "cached, expires" in html
    assert "https://api.example/v1/" in html and "client:worker" in html
    record = tm.user_tokens.record(LOCAL_USER)
    for secret in (user_token.access_token, client_token.access_token, record["refresh_token"], record["id_token"],
                   "web-secret", "worker-secret", "pass@"):
        assert secret not in html
        assert secret not in repr(tm)
        assert secret not in user_token._repr_html_()
        assert secret not in client_token._repr_html_()


def test_access_token_display_shows_hostile_claims_as_escaped_text_and_never_fails():
    import jwt

    from pyramid_tokens.tokens import AccessToken

    value = jwt.encode({"sub": "<script>alert(1)</script>", "aud": [1, {"x": 2}], "exp": 1e300, "iat": 10**12 * 1.0,
                        "nonce": "n-0123"}, "k" * 32, algorithm="HS256")
    html = AccessToken(value)._repr_html_()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "1, {&#x27;x&#x27;: 2}" in html  # every audience shown, whatever its type
    assert "1e+300" in html  # a timestamp no calendar holds is shown as the number it is
    assert "n-0123" not in html and value not in html


# -- a hostile device authorization response (RFC 8628 §3.2, §5.4) ----------------------------------------
DROP = object()
#: an OSC 8 hyperlink to another site around the code, a screen clear, CR, backspace, BEL and a bidi override
TERMINAL_ATTACK = "\x1b]8;;https://evil.example/\x1b\\WDJB\x1b]8;;\x07-MJHT\x1b[2J\r\x08\u202eKCAB\x9b31m"
UNSHOWN = ("\x1b", "\x07", "\r", "\x08", "\u202e", "\x9b")


def rewriting_device_authorization(app, fields, endpoint="/device_authorization"):
    """WSGI middleware: the provider's ``endpoint`` JSON responses with ``fields`` replaced (``DROP``: removed)."""

    def evil(environ, start_response):
        response = Request(environ).get_response(app)
        if environ["PATH_INFO"].endswith(endpoint) and response.content_type == "application/json":
            data = response.json
            data.update(fields)
            response.body = json.dumps({k: v for k, v in data.items() if v is not DROP}).encode()
        return response(environ, start_response)

    return evil


@pytest.fixture
def evil_idp():
    """The development provider behind a proxy that rewrites its device authorization responses."""
    running = []

    def start(fields, endpoint="/device_authorization", **provider_kwargs):
        provider_kwargs.setdefault("device_interval", 1)
        provider = DevProvider("http://unbound.invalid", standard_clients(), **provider_kwargs)
        server = serve(rewriting_device_authorization(make_wsgi_app(provider, "/idp"), fields, endpoint))
        provider.issuer = server.url + "/idp"
        running.append(RunningProvider(provider, server))
        return running[-1]

    yield start
    for idp in running:
        idp.stop()


@pytest.mark.parametrize("interval", [0, 0.2, -3, DROP])
def test_an_interval_below_one_second_or_missing_polls_every_five_seconds(evil_idp, interval, clock):
    idp = evil_idp({"interval": interval}, clock=clock)
    tm = manager(idp, clock)
    user = User(decide_on_wait=3, clock=clock)
    tm.device_login(display=user.display, sleep=user.sleep)
    assert user.authorizations[0].interval == 5.0
    assert user.waits == [5.0, 5.0, 5.0]
    assert token_errors(idp)["authorization_pending"] == 3
    assert tm.user_tokens.record(LOCAL_USER)["sub"] == "alice"


def test_an_interval_of_one_second_or_more_is_the_providers_to_choose(evil_idp, clock):
    idp = evil_idp({"interval": 1}, clock=clock)
    user = User(decide_on_wait=2, clock=clock)
    manager(idp, clock).device_login(display=user.display, sleep=user.sleep)
    assert user.waits == [1.0, 1.0]


def test_expires_in_of_ten_to_the_twelve_is_capped_so_an_unanswered_login_ends_within_thirty_minutes(evil_idp, clock):
    idp = evil_idp({"expires_in": 10**12, "interval": 60}, clock=clock, device_lifetime=10**7)  # stays valid
    tm = manager(idp, clock)
    user = User(decide_on_wait=0, clock=clock)

    def sleep(seconds):
        assert sum(user.waits) + seconds <= 1800, "still polling after 30 minutes"
        user.sleep(seconds)

    with pytest.raises(LoginFailed) as caught:
        tm.device_login(display=user.display, sleep=sleep)
    assert caught.value.error == "expired_token"
    assert user.authorizations[0].expires_in == 1800.0
    assert "about 30 min" in user.authorizations[0].text()
    assert 1740 <= sum(user.waits) <= 1800
    assert token_errors(idp)["expired_token"] == 0  # the client stopped on its own cap


def test_a_user_code_with_terminal_escape_sequences_is_printed_inert(evil_idp, capsys):
    idp = evil_idp({"user_code": TERMINAL_ATTACK}, device_auto_approve="alice")
    tm = manager(idp)
    tm.device_login()
    err = capsys.readouterr().err
    assert "enter the code ]8;;https://evil.example/\\WDJB]8;;-MJHT[2JKCAB31m)" in err  # shown, as text
    for char in UNSHOWN:
        assert char not in err
    assert "Signed in as" in err


def test_the_signed_in_users_name_from_the_id_token_is_printed_inert(evil_idp, capsys):
    idp = evil_idp({}, device_auto_approve="alice", users=[DevUser("alice", name=TERMINAL_ATTACK)])
    manager(idp).device_login()
    err = capsys.readouterr().err
    assert "Signed in as ]8;;https://evil.example/\\WDJB]8;;-MJHT[2JKCAB31m." in err
    for char in UNSHOWN:
        assert char not in err


def test_a_providers_error_description_is_printed_inert_when_the_login_fails(evil_idp, capsys):
    idp = evil_idp({"error": "server_refused", "error_description": "no" + TERMINAL_ATTACK}, endpoint="/token")
    with pytest.raises(TokenError):
        manager(idp).device_login(sleep=lambda s: None)
    err = capsys.readouterr().err
    assert "Sign-in failed:" in err
    for char in UNSHOWN:
        assert char not in err


def test_the_html_prompt_shows_a_hostile_user_code_inert_and_escaped():
    html = device_authorization(user_code=TERMINAL_ATTACK + "<script>alert(1)</script>")._repr_html_()
    assert "]8;;https://evil.example/\\WDJB]8;;-MJHT[2JKCAB31m&lt;script&gt;" in html
    assert "<script>" not in html
    for char in UNSHOWN:
        assert char not in html


@pytest.mark.parametrize("field, value, message", [
    ("verification_uri", "javascript:alert(1)", "verification_uri must be an absolute http(s) URI"),
    ("verification_uri", "/device", "verification_uri must be an absolute http(s) URI"),
    ("verification_uri", "https://idp.example/\x1b[2Jdevice", "verification_uri must be an absolute http(s) URI"),
    ("verification_uri", "https://idp.example/de vice", "verification_uri must be an absolute http(s) URI"),
    ("verification_uri_complete", "https://idp.example/\u202edevice", "verification_uri_complete must be an absolute"),
    ("verification_uri", "https://idp.example/" + "d" * 2100, "verification_uri is longer than 2048 characters"),
    ("verification_uri", ["https://idp.example/device"], "verification_uri must be a string"),
    ("user_code", "W" * 65, "user_code is longer than 64 characters"),
    ("user_code", 12345678, "user_code must be a string"),
    ("device_code", {"code": "x"}, "device_code must be a string"),
    ("device_code", "d" * 4097, "device_code is longer than 4096 characters"),
    ("expires_in", "600", "expires_in must be a number"),
    ("expires_in", True, "expires_in must be a number"),
    ("interval", [5], "interval must be a number"),
    ("interval", 10**6, "interval must be at most 300 s"),
])
def test_a_mistyped_or_unbounded_device_authorization_response_is_refused_naming_the_field(
        evil_idp, field, value, message):
    idp = evil_idp({field: value}, device_auto_approve="alice")
    tm = manager(idp)
    shown = []
    with pytest.raises(InvalidResponse) as caught:
        tm.device_login(display=shown.append, sleep=lambda s: None)
    assert message in caught.value.error_description
    assert shown == []  # nothing reached the user
    assert tm.user_tokens.record(LOCAL_USER) is None
