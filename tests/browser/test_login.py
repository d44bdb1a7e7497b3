"""Logging in through the provider's pages in a real browser, and calling the API as the user and as the app."""
from __future__ import annotations

import time


from .support import By, cell, counters, follow, log_in, page_text, visit_checks


def test_alice_logs_in_through_the_providers_page_and_lands_on_the_page_she_came_from(demo, browser, shots):
    app = demo()
    browser.get(app.url + "/")
    visit_checks(browser, shots, "home-anonymous")
    log_in(browser, app, start="/call-api", shots=shots)
    assert browser.current_url == app.url + "/call-api"
    source = visit_checks(browser, shots, "call-api")
    assert "HTTP 200" in page_text(browser)
    assert '"sub": "alice"' in source and '"client_id": "demo-web"' in source
    assert counters(app)["token"]["authorization_code"] == 1


def test_home_shows_her_name_her_claims_and_an_expiry_countdown_that_ticks(demo, browser, shots):
    app = demo()
    log_in(browser, app)
    visit_checks(browser, shots, "home")
    body = page_text(browser)
    assert "Logged in as Alice" in body and "sub alice" in body
    assert cell(browser, "email") == "alice@example.test" and cell(browser, "preferred_username") == "alice"
    assert cell(browser, "refresh token") == "held"
    countdown = browser.find_element(By.CSS_SELECTOR, "[data-expires]")
    first = countdown.text
    time.sleep(1.1)
    second = countdown.text
    assert first != second and second.endswith(" s") and "expired" not in second
    assert int(second.split(" min ")[0]) * 60 + int(second.split(" min ")[1][:-2]) <= 60  # the demo's 60 s tokens


def test_the_api_answers_as_alice_with_her_token_and_as_the_app_with_a_cached_client_token(demo, browser, shots):
    app = demo()
    log_in(browser, app, start="/call-api")
    source = visit_checks(browser, shots, "call-api-as-user")
    assert '"sub": "alice"' in source and '"scope": "openid profile email offline_access api"' in source
    follow(browser, browser.find_element(By.LINK_TEXT, "Call the API as the app (client credentials)"))
    source = visit_checks(browser, shots, "call-api-as-app")
    body = page_text(browser)
    assert "HTTP 200, HTTP 200, HTTP 200" in body
    assert '"client_id": "demo-worker"' in source and '"sub": "alice"' not in source
    browser.refresh()  # three more calls: the cached client token is reused, none is requested
    assert "during these 3 API calls: 0" in page_text(browser)
    assert counters(app)["token"]["client_credentials"] == 1
