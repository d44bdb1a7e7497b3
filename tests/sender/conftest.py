"""Fixtures for client authentication and sender-constrained tokens: the demo API on loopback.

The key files and the test PKI (``keys``, ``pki``) are the root conftest's, from ``tests/support/pki.py``.
"""
from __future__ import annotations

import pytest

from pyramid_tokens.demo.api import make_api_app
from pyramid_tokens.devidp.server import serve


# -- the demo API ------------------------------------------------------------------------------------------
@pytest.fixture
def make_api():
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
