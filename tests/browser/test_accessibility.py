"""Accessibility basics of the provider's pages the other scenarios do not reach, and of the checks themselves."""
from __future__ import annotations

from urllib.parse import quote


from .support import (A11Y_JS, ActionChains, By, Keys, WebDriverWait, follow, keyboard_unreachable, log_in,
                      page_text, visit_checks)


def test_the_providers_device_logout_and_error_pages_pass_the_accessibility_basics(demo, browser, shots):
    app = demo()
    browser.get(app.url + "/idp/device?user_code=ABCD-EFGH")
    visit_checks(browser, shots, "provider-device")
    browser.find_element(By.NAME, "username").send_keys("alice")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "button[value=approve]"))
    assert "Unknown code" in page_text(browser)
    browser.get_log("browser")  # the page answers 400 on purpose
    visit_checks(browser, shots, "provider-device-unknown-code")
    browser.get(app.url + "/idp/authorize?client_id=nobody&response_type=code")
    assert "Request refused" in page_text(browser)
    browser.get_log("browser")
    visit_checks(browser, shots, "provider-error")
    log_in(browser, app)
    browser.get(app.url + "/idp/logout")
    assert "logged out" in page_text(browser)
    visit_checks(browser, shots, "provider-logged-out")


def test_alice_logs_in_and_out_with_the_keyboard_alone(demo, browser, shots):
    app = demo()
    browser.get(app.url + "/")
    tab_to(browser, "Log in").send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda b: "/idp/authorize" in b.current_url)
    assert browser.switch_to.active_element.get_attribute("name") == "username"  # autofocus: type at once
    ActionChains(browser).send_keys("alice").perform()
    tab_to(browser, "Approve").send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda b: "Logged in as Alice" in page_text(b))
    tab_to(browser, "Log out").send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda b: "You are not logged in" in page_text(b))
    visit_checks(browser, shots, "home-after-keyboard-logout")


def tab_to(browser, text: str):
    """Press Tab until the focused element reads ``text``; that element."""
    for _ in range(40):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        if focused.text.strip() == text:
            return focused
    raise AssertionError(f"{text!r} is not reachable with the Tab key")


def test_the_checks_catch_a_page_without_lang_labels_heading_order_or_keyboard_access(browser):
    bad = ("<html><body><h2>Start</h2><h1>Title</h1><h3>Skipped</h3><input name=q>"
           "<button tabindex=-1>Hidden from the keyboard</button><a href='#'></a></body></html>")
    browser.get("data:text/html," + quote(bad))
    problems = browser.execute_script(A11Y_JS)
    assert "no lang on <html>" in problems and "input q has no label" in problems
    assert "the first heading is h2, not h1" in problems and "h1 is followed by h3" in problems
    assert any("no accessible name" in p for p in problems)
    assert [html for html in keyboard_unreachable(browser) if "Hidden from the keyboard" in html]
