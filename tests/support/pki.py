"""Key files and a test PKI, made at test time: what client authentication and mutual TLS tests configure.

:func:`make_keys` writes private keys the way users configure them: ``rsa_pem`` (RSA 2048, PKCS#8 PEM),
``ec_jwk`` (a P-256 private JWK file with a ``kid``), ``other_pem`` (an unregistered key, for "wrong key"
tests), ``ec_pem``. :func:`make_pki` makes a CA, a server certificate for 127.0.0.1/localhost and client
certificates (``mtls-worker``, ``intruder``). The root ``conftest.py`` offers both as session fixtures
``keys`` and ``pki``.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pyramid_tokens.assertion import ClientAssertionKey
from pyramid_tokens.jwk import private_jwk


def write_pem(path: Path, key) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


@dataclass
class Keys:
    rsa_pem: str
    ec_jwk: str
    other_pem: str
    ec_pem: str

    def jwks(self, path: str, alg: str | None = None) -> dict:
        """The JWK Set to register at the provider for the key in ``path``."""
        return ClientAssertionKey.from_file(path, alg).public_jwks()


def make_keys(folder: Path) -> Keys:
    """Private keys the way users configure them, written into ``folder``."""
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (folder / "client.jwk").write_text(json.dumps({**private_jwk(ec_key), "kid": "ec-1"}))
    return Keys(
        rsa_pem=write_pem(folder / "client-rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ec_jwk=str(folder / "client.jwk"),
        other_pem=write_pem(folder / "other.pem", ec.generate_private_key(ec.SECP256R1())),
        ec_pem=write_pem(folder / "dpop.pem", ec.generate_private_key(ec.SECP256R1())),
    )


# -- a test PKI for mutual TLS ----------------------------------------------------------------------------
@dataclass
class Pki:
    ca: str
    server_cert: str
    server_key: str
    #: client certificates by common name: (cert path, key path, certificate)
    clients: dict


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False, san=None,
                 client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                      content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def make_pki(folder: Path) -> Pki:
    """A CA made at test time, a server certificate for 127.0.0.1 and client certificates signed by it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("pyramid_tokens test CA", ca_key, _name("pyramid_tokens test CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("127.0.0.1", server_key, ca.subject, ca_key,
                          san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    clients = {}
    for cn in ("mtls-worker", "intruder"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(cn, key, ca.subject, ca_key, client=True)
        clients[cn] = (_write_cert(folder / f"{cn}.pem", cert), write_pem(folder / f"{cn}.key", key), cert)
    return Pki(ca=_write_cert(folder / "ca.pem", ca), server_cert=_write_cert(folder / "server.pem", server),
               server_key=write_pem(folder / "server.key", server_key), clients=clients)
