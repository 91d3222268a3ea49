"""The error taxonomy: one class per error type, each with a user-facing message."""

from __future__ import annotations

from typing import ClassVar

from schemas.completion import RateLimitState, Usage


class FrugalError(Exception):
    """Base of every error Frugal raises on purpose; its message is fit for a user."""

    type: ClassVar[str] = "error"


class ConfigError(FrugalError):
    """The configuration file or environment is wrong; the message names the key."""

    type = "config_error"


class JobError(FrugalError):
    """A record is not a valid job (bad JSON, wrong fields, too large for every model)."""

    type = "invalid_job"


class BudgetExhausted(FrugalError):
    """No adequate model has budget left under the configured caps."""

    type = "budget_exhausted"


class NoAdequateModel(FrugalError):
    """Every candidate model was tried or excluded; carries the last error type."""

    type = "no_adequate_model"


class ProviderError(FrugalError):
    """A provider call failed; classified once, in the adapter, and acted on by type.

    `usage` is what the provider billed for the failed call (an answer that failed validation,
    a refusal), None when nothing was billed or the provider did not say; `rate_limit` is the
    rate-limit state its response headers reported, None when there were none.
    """

    type = "provider_error"
    retryable: ClassVar[bool] = False  # worth trying the same model again after a wait
    provider_unusable: ClassVar[bool] = False  # take the whole provider out of routing

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
        billed: bool = False,
        usage: Usage | None = None,
        rate_limit: RateLimitState | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s
        self.billed = billed
        self.usage = usage
        self.rate_limit = rate_limit

    def as_dict(self) -> dict[str, object]:
        return {"type": self.type, "message": self.message, "retry_after_s": self.retry_after_s}


class RateLimited(ProviderError):
    type = "rate_limited"
    retryable = True


class QuotaExhausted(ProviderError):
    type = "quota_exhausted"
    provider_unusable = True


class Overloaded(ProviderError):
    type = "overloaded"
    retryable = True


class ServerError(ProviderError):
    type = "server_error"
    retryable = True


class Timeout(ProviderError):
    type = "timeout"
    retryable = True


class ConnectionFailed(ProviderError):
    type = "connection"
    retryable = True


class AuthError(ProviderError):
    type = "auth"
    provider_unusable = True


class NotFound(ProviderError):
    type = "not_found"


class ContextLength(ProviderError):
    type = "context_length"


class InvalidRequest(ProviderError):
    type = "invalid_request"


class Refusal(ProviderError):
    type = "refusal"


class InvalidOutput(ProviderError):
    """The answer came back but failed validation; the call was billed."""

    type = "invalid_output"


PROVIDER_ERRORS: dict[str, type[ProviderError]] = {
    cls.type: cls
    for cls in (
        RateLimited,
        QuotaExhausted,
        Overloaded,
        ServerError,
        Timeout,
        ConnectionFailed,
        AuthError,
        NotFound,
        ContextLength,
        InvalidRequest,
        Refusal,
        InvalidOutput,
    )
}
