"""Beaker sessions for Pyramid (pyramid_beaker's factory) whose end-of-request save can never be a 500.

pyramid_beaker saves an accessed session in a response callback, after every view and exception view
has run: a session store that is down then (Redis failing over, say) would turn an answered request
into a bare 500. Here that save logs the failure and the response goes out; the session's change of
this request is lost (the next request sees the session as it was, or none), never the server.
"""
from __future__ import annotations

import logging
from typing import Any

from pyramid_beaker import session_factory_from_settings, set_cache_regions_from_settings

from ..errors import TemporarilyUnavailable

log = logging.getLogger(__name__)


def session_factory(settings: dict[str, Any]) -> Any:
    """pyramid_beaker's session factory for ``settings``, with a save that fails softly when the store is down."""
    base = session_factory_from_settings(settings)

    class Session(base):  # type: ignore[misc,valid-type]
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
