"""The device login's prompt (RFC 8628 §3.3): what the user opens and which code they enter.

Inside a Jupyter kernel the prompt is HTML with a clickable link, replaced by the outcome once the
login ends; elsewhere it is text on stderr. Everything shown comes from the provider and is made
inert first: control, format and separator characters are dropped (no ESC/CSI/OSC sequences, BEL,
CR or backspace can rewrite the terminal, no bidi override can reorder the code, RFC 8628 §5.4
"remote phishing" through a forged prompt), and the HTML is escaped with only http(s) links
clickable. The device code is never shown.
"""
from __future__ import annotations

import sys
import unicodedata
from html import escape
from typing import TYPE_CHECKING, Any, Callable

from .html import link

if TYPE_CHECKING:
    from .device import DeviceAuthorization

#: Unicode categories never shown: controls (C0, DEL, C1 with ESC/CSI/OSC/BEL/CR/BS), formats (bidi
#: overrides and isolates, zero-width characters), surrogates, line and paragraph separators
_UNSHOWN = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def inert(text: str) -> str:
    """``text`` without the characters that a terminal or a reader would not show as themselves."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in _UNSHOWN)


def _minutes(authorization: "DeviceAuthorization") -> int:
    return max(1, round(authorization.expires_in / 60))


def prompt_text(authorization: "DeviceAuthorization") -> str:
    """The terminal prompt."""
    code, uri = inert(authorization.user_code), inert(authorization.verification_uri)
    lines = ["To sign in, open this link in a browser and approve the request:", f"    {inert(authorization.link)}"]
    if authorization.verification_uri_complete:
        lines.append(f"(or open {uri} and enter the code {code})")
    else:
        lines.append(f"and enter the code {code}")
    lines.append(f"The code expires in about {_minutes(authorization)} min.")
    return "\n".join(lines)


def prompt_html(authorization: "DeviceAuthorization") -> str:
    """The Jupyter prompt: a clickable verification link and the user code."""
    code = f"<code style='font-size:1.25em;letter-spacing:.08em'>{escape(inert(authorization.user_code))}</code>"
    if authorization.verification_uri_complete:
        second = f"<p>Or open {link(inert(authorization.verification_uri))} and enter the code {code}.</p>"
    else:
        second = f"<p>Enter the code {code} when asked.</p>"
    return (f"<div class='pyramid-tokens-device-login'><p><b>Sign in:</b> open "
            f"{link(inert(authorization.link))} in a browser and approve the request.</p>{second}"
            f"<p style='color:#888'>The code expires in about {_minutes(authorization)} min. "
            f"Waiting for approval&hellip;</p></div>")


def outcome_html(ok: bool, message: str) -> str:
    """What replaces the prompt once the device login has ended."""
    color = "#11692b" if ok else "#a01818"
    return f"<div class='pyramid-tokens-device-login'><p style='color:{color}'>{escape(inert(message))}</p></div>"


def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel. Never imports IPython: a kernel has loaded it already."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an odd or partial IPython: behave as a terminal
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


class DevicePrompt:
    """Shows the prompt and, in a kernel, replaces it with the outcome once the login ends.

    ``display(authorization)``, when given, replaces the built-in prompt (and shows no outcome).
    """

    def __init__(self, display: Callable[[Any], Any] | None = None) -> None:
        self.custom = display
        self.handle: Any = None

    def show(self, authorization: "DeviceAuthorization") -> None:
        if self.custom is not None:
            self.custom(authorization)
        elif in_kernel():
            from IPython.display import display  # type: ignore[import-not-found]

            bundle = {"text/html": prompt_html(authorization), "text/plain": prompt_text(authorization)}
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            print(prompt_text(authorization), file=sys.stderr, flush=True)

    def finish(self, ok: bool, message: str) -> None:
        if self.custom is not None:
            return
        message = inert(message)
        if self.handle is not None:
            self.handle.update({"text/html": outcome_html(ok, message), "text/plain": message}, raw=True)
        else:
            print(message, file=sys.stderr, flush=True)
