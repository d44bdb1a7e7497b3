"""The client authentication and sender-constraint settings: parsed once, checked at start-up, never shown."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pyramid.config import Configurator

from pyramid_tokens import ConfigurationError, TokenManager
from pyramid_tokens.assertion import ClientAssertionKey
from pyramid_tokens.dpop import DPoPKey
from pyramid_tokens.options import parse_settings

AUTHORITY = "https://idp.example.test"


def client(**values):
    settings = {"tokens.clients.w.token_endpoint": AUTHORITY + "/token", "tokens.clients.w.client_id": "w"}
    settings.update({f"tokens.clients.w.{k}": v for k, v in values.items()})
    return parse_settings(settings).clients["w"].credentials


def oidc(**values):
    settings = {"oidc.authority": AUTHORITY, "oidc.client_id": "web"}
    settings.update({f"oidc.{k}": v for k, v in values.items()})
    return parse_settings(settings)


def test_an_assertion_key_replaces_the_secret_and_its_alg_follows_the_key(keys):
    rsa_client = client(client_assertion_key=keys.rsa_pem)
    assert rsa_client.auth_method == "private_key_jwt" and rsa_client.assertion_key.alg == "RS256"
    assert client(client_assertion_key=keys.rsa_pem, client_assertion_alg="ps256").assertion_key.alg == "PS256"
    ec_client = oidc(client_assertion_key=keys.ec_jwk).oidc.credentials
    assert ec_client.assertion_key.alg == "ES256" and ec_client.assertion_key.kid == "ec-1"
    options = oidc(client_assertion_key=keys.ec_jwk)
    assert options.clients[None].credentials.assertion_key is options.oidc.credentials.assertion_key


@pytest.mark.parametrize("values, key", [
    ({"client_assertion_key": "/no/such/key.pem"}, "tokens.clients.w.client_assertion_key"),
    ({"client_assertion_key": __file__}, "tokens.clients.w.client_assertion_key"),
    ({"client_assertion_alg": "RS256"}, "tokens.clients.w.client_assertion_alg"),
    ({"tls_client_cert": "/no/such/cert.pem"}, "tokens.clients.w.tls_client_cert"),
    ({"tls_client_key": __file__}, "tokens.clients.w.tls_client_key"),
    ({"dpop": "/no/such/dpop.pem"}, "tokens.clients.w.dpop"),
    ({"dpop": "perhaps"}, "tokens.clients.w.dpop"),
])
def test_a_bad_setting_is_a_configuration_error_naming_the_key(values, key):
    with pytest.raises(ConfigurationError) as bad:
        client(**values)
    assert bad.value.key == key


def test_an_alg_that_does_not_fit_the_key_or_a_weak_or_encrypted_key_is_refused(keys, tmp_path):
    with pytest.raises(ConfigurationError, match="ES256 does not fit") as bad:
        client(client_assertion_key=keys.rsa_pem, client_assertion_alg="ES256")
    assert bad.value.key == "tokens.clients.w.client_assertion_alg"
    with pytest.raises(ConfigurationError, match="one of"):
        oidc(client_assertion_key=keys.ec_jwk, client_assertion_alg="HS256")
    weak = tmp_path / "weak.pem"
    weak.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigurationError, match="2048"):
        client(client_assertion_key=str(weak))
    locked = tmp_path / "locked.pem"
    locked.write_bytes(serialization.load_pem_private_key(open(keys.ec_pem, "rb").read(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"password")))
    with pytest.raises(ConfigurationError, match="encrypted") as bad:
        oidc(dpop=str(locked))
    assert bad.value.key == "oidc.dpop"


def test_tls_and_dpop_settings(keys, pki):
    cert, key, _ = pki.clients["mtls-worker"]
    mtls = client(tls_client_cert=cert, tls_client_key=key)
    assert mtls.auth_method == "tls_client_auth" and mtls.cert == (cert, key)
    assert client(tls_client_cert=cert, client_secret="s").auth_method == "client_secret_basic"
    assert client(dpop="true").dpop is True and client(dpop="true").dpop_key is None
    assert client(dpop="off").dpop is False
    assert client(dpop=keys.ec_pem).dpop_key == DPoPKey.from_file(keys.ec_pem)
    assert client().dpop is False and client().cert is None


def test_no_private_key_material_in_any_repr(keys):
    settings = {"oidc.authority": AUTHORITY, "oidc.client_id": "web", "oidc.client_assertion_key": keys.rsa_pem,
                "oidc.dpop": keys.ec_pem}
    tm = TokenManager.from_settings(settings)
    key = ClientAssertionKey.from_file(keys.rsa_pem)
    secret_numbers = [str(key._key.private_numbers().d), DPoPKey.from_file(keys.ec_pem).private_jwk()["d"]]
    shown = " ".join(repr(x) for x in (tm, tm.options, tm.options.oidc, tm.options.oidc.credentials, key,
                                       tm.options.oidc.credentials.dpop_key))
    assert "private_key_jwt" in repr(tm.options.oidc.credentials)
    for secret in secret_numbers:
        assert secret not in shown


def test_the_code_first_directive_takes_the_same_settings(keys):
    config = Configurator(settings={})
    config.include("pyramid_tokens")
    config.add_client_credentials_client("billing", token_endpoint=AUTHORITY + "/token", client_id="billing",
                                         client_assertion_key=keys.rsa_pem, dpop=DPoPKey.from_file(keys.ec_pem))
    config.commit()
    credentials = config.registry["pyramid_tokens.manager"].options.clients["billing"].credentials
    assert credentials.auth_method == "private_key_jwt" and credentials.dpop_key is not None


def test_the_development_provider_takes_the_client_registrations_from_settings(keys, tmp_path):
    from pyramid_tokens.devidp.settings import provider_options

    jwks = tmp_path / "worker.jwks.json"
    jwks.write_text(__import__("json").dumps(keys.jwks(keys.rsa_pem)))
    options = provider_options({
        "devidp.issuer": "http://127.0.0.1:6543/idp", "devidp.require_dpop_nonce": "true",
        "devidp.clients.worker.jwks": str(jwks), "devidp.clients.worker.grant_types": "client_credentials",
        "devidp.clients.worker.token_endpoint_auth_method": "private_key_jwt",
        "devidp.clients.worker.dpop_bound_access_tokens": "true",
        "devidp.clients.mtls.tls_client_auth_subject_dn": "CN=mtls",
    })
    worker, mtls = options["clients"]
    assert options["require_dpop_nonce"] is True
    assert worker.public_keys() == keys.jwks(keys.rsa_pem)["keys"] and worker.confidential
    assert worker.token_endpoint_auth_method == "private_key_jwt" and worker.dpop_bound_access_tokens is True
    assert mtls.tls_client_auth_subject_dn == "CN=mtls"
    with pytest.raises(ConfigurationError) as bad:
        provider_options({"devidp.issuer": "http://127.0.0.1/idp", "devidp.clients.w.jwks": keys.ec_jwk})
    assert bad.value.key == "devidp.clients.w.jwks"  # a private key is not a registration
