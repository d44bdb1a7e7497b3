"""The applications measured, built the same way in-process and in the waitress subprocess.

* ``tokens``: a Pyramid app with ``config.include('pyramid_tokens')``; ``/token`` returns the first
  characters of ``request.get_user_access_token()``.
* ``static``: the same app without pyramid_tokens, only ``pyramid_beaker``; ``/token`` reads a static
  token set the login put in the Beaker session (``/seed``) and checks its expiry, as an app that
  manages tokens by hand would. With the setting ``bench.read = record`` its session holds what ours
  holds (handle, identity and the whole token record) and ``/token`` reads the token from that record:
  the like-for-like served comparison.
* ``api``: a resource server for the named-client rows; ``/whoami`` answers a small JSON document.

Both web apps have ``/public``, a route that never touches tokens or the session.
"""
from __future__ import annotations

import json
import time
from typing import Any

from pyramid.config import Configurator
from pyramid.response import Response

#: what the benchmark's apps call themselves at the provider (the browser sends ``Host: localhost``)
REDIRECT_URI = "http://localhost/callback"
#: the session key of the hand-managed token set in the ``static`` app
STATIC_KEY = "bench.tokens"
#: the session key of the whole token record in the ``static`` app with the same session contents as ours
RECORD_KEY = "bench.record"
#: the early-renewal margin both apps apply (pyramid_tokens' default)
MARGIN = 60


def session_settings(session_type: str = "memory", **extra: str) -> dict[str, str]:
    """Beaker settings as the README recommends them."""
    settings = {
        "session.type": session_type,
        "session.key": "sid",
        "session.secret": "bench-session-secret",
        "session.data_serializer": "json",
        "session.httponly": "true",
        "session.samesite": "Lax",
    }
    if session_type == "cookie":
        # encrypted, as the package requires when the cookie carries the tokens
        settings.update({"session.validate_key": "v" * 32, "session.encrypt_key": "e" * 32,
                         "session.save_accessed_time": "false"})
    settings.update(extra)
    return settings


def tokens_settings(issuer: str, session_type: str = "memory", **extra: str) -> dict[str, str]:
    return {
        "oidc.authority": issuer,
        "oidc.client_id": "web",
        "oidc.client_secret": "web-secret",
        "oidc.scope": "openid profile email offline_access api",
        **session_settings(session_type),
        **extra,
    }


def _public(request: Any) -> Response:
    return Response("public")


def _user_token(request: Any) -> Response:
    token = request.get_user_access_token()
    return Response(token.access_token[:16])


def _seed(request: Any) -> Response:
    request.session.update(json.loads(request.body))
    return Response("seeded")


def tokens_app(settings: dict[str, str]) -> Any:
    """``/seed`` (as the static app's, last) lets a benchmark give a second browser a session of its own."""
    config = Configurator(settings=settings)
    config.include("pyramid_tokens")
    config.add_route("token", "/token")
    config.add_view(_user_token, route_name="token")
    config.add_route("public", "/public")
    config.add_view(_public, route_name="public")
    config.add_route("seed", "/seed")
    config.add_view(_seed, route_name="seed", request_method="POST")
    return config.make_wsgi_app()


def static_token(session: Any) -> str:
    """The hand-managed read: the token set from the session, its expiry checked with the same margin."""
    tokens = session[STATIC_KEY]
    if tokens["expires_at"] - MARGIN <= time.time():
        raise RuntimeError("the static token is due for renewal")  # never in the benchmark: tokens live an hour
    return tokens["access_token"]


def record_token(session: Any) -> str:
    """The same read from a session holding the whole token record, as ours holds it in its store."""
    access = session[RECORD_KEY]["access"]
    if access["expires_at"] - MARGIN <= time.time():
        raise RuntimeError("the static token is due for renewal")
    return access["access_token"]


def _static_token_view(request: Any) -> Response:
    return Response(static_token(request.session)[:16])


def _record_token_view(request: Any) -> Response:
    return Response(record_token(request.session)[:16])


def static_app(settings: dict[str, str]) -> Any:
    """``bench.read``: ``tokens`` (default, a token set in the session) or ``record`` (ours' session contents)."""
    view = _record_token_view if settings.get("bench.read") == "record" else _static_token_view
    config = Configurator(settings={k: v for k, v in settings.items() if k.startswith("session.")})
    config.include("pyramid_beaker")
    # the tokens app's routes in the tokens app's order: /public is matched after as many routes in both
    config.add_route("token", "/token")
    config.add_view(view, route_name="token")
    config.add_route("public", "/public")
    config.add_view(_public, route_name="public")
    config.add_route("seed", "/seed")
    config.add_view(_seed, route_name="seed", request_method="POST")
    return config.make_wsgi_app()


def _whoami(request: Any) -> Response:
    authorized = request.headers.get("Authorization", "").startswith("Bearer ")
    return Response(json_body={"ok": authorized}, status=200 if authorized else 401)


def api_app(settings: dict[str, str] | None = None) -> Any:
    config = Configurator()
    config.add_route("whoami", "/whoami")
    config.add_view(_whoami, route_name="whoami")
    return config.make_wsgi_app()


APPS = {"tokens": tokens_app, "static": static_app, "api": api_app}
