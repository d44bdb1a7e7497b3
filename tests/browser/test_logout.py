"""Logging out in a real browser: the confirmation form, the provider's logout, Back, old cookies, cross-site POSTs."""
from __future__ import annotations

import pytest

from pyramid_tokens.devidp.server import serve

from .support import By, WebDriverWait, cell, counters, log_in, page_text, statuses, visit_checks

PRIVATE = ("Logged in as", "alice@example.test", "Revoke refresh token")


def body_text(browser) -> str:
    return page_text(browser)


def log_out(browser, app, shots=None) -> None:
    browser.find_element(By.XPATH, "//button[normalize-space()='Log out']").click()
    WebDriverWait(browser, 10).until(lambda b: "You are not logged in" in body_text(b))
    if shots is not None:
        visit_checks(browser, shots, "home-after-logout")


def test_logout_confirms_then_logs_out_at_the_provider_and_back_shows_nothing_private(demo, browser, shots):
    app = demo()
    log_in(browser, app)
    browser.get(app.url + "/call-api")
    browser.get(app.url + "/logout")
    visit_checks(browser, shots, "logout-confirmation")
    assert "Log out of this application?" in body_text(browser)
    assert counters(app)["end_session"] == 0  # a GET only asks
    log_out(browser, app, shots)
    seen = counters(app)
    assert seen["end_session"] == 1 and seen["revocation"] == 1
    for step in range(3):  # the confirmation form, the API page, the home page: all fetched again, anonymous
        browser.back()
        WebDriverWait(browser, 10).until(lambda b: b.execute_script("return document.readyState") == "complete")
        visit_checks(browser, shots, f"back-{step + 1}")
        assert not [words for words in PRIVATE if words in browser.page_source], browser.current_url
        assert '"sub": "alice"' not in browser.page_source


def test_a_copy_of_the_session_cookie_taken_before_logout_is_anonymous_after_it(demo, browser, shots):
    app = demo()
    log_in(browser, app)
    saved = browser.get_cookie("demo_session")
    log_out(browser, app)
    browser.delete_all_cookies()
    browser.add_cookie({k: saved[k] for k in ("name", "value", "path", "httpOnly", "sameSite")})
    browser.get(app.url + "/")
    visit_checks(browser, shots, "home-with-old-cookie")
    assert "You are not logged in" in body_text(browser)


def attacker_site(target: str):
    """A page on another site (127.0.0.2 is a different site from 127.0.0.1) that POSTs to ``target`` on load."""
    html = (f"<!doctype html><html lang='en'><head><title>Win a prize</title><link rel='icon' href='data:,'></head>"
            f"<body><h1>Win a prize</h1><form method='post' action='{target}'>"
            f"<input type='hidden' name='csrf_token' value='guessed'></form>"
            f"<script>document.forms[0].submit()</script></body></html>").encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(html)))])
        return [html]

    return serve(app, host="127.0.0.2", threads=2)


def attacked(browser, app, shots, path: str) -> None:
    """Alice, logged in, visits the attacker's page, which POSTs to ``path`` of the demo without the CSRF token."""
    browser.get_log("performance")
    with attacker_site(app.url + path) as evil:
        browser.get(evil.url + "/")
        WebDriverWait(browser, 10).until(lambda b: b.current_url == app.url + path)
        shots("cross-site-post-refused")
    assert statuses(browser, app.url + path) in ([400], [403])
    browser.get_log("browser")  # the refused POST's 4xx is expected in the console


@pytest.mark.parametrize("path", ["/logout", "/revoke"])
def test_a_cross_site_post_to_logout_or_revoke_is_refused_and_revokes_nothing(demo, browser, shots, path):
    app = demo()
    log_in(browser, app)
    attacked(browser, app, shots, path)
    seen = counters(app)
    assert seen["end_session"] == 0 and seen["revocation"] == 0


@pytest.mark.parametrize("path", ["/logout", "/revoke"])
def test_a_cross_site_post_to_logout_or_revoke_leaves_the_victim_logged_in_with_her_tokens(demo, browser, shots,
                                                                                           path):
    app = demo()
    log_in(browser, app)
    attacked(browser, app, shots, path)
    browser.get(app.url + "/")
    visit_checks(browser, shots, "home-after-attack")
    assert "Logged in as Alice" in body_text(browser)
    assert cell(browser, "refresh token") == "held"
