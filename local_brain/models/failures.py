"""litellm failures as local-brain errors: exit status 3, one line, and a hint for the fix.

Matched by exception class (litellm's own, or the openai classes they extend), walking the
whole chain, because smolagents wraps a model failure in its own ``AgentGenerationError``.
The hint fits where the model is served (``models/hints.py``): ``ollama pull`` only for an
Ollama model, the server's model ids for an OpenAI-compatible server, the key variable for a
LiteLLM Proxy or a cloud provider. The provider's own text is distilled to one clean line
(:func:`distill`): no JSON bodies, HTML pages, or litellm's routing commentary.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from typing import Any, Literal

from local_brain.config import Settings
from local_brain.errors import BackendUnavailable
from local_brain.models import hints

CONNECTION_HINT = "start it with `ollama serve`, or check OLLAMA_API_BASE / --api-base"
DEFAULT_HINT = "check that the model server is running and healthy"
BUSY_HINT = "the server is overloaded or still loading: try again shortly, or use another model"
BROKEN_OFF_HINT = (
    "the server dropped the connection in the middle of a reply (it may have crashed or run "
    "out of memory): check its log, or try a smaller model"
)
_MISSING_KEY = ("Missing credentials", "api_key client option must be set")  # openai's client
_BROKEN_OFF = (
    "incomplete chunked read",
    "peer closed connection",
    "server disconnected",
    "remoteprotocolerror",
    "connection reset by peer",
)
_UNRESOLVED = (  # the resolver's words: no network, or a mistyped host
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname provided",
    "getaddrinfo failed",
    "no address associated with hostname",
)
_LIMIT = 200

Hint = Literal["timeout", "connection", "not_found", "key", "busy", "default"]


@cache
def _kinds() -> tuple[tuple[tuple[type[BaseException], ...], str, Hint], ...]:
    """(exception classes, what happened, which hint) in the order they are tried."""
    import openai

    from local_brain.safe_import import import_model_stack

    litellm, _ = import_model_stack()
    from litellm.types.router import RouterRateLimitError

    return (
        ((litellm.Timeout,),
         "the model did not finish in time (still loading, generating, or stalled)", "timeout"),
        ((openai.APIConnectionError,), "cannot reach the model server", "connection"),
        ((openai.NotFoundError,), "model not found", "not_found"),
        ((openai.AuthenticationError, openai.PermissionDeniedError),
         "the model provider refused the credentials", "key"),
        ((litellm.ServiceUnavailableError,), "the model server is busy (503)", "busy"),
        ((openai.InternalServerError,), "the model server failed", "default"),
        ((litellm.BadGatewayError,), "the model server is unavailable", "default"),
        ((openai.RateLimitError,), "the model provider is rate limiting", "busy"),
        ((RouterRateLimitError,),
         "no model deployment is available (all failed or cooling down)", "default"),
    )  # fmt: skip


def is_connection_error(error: BaseException) -> bool:
    """A refused or broken connection (or a timeout): litellm never cools these down."""
    import openai

    return isinstance(error, openai.APIConnectionError)


def backend_error_from(
    error: BaseException, model: str, settings: Settings | None = None
) -> BackendUnavailable | None:
    """Translate a litellm failure anywhere in an exception chain into exit status 3, with
    a hint that fits where ``model`` is served (known from ``settings``)."""
    import openai

    route = hints.hint_route(model, settings)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        raw = str(current)
        detail = distill(current)
        if any(marker in raw for marker in _MISSING_KEY):
            return BackendUnavailable(f"no API key for model {model}", missing_key_hint(route))
        if any(marker in raw.lower() for marker in _UNRESOLVED):  # whatever class wraps it
            where = "model provider" if route.kind == "hosted" else "model server"
            return BackendUnavailable(
                f"cannot reach the {where} for model {model}: its host name does not resolve",
                hints.unreachable_hint(route),
            )
        for classes, summary, kind in _kinds():
            if isinstance(current, classes):
                if kind in ("connection", "default") and _broken_off(raw):
                    summary, hint = "the model server broke off its reply", BROKEN_OFF_HINT
                else:
                    hint = _hint(kind, route, settings, model)
                return BackendUnavailable(f"{summary} for model {model}: {detail}", hint)
        if isinstance(current, openai.APIError) and _from_litellm(current):
            return BackendUnavailable(
                f"the model server failed for model {model}: {detail}", DEFAULT_HINT
            )
        current = current.__cause__ or current.__context__
    return None


def _hint(kind: Hint, route: hints.RouteInfo, settings: Settings | None, model: str) -> str:
    if kind == "timeout":
        return ("lower local_brain.max_output_tokens, use a smaller model, or raise "
                "router_settings.timeout")  # fmt: skip
    if kind == "connection":
        return hints.unreachable_hint(route)
    if kind == "not_found":
        return hints.not_found_hint(route, settings, model)
    if kind == "key":
        return hints.key_hint(route)
    if kind == "busy":
        return BUSY_HINT
    return DEFAULT_HINT


def missing_key_hint(route: hints.RouteInfo) -> str:
    variables = hints.key_variables(route.provider)
    if route.kind == "proxy":
        return f"set {variables[0]} (the LiteLLM Proxy's key), or api_key in the config"
    if variables:
        return f"set {variables[0]}, or api_key in the config"
    return "set the provider's API key variable, or api_key in the config"


def _broken_off(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _BROKEN_OFF)


def _from_litellm(error: Any) -> bool:
    return type(error).__module__.split(".")[0] == "litellm"


# -- the provider's message in one clean line ---------------------------------------------

_TAIL = re.compile(
    r"\s*(?:LiteLLM: model group|LiteLLM Retried:|Received Model Group=|"
    r"Available Model Group Fallbacks=|No fallback model group found|Debug Information:|"
    r"Fallbacks are configured for|Traceback \(most recent call last\)|,? ?Try again in \d+ "
    r"seconds|,? ?Passed model=|,? ?cooldown_list=).*$",
    re.DOTALL,
)
_PREFIX = re.compile(
    r"^(?:Error in generating model output:\s*|(?:litellm\.)?[A-Za-z_]*(?:Error|Exception)"
    r"(?:\s*-\s*|:\s*)|[A-Z][a-z_]+Exception\s*-\s*)"
)
_HTML = re.compile(r"<\s*(?:!doctype|html|head|body)\b", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


def distill(error: BaseException | str, limit: int = _LIMIT) -> str:
    """The provider's message in one line: litellm's class-name prefixes and routing
    commentary removed, a JSON error body reduced to its message, an HTML page to its title."""
    text = str(error)
    text = _TAIL.sub("", text)
    text = " ".join(text.split())
    for _ in range(6):  # "litellm.X: X: ProviderException - ..." peels layer by layer
        stripped = _PREFIX.sub("", text, count=1).strip()
        if stripped == text:
            break
        text = stripped
    text = _from_json(text) or text
    text = _from_html(text) or text  # an HTML page, raw or as a JSON error's message
    text = text.strip() or (type(error).__name__ if isinstance(error, BaseException) else "")
    return text[:limit] + ("…" if len(text) > limit else "")


def _from_json(text: str) -> str | None:
    start = text.find("{")
    if start < 0 or start > 40:
        return None
    try:
        payload, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    message = _json_message(payload)
    if message is None:
        return None
    head = text[:start].strip(" -:")
    return f"{head}: {message}" if head else message


def _json_message(payload: Any) -> str | None:
    if isinstance(payload, str):
        return " ".join(payload.split()) or None
    if not isinstance(payload, dict):
        return None
    for key in ("error", "message", "detail", "msg"):
        if key in payload:
            found = _json_message(payload[key])
            if found:
                return found
    return None


def _from_html(text: str) -> str | None:
    if not _HTML.search(text):
        return None
    for tag in ("title", "h1", "h2"):
        match = re.search(rf"<{tag}[^>]*>(.*?)</{tag}>", text, re.IGNORECASE | re.DOTALL)
        if match:
            inner = html.unescape(_TAG.sub(" ", match.group(1)))
            inner = " ".join(inner.split())
            if inner:
                return f"an HTML page: {inner}"
    return "an HTML page instead of an API answer"
