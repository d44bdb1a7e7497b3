"""Client authentication at the provider's endpoints (RFC 6749 §2.3.1, RFC 7523 §2.2, RFC 8705 §2).

One function, :func:`apply_client_auth`, adds a client's credentials to a form and its headers:
a fresh ``private_key_jwt`` assertion (RFC 7523) when the client has an assertion key, else HTTP
Basic or the form body for a secret, else only ``client_id`` (a public client, or ``tls_client_auth``
whose certificate goes with the connection). Hand-written: oauthlib's ``prepare_token_request``
puts a secret only in the body and knows no assertions, and requests' ``HTTPBasicAuth`` does not
form-encode the id and secret as §2.3.1 requires.
"""
from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from .assertion import JWT_BEARER
from .errors import ConfigurationError
from .options import ClientCredentials


def basic_authorization(client_id: str, client_secret: str) -> str:
    """RFC 6749 §2.3.1: ``Basic`` of the form-encoded id and secret (so ``:`` and non-ASCII survive)."""
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def apply_client_auth(client: ClientCredentials, form: dict[str, Any], headers: dict[str, str], *,
                      audience: str | None = None) -> None:
    """Authenticate ``client`` in ``form`` / ``headers`` (changed in place: they are the request being built).

    ``audience``: the ``aud`` of a client assertion (required with an assertion key).
    """
    if client.assertion_key is not None:
        if not audience:
            raise ConfigurationError("client_assertion_key", "a client assertion needs an audience "
                                     "(an authority or a token endpoint)")
        form["client_id"] = client.client_id
        form["client_assertion_type"] = JWT_BEARER
        form["client_assertion"] = client.assertion_key.assertion(client.client_id, audience)
    elif client.client_secret and client.style == "basic":
        headers["Authorization"] = basic_authorization(client.client_id, client.client_secret)
    elif client.client_secret:
        form["client_id"] = client.client_id
        form["client_secret"] = client.client_secret
    else:
        form["client_id"] = client.client_id
