"""litellm failures as local-brain errors: exit status 3, one line, and a hint for the fix.

Matched by exception class (litellm's own, or the openai classes they extend), walking the
whole chain, because smolagents wraps a model failure in its own ``AgentGenerationError``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from local_brain.errors import BackendUnavailable, one_line
from local_brain.models.names import is_ollama, served_name

CONNECTION_HINT = "start it with `ollama serve`, or check OLLAMA_API_BASE / --api-base"
KEY_HINT = "check the provider's API key variable"
DEFAULT_HINT = "check that the model server is running and healthy"
_MISSING_KEY = ("Missing credentials", "api_key client option must be set")  # openai's client


@cache
def _kinds() -> tuple[tuple[tuple[type[BaseException], ...], str, str | None], ...]:
    """(exception classes, what happened, hint) in the order they are tried; a hint of None
    means: install the model."""
    import openai

    from local_brain.safe_import import import_model_stack

    litellm, _ = import_model_stack()
    from litellm.types.router import RouterRateLimitError

    return (
        ((litellm.Timeout,),
         "the model did not finish in time (still loading, generating, or stalled)",
         "lower local_brain.max_output_tokens, use a smaller model, or raise "
         "router_settings.timeout"),
        ((openai.APIConnectionError,), "cannot reach the model server", CONNECTION_HINT),
        ((openai.NotFoundError,), "model not found", None),
        ((openai.AuthenticationError, openai.PermissionDeniedError),
         "the model provider refused the credentials", KEY_HINT),
        ((openai.InternalServerError,), "the model server failed", DEFAULT_HINT),
        ((litellm.ServiceUnavailableError, litellm.BadGatewayError),
         "the model server is unavailable", DEFAULT_HINT),
        ((openai.RateLimitError,), "the model provider is rate limiting", DEFAULT_HINT),
        ((RouterRateLimitError,),
         "no model deployment is available (all failed or cooling down)", DEFAULT_HINT),
    )  # fmt: skip


def is_connection_error(error: BaseException) -> bool:
    """A refused or broken connection (or a timeout): litellm never cools these down."""
    import openai

    return isinstance(error, openai.APIConnectionError)


def backend_error_from(error: BaseException, model: str) -> BackendUnavailable | None:
    """Translate a litellm failure anywhere in an exception chain into exit status 3."""
    import openai

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        detail = one_line(current)
        if any(marker in detail for marker in _MISSING_KEY):
            return BackendUnavailable(
                f"no API key for model {model}: {detail}",
                hint="set the provider's key variable (LITELLM_PROXY_API_KEY for a LiteLLM "
                "Proxy, OPENAI_API_KEY, GROQ_API_KEY, ...)",
            )
        for classes, summary, hint in _kinds():
            if isinstance(current, classes):
                return BackendUnavailable(
                    f"{summary} for model {model}: {detail}", hint or _pull_hint(model)
                )
        if isinstance(current, openai.APIError) and _from_litellm(current):
            return BackendUnavailable(f"the model server failed for model {model}: {detail}")
        current = current.__cause__ or current.__context__
    return None


def _from_litellm(error: Any) -> bool:
    return type(error).__module__.split(".")[0] == "litellm"


def _pull_hint(model: str) -> str:
    bare = served_name(model) if is_ollama(model) else model
    return f"install it with `ollama pull {bare}`, or list models with `ollama list`"
