"""Short-lived tokens in a real browser: refreshed without a new login, once for two tabs, and the end of a revoked login.

The demo's access tokens live ``devidp.clients.demo-web.access_token_lifetime`` seconds (60 in
development.ini); these tests shorten it to ``LIFETIME`` and refresh ``REFRESH_BEFORE`` seconds early.
"""
from __future__ import annotations

import time


from .support import By, WebDriverWait, cell, counters, log_in, page_text, visit_checks

LIFETIME = 10
REFRESH_BEFORE = 5  # 5 s from login to the first page, even on a loaded machine
SHORT = {"devidp.clients.demo-web.access_token_lifetime": str(LIFETIME),
         "tokens.refresh_before_expiration": str(REFRESH_BEFORE)}

#: when this page's request was sent and its answer began, in ms since the epoch (Navigation Timing)
NAVIGATION_TIMES = """const n = performance.getEntriesByType('navigation')[0];
return [performance.timeOrigin + n.requestStart, performance.timeOrigin + n.responseStart];"""


def loaded(browser) -> None:
    WebDriverWait(browser, 15).until(lambda b: b.execute_script("return document.readyState") == "complete")


def test_a_short_lived_token_is_refreshed_while_she_browses_with_no_new_login(demo, browser, shots):
    app = demo(SHORT)
    log_in(browser, app)
    assert cell(browser, "refreshes so far") == "0"
    first_expiry = cell(browser, "expires at")
    time.sleep(LIFETIME - REFRESH_BEFORE + 0.5)
    browser.refresh()
    visit_checks(browser, shots, "home-after-refresh")
    assert cell(browser, "refreshes so far") == "1" and cell(browser, "expires at") != first_expiry
    assert "Logged in as Alice" in page_text(browser)
    seen = counters(app)
    assert seen["token"]["refresh_token"] == 1 and seen["token"]["authorization_code"] == 1
    assert seen["authorize"] == 1  # she never saw the provider's login page again


def test_two_tabs_reloading_at_the_same_moment_cause_one_refresh(demo, browser, shots):
    app = demo(SHORT)
    app.provider.misbehave("slow", on="refresh_token", seconds=1.5)  # the refresh is slow: the tabs overlap
    log_in(browser, app)
    first = browser.current_window_handle
    # Another URL in the second tab: Chrome's HTTP cache holds a second request for the same URL until the
    # first one's headers arrive, so two tabs on one URL never reach the server together.
    browser.execute_script("window.second = window.open(arguments[0], 'second')", app.url + "/?tab=2")
    second = next(h for h in browser.window_handles if h != first)
    browser.switch_to.window(second)
    loaded(browser)
    assert cell(browser, "refreshes so far") == "0"
    browser.switch_to.window(first)
    time.sleep(LIFETIME - REFRESH_BEFORE + 0.3)
    browser.execute_script("window.second.location.reload(); location.reload()")  # both in one JavaScript turn
    seen, timings = [], []
    for handle, name in ((first, "first-tab"), (second, "second-tab")):
        browser.switch_to.window(handle)
        WebDriverWait(browser, 15).until(lambda b: b.execute_script("return document.readyState") == "complete"
                                         and b.find_elements(By.XPATH, "//th[normalize-space()='refreshes so far']"))
        visit_checks(browser, shots, name)
        seen.append((cell(browser, "refreshes so far"), cell(browser, "expires at")))
        timings.append(browser.execute_script(NAVIGATION_TIMES))
    # the two page requests really overlapped: both were sent before either answer began
    assert max(sent for sent, _ in timings) < min(answered for _, answered in timings)
    assert seen[0] == seen[1] and seen[0][0] == "1"
    assert app.provider.faults.triggered == 1
    numbers = counters(app)
    assert numbers["token"]["refresh_token"] == 1 and numbers["token_errors"]["invalid_grant"] == 0


def test_once_the_revoked_logins_token_expires_the_next_page_is_the_login_challenge(demo, browser, shots):
    app = demo(SHORT)
    log_in(browser, app)
    browser.find_element(By.XPATH, "//button[normalize-space()='Revoke refresh token']").click()
    loaded(browser)
    visit_checks(browser, shots, "home-after-revoke")
    assert cell(browser, "refresh token") == "none (revoked or not issued)"
    assert counters(app)["revocation"] == 1
    time.sleep(LIFETIME + 0.5)
    browser.get(app.url + "/")
    assert "/idp/authorize" in browser.current_url, page_text(browser)  # log in again
    visit_checks(browser, shots, "challenge-after-expiry")
    browser.get(app.url + "/")
    assert "You are not logged in" in page_text(browser)
