"""A hostile pushed authorization request endpoint (RFC 9126 §2.2-2.3): whatever it answers, the login
is a failure page (502/503), never a 500, and nothing it sent reaches the browser's redirect."""
from __future__ import annotations

import pytest
import webtest

from tests.support.web import base_settings, build_app
from tests.security.evil import EvilServer, raw_response

HOSTILE = {
    "request_uri not a string": raw_response(201, {"request_uri": 5, "expires_in": 60}),
    "request_uri with a NUL": raw_response(201, {"request_uri": "urn:x\u0000evil", "expires_in": 60}),
    "request_uri with CRLF": raw_response(201, {"request_uri": "urn:x\r\nSet-Cookie: a=b", "expires_in": 60}),
    "request_uri of 5000 characters": raw_response(201, {"request_uri": "u" * 5000, "expires_in": 60}),
    "request_uri missing": raw_response(201, {"expires_in": 60}),
    "expires_in a string": raw_response(201, {"request_uri": "urn:ok", "expires_in": "60"}),
    "expires_in zero": raw_response(201, {"request_uri": "urn:ok", "expires_in": 0}),
    "a JSON list": raw_response(201, b"[1, 2]"),
    "an HTML page": raw_response(200, b"<html>hello</html>", content_type=b"text/html"),
    "a 500 without a body": raw_response(500),
    "a 400 with an HTML page": raw_response(400, b"<html>no</html>", content_type=b"text/html"),
    "a 400 with an error code full of control characters": raw_response(400, {"error": "bad\u0007\u0000"}),
}


@pytest.mark.parametrize("answer", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_par_reply_is_a_login_failure_page(make_idp, answer):
    evil = EvilServer(lambda request: answer)
    try:
        idp = make_idp(par=True)
        document = idp.provider.metadata
        idp.provider.metadata = lambda: {**document(), "pushed_authorization_request_endpoint": evil.url + "/par"}
        app = webtest.TestApp(build_app(base_settings(idp)))
        page = app.get("/login", expect_errors=True)
        assert page.status_int in (502, 503), page.status
        assert "Login failed" in page.text and "web-secret" not in page.text and "evil" not in page.text
        assert evil.requests and evil.requests[0]["path"] == "/par"
        assert idp.provider.counters()["authorize"] == 0
    finally:
        evil.stop()
