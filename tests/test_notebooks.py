"""The notebooks in ``notebooks/`` run top to bottom, headless, and never show a token value.

Each runs in a fresh ``python3`` kernel of *this* interpreter (a kernelspec for ``sys.executable`` is
installed in a temporary Jupyter path), unattended (``PYRAMID_TOKENS_UNATTENDED=1`` makes the development
provider approve device logins). A cell put before the notebook's own records every token, refresh token,
ID token and device code the kernel receives; a cell after them reports those values, and the test asserts
that none of them appears in any output the notebook produced.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
SECRETS_MARKER = "PYRAMID_TOKENS_TEST_SECRETS:"

RECORD_SECRETS = """
import pyramid_tokens.device as _device, pyramid_tokens.tokenclient as _protocol
_SEEN_SECRETS = set()
def _recording(parse):
    def wrapper(*args, **kwargs):
        result = parse(*args, **kwargs)
        for value in (getattr(result, "device_code", None), getattr(result, "refresh_token", None),
                      getattr(result, "id_token", None), getattr(getattr(result, "access_token", None), "access_token", None)):
            if value:
                _SEEN_SECRETS.add(value)
        return result
    return wrapper
_protocol.parse_token_response = _recording(_protocol.parse_token_response)
_device.parse_device_authorization = _recording(_device.parse_device_authorization)
"""

REPORT_SECRETS = f"""
import json as _json
print({SECRETS_MARKER!r} + _json.dumps(sorted(_SEEN_SECRETS)))
"""

#: what a JWT (access or ID token) looks like: base64url JSON header, payload, signature
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A ``python3`` kernelspec running ``sys.executable``, found first through JUPYTER_PATH."""
    prefix = tmp_path_factory.mktemp("jupyter")
    kernelspec.install(kernel_name="python3", prefix=str(prefix))
    return {"JUPYTER_PATH": str(prefix / "share" / "jupyter")}


@pytest.fixture
def unattended(kernel_env, monkeypatch):
    for key, value in kernel_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYRAMID_TOKENS_UNATTENDED", "1")
    from jupyter_client.kernelspec import KernelSpecManager

    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable


def outputs_text(nb) -> list[tuple[str, str]]:
    """``(kind, text)`` for every output of every cell: stream text, each data mimetype, tracebacks."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                found.append(("stream", output.text))
            elif output.output_type in ("display_data", "execute_result"):
                for mimetype, data in output.data.items():
                    found.append((mimetype, data if isinstance(data, str) else json.dumps(data)))
            elif output.output_type == "error":
                found.append(("error", "\n".join(output.traceback)))
    return found


class RecordingClient(nbclient.NotebookClient):
    """Keeps every output message, including displays that a later ``update_display_data`` replaced."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shown: list[tuple[str, str]] = []

    def process_message(self, msg, cell, cell_index):
        content = msg.get("content") or {}
        if msg["msg_type"] == "stream":
            self.shown.append(("stream", content.get("text", "")))
        for mimetype, data in (content.get("data") or {}).items():
            self.shown.append((mimetype, data if isinstance(data, str) else json.dumps(data)))
        return super().process_message(msg, cell, cell_index)


def execute(path: Path, nb=None):
    """Run the notebook; returns every output ever shown and the secret values the kernel received."""
    nb = nb or nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(RECORD_SECRETS))
    nb.cells.append(nbformat.v4.new_code_cell(REPORT_SECRETS))
    client = RecordingClient(nb, kernel_name="python3", timeout=60,
                             resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    report = nb.cells.pop()
    nb.cells.pop(0)
    (line,) = [o.text for o in report.outputs if o.output_type == "stream" and SECRETS_MARKER in o.text]
    secrets = json.loads(line.split(SECRETS_MARKER, 1)[1])
    shown = [(kind, text) for kind, text in client.shown if SECRETS_MARKER not in text]
    return nb, outputs_text(nb) + shown, secrets


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_client_credentials.ipynb", "02_device_login.ipynb", "03_refresh_and_revocation.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


EXPECTED = {
    # notebook: texts that must appear in its outputs
    "01_client_credentials": ["same token: True", "client-credentials requests at the provider: 1",
                              "the API sees subject 'worker'", "pyramid-tokens-access-token",
                              "pyramid-tokens-manager", "cached, expires"],
    "02_device_login": ["Signed in as", "the API sees user 'alice'", "same user token after the 'restart': True",
                        "device logins at the provider: 1", "token file mode: 0o600", "revoked at the provider: True",
                        "pyramid-tokens-access-token", "pyramid-tokens-manager"],
    "03_refresh_and_revocation": ["fresh, same token: True", "refreshed, new token: True",
                                  "refresh requests at the provider: 1", "revoked: True",
                                  "revocations at the provider: 1", "API with the current access token: 200",
                                  "LoginRequired:", "pyramid-tokens-access-token"],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_and_shows_no_token_value(path, unattended):
    nb, outputs, secrets = execute(path)
    assert not [text for kind, text in outputs if kind == "error"]
    html = [text for kind, text in outputs if kind == "text/html"]
    assert html, "the notebook shows rich (HTML) output"
    everything = "\n".join(text for _, text in outputs)
    for expected in EXPECTED[path.stem]:
        assert expected in everything, expected
    assert secrets, "the notebook obtained tokens"
    for secret in secrets:
        assert secret not in everything
    assert not JWT.search(everything)


KERNEL_PROMPT = """
from pyramid_tokens import TokenManager
from pyramid_tokens.devidp import DevClient, start_provider
from pyramid_tokens.errors import LoginFailed

idp = start_provider(clients=[DevClient("notebook")], device_interval=1)  # nobody approves
tm = TokenManager.from_settings({"oidc.authority": idp.issuer, "oidc.client_id": "notebook"})
try:
    tm.device_login(timeout=0.5)
except LoginFailed as exc:
    print("gave up:", exc.error)
idp.stop()
"""


def test_device_login_in_a_kernel_shows_an_html_prompt_with_a_clickable_link(unattended, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(KERNEL_PROMPT)])
    nb, outputs, secrets = execute(tmp_path / "prompt.ipynb", nb)
    prompts = [text for kind, text in outputs if kind == "text/html" and "pyramid-tokens-device-login" in text]
    link = re.compile(r'<a href="http://127\.0\.0\.1:\d+/idp/device\?user_code=[A-Z0-9%-]+" target="_blank"')
    assert any(link.search(prompt) for prompt in prompts)
    final = "\n".join(text for _, text in outputs_text(nb))
    assert "Sign-in failed" in final and not link.search(final)  # the prompt was replaced by the outcome
    assert [t for k, t in outputs if k == "text/plain" and "To sign in, open" in t]  # a text fallback too
    assert "gave up: expired_token" in "\n".join(t for k, t in outputs if k == "stream")
    for secret in secrets:  # the device code
        assert secret not in "\n".join(text for _, text in outputs)
