"""A few lines of HTML shared by the package's pages (no template engine needed)."""
from __future__ import annotations

from html import escape

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


def page(title: str, body: str) -> str:
    """A complete HTML page; ``body`` is already-escaped HTML, ``title`` is text."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            # an empty icon: no /favicon.ico request, so no 404 in the browser's console on every page
            f"<link rel='icon' href='data:,'><meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")


def table(rows: list[tuple[str, object]]) -> str:
    """A two-column table of label/value text (both escaped)."""
    cells = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"
