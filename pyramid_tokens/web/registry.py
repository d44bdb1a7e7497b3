"""The keys under which the Pyramid layer keeps its objects in the application registry."""
from __future__ import annotations

#: the application's :class:`~pyramid_tokens.TokenManager`
MANAGER = "pyramid_tokens.manager"
#: the parsed :class:`~pyramid_tokens.options.Options`
OPTIONS = "pyramid_tokens.options"
#: named clients added by directives until the manager is built
PENDING = "pyramid_tokens.pending"
#: an injected clock (tests put a ``FakeClock`` there before ``config.include``)
CLOCK = "pyramid_tokens.clock"
#: true when the user's tokens live inside a cookie-backed session
COOKIE_SESSION = "pyramid_tokens.cookie_session"
