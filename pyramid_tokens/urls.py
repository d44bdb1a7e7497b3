"""The rule every provider URL follows, whether it comes from a setting or from discovery.

An absolute ``http``/``https`` URL (RFC 3986 §4.3) with no whitespace or control characters, and
``https`` unless the host is a loopback address: RFC 6749 §3.1 and §3.2 require TLS at the
authorization and token endpoints, and OpenID Connect Discovery 1.0 §3 for every URL it lists.
Plain ``http`` stays possible for a provider on this machine (development).
"""
from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def url_problem(text: str, *, tls: bool = True) -> str | None:
    """What is wrong with ``text`` as a provider URL, or ``None`` when it is fine."""
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(text)
        parts.hostname, parts.port  # noqa: B018 - both parse lazily and raise ValueError ("Invalid IPv6 URL", port)
    except ValueError:
        return "expected an absolute http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an absolute http(s) URL"
    if tls and parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return "must use https (plain http is allowed for loopback addresses only)"
    return None
