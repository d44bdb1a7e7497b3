"""What the browser scenarios do to a page: log in, read it, and check it like a user (and a screen reader) would.

:func:`visit_checks` is run on every page a scenario sees: a screenshot, no console error, and the
accessibility basics (a ``lang``, a label on every input, headings in order, every button and link
reachable with the Tab key).
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import requests

try:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the chromium_available fixture then skips the tests (fails them under CI=true) saying why
    ActionChains = By = Keys = WebDriverWait = StaleElementReferenceException = None  # type: ignore[assignment,misc]

#: the page's accessibility basics, as a list of problems (empty when fine)
A11Y_JS = """
const problems = [];
if (!document.documentElement.lang) problems.push('no lang on <html>');
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden' || el.type === 'submit' || el.type === 'button') continue;
  if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    problems.push(`input ${el.name || el.outerHTML} has no label`);
}
const levels = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => Number(h.tagName[1]));
if (levels[0] !== 1) problems.push(`the first heading is h${levels[0]}, not h1`);
if (levels.filter(l => l === 1).length !== 1) problems.push(`${levels.filter(l => l === 1).length} h1 headings`);
levels.forEach((l, i) => { if (i && l > levels[i - 1] + 1) problems.push(`h${levels[i - 1]} is followed by h${l}`); });
for (const b of document.querySelectorAll('button, a[href]'))
  if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push(`${b.outerHTML} has no accessible name`);
return problems;
"""
#: number every button and link, so the Tab walk can tell which ones it reached
MARK_JS = """
const els = [...document.querySelectorAll('button, a[href], input:not([type=hidden])')];
els.forEach((el, i) => el.dataset.a11y = String(i));
return els.length;
"""


def page_text(browser) -> str:
    """The rendered text of the page now, read in one script call: never a stale element while it changes."""
    return browser.execute_script("return document.body ? document.body.innerText : ''")


def console_errors(browser) -> list[str]:
    """Console errors (and failed loads) since the last call; reading the log empties it."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def keyboard_unreachable(browser) -> list[str]:
    """The buttons, links and inputs the Tab key never focuses (walking the page from its top)."""
    count = browser.execute_script(MARK_JS)
    browser.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    reached: set[str] = set()
    for _ in range(count + 3):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        marker = browser.switch_to.active_element.get_attribute("data-a11y")
        if marker is not None:
            reached.add(marker)
    return [browser.find_element(By.CSS_SELECTOR, f"[data-a11y='{i}']").get_attribute("outerHTML")
            for i in range(count) if str(i) not in reached]


def follow(browser, element) -> None:
    """Click ``element`` (a link or a submit button) and wait until the page it leaves is gone.

    A click only starts the navigation: reading the page straight after may read the old one.
    """
    old = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 10).until(lambda b: _stale(old))


def _stale(element) -> bool:
    try:
        element.tag_name
    except StaleElementReferenceException:
        return True
    return False


def visit_checks(browser, shots: Callable[[str], Any], name: str) -> str:
    """Screenshot the current page, then assert no console error and the accessibility basics; the source."""
    WebDriverWait(browser, 10).until(lambda b: b.execute_script("return document.readyState") == "complete")
    shots(name)
    source = browser.page_source
    errors = console_errors(browser)
    assert errors == [], f"console errors on {name}: {errors}"
    problems = browser.execute_script(A11Y_JS)
    assert problems == [], f"accessibility problems on {name}: {problems}"
    unreachable = keyboard_unreachable(browser)
    assert unreachable == [], f"not reachable by keyboard on {name}: {unreachable}"
    return source


def log_in(browser, demo, start: str = "/", user: str = "alice", shots=None) -> None:
    """Open ``start``, follow the login challenge (or the Log in button) to the provider, type ``user``, approve."""
    browser.get(demo.url + start)
    if "/idp/authorize" not in browser.current_url:
        browser.find_element(By.LINK_TEXT, "Log in").click()
    WebDriverWait(browser, 10).until(lambda b: "/idp/authorize" in b.current_url)
    if shots is not None:
        visit_checks(browser, shots, "provider-login")
    browser.find_element(By.NAME, "username").send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "button[value=approve]").click()
    WebDriverWait(browser, 10).until(lambda b: b.current_url.startswith(demo.url) and "/idp/" not in b.current_url
                                     and "/callback" not in b.current_url)


def cell(browser, label: str) -> str:
    """The value next to ``label`` in a page's table."""
    return browser.find_element(By.XPATH, f"//tr[th[normalize-space()='{label}']]/td").text


def counters(demo) -> dict[str, Any]:
    """The provider's request counters, read over HTTP from ``/idp/dev/counters`` as any tool would."""
    return requests.get(demo.url + "/idp/dev/counters", timeout=10).json()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def statuses(browser, url: str) -> list[int]:
    """The HTTP status of every response for ``url`` since the last call (the DevTools network log)."""
    found = []
    for entry in browser.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.responseReceived" and event["params"]["response"]["url"] == url:
            found.append(int(event["params"]["response"]["status"]))
    return found


def visited_urls(browser) -> list[str]:
    """Every URL in the tab's session history (Chrome DevTools' ``Page.getNavigationHistory``)."""
    history = browser.execute_cdp_cmd("Page.getNavigationHistory", {})
    return [entry["url"] for entry in history["entries"]]


def pretty(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
