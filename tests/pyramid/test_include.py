"""What ``config.include('pyramid_tokens')`` does to an app's requests and routes (issue 19, item 1).

The request methods live on the app's request class (put there once, at configuration time), so an
app's own request factory keeps working and gets them too; the package's routes are matched after the
app's own, yet no app route takes a path the package answered before.
"""
from __future__ import annotations

import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from tests.support.web import base_settings, build_app, login


class AppRequest(Request):
    """An application's own request class, with a method of its own."""

    def greeting(self) -> str:
        return "hello from the app's request"


def whoami_view(request):
    token = request.get_user_access_token()
    return {"greeting": request.greeting(), "class": type(request).__name__,
            "is_app_request": isinstance(request, AppRequest), "token": token.access_token}


def add_whoami(config):
    config.add_route("app_whoami", "/app-whoami")
    config.add_view(whoami_view, route_name="app_whoami", renderer="json")


def test_an_app_request_factory_set_after_the_include_keeps_its_methods_and_gets_the_tokens(idp, clock):
    def extra(config):
        config.set_request_factory(AppRequest)
        add_whoami(config)

    app = webtest.TestApp(build_app(base_settings(idp), clock, extra))
    login(app)
    body = app.get("/app-whoami").json
    assert body["greeting"] == "hello from the app's request"
    assert body["is_app_request"] and body["class"] == "AppRequest"
    assert body["token"] == app.get("/token").json["access_token"]


def test_an_app_request_factory_given_to_the_configurator_gets_the_tokens_too(idp, clock):
    config = Configurator(settings=base_settings(idp), request_factory=AppRequest)
    config.registry["pyramid_tokens.clock"] = clock
    config.include("pyramid_tokens")
    add_whoami(config)
    app = webtest.TestApp(config.make_wsgi_app())
    login(app)
    body = app.get("/app-whoami").json
    assert body["is_app_request"] and body["greeting"] == "hello from the app's request"
    assert body["token"]


def test_a_request_factory_that_is_a_function_still_gets_the_request_methods(idp, clock):
    def extra(config):
        config.set_request_factory(lambda environ: AppRequest(environ))
        add_whoami(config)

    app = webtest.TestApp(build_app(base_settings(idp), clock, extra))
    login(app)
    body = app.get("/app-whoami").json
    assert body["is_app_request"] and body["token"]


def test_another_app_in_the_same_process_gets_no_request_methods(idp, clock):
    tokens_app = webtest.TestApp(build_app(base_settings(idp), clock))
    login(tokens_app)
    config = Configurator()
    config.add_route("probe", "/probe")
    config.add_view(lambda request: Response(str(hasattr(request, "get_user_access_token"))), route_name="probe")
    plain = webtest.TestApp(config.make_wsgi_app())
    assert plain.get("/probe").text == "False"
    assert tokens_app.get("/token").json["access_token"]
    assert not hasattr(Request, "get_user_access_token")


def catch_all(config):
    config.add_route("page", "/{page}")
    config.add_view(lambda request: Response("app page " + request.matchdict["page"]), route_name="page")


def test_an_app_catch_all_route_added_after_the_include_does_not_take_the_login_routes(idp, clock):
    app = webtest.TestApp(build_app(base_settings(idp), clock, catch_all))
    assert app.get("/about").text == "app page about"
    start = app.get("/login")
    assert start.status_int == 302 and start.location.startswith(idp.issuer)
    login(app)
    assert app.get("/token").json["access_token"]  # the app's own routes before the catch-all still answer
    logout = app.get("/logout")
    assert "app page" not in logout.text  # the package's logout page (a confirmation form for a GET)


def test_an_app_route_added_before_the_include_still_wins_over_the_package_route(idp, clock):
    config = Configurator(settings=base_settings(idp))
    config.registry["pyramid_tokens.clock"] = clock
    config.add_route("own_login", "/login")
    config.add_view(lambda request: Response("the app's own login page"), route_name="own_login")
    config.include("pyramid_tokens")
    app = webtest.TestApp(config.make_wsgi_app())
    assert app.get("/login").text == "the app's own login page"
