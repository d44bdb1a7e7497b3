"""Metrics through the OpenTelemetry API: meter ``pyramid_tokens``, counters and one duration histogram.

With ``opentelemetry-api`` installed (``pip install 'pyramid_tokens[otel]'``) the instruments record into
whatever ``MeterProvider`` the application sets up (the SDK's console or Prometheus exporter, say); without
it every function here is a no-op costing one Python call. No attribute carries a user id, a token or a
secret: only grant types, outcomes, client names, endpoints and error codes (low cardinality by design).

| instrument | kind | attributes |
| --- | --- | --- |
| ``pyramid_tokens.token.requests`` | counter | ``pyramid_tokens.grant_type``, ``pyramid_tokens.outcome`` |
| ``pyramid_tokens.token.cache`` | counter | ``pyramid_tokens.token.kind`` (user, client), ``pyramid_tokens.cache.result`` (hit, miss, early_renewal) |
| ``pyramid_tokens.refresh.failures`` | counter | ``error.type`` |
| ``pyramid_tokens.logins`` | counter | ``pyramid_tokens.outcome`` (success, failure), ``error.type`` (the check) |
| ``pyramid_tokens.logouts`` | counter | ``pyramid_tokens.logout.how`` |
| ``pyramid_tokens.http.retries`` | counter | ``pyramid_tokens.client`` |
| ``pyramid_tokens.http.replays`` | counter | ``pyramid_tokens.client`` |
| ``pyramid_tokens.dpop.nonce_retries`` | counter | ``pyramid_tokens.endpoint`` |
| ``pyramid_tokens.provider.duration`` | histogram (s) | ``pyramid_tokens.endpoint``, ``http.response.status_code``, ``error.type`` |

``error.type`` and ``http.response.status_code`` are OpenTelemetry semantic-convention names; the rest are
namespaced under ``pyramid_tokens.`` since no convention exists for OAuth.
"""
from __future__ import annotations

from typing import Any

try:  # the optional extra: without it, nothing is recorded and nothing is paid
    from opentelemetry import metrics as _otel_metrics
except ImportError:  # pragma: no cover - exercised by the tests that run without the extra
    _otel_metrics = None

METER = "pyramid_tokens"

GRANT_TYPE = "pyramid_tokens.grant_type"
OUTCOME = "pyramid_tokens.outcome"
TOKEN_KIND = "pyramid_tokens.token.kind"
CACHE_RESULT = "pyramid_tokens.cache.result"
CLIENT = "pyramid_tokens.client"
ENDPOINT = "pyramid_tokens.endpoint"
LOGOUT_HOW = "pyramid_tokens.logout.how"
ERROR_TYPE = "error.type"
STATUS_CODE = "http.response.status_code"

ENABLED = _otel_metrics is not None

#: the error codes an attribute may carry (RFC 6749 §5.2, RFC 6750 §3.1, RFC 8628 §3.5, RFC 9449, OIDC Core
#: §3.1.2.6, and the package's own); any other value a provider sends is ``other``, so that a hostile or
#: buggy provider cannot blow up the number of time series
KNOWN_ERRORS = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "invalid_target", "access_denied", "server_error", "temporarily_unavailable",
    "invalid_token", "insufficient_scope", "authorization_pending", "slow_down", "expired_token",
    "invalid_dpop_proof", "use_dpop_nonce", "login_required", "consent_required", "interaction_required",
    "account_selection_required", "invalid_request_uri", "invalid_request_object",
    "token_error", "invalid_response", "invalid_id_token", "login_failed",
})


def error_code(error: str | None) -> str:
    """``error`` when it is a known code, else ``other`` (attribute values stay few and never carry text)."""
    return error if error in KNOWN_ERRORS else "other"


