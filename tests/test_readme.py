"""The README's examples are code: every ``ini`` block parses into options, every ``python`` block compiles,
and the code-first directive examples configure a real Pyramid app. Docs that cannot drift.

``ini`` blocks are read the way PasteDeploy reads ``development.ini`` (a plain ``ConfigParser``: a trailing
``# comment`` after a value stays part of the value), wrapped in ``[app:main]``. Values that name files
(keys, certificates) are pointed at files this test makes, since README paths such as ``/etc/tls/...`` do
not exist here; every other value is used exactly as written.
"""
from __future__ import annotations

import ast
import configparser
import datetime
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pyramid_tokens.options import parse_settings

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\s*\n(.*?)^```", re.S | re.M)
#: settings whose value is a file the package reads at start-up
FILE_SETTINGS = re.compile(r"\.(client_assertion_key|client_assertion_cert|tls_client_cert|tls_client_key|dpop)$")


def blocks(lang: str) -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == lang]


def ids(items: list[tuple[int, str]]) -> list[str]:
    return [f"README.md:{line}" for line, _ in items]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A private key (RSA and EC) and a certificate for it, standing in for the README's file paths."""
    folder = tmp_path_factory.mktemp("readme-files")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "readme")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(rsa_key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(rsa_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = {"rsa": folder / "rsa.pem", "ec": folder / "ec.pem", "cert": folder / "cert.pem"}
    for path, key in ((paths["rsa"], rsa_key), (paths["ec"], ec_key)):
        path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths["cert"].write_bytes(cert.public_bytes(pem))
    return paths


def read_like_pastedeploy(text: str, here: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(defaults={"here": str(here), "__file__": str(here / "app.ini")})
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string("[app:main]\n" + text)
    return {k: v for k, v in parser.items("app:main") if k not in ("here", "__file__")}


def stand_in(key: str, value: str, files: dict[str, Path]) -> str:
    """The test's own file for a setting that names a file; anything else unchanged."""
    if not FILE_SETTINGS.search(key) or value.strip().lower() in ("true", "false", "none", ""):
        return value
    if key.endswith("_cert"):
        return str(files["cert"])
    if key.endswith(".dpop"):
        return str(files["ec"])
    return str(files["rsa"])


@pytest.mark.parametrize("block", [text for _, text in blocks("ini")], ids=ids(blocks("ini")))
def test_every_ini_example_parses_as_written(block, files, tmp_path):
    """Each block as written; a later block adds to the README's first (the full settings example), as its text says."""
    settings = read_like_pastedeploy(block, tmp_path)
    assert settings, "an ini block in the README holds no setting"
    for key, value in settings.items():
        assert not re.search(r"\s[#;]", value), f"{key}: PasteDeploy would keep the trailing comment in {value!r}"
    base = read_like_pastedeploy(blocks("ini")[0][1], tmp_path)
    parse_settings({key: stand_in(key, value, files) for key, value in {**base, **settings}.items()})


@pytest.mark.parametrize("block", [text for _, text in blocks("python")], ids=ids(blocks("python")))
def test_every_python_example_compiles(block):
    compile(block, "README.md", "exec")


def test_the_code_first_directive_examples_configure_an_app():
    from pyramid.config import Configurator

    directive_blocks = [text for _, text in blocks("python") if "config.add_" in text]
    assert directive_blocks, "the README shows the code-first directives"
    settings = read_like_pastedeploy(blocks("ini")[0][1], Path("."))
    settings = {k: v for k, v in settings.items() if not k.startswith(("tokens.clients.", "tokens.http."))}
    for block in directive_blocks:
        config = Configurator(settings=settings)
        config.include("pyramid_tokens")
        exec(compile(block, "README.md", "exec"), {"config": config})
        names = {node.args[0].value for node in ast.walk(ast.parse(block))
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and node.func.attr.startswith("add_") and node.args and isinstance(node.args[0], ast.Constant)}
        config.commit()
        app = config.make_wsgi_app()
        from pyramid_tokens.web import OPTIONS

        options = app.registry[OPTIONS]
        assert names <= set(options.http) | set(options.clients) | set(options.exchange)
