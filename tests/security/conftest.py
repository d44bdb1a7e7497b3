"""Fixtures of the security suite: an adversarial provider over real HTTP and the app under attack.

``idp`` is one development provider per test module (key generation is the slow part), told to
behave again and with fresh counters before every test; a test makes it misbehave in ONE named
way with ``idp.provider.misbehave(name, on=..., times=...)`` (see ``pyramid_tokens/devidp/faults.py``).
Tests that stop the provider or rotate its keys use ``make_idp`` for one of their own.
``make_idp(fault=NAME, ...)`` starts a provider that already misbehaves.
"""
from __future__ import annotations

import pytest
import webtest

from pyramid_tokens.devidp import start_provider
from tests.support.provider import standard_clients

from .support import build_app, settings_for


@pytest.fixture(scope="module")
def shared_idp():
    idp = start_provider(clients=standard_clients())
    yield idp
    idp.stop()


@pytest.fixture
def idp(shared_idp):
    shared_idp.provider.behave()
    shared_idp.provider.reset_counters()
    yield shared_idp
    shared_idp.provider.behave()  # also ends a trickling response still being served


@pytest.fixture
def make_idp():
    running = []

    def factory(fault=None, fault_on=None, **overrides):
        overrides.setdefault("clients", standard_clients())
        idp = start_provider(**overrides)
        if fault is not None:
            idp.provider.misbehave(fault, on=fault_on)
        running.append(idp)
        return idp

    yield factory
    for idp in running:
        idp.provider.behave()
        idp.stop()


@pytest.fixture
def make_webapp(idp, clock):
    def factory(provider=None, **overrides):
        return webtest.TestApp(build_app(settings_for(provider or idp, **overrides), clock))

    return factory


@pytest.fixture
def app(make_webapp):
    return make_webapp()