class _Instruments:
    """The instruments, made once from the global meter provider's ``pyramid_tokens`` meter.

    The API's proxy meter forwards to a provider the application sets later, so making them at import is fine.
    """

    def __init__(self, api: Any) -> None:
        meter = api.get_meter(METER)
        counter = meter.create_counter
        self.token_requests = counter("pyramid_tokens.token.requests", unit="{request}",
                                      description="Token requests sent to the provider, by grant type and outcome")
        self.token_cache = counter("pyramid_tokens.token.cache", unit="{lookup}",
                                   description="Token lookups: hit, miss or early renewal, for user and client tokens")
        self.refresh_failures = counter("pyramid_tokens.refresh.failures", unit="{failure}",
                                        description="User token refreshes that failed, by error")
        self.logins = counter("pyramid_tokens.logins", unit="{login}", description="Logins, by outcome")
        self.logouts = counter("pyramid_tokens.logouts", unit="{logout}", description="Logins ended, by how")
        self.http_retries = counter("pyramid_tokens.http.retries", unit="{retry}",
                                    description="Named HTTP client retries of transient failures")
        self.http_replays = counter("pyramid_tokens.http.replays", unit="{replay}",
                                    description="Named HTTP client replays after a 401 and a token renewal")
        self.dpop_nonce_retries = counter("pyramid_tokens.dpop.nonce_retries", unit="{retry}",
                                          description="Requests retried with a fresh DPoP nonce (RFC 9449 §8, §9)")
        self.provider_duration = meter.create_histogram("pyramid_tokens.provider.duration", unit="s",
                                                        description="Duration of calls to the provider, by endpoint")


_instruments = _Instruments(_otel_metrics) if _otel_metrics is not None else None


def token_request(grant_type: str, outcome: str) -> None:
    """One token request sent to the provider (``outcome``: ``success`` or the error code)."""
    if _instruments is not None:
        _instruments.token_requests.add(1, {GRANT_TYPE: grant_type,
                                            OUTCOME: outcome if outcome == "success" else error_code(outcome)})


def token_cache(kind: str, result: str) -> None:
    """A token lookup: ``kind`` ``user`` / ``client``, ``result`` ``hit`` / ``miss`` / ``early_renewal``."""
    if _instruments is not None:
        _instruments.token_cache.add(1, {TOKEN_KIND: kind, CACHE_RESULT: result})


if _instruments is None:  # the valid-token path calls this on every hit: without the extra, a bare no-op
    def token_cache(kind: str, result: str) -> None:  # noqa: F811
        """A token lookup (recorded only with ``opentelemetry-api`` installed)."""


def refresh_failure(error: str) -> None:
    """A user token refresh failed with ``error`` (the provider's code or ours)."""
    if _instruments is not None:
        _instruments.refresh_failures.add(1, {ERROR_TYPE: error_code(error)})


def login(outcome: str, check: str | None = None) -> None:
    """A login ``success`` or ``failure``; a failure names the ``check`` that failed as ``error.type``."""
    if _instruments is not None:
        _instruments.logins.add(1, {OUTCOME: outcome, **({ERROR_TYPE: check} if check else {})})


def logout(how: str) -> None:
    """A login ended: ``how`` is ``local``, ``rp-initiated``, ``back-channel`` or ``application``."""
    if _instruments is not None:
        _instruments.logouts.add(1, {LOGOUT_HOW: how})


def http_retry(client: str) -> None:
    if _instruments is not None:
        _instruments.http_retries.add(1, {CLIENT: client})


def http_replay(client: str) -> None:
    if _instruments is not None:
        _instruments.http_replays.add(1, {CLIENT: client})


def dpop_nonce_retry(endpoint: str) -> None:
    if _instruments is not None:
        _instruments.dpop_nonce_retries.add(1, {ENDPOINT: endpoint})


def provider_duration(endpoint: str, seconds: float, *, status: int | None = None, error: str | None = None) -> None:
    """One call to the provider's ``endpoint`` (``token``, ``userinfo``, ``jwks``, ``discovery``...)."""
    if _instruments is not None:
        attributes: dict[str, Any] = {ENDPOINT: endpoint}
        if status is not None:
            attributes[STATUS_CODE] = status
        if error is not None:
            attributes[ERROR_TYPE] = error_code(error)
        _instruments.provider_duration.record(seconds, attributes)
