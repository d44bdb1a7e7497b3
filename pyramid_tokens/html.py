"""The few pieces of HTML the package builds: a page shell, tables, links and time/claim text.

Shared by the web pages (``web/``, ``demo/``, ``devidp/``) and the Jupyter displays (``display.py``,
``prompt.py``, ``AccessToken._repr_html_``). No template engine is needed; every value is escaped
here. Tables left-align their cells inline because a notebook applies no stylesheet of ours.
This module imports nothing from the package, so anything may use it.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from typing import Any
from urllib.parse import urlsplit

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:58rem;margin:2rem auto;padding:0 1rem;
color:#1d2330;line-height:1.5}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.8rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d5d9e0;padding:.3rem .6rem;text-align:left;
vertical-align:top}th{background:#f3f5f8}code,pre{background:#f3f5f8;border-radius:4px;padding:.1rem .3rem}
pre{padding:.6rem;overflow:auto}.error{color:#a01818}.ok{color:#11692b}.muted{color:#667}
button,.button{background:#2f5bd3;color:#fff;border:0;border-radius:5px;padding:.45rem .9rem;cursor:pointer;
text-decoration:none;display:inline-block;font-size:.95rem}form{display:inline-block;margin-right:.4rem}
"""

_CELL = "style='text-align:left'"


def page(title: str, body: str) -> str:
    """A complete HTML page; ``body`` is already-escaped HTML, ``title`` is text."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            # an empty icon: no /favicon.ico request, so no 404 in the browser's console on every page
            f"<link rel='icon' href='data:,'><meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")


def table(rows: list[tuple[Any, Any]]) -> str:
    """A two-column table of label/value text (both escaped)."""
    cells = "".join(f"<tr><th {_CELL}>{escape(str(k))}</th><td {_CELL}>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def grid(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    """A table with a header row; every cell is escaped text."""
    head = "".join(f"<th {_CELL}>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def link(url: str, text: str | None = None) -> str:
    """A clickable link for http(s) URLs only (a provider could send ``javascript:``); else plain text."""
    label = escape(text if text is not None else url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return f"<code>{label}</code>"
    return f"<a href=\"{escape(url, quote=True)}\" target=\"_blank\" rel=\"noopener noreferrer\">{label}</a>"


def countdown(seconds: float | None) -> str:
    """``"4 min 10 s"``, ``"expired 3 s ago"`` or ``"no expiry given"``."""
    if seconds is None:
        return "no expiry given"
    if seconds <= 0:
        return f"expired {int(-seconds)} s ago"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def format_claim(value: Any) -> str:
    """A claim value for display: timestamps as UTC times, other non-strings as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 10**8:
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):  # a hostile "exp": 1e300 is shown as the number it is
            pass
    return json.dumps(value)
