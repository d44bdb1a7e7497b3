"""Serving: loopback only unless explicitly allowed, stoppable, and the command line."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from pyramid_tokens.devidp import DevProvider, make_wsgi_app, serve, start_provider
from pyramid_tokens.devidp.server import is_loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.test", "::"])
def test_serve_refuses_a_non_loopback_host(host):
    app = make_wsgi_app(DevProvider("http://127.0.0.1/idp"))
    with pytest.raises(ValueError, match="non-loopback"):
        serve(app, host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_recognised(host):
    assert is_loopback(host)


def test_start_provider_refuses_a_non_loopback_host():
    with pytest.raises(ValueError, match="non-loopback"):
        start_provider(host="0.0.0.0")


def test_start_provider_logs_that_it_is_for_development_only(caplog):
    with caplog.at_level("WARNING", logger="pyramid_tokens.devidp"), start_provider() as idp:
        assert idp.issuer.startswith("http://127.0.0.1:") and idp.issuer.endswith("/idp")
    assert any("DEVELOPMENT" in record.getMessage() for record in caplog.records)


def test_a_stopped_provider_no_longer_answers(make_idp):
    idp = make_idp()
    url = idp.issuer + "/jwks"
    assert requests.get(url, timeout=5).status_code == 200
    idp.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    idp.stop()  # idempotent


def test_provider_can_be_served_without_prefix_on_localhost():
    with start_provider(prefix="", host="localhost") as idp:
        assert idp.issuer == idp.url and idp.url.startswith("http://localhost:")
        meta = requests.get(idp.issuer + "/.well-known/openid-configuration", timeout=5).json()
        assert meta["issuer"] == idp.issuer


def test_serve_serves_any_wsgi_app_and_reports_its_port():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    with serve(app) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert requests.get(server.url, timeout=5).text == "hello"


def test_command_line_prints_the_issuer_and_serves_it():
    process = subprocess.Popen(
        [sys.executable, "-m", "pyramid_tokens.devidp", "--port", "0",
         "--client", "cli:cli-secret:http://localhost/cb"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        issuer = process.stdout.readline().strip()
        assert issuer.startswith("http://127.0.0.1:") and issuer.endswith("/idp")
        token = requests.post(issuer + "/token", data={"grant_type": "client_credentials"},
                              auth=("cli", "cli-secret"), timeout=5)
        assert token.status_code == 200, token.text
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_command_line_refuses_a_non_loopback_host():
    result = subprocess.run([sys.executable, "-m", "pyramid_tokens.devidp", "--host", "0.0.0.0", "--port", "0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "non-loopback" in result.stderr
