"""Client tokens and named HTTP clients inside views: settings and their code-first directive twins."""
from __future__ import annotations

import pytest
import webtest
from pyramid.exceptions import ConfigurationError

from tests.support.web import base_settings, build_app, counting_reads, login


def test_user_bound_client_in_a_view_calls_the_api_as_the_logged_in_user(idp, api, clock):
    app = webtest.TestApp(build_app(base_settings(idp, **{"tokens.http.api.base_url": api.url + "/api/"}), clock))
    login(app, "alice")
    reply = app.get("/call-api").json
    assert reply["status"] == 200
    assert reply["body"]["sub"] == "alice" and reply["body"]["client_id"] == "web"


def test_user_bound_client_without_login_challenges_the_browser(idp, api, clock):
    app = webtest.TestApp(build_app(base_settings(idp, **{"tokens.http.api.base_url": api.url + "/api/"}), clock))
    response = app.get("/call-api", headers={"Accept": "text/html"}, status=302)
    assert "/login?came_from=%2Fcall-api" in response.location


def test_user_bound_clients_of_different_users_never_mix_tokens(idp, api, clock):
    wsgi = build_app(base_settings(idp, **{"tokens.http.api.base_url": api.url + "/api/"}), clock)
    alice, bob = webtest.TestApp(wsgi), webtest.TestApp(wsgi)
    login(alice, "alice")
    login(bob, "bob")
    for _ in range(3):
        assert alice.get("/call-api").json["body"]["sub"] == "alice"
        assert bob.get("/call-api").json["body"]["sub"] == "bob"


def test_directives_add_clients_in_code(idp, api, clock):
    def extra(config):
        config.add_client_credentials_client("worker", authority=idp.issuer, client_id="worker",
                                             client_secret="worker-secret", scope="api")
        config.add_http_client("api", base_url=api.url + "/api/", token="client:worker", retry=(0.1, 0.2))

    app = webtest.TestApp(build_app(base_settings(idp), clock, extra))
    reply = app.get("/call-api").json  # no login needed: the client's own identity
    assert reply["status"] == 200 and reply["body"]["sub"] == "worker"
    assert app.get("/client-token", params={"name": "worker"}).json["access_token"]
    app.get("/call-api")
    assert idp.provider.counters()["token"]["client_credentials"] == 1


def test_oidc_clients_own_identity_in_a_view(idp, clock):
    app = webtest.TestApp(build_app(base_settings(idp, **{"tokens.client.scope": "api"}), clock))
    first = app.get("/client-token").json["access_token"]
    assert app.get("/client-token").json["access_token"] == first
    assert idp.provider.counters()["token"]["client_credentials"] == 1


def test_directive_with_a_bad_value_is_a_configuration_error_naming_it(idp):
    def extra(config):
        config.add_http_client("api", base_url="not a url")

    with pytest.raises(ConfigurationError, match="base_url"):
        build_app(base_settings(idp), None, extra)


def test_http_client_naming_a_missing_client_fails_at_startup(idp):
    def extra(config):
        config.add_http_client("api", base_url="https://api.example/", token="client:nope")

    with pytest.raises(ConfigurationError, match="tokens.clients.nope"):
        build_app(base_settings(idp), None, extra)


def test_a_view_calling_the_api_several_times_reads_the_users_tokens_once(idp, api, clock):
    seen = {}

    def extra(config):
        def three_calls(request):
            with counting_reads(request.registry["pyramid_tokens.manager"].user_tokens.store) as reads:
                client = request.http_client("api")
                seen["subs"] = [client.get("whoami").json()["sub"] for _ in range(3)]
            seen["reads"] = len(reads)
            return {}

        config.add_route("three", "/three")
        config.add_view(three_calls, route_name="three", renderer="json")

    app = webtest.TestApp(build_app(base_settings(idp, **{"tokens.http.api.base_url": api.url + "/api/"}), clock,
                                    extra))
    login(app, "alice")
    app.get("/three")
    assert seen == {"subs": ["alice"] * 3, "reads": 1}
