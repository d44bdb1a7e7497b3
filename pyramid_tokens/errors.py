"""The package's errors: one small hierarchy, carrying the provider's ``error`` and ``error_description``.

Every failure to obtain a token is a :class:`TokenError`; no ``requests``, urllib3 or PyJWT
exception escapes unwrapped. Messages never contain token values or secrets.
"""
from __future__ import annotations

from typing import Any


class TokenError(Exception):
    """A token could not be obtained, refreshed, validated or revoked.

    ``error`` is the OAuth error code (the provider's, or one of ours such as
    ``invalid_response``); ``error_description`` is a human-readable explanation.
    """

    error: str = "token_error"
    #: which check of a login failed (``state``, ``nonce``, ``signature``...): the ``LoginFailed`` event's
    check: str = "token"

    def __init__(
        self,
        error_description: str | None = None,
        *,
        error: str | None = None,
        status_code: int | None = None,
        error_uri: str | None = None,
        endpoint: str | None = None,
        check: str | None = None,
    ) -> None:
        if error is not None:
            self.error = error
        if check is not None:
            self.check = check
        self.error_description = error_description
        #: the HTTP status of the provider's answer, when there was one
        self.status_code = status_code
        self.error_uri = error_uri
        #: the provider endpoint (URL without query) the failed call went to, when there was one
        self.endpoint = endpoint
        super().__init__(self._message())

    def _message(self) -> str:
        text = self.error
        if self.error_description:
            text = f"{text}: {self.error_description}"
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(error={self.error!r}, error_description={self.error_description!r})"


class LoginRequired(TokenError):
    """There is no logged-in user, or the user's refresh token is no longer accepted.

    A subclass of :class:`TokenError`: code that catches ``TokenError`` to show a message must
    catch (or re-raise) ``LoginRequired`` first, so that it still reaches the login challenge.
    """

    error = "login_required"


class TemporarilyUnavailable(TokenError):
    """Something a token depends on is down or busy right now; the same call may succeed later (a 503)."""

    error = "temporarily_unavailable"


class ProviderUnavailable(TemporarilyUnavailable):
    """The provider could not be reached, timed out or answered with a server error (5xx)."""


class StoreUnavailable(TemporarilyUnavailable):
    """A shared token store (Redis) could not be reached or did not answer in time."""


class LockTimeout(TemporarilyUnavailable):
    """Another worker held a token lock for longer than the bounded wait."""


class InvalidClient(TokenError):
    """The provider refused the client's authentication (RFC 6749 §5.2 ``invalid_client``)."""

    error = "invalid_client"


class UnauthorizedClient(TokenError):
    """The client may not use this grant (RFC 6749 §5.2 ``unauthorized_client``)."""

    error = "unauthorized_client"


class InvalidScope(TokenError):
    """The requested scope is invalid, unknown or exceeds what was granted (``invalid_scope``)."""

    error = "invalid_scope"


class InvalidResponse(TokenError):
    """The provider answered, but not with a well-formed response (not JSON, missing fields...)."""

    error = "invalid_response"


class InvalidIdToken(TokenError):
    """An ID token failed validation (signature, issuer, audience, expiry, nonce...)."""

    error = "invalid_id_token"
    check = "id_token"


class SubjectMismatch(InvalidIdToken):
    """A refreshed ID token names another user than the login (OIDC Core §12.2): the grant is someone else's."""


class InvalidLogoutToken(TokenError):
    """A back-channel logout token failed a check (OpenID Connect Back-Channel Logout 1.0 §2.6); ``check`` names it."""

    error = "invalid_request"

    def __init__(self, error_description: str, *, check: str) -> None:
        self.check = check
        super().__init__(error_description)


class LoginFailed(TokenError):
    """The authorization response could not be accepted (state, error parameter, issuer...)."""

    error = "login_failed"
    check = "response"


class InvalidProof(TokenError):
    """A DPoP proof was refused (server side); ``error`` is ``invalid_dpop_proof`` or ``use_dpop_nonce``."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(description, error=error)

    @property
    def description(self) -> str:
        return self.error_description or ""


class ConfigurationError(ValueError):
    """A setting is missing or malformed; the message names the key."""

    def __init__(self, key: str, problem: str, value: Any = None) -> None:
        self.key = key
        self.problem = problem
        message = f"{key}: {problem}"
        if value is not None:
            message += f" (got {value!r})"
        super().__init__(message)
