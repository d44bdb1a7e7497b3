"""Mutual TLS completeness (RFC 8705): ``mtls_endpoint_aliases`` (§5) used for every call of an mTLS
client, and ``self_signed_tls_client_auth`` (§2.2) with a certificate no CA issued, pinned by the provider."""
from __future__ import annotations

import base64
import datetime

import jwt
import pytest
import webtest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyramid_tokens import TokenError, TokenManager
from pyramid_tokens.devidp import DevClient
from pyramid_tokens.devidp.clientauth import certificate_thumbprint
from tests.support.provider import WEB_REDIRECT_URI
from pyramid_tokens.devidp.tls import start_tls_provider
from tests.support.web import base_settings, build_app, login
from tests.support.pki import write_pem

SCOPE = "openid profile email offline_access api"


@pytest.fixture
def trust_test_ca(pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.ca)


@pytest.fixture
def start_tls(pki, trust_test_ca):
    running = []

    def factory(clients, cafile=None, **kwargs):
        idp = start_tls_provider(clients=clients, certfile=pki.server_cert, keyfile=pki.server_key,
                                 cafile=cafile or pki.ca, **kwargs)
        running.append(idp)
        return idp

    yield factory
    for idp in running:
        idp.stop()


def paths_called(session, issuer):
    """The paths below the issuer that ``session`` calls, in order (recorded by a response hook)."""
    called = []
    session.hooks["response"].append(lambda r, **kw: called.append(r.request.url[len(issuer):].split("?")[0]))
    return called


def test_an_mtls_web_client_sends_par_token_userinfo_and_revocation_to_the_aliases(start_tls, pki):
    idp = start_tls([DevClient("mtls-web", redirect_uris=[WEB_REDIRECT_URI], scopes=SCOPE,
                               tls_client_auth_subject_dn="CN=mtls-worker")], par=True, mtls_endpoint_aliases=True)
    cert, key, _ = pki.clients["mtls-worker"]
    app = webtest.TestApp(build_app(base_settings(idp, **{
        "oidc.client_id": "mtls-web", "oidc.client_secret": None,
        "oidc.tls_client_cert": cert, "oidc.tls_client_key": key})))
    called = paths_called(app.app.registry["pyramid_tokens.manager"].transport.session, idp.issuer)
    login(app, "erin")
    app.get("/token", params={"force": "1"})
    app.get("/logout").forms[0].submit(status=302)
    assert [path for path in called if path not in ("/.well-known/openid-configuration", "/jwks")] == [
        "/mtls/par", "/mtls/token", "/mtls/userinfo", "/mtls/token", "/mtls/revoke"]
    assert idp.provider.counters()["client_auth"]["tls_client_auth"] == 4


def test_an_mtls_device_login_and_client_credentials_use_the_aliases(start_tls, pki):
    idp = start_tls([DevClient("mtls-web", scopes=SCOPE, tls_client_auth_subject_dn="CN=mtls-worker")],
                    mtls_endpoint_aliases=True, device_auto_approve="alice")
    cert, key, _ = pki.clients["mtls-worker"]
    tm = TokenManager.from_settings({"oidc.authority": idp.issuer, "oidc.client_id": "mtls-web", "oidc.scope": SCOPE,
                                     "oidc.userinfo": "false",
                                     "oidc.tls_client_cert": cert, "oidc.tls_client_key": key})
    called = paths_called(tm.transport.session, idp.issuer)
    tm.device_login(display=lambda authorization: None, sleep=lambda seconds: None)
    tm.get_client_access_token()
    assert [p for p in called if p.startswith("/mtls/")] == ["/mtls/device_authorization", "/mtls/token",
                                                              "/mtls/token"]
    assert not [p for p in called if p in ("/token", "/device_authorization")]


def test_a_client_without_a_certificate_keeps_the_plain_endpoints(make_idp):
    idp = make_idp(mtls_endpoint_aliases=True)
    tm = TokenManager.from_settings({"tokens.clients.w.authority": idp.issuer, "tokens.clients.w.client_id": "worker",
                                     "tokens.clients.w.client_secret": "worker-secret"})
    called = paths_called(tm.transport.session, idp.issuer)
    tm.get_client_access_token("w")
    assert called[-1] == "/token"


# -- self_signed_tls_client_auth ----------------------------------------------------------------------------
def self_signed(folder, cn="self-signed-worker"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / f"{cn}.pem").write_bytes(pem)
    return str(folder / f"{cn}.pem"), write_pem(folder / f"{cn}.key", key), cert


def test_a_self_signed_certificate_the_provider_pinned_authenticates_and_binds_the_token(start_tls, pki, tmp_path):
    cert_path, key_path, cert = self_signed(tmp_path)
    _, _, other = self_signed(tmp_path, "someone-else")
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    # the TLS layer must let the certificate through: the server trusts the test CA and this certificate
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(open(pki.ca, "rb").read() + open(cert_path, "rb").read() +
                       other.public_bytes(serialization.Encoding.PEM))
    pinned = DevClient("self-signed", grant_types=["client_credentials"], scopes="api",
                       token_endpoint_auth_method="self_signed_tls_client_auth",
                       jwks={"keys": [{"kty": "EC", "x5c": [x5c]}]})
    idp = start_tls([pinned], cafile=str(bundle))
    assert "self_signed_tls_client_auth" in idp.provider.metadata()["token_endpoint_auth_methods_supported"]
    tm = TokenManager.from_settings({"tokens.clients.w.authority": idp.issuer, "tokens.clients.w.client_id": "self-signed",
                                     "tokens.clients.w.tls_client_cert": cert_path,
                                     "tokens.clients.w.tls_client_key": key_path})
    assert tm.options.clients["w"].credentials.auth_method == "self_signed_tls_client_auth"
    token = tm.get_client_access_token("w")
    assert jwt.decode(token.access_token, options={"verify_signature": False})["cnf"] == {
        "x5t#S256": certificate_thumbprint(cert)}
    assert idp.provider.counters()["client_auth"]["self_signed_tls_client_auth"] == 1


def test_a_self_signed_certificate_the_provider_did_not_pin_is_refused(start_tls, pki, tmp_path):
    cert_path, key_path, cert = self_signed(tmp_path)
    _, _, registered = self_signed(tmp_path, "registered")
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(open(pki.ca, "rb").read() + open(cert_path, "rb").read())
    x5c = base64.b64encode(registered.public_bytes(serialization.Encoding.DER)).decode()
    idp = start_tls([DevClient("self-signed", grant_types=["client_credentials"], scopes="api",
                               token_endpoint_auth_method="self_signed_tls_client_auth",
                               jwks={"keys": [{"kty": "EC", "x5c": [x5c]}]})], cafile=str(bundle))
    tm = TokenManager.from_settings({"tokens.clients.w.authority": idp.issuer, "tokens.clients.w.client_id": "self-signed",
                                     "tokens.clients.w.tls_client_cert": cert_path,
                                     "tokens.clients.w.tls_client_key": key_path})
    with pytest.raises(TokenError) as refused:
        tm.get_client_access_token("w")
    assert refused.value.error == "invalid_client"
