"""Settings parsing, TokenManager construction from .ini files, and the core's independence from Pyramid."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pyramid_tokens import ConfigurationError, TokenManager
from pyramid_tokens.options import parse_settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_every_core_module_imports_without_pyramid_or_ipython():
    """The core is framework-free: everything outside web/, devidp/ and demo/ imports with Pyramid absent."""
    code = ("import sys, pkgutil, importlib; sys.modules['pyramid'] = None; sys.modules['IPython'] = None\n"
            "import pyramid_tokens\n"
            "names = [m.name for m in pkgutil.walk_packages(pyramid_tokens.__path__, 'pyramid_tokens.')\n"
            "         if m.name.split('.')[1] not in ('web', 'devidp', 'demo')]\n"
            "for name in names: importlib.import_module(name)\n"
            "print(len(names))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 15


def test_defaults_follow_the_spec():
    options = parse_settings({"oidc.authority": "https://idp.example/", "oidc.client_id": "web"})
    assert options.oidc.scope == "openid profile"
    assert options.oidc.userinfo is True
    assert (options.oidc.login_path, options.oidc.callback_path, options.oidc.logout_path) == \
        ("/login", "/callback", "/logout")
    assert options.oidc.authority == "https://idp.example"
    assert options.refresh_before_expiration == 60 and options.cache_lifetime_buffer == 60
    assert options.revoke_on_logout is True
    assert options.store == "session" and options.cache == "memory"
    assert options.clients[None].credentials.client_id == "web"


@pytest.mark.parametrize("settings, key", [
    ({"oidc.client_id": "x"}, "oidc.authority"),
    ({"oidc.authority": "idp.example", "oidc.client_id": "x"}, "oidc.authority"),
    ({"oidc.authority": "https://i", "oidc.client_id": "x", "oidc.scope": "profile"}, "oidc.scope"),
    ({"oidc.authority": "https://i", "oidc.client_id": "x", "oidc.login_path": "//evil"}, "oidc.login_path"),
    ({"oidc.authority": "https://i", "oidc.client_id": "x", "oidc.post_logout_redirect": "//evil"},
     "oidc.post_logout_redirect"),
    ({"tokens.refresh_before_expiration": "-1"}, "tokens.refresh_before_expiration"),
    ({"tokens.revoke_on_logout": "maybe"}, "tokens.revoke_on_logout"),
    ({"tokens.client_credential_style": "header", "tokens.clients.a.client_id": "a",
      "tokens.clients.a.token_endpoint": "https://i/t"}, "tokens.clients.a.client_credential_style"),
    ({"tokens.clients.a.client_id": "a"}, "tokens.clients.a.token_endpoint"),
    ({"tokens.clients.a.token_endpoint": "https://i/t"}, "tokens.clients.a.client_id"),
    ({"tokens.clients.a.client_id": "a", "tokens.clients.a.token_endpoint": "https://i/t",
      "tokens.clients.a.secret": "typo"}, "tokens.clients.a.secret"),
    ({"tokens.http.api.token": "client"}, "tokens.http.api.base_url"),
    ({"tokens.http.api.base_url": "https://api/", "tokens.http.api.retry": "1 two"}, "tokens.http.api.retry"),
    ({"tokens.http.api.base_url": "https://api/", "tokens.http.api.token": "client:nope"}, "tokens.http.api.token"),
    ({"tokens.http.api.base_url": "https://api/"}, "tokens.http.api.token"),
    ({"tokens.store": "mysql://x"}, "tokens.store"),
    ({"oidc.authority": "http://idp.example", "oidc.client_id": "x"}, "oidc.authority"),
    ({"tokens.clients.a.client_id": "a", "tokens.clients.a.token_endpoint": "http://idp.example/t"},
     "tokens.clients.a.token_endpoint"),
])
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigurationError) as info:
        parse_settings(settings)
    assert info.value.key == key


def test_from_ini_interpolates_here_like_pserve(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text(textwrap.dedent("""
        [app:main]
        use = egg:whatever
        tokens.clients.w.token_endpoint = https://idp.example/token
        tokens.clients.w.client_id = w
        tokens.clients.w.client_secret = %(here)s
        tokens.http.api.base_url = https://api.example/v1/
        tokens.http.api.token = client:w
        tokens.http.api.retry = 1 2 3
    """))
    tm = TokenManager.from_ini(str(ini))
    assert tm.options.clients["w"].credentials.client_secret == str(tmp_path)
    assert tm.options.http["api"].retry == (1.0, 2.0, 3.0)


def test_development_ini_builds_a_token_manager():
    tm = TokenManager.from_ini(os.path.join(ROOT, "development.ini"))
    assert tm.options.oidc.authority == "http://127.0.0.1:6543/idp"
    assert set(tm.options.http) == {"user_api", "client_api", "orders_api"}
    assert tm.options.http["client_api"].client_name == "demo-worker"


def test_plain_script_uses_from_ini_against_the_provider(idp, api, tmp_path):
    """What a worker does: read the app's .ini, get a client token, call an API. No Pyramid request."""
    ini = tmp_path / "worker.ini"
    ini.write_text(textwrap.dedent(f"""
        [app:main]
        tokens.clients.worker.authority = {idp.issuer}
        tokens.clients.worker.client_id = worker
        tokens.clients.worker.client_secret = worker-secret
        tokens.clients.worker.scope = api
        tokens.http.api.base_url = {api.url}/api/
        tokens.http.api.token = client:worker
    """))
    script = textwrap.dedent(f"""
        import sys
        sys.modules['pyramid'] = None  # prove the worker path needs no Pyramid
        from pyramid_tokens import TokenManager
        tm = TokenManager.from_ini({str(ini)!r})
        token = tm.get_client_access_token('worker')
        reply = tm.http_client('api').get('whoami')
        print(token.token_type, reply.status_code, reply.json()['sub'])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.split() == ["Bearer", "200", "worker"], result.stderr
