"""Same-site redirect targets only: ``came_from`` and post-logout paths cannot leave the site.

Browsers treat ``//host``, ``/\\host`` and ``\\\\host`` as other sites, and strip tabs and newlines
inside URLs, so a safe target is a path that starts with exactly one ``/`` and contains none of
them, before and after percent-decoding. It must be ASCII: a Location header cannot carry anything else
as it is, and the paths the package itself sends to login (``request.path_qs``) are percent-encoded.
"""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

_FORBIDDEN = set("\\\t\r\n\x00")


def safe_path(target: object, default: str = "/") -> str:
    """``target`` when it is a same-site path (with query), else ``default``."""
    if not isinstance(target, str) or not target or len(target) > 2048 or not target.isascii():
        return default  # non-ASCII cannot go into a Location header as it is (legit paths come encoded)
    for candidate in (target, unquote(target), unquote(unquote(target))):
        if not candidate.startswith("/") or candidate.startswith("//") or _FORBIDDEN & set(candidate):
            return default
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in candidate):
            return default
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return default
    return target
