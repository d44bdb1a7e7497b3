"""Client assertions any provider accepts (RFC 7523 §3, OIDC Core §9, RFC 7515 §4.1): the ``aud`` a
provider demands, a ``kid`` of the provider's choosing, certificate thumbprints in the header, and a
warning when the provider does not advertise the method or alg in use."""
from __future__ import annotations

import base64
import datetime
import hashlib
import logging

import jwt
import pytest
import requests

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.devidp import DevClient
from pyramid_tokens.errors import ConfigurationError


def worker(keys, kid=None, alg=None):
    jwks = keys.jwks(keys.rsa_pem, alg)
    if kid is not None:
        jwks = {"keys": [{**jwks["keys"][0], "kid": kid}]}
    return DevClient("jwt-worker", jwks=jwks, grant_types=["client_credentials"], scopes="api",
                     token_endpoint_auth_method="private_key_jwt")


def manager(idp, keys, **settings):
    tm = TokenManager.from_settings({
        "tokens.clients.w.authority": idp.issuer,
        "tokens.clients.w.client_id": "jwt-worker",
        "tokens.clients.w.client_assertion_key": keys.rsa_pem,
        "tokens.clients.w.scope": "api",
        **{f"tokens.clients.w.{name}": value for name, value in settings.items()},
    })
    tm.sent = []
    tm.transport.session.hooks["response"].append(lambda r, **kw: tm.sent.append(r.request.body))
    return tm


def last_assertion(tm):
    form = dict(pair.split("=", 1) for pair in tm.sent[-1].split("&"))
    assertion = requests.utils.unquote(form["client_assertion"])
    return jwt.get_unverified_header(assertion), jwt.decode(assertion, options={"verify_signature": False})


def write_certificate(path, key_path, key=None):
    key = key or serialization.load_pem_private_key(open(key_path, "rb").read(), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jwt-worker")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return str(path), cert


# -- aud ------------------------------------------------------------------------------------------------
def test_a_provider_demanding_aud_token_endpoint_refuses_the_issuer_and_accepts_the_setting(make_idp, keys):
    idp = make_idp(clients=[worker(keys)], assertion_audience="token_endpoint")
    with pytest.raises(TokenError) as refused:
        manager(idp, keys).get_client_access_token("w")
    assert refused.value.error == "invalid_client"
    tm = manager(idp, keys, client_assertion_audience="token_endpoint")
    assert tm.get_client_access_token("w").access_token
    assert last_assertion(tm)[1]["aud"] == idp.issuer + "/token"


def test_client_assertion_audience_accepts_only_issuer_or_token_endpoint(keys, idp):
    with pytest.raises(ConfigurationError) as bad:
        manager(idp, keys, client_assertion_audience="everyone")
    assert "tokens.clients.w.client_assertion_audience" in str(bad.value)


# -- kid ------------------------------------------------------------------------------------------------
def test_a_key_registered_under_the_providers_kid_works_once_that_kid_is_configured(make_idp, keys):
    idp = make_idp(clients=[worker(keys, kid="provider-chose-this-7")])
    with pytest.raises(TokenError) as refused:
        manager(idp, keys).get_client_access_token("w")
    assert refused.value.error == "invalid_client" and "client credentials request" in str(refused.value)
    tm = manager(idp, keys, client_assertion_kid="provider-chose-this-7")
    assert tm.get_client_access_token("w").access_token
    assert last_assertion(tm)[0]["kid"] == "provider-chose-this-7"


def test_client_assertion_kid_none_sends_no_kid(make_idp, keys):
    idp = make_idp(clients=[worker(keys, kid="whatever")])
    tm = manager(idp, keys, client_assertion_kid="none")
    assert tm.get_client_access_token("w").access_token
    assert "kid" not in last_assertion(tm)[0]


# -- certificate thumbprints ------------------------------------------------------------------------------
def test_the_header_carries_the_certificates_sha256_and_sha1_thumbprints(make_idp, keys, tmp_path):
    idp = make_idp(clients=[worker(keys)])
    path, cert = write_certificate(tmp_path / "worker.pem", keys.rsa_pem)
    tm = manager(idp, keys, client_assertion_cert=path)
    assert tm.get_client_access_token("w").access_token
    header, _ = last_assertion(tm)
    der = cert.public_bytes(Encoding.DER)
    b64 = lambda digest: base64.urlsafe_b64encode(digest).rstrip(b"=").decode()  # noqa: E731
    assert header["x5t#S256"] == b64(hashlib.sha256(der).digest())
    assert header["x5t"] == b64(hashlib.sha1(der).digest())


def test_a_certificate_of_another_key_is_refused_at_start_up(keys, tmp_path, idp):
    path, _ = write_certificate(tmp_path / "other.pem", keys.other_pem)
    with pytest.raises(ConfigurationError) as bad:
        manager(idp, keys, client_assertion_cert=path)
    assert "tokens.clients.w.client_assertion_cert" in str(bad.value) and "not the client_assertion_key" in str(bad.value)


def test_assertion_settings_without_an_assertion_key_are_refused(idp):
    with pytest.raises(ConfigurationError) as bad:
        TokenManager.from_settings({"tokens.clients.w.token_endpoint": idp.issuer + "/token",
                                    "tokens.clients.w.client_id": "worker", "tokens.clients.w.client_secret": "s",
                                    "tokens.clients.w.client_assertion_kid": "k"})
    assert "tokens.clients.w.client_assertion_kid: needs tokens.clients.w.client_assertion_key" in str(bad.value)


# -- advertised methods and algs ------------------------------------------------------------------------------
def test_an_alg_the_provider_does_not_advertise_is_one_warning_naming_both_lists(make_idp, keys, caplog):
    idp = make_idp(clients=[worker(keys, alg="PS256")])
    document = idp.provider.metadata
    idp.provider.metadata = lambda: {**document(), "token_endpoint_auth_signing_alg_values_supported": ["ES256"]}
    tm = manager(idp, keys, client_assertion_alg="PS256")
    with caplog.at_level(logging.WARNING, logger="pyramid_tokens"):
        tm.get_client_access_token("w")
        tm.get_client_access_token("w", force_renewal=True)
    warnings = [r.getMessage() for r in caplog.records if "not advertised" in r.getMessage()]
    assert len(warnings) == 1  # at first use only, and not an error: both calls got tokens
    assert "alg PS256" in warnings[0] and "['ES256']" in warnings[0] and "'private_key_jwt'" in warnings[0]


def test_an_advertised_method_and_alg_give_no_warning(make_idp, keys, caplog):
    idp = make_idp(clients=[worker(keys)])
    with caplog.at_level(logging.WARNING, logger="pyramid_tokens"):
        manager(idp, keys).get_client_access_token("w")
    assert not [r for r in caplog.records if "not advertised" in r.getMessage()]
