"""Fixtures shared by every test layer: a development provider on a loopback port.

``make_idp(**overrides)`` starts a fresh provider (stopped at teardown) with the standard clients of
:func:`tests.support.provider.standard_clients` (``web`` and ``worker``); ``clients=[...]``
replaces them and every other keyword goes to :class:`~pyramid_tokens.devidp.DevProvider`
(``audience``, ``device_interval``, ``device_lifetime``, ``device_auto_approve``, ``code_lifetime``,
``users``, ``clock``). ``idp`` is ``make_idp()``. Both return a ``RunningProvider``:
``.issuer``, ``.provider``, ``.url``, ``.stop()``.
"""
from __future__ import annotations

import pytest

from pyramid_tokens.devidp import start_provider
from tests.support.provider import standard_clients


@pytest.fixture
def make_idp():
    running = []

    def factory(**overrides):
        overrides.setdefault("clients", standard_clients())
        idp = start_provider(**overrides)
        running.append(idp)
        return idp

    yield factory
    for idp in running:
        idp.stop()


@pytest.fixture
def idp(make_idp):
    return make_idp()


@pytest.fixture
def api(idp):
    """The demo API (a resource server validating ``idp``'s access tokens, audience ``api``) on a loopback port."""
    from pyramid_tokens.demo.api import make_api_app
    from pyramid_tokens.devidp.server import serve

    running = serve(make_api_app(idp.issuer, audience="api"))
    yield running
    running.stop()


@pytest.fixture
def make_api():
    """``make_api(idp, **kwargs)``: the demo API for ``idp`` on a loopback port (``.proofs``: its DPoP checks)."""
    from pyramid_tokens.demo.api import make_api_app
    from pyramid_tokens.devidp.server import serve

    running = []

    def factory(idp, **kwargs):
        app = make_api_app(idp.issuer, **kwargs)
        server = serve(app)
        server.proofs = app.registry["pyramid_tokens.demo_api.proofs"]
        running.append(server)
        return server

    yield factory
    for server in running:
        server.stop()


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    """Private key files as users configure them (``tests/support/pki.py``)."""
    from tests.support.pki import make_keys

    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A test CA, a server certificate for 127.0.0.1 and client certificates (``tests/support/pki.py``)."""
    from tests.support.pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def clock():
    """The injectable clock the code under test uses: time moves only when a test advances it."""
    from pyramid_tokens.clock import FakeClock

    return FakeClock()
