"""Beaker sessions for Pyramid (pyramid_beaker's factory) that a session store outage can neither 500 nor log out.

* pyramid_beaker saves an accessed session in a response callback, after every view and exception view
  has run: a store that is down then (Redis failing over, say) would turn an answered request into a bare
  500. Here that save logs the failure and the response goes out; the session's change of this request is
  lost (the next request sees the session as it was), never the server.
* ``session.invalidate_corrupt`` (on by default: a forged or undecryptable cookie is no session, not a
  500) makes Beaker replace *any* session whose load fails with a new one, and a store that is merely
  unreachable is not corruption: the new session id would replace the user's cookie and log them out for
  good. A server-side session whose store is temporarily unavailable raises that instead (a 503).
"""
from __future__ import annotations

import logging
from typing import Any

from beaker.session import Session as BeakerSession
from pyramid_beaker import session_factory_from_settings, set_cache_regions_from_settings

from ..errors import TemporarilyUnavailable

log = logging.getLogger(__name__)


class ServerSideSession(BeakerSession):
    """Beaker's server-side session, with an unreachable store told apart from corrupt data."""

    _load_failure: TemporarilyUnavailable | None = None

    def load(self) -> Any:
        try:
            return super().load()
        except TemporarilyUnavailable as exc:
            self._load_failure = exc
            raise

    def invalidate(self) -> None:
        failure, self._load_failure = self._load_failure, None
        if failure is not None:  # Beaker's invalidate_corrupt handler: the store is down, not the data bad
            raise failure
        super().invalidate()


def session_factory(settings: dict[str, Any]) -> Any:
    """pyramid_beaker's session factory for ``settings``, with the two behaviours of the module docstring."""
    base = session_factory_from_settings(settings)
    options = dict(base._options)
    if options.get("type") != "cookie":
        options.setdefault("session_class", ServerSideSession)

    class Session(base):  # type: ignore[misc,valid-type]
        _options = options

        def persist(self) -> None:
            try:
                super().persist()
            except TemporarilyUnavailable as exc:
                log.error("the session could not be saved at the end of the request (%s); the response is "
                          "sent, this request's session changes are lost", exc)

    return Session


def includeme(config: Any) -> None:
    """What ``config.include('pyramid_beaker')`` does, with :func:`session_factory`."""
    config.set_session_factory(session_factory(config.registry.settings))
    set_cache_regions_from_settings(config.registry.settings)
