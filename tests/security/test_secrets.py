"""Secrets stay secret: logs, reprs and error messages; session cookies; CSRF; open redirects.

Logs are captured at DEBUG for every logger in the process during full flows (login, refresh,
client credentials, revocation, logout, device login, failed logins and refreshes). The relying
party's loggers and every library it uses must not show a token, code, code verifier or secret.
Exception: ``oauthlib.*``. oauthlib's *server* side (the development provider, running in the
same process in tests and in the demo) logs codes and token responses at DEBUG
(e.g. ``Created authorization code grant ...``, ``Issuing token ...``); that is the provider's
business, not the relying party's, so records of ``oauthlib`` loggers are left out of the check
(and the test shows that they are the only ones that would fail it).
"""
from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit

import pytest
import webtest

from pyramid_tokens import TokenError, TokenManager
from tests.support.provider import approve_device
from pyramid_tokens.manager import LOCAL_USER
from pyramid_tokens.oidc import OidcClient, PendingLogin
from pyramid_tokens.web.redirects import safe_path

from .support import HTML, JSON, assert_logged_out, attempt_login, build_app, login, query_of, settings_for, user_record


class Capture(logging.Handler):
    """Every record of every logger, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, self.format(record)))


@pytest.fixture
def all_logs():
    """All loggers at DEBUG, captured; levels restored afterwards."""
    capture = Capture()
    root = logging.getLogger()
    loggers = [root] + [logger for logger in root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    levels = {logger: logger.level for logger in loggers}
    disabled = {logger: logger.disabled for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    for name in ("oauthlib", "urllib3", "requests", "pyramid_tokens", "beaker", "waitress", "jwt", "webtest"):
        logger = logging.getLogger(name)  # not created yet: created now, at DEBUG
        levels.setdefault(logger, logger.level)
        logger.setLevel(logging.DEBUG)
    root.addHandler(capture)
    yield capture
    root.removeHandler(capture)
    for logger, level in levels.items():
        logger.setLevel(level)
    for logger, value in disabled.items():
        logger.disabled = value


class Secrets:
    """The secret values seen during a test, collected as the flows produce them."""

    def __init__(self) -> None:
        self.values: set[str] = {"web-secret", "worker-secret"}

    def add(self, *values) -> None:
        self.values.update(v for v in values if isinstance(v, str) and len(v) >= 8)

    def add_record(self, record) -> None:
        self.add(record["access"]["access_token"], record.get("refresh_token"), record.get("id_token"))

    def found_in(self, text: str) -> list[str]:
        return [value[:12] + "..." for value in self.values if value in text]


@pytest.fixture
def secrets_seen(monkeypatch):
    seen = Secrets()
    original = OidcClient.complete_login

    def spy(self, params, pending):
        seen.add(pending.code_verifier, params.get("code"))
        result = original(self, params, pending)
        seen.add(result.tokens.access_token.access_token, result.tokens.refresh_token, result.tokens.id_token)
        return result

    monkeypatch.setattr(OidcClient, "complete_login", spy)
    return seen


def leaks(capture: Capture, seen: Secrets, *, skip=("oauthlib",)) -> list[tuple[str, list[str], str]]:
    found = []
    for name, text in capture.records:
        if name.split(".")[0] in skip:
            continue
        hits = seen.found_in(text)
        if hits:
            found.append((name, hits, text[:300]))
    return found


def test_no_secret_in_any_log_line_during_full_flows(all_logs, secrets_seen, make_idp, clock):
    seen = secrets_seen
    idp = make_idp(clock=clock)  # one clock for both sides: the flows below move time by minutes
    app = webtest.TestApp(build_app(settings_for(idp, **{"tokens.clients.worker.authority": idp.issuer,
                                                         "tokens.clients.worker.client_id": "worker",
                                                         "tokens.clients.worker.client_secret": "worker-secret"}),
                                    clock))
    # login, token use, refresh (rotation), client credentials, revocation, logout
    login(app)
    seen.add_record(user_record(app))
    app.get("/token")
    clock.advance(250)
    app.get("/token")
    seen.add_record(user_record(app))
    seen.add(app.get("/client-token").json["access_token"])
    manager = app.app.registry["pyramid_tokens.manager"]
    seen.add(manager.get_client_access_token("worker").access_token)
    app.get("/revoke")
    login(app, "bob")
    seen.add_record(user_record(app))
    app.get("/logout").forms[0].submit()
    # failures: a bad ID token at login, garbage and an outage at refresh
    idp.provider.misbehave("id_token_bad_signature")
    attempt_login(app)
    idp.provider.behave()
    login(app, "carol")
    seen.add_record(user_record(app))
    clock.advance(400)
    idp.provider.misbehave("not_json", on="refresh_token")
    app.get("/token", status=502)
    idp.provider.misbehave("server_error", on="refresh_token")
    app.get("/token", headers=JSON, status=503)
    idp.provider.behave()
    app.get("/token")
    seen.add_record(user_record(app))
    # the device flow of a notebook
    tm = TokenManager.from_settings({"oidc.authority": idp.issuer, "oidc.client_id": "web",
                                     "oidc.client_secret": "web-secret",
                                     "oidc.scope": "openid offline_access api"}, clock=clock)

    def display(authorization):
        seen.add(authorization.device_code)
        approve_device(authorization.verification_uri_complete, "dave")

    tm.device_login(display=display, sleep=clock.advance)
    seen.add_record(tm.user_tokens.record(LOCAL_USER))
    clock.advance(400)
    tm.get_user_access_token()
    seen.add_record(tm.user_tokens.record(LOCAL_USER))
    tm.revoke_user_refresh_token()

    assert len(seen.values) > 20
    assert len(all_logs.records) > 50  # DEBUG really was captured
    assert leaks(all_logs, seen) == []
    # Only oauthlib (the provider's side) would fail the check; it is excluded above on purpose.
    assert {name.split(".")[0] for name, _, _ in leaks(all_logs, seen, skip=())} <= {"oauthlib"}


def test_reprs_and_error_messages_redact_secrets(idp, clock, secrets_seen):
    app = webtest.TestApp(build_app(settings_for(idp), clock))
    login(app)
    manager = app.app.registry["pyramid_tokens.manager"]
    record = user_record(app)
    secrets_seen.add_record(record)
    tokens = manager.oidc.refresh(record["refresh_token"])
    secrets_seen.add(tokens.access_token.access_token, tokens.refresh_token, tokens.id_token)
    _, pending = manager.oidc.begin_login("http://localhost/callback")
    secrets_seen.add(pending.code_verifier, pending.state, pending.nonce)
    errors = []
    for fault in ("id_token_bad_signature", "not_json", "html_error_page", "missing_access_token"):
        idp.provider.misbehave(fault, on="refresh_token")
        try:
            manager.oidc.validate_refreshed_id_token(manager.oidc.refresh(tokens.refresh_token), "alice")
        except TokenError as exc:
            errors.append(exc)
    idp.provider.behave()
    assert len(errors) == 4
    objects = [tokens, tokens.access_token, pending, manager, manager.options, manager.options.oidc,
               manager.oidc.credentials, *manager.options.clients.values(), *errors]
    for obj in objects:
        for text in (repr(obj), str(obj)):
            assert secrets_seen.found_in(text) == [], (type(obj).__name__, text)
    assert "'<redacted>'" in repr(manager.oidc.credentials)


def test_failure_pages_and_challenges_show_no_secret(app, idp, secrets_seen):
    login(app)
    secrets_seen.add_record(user_record(app))
    idp.provider.misbehave("id_token_wrong_nonce")
    page = attempt_login(app)
    assert page.status_int == 400
    assert secrets_seen.found_in(page.text) == []
    app.reset()
    assert secrets_seen.found_in(app.get("/token", headers=JSON, status=401).text) == []


# -- session cookies ----------------------------------------------------------------------------------------------
def set_cookie(response) -> str:
    cookies = [value.strip() for name, value in response.headerlist
               if name == "Set-Cookie" and value.strip().startswith("sid=")]
    assert cookies, response.headerlist
    return cookies[-1].lower()


def test_session_cookie_is_httponly_samesite_lax_and_not_secure_over_plain_http(app):
    cookie = set_cookie(app.get("/login"))
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie.replace("samesite", "")


def test_session_cookie_is_secure_over_https_when_session_secure_is_set(idp, clock):
    """Beaker never infers Secure from the request scheme: ``session.secure = true`` is what sets it."""
    https = webtest.TestApp(build_app(settings_for(idp, **{"session.secure": "true"}), clock),
                            extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "localhost:443"})
    cookie = set_cookie(https.get("/login"))
    assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    unset = webtest.TestApp(build_app(settings_for(idp), clock),
                            extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "localhost:443"})
    assert "; secure" not in set_cookie(unset.get("/login"))  # hence the start-up warning below


def test_https_authority_without_session_secure_warns_at_start_up(caplog, idp):
    from pyramid.config import Configurator

    settings = settings_for(idp, **{"oidc.authority": "https://idp.example"})
    with caplog.at_level(logging.WARNING, logger="pyramid_tokens"):
        Configurator(settings=settings).include("pyramid_tokens")
    assert any("session.secure" in record.getMessage() for record in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pyramid_tokens"):
        Configurator(settings={**settings, "session.secure": "true"}).include("pyramid_tokens")
    assert not any("session.secure" in record.getMessage() for record in caplog.records)


def test_session_id_changes_at_login_and_a_planted_id_gets_nothing(app, make_webapp):
    app.get("/login")
    planted = app.cookies["sid"]  # an attacker obtains this id and plants it in the victim's browser
    login(app)
    assert app.cookies["sid"] != planted
    attacker = make_webapp()
    attacker.set_cookie("sid", planted)
    assert_logged_out(attacker)
    assert app.get("/whoami").json == {"userid": "alice"}


# -- logout is not triggerable cross-site --------------------------------------------------------------------------
def test_logout_needs_a_post_with_this_sessions_csrf_token(app, make_webapp, idp):
    login(app)
    assert app.get("/logout", params={"csrf_token": "x"}).text.count("<form") == 1  # GET only asks
    app.post("/logout", status=400)  # a cross-site form post has no token
    app.post("/logout", {"csrf_token": "guessed"}, status=400)
    other = make_webapp()
    login(other, "mallory")
    foreign = other.get("/logout").forms[0]["csrf_token"].value  # a valid token, of another session
    app.post("/logout", {"csrf_token": foreign}, status=400)
    app.post("/logout", {"csrf_token": foreign}, headers={"Origin": "https://evil.example"}, status=400)
    assert app.get("/whoami").json == {"userid": "alice"}
    assert idp.provider.counters()["revocation"] == 0
    app.get("/logout").forms[0].submit(status=302)
    assert_logged_out(app)


def test_csrf_token_changes_at_login(app):
    before = app.get("/logout").forms[0]["csrf_token"].value
    login(app)
    assert app.get("/logout").forms[0]["csrf_token"].value != before


# -- redirects stay on the site ---------------------------------------------------------------------------------------
OFF_SITE = [
    "//evil.example", "//evil.example/path", "///evil.example", "////evil.example", "/\\evil.example",
    "\\/evil.example", "\\\\evil.example", "/\\/evil.example", "https:evil.example", "https:/evil.example",
    "https://evil.example", "HTTPS://evil.example", "javascript:alert(1)", "data:text/html,<script>",
    "%2F%2Fevil.example", "%2f%2fevil.example", "/%2F/evil.example", "/%2f%2fevil.example", "/%5Cevil.example",
    "/%5cevil.example", "%252F%252Fevil.example", "/%252F%252Fevil.example", "/\t/evil.example",
    "/\n/evil.example", "/\r\n/evil.example", "\t//evil.example", " //evil.example", "/%09/evil.example",
    "/%0a/evil.example", "/%0d%0a/evil.example", "/%00/evil.example", "//evil.example%2F", "//evil.example@x",
    "/\u3002/evil.example", "\uff0f\uff0fevil.example", "/\uff0fevil.example", "//\u0435vil.example",
    "/\x7f/evil.example", "evil.example", "@evil.example", "", "x" * 3000,
]


def browser_target(base: str, location: str) -> str:
    """Where a browser goes: it strips tabs/newlines and reads backslashes as slashes (WHATWG URL)."""
    cleaned = location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/").strip()
    return urljoin(base, cleaned)


@pytest.mark.parametrize("target", OFF_SITE)
def test_safe_path_never_leaves_the_site(target):
    result = safe_path(target)
    assert urlsplit(browser_target("https://app.example/", result)).netloc == "app.example"


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https:evil.example", "%2F%2Fevil.example",
                                    "/\t/evil.example", "/%0a/evil.example", "%252F%252Fevil.example",
                                    "/\uff0fevil.example", "\uff0f\uff0fevil.example", "/\u00e9t\u00e9"])
def test_came_from_tricks_end_on_the_site_after_a_real_login(app, target):
    response = login(app, came_from=target)
    parts = urlsplit(browser_target("http://localhost/", response.location))
    assert parts.netloc == "localhost"


@pytest.mark.parametrize("params", [{"came_from": "//evil.example"}, {"post_logout_redirect_uri": "https://evil.example/"},
                                    {"next": "https://evil.example/", "return_to": "//evil.example"}])
def test_logout_target_cannot_be_chosen_by_the_request(app, idp, params):
    login(app)
    form = app.get("/logout", params=params).forms[0]
    response = app.post(form.action or "/logout", {"csrf_token": form["csrf_token"].value, **params}, status=302)
    assert response.location.startswith(idp.issuer + "/logout?")
    assert query_of(response.location)["post_logout_redirect_uri"] == ["http://localhost/"]
    assert "evil" not in response.location
    # without an end-session endpoint (or a login) the app sends the browser to its own post-logout path
    anonymous = app.post("/logout", {"csrf_token": app.get("/logout").forms[0]["csrf_token"].value, **params},
                         status=302)
    assert anonymous.location == "http://localhost/"


def test_post_logout_setting_must_be_a_path_or_an_absolute_url(idp):
    from pyramid.config import Configurator
    from pyramid.exceptions import ConfigurationError

    for value in ("//evil.example", "evil.example", "javascript:alert(1)"):
        with pytest.raises(ConfigurationError, match="oidc.post_logout_redirect"):
            Configurator(settings=settings_for(idp, **{"oidc.post_logout_redirect": value})).include("pyramid_tokens")


def test_percent_encoded_non_ascii_paths_are_kept():
    assert safe_path("/caf%C3%A9?q=%E2%98%83") == "/caf%C3%A9?q=%E2%98%83"


def test_login_challenge_keeps_came_from_on_the_site(app):
    response = app.get("/token", params={"x": "//evil.example"}, headers=HTML, status=302)
    assert urlsplit(response.location).netloc in ("", "localhost")
    assert query_of(response.location)["came_from"] == ["/token?x=%2F%2Fevil.example"]


def test_pending_login_repr_shows_no_secret():
    pending = PendingLogin(state="s" * 40, nonce="n" * 40, code_verifier="v" * 64, redirect_uri="http://x/cb",
                           came_from="/", created_at=0.0)
    assert "s" * 40 not in repr(pending) and "n" * 40 not in repr(pending) and "v" * 64 not in repr(pending)
