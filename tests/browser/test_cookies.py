"""What the browser holds after a login, a refresh and API calls: one HttpOnly, SameSite=Lax cookie and no token anywhere."""
from __future__ import annotations

import re
import time

from .support import log_in, visited_urls
from .test_refresh import LIFETIME, REFRESH_BEFORE, SHORT


def test_the_browser_holds_no_token_in_cookies_script_history_or_page_source(demo, browser):
    app = demo(SHORT)
    log_in(browser, app, start="/call-api")
    sources = [browser.page_source]
    tokens = app.tokens()  # the access, refresh and ID tokens the server keeps for this browser
    time.sleep(LIFETIME - REFRESH_BEFORE + 0.5)  # a refresh too: the rotated tokens must not leak either
    for path in ("/", "/call-api", "/client-api", "/logout"):
        browser.get(app.url + path)
        sources.append(browser.page_source)
    assert re.search(r"refreshes so far</th><td[^>]*>1</td>", sources[1])

    cookies = browser.get_cookies()
    assert [c["name"] for c in cookies] == ["demo_session"]
    assert cookies[0]["httpOnly"] is True and cookies[0]["sameSite"] == "Lax"
    assert browser.execute_script("return document.cookie") == ""
    tokens |= app.tokens()  # and those of the refresh
    assert len(tokens) >= 5  # access and refresh tokens rotated, the ID token renewed or kept
    held = {"cookie": cookies[0]["value"], "history": " ".join(visited_urls(browser)), "source": " ".join(sources)}
    for token in tokens:
        for piece in (token, *token.split(".")):  # a JWT's signature or payload alone is a leak too
            if len(piece) >= 16:
                assert not [where for where, text in held.items() if piece in text]
