"""Fixtures for the Pyramid layer: the app under test (``tests/support/web.py``) driven by WebTest."""
from __future__ import annotations

import pytest
import webtest

from tests.support.web import base_settings, build_app


@pytest.fixture
def make_webapp(idp, clock):
    def factory(extra=None, **overrides):
        return webtest.TestApp(build_app(base_settings(idp, **overrides), clock, extra))
    return factory


@pytest.fixture
def app(make_webapp):
    return make_webapp()
