"""Model names, the LiteLLM Router, and the routed smolagents model.

This is the only module that knows litellm and Ollama. Model-name rules (design.md):

1. a ``model_name`` from the config's ``model_list`` is that routed group;
2. ``provider/model`` with a litellm provider prefix passes through (``--api-base`` applies);
3. a bare name (``qwen3:30b``) means ``ollama_chat/<name>`` at ``OLLAMA_API_BASE``;
4. no name: ``LOCAL_BRAIN_MODEL``, the config's default, else the best installed model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from local_brain.config import Settings
from local_brain.errors import BackendUnavailable, ConfigError, one_line
from local_brain.events import (
    ContextTruncated,
    EventSink,
    FallbackNotice,
    ModelCallFinished,
    ModelCallStarted,
)
from local_brain.health import refused_endpoints
from local_brain.usage import UsageLedger
from local_brain.window import (
    estimate_tokens,
    fit_messages,
    looks_truncated,
    message_text,
    num_ctx_for,
)

OLLAMA_PREFIXES = ("ollama_chat/", "ollama/")
TAGS_TIMEOUT_S = 5.0

# Preferred families for code exploration, best first. A model not listed ranks after all
# listed ones; within a family the larger parameter count wins.
RECOMMENDED_FAMILIES = (
    "qwen3-coder",
    "qwen2.5-coder",
    "devstral",
    "deepseek-coder-v2",
    "qwen3",
    "gpt-oss",
    "qwen2.5",
    "codestral",
    "deepseek-r1",
    "llama3.3",
    "llama3.1",
    "mistral-small",
    "gemma3",
    "phi4",
    "llama3.2",
    "mistral",
    "codellama",
)
_NOT_CHAT_MODELS = re.compile(r"embed|bge|minilm|nomic|rerank|whisper|llava|clip", re.IGNORECASE)


@dataclass(frozen=True)
class InstalledModel:
    name: str
    size: int
    family: str
    parameter_size: str


# -- names --------------------------------------------------------------------------------


def deployments_for(name: str, settings: Settings, providers: set[str]) -> list[dict[str, Any]]:
    """The model_list entries a model name needs on top of the config's own (rules 1-3)."""
    if name in settings.group_names:
        return []
    prefix, slash, _ = name.partition("/")
    if slash and prefix in providers:
        params: dict[str, Any] = {"model": name}
        if settings.api_base:
            params["api_base"] = settings.api_base
        if prefix in ("ollama_chat", "ollama") and "api_base" not in params:
            params["api_base"] = settings.ollama_api_base
        if prefix == "openai" and settings.api_base and not os.environ.get("OPENAI_API_KEY"):
            params["api_key"] = "local-server"  # local OpenAI-compatible servers need none
        return [{"model_name": name, "litellm_params": params}]
    if not name.strip() or any(char.isspace() for char in name):
        raise ConfigError(f"invalid model name: {name!r}")
    api_base = settings.api_base or settings.ollama_api_base
    return [
        {
            "model_name": name,
            "litellm_params": {"model": f"ollama_chat/{name}", "api_base": api_base},
        }
    ]


def with_ollama_defaults(deployment: dict[str, Any], num_ctx: int) -> dict[str, Any]:
    """Ollama truncates prompts silently at its small default window: always send num_ctx."""
    params = dict(deployment["litellm_params"])
    if params["model"].startswith(OLLAMA_PREFIXES):
        params.setdefault("num_ctx", num_ctx)
        if params["model"].startswith("ollama/"):
            params["model"] = "ollama_chat/" + params["model"].removeprefix("ollama/")
    return {**deployment, "litellm_params": params}


# -- choosing a model when none is named --------------------------------------------------


def list_installed_models(api_base: str, timeout: float = TAGS_TIMEOUT_S) -> list[InstalledModel]:
    """Models an Ollama server has, from ``/api/tags``."""
    url = api_base.rstrip("/") + "/api/tags"
    try:
        with _no_proxy_opener().open(url, timeout=timeout) as response:
            payload = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise BackendUnavailable(
            f"cannot reach Ollama at {api_base} ({_reason(error)})",
            hint="start it with `ollama serve`, set OLLAMA_API_BASE, or name a model with -m",
        ) from None
    models = []
    for entry in payload.get("models") or []:
        details = entry.get("details") or {}
        models.append(
            InstalledModel(
                name=str(entry.get("name") or entry.get("model") or ""),
                size=int(entry.get("size") or 0),
                family=str(details.get("family") or ""),
                parameter_size=str(details.get("parameter_size") or ""),
            )
        )
    return [model for model in models if model.name]


def choose_best_model(installed: list[InstalledModel]) -> str:
    """Pick the installed model best suited to code exploration."""
    candidates = [model for model in installed if not _NOT_CHAT_MODELS.search(model.name)]
    if not candidates:
        raise BackendUnavailable(
            "Ollama has no chat models installed",
            hint="install one, e.g. `ollama pull qwen2.5-coder:7b`, or name a model with -m",
        )

    def rank(model: InstalledModel) -> tuple[int, float, int]:
        base = model.name.split(":")[0].split("/")[-1].lower()
        family_rank = next(
            (index for index, family in enumerate(RECOMMENDED_FAMILIES) if base == family),
            len(RECOMMENDED_FAMILIES),
        )
        return (family_rank, -_billions(model), -model.size)

    return min(candidates, key=rank).name


def _billions(model: InstalledModel) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*[bB]", model.parameter_size or model.name)
    return float(match.group(1)) if match else 0.0


def _no_proxy_opener() -> urllib.request.OpenerDirector:
    """Talk to the local server directly, whatever proxy variables say."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return str(reason).strip() or type(error).__name__


# -- the Router and the routed model ------------------------------------------------------

COOLDOWN_S = 24 * 3600
DEFAULT_NUM_CTX = 8192  # a failed deployment sits out the rest of the run
KNOWN_CALLBACK_PACKAGES = {
    "langfuse": "langfuse",
    "otel": "opentelemetry",
    "opentelemetry": "opentelemetry",
    "arize": "opentelemetry",
    "mlflow": "mlflow",
}


class Routing:
    """One litellm Router for the run, shared by every agent, with the run's usage ledger.

    Endpoints that refuse connections are found by a fast probe before the first request
    and cooled down for the whole run, as is any deployment that fails during it; the
    Router's fallbacks then carry on, and each switch is reported once.
    """

    def __init__(
        self,
        settings: Settings,
        names: list[str],
        on_event: EventSink | None = None,
    ) -> None:
        from local_brain.safe_import import import_model_stack

        litellm, _ = import_model_stack()
        self._litellm = litellm
        self.ledger = UsageLedger()
        self.fallbacks: list[FallbackNotice] = []
        self.on_event = on_event
        self._failures: dict[str, str] = {}  # deployment id -> why it failed
        self._announced: set[tuple[str, str]] = set()
        self._truncating: set[str] = set()
        self._lock = threading.Lock()

        providers = set(litellm.provider_list) | {"ollama_chat", "hosted_vllm", "lm_studio"}
        model_list = [dict(entry) for entry in settings.model_list]
        for name in dict.fromkeys(names):
            model_list += deployments_for(name, settings, providers)
        model_list = [with_ollama_defaults(entry, settings.num_ctx) for entry in model_list]
        _register_local_models(litellm, model_list)
        self._apply_litellm_settings(settings.litellm_settings)
        router_settings = {"cooldown_time": COOLDOWN_S, **settings.router_settings}
        self.router = litellm.Router(model_list=model_list, **router_settings)
        self._failure_logger = _failure_logger(litellm, self)
        litellm.callbacks = [*litellm.callbacks, self._failure_logger]
        self._cool_down_refused_endpoints()
        for name in dict.fromkeys(names):
            self._require_live_route(name)

    # -- set-up ---------------------------------------------------------------------------

    def _apply_litellm_settings(self, litellm_settings: dict[str, Any]) -> None:
        """Apply ``litellm_settings`` as the proxy does: module attributes, and callbacks
        (Langfuse, OpenTelemetry, ...) when their packages are installed."""
        for key, value in litellm_settings.items():
            if key in ("callbacks", "success_callback", "failure_callback"):
                wanted = value if isinstance(value, list) else [value]
                usable = [name for name in wanted if _callback_available(name)]
                setattr(self._litellm, key, [*getattr(self._litellm, key, []), *usable])
            else:
                setattr(self._litellm, key, value)

    def _cool_down_refused_endpoints(self) -> None:
        deployments = self.router.model_list
        api_bases = {d["litellm_params"].get("api_base") for d in deployments} - {None}
        refused = refused_endpoints(api_bases)
        for deployment in deployments:
            api_base = deployment["litellm_params"].get("api_base")
            if api_base in refused:
                self._cool_down(deployment["model_info"]["id"], f"cannot connect to {api_base}")

    def _cool_down(self, deployment_id: str, reason: str) -> None:
        with self._lock:
            self._failures.setdefault(deployment_id, reason)
        self.router.cooldown_cache.add_deployment_to_cooldown(
            model_id=deployment_id,
            original_exception=RuntimeError(reason),
            exception_status=503,
            cooldown_time=COOLDOWN_S,
        )

    def _require_live_route(self, name: str) -> None:
        """Stop before the first request when every route for ``name`` is known dead."""
        chain = [name, *self._fallbacks_of(name)]
        deployments = [d for d in self.router.model_list if d["model_name"] in chain]
        if deployments and all(d["model_info"]["id"] in self._failures for d in deployments):
            first = deployments[0]
            raise BackendUnavailable(
                f"{self._failures[first['model_info']['id']]} (model {name})",
                hint=_hint("APIConnectionError", first["litellm_params"]["model"]),
            )

    def window_cap(self, name: str) -> int | None:
        """The largest num_ctx to send for ``name``: its deployments' configured window,
        when every route for it (fallbacks included) is an Ollama model; else None."""
        chain = [name, *self._fallbacks_of(name)]
        params = [d["litellm_params"] for d in self.router.model_list if d["model_name"] in chain]
        if not params or not all(p["model"].startswith("ollama_chat/") for p in params):
            return None
        return min(int(p.get("num_ctx") or DEFAULT_NUM_CTX) for p in params)

    def _fallbacks_of(self, name: str) -> list[str]:
        chain: list[str] = []
        for rule in self.router.fallbacks or []:
            if isinstance(rule, dict) and name in rule:
                chain += [str(group) for group in rule[name]]
        return chain

    # -- during the run -------------------------------------------------------------------

    def record_failure(self, deployment_id: str | None, error: BaseException | None) -> None:
        """Called by litellm for every failed deployment call."""
        if not deployment_id:
            return
        reason = one_line(error) if error is not None else "failed"
        kinds = {cls.__name__ for cls in type(error).__mro__} if error is not None else set()
        if "APIConnectionError" in kinds:  # litellm itself never cools these down
            self._cool_down(deployment_id, reason)
        else:
            with self._lock:
                self._failures.setdefault(deployment_id, reason)

    def record_answer(
        self, requested: str, agent: str, message: Any, duration_s: float, sent_chars: int
    ) -> None:
        """Account for one answered request; announce a fallback or a server that cut the
        prompt, each the first time."""
        hidden = getattr(message.raw, "_hidden_params", None) or {}
        deployment = self.router.get_deployment(model_id=hidden.get("model_id") or "")
        served = deployment.model_name if deployment is not None else requested
        tokens = message.token_usage
        prompt_tokens = tokens.input_tokens if tokens else 0
        completion_tokens = tokens.output_tokens if tokens else 0
        cost = float(hidden.get("response_cost") or 0.0)
        self.ledger.record(served, agent, prompt_tokens, completion_tokens, cost)
        if served != requested:
            self._announce(requested, served)
        if looks_truncated(prompt_tokens, sent_chars) and served not in self._truncating:
            self._truncating.add(served)
            self.emit(ContextTruncated(served, sent_chars, prompt_tokens))
        self.emit(
            ModelCallFinished(
                agent, requested, served, prompt_tokens, completion_tokens, cost, duration_s
            )
        )

    def emit(self, event: Any) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _announce(self, requested: str, served: str) -> None:
        with self._lock:
            if (requested, served) in self._announced:
                return
            self._announced.add((requested, served))
            reasons = [
                self._failures[d["model_info"]["id"]]
                for d in self.router.model_list
                if d["model_name"] == requested and d["model_info"]["id"] in self._failures
            ]
        notice = FallbackNotice(requested, reasons[0] if reasons else "failed", served)
        self.fallbacks.append(notice)
        if self.on_event is not None:
            self.on_event(notice)

    def model(self, name: str, agent: str, reply_filter: Callable[[str], str] | None = None) -> Any:
        """A smolagents model for one agent, sending every request through the Router;
        ``reply_filter`` rewrites each reply's text before the agent reads it."""
        return _routed_model_class()(
            model_id=name,
            model_list=self.router.model_list,
            client=self.router,
            retry=False,  # the Router retries; smolagents' own 429 retry waits a minute
            flatten_messages_as_text=True,
            routing=self,
            agent_name=agent,
            reply_filter=reply_filter,
        )

    def close(self) -> None:
        """Detach this run's callback from litellm's module-level list."""
        self._litellm.callbacks = [
            callback for callback in self._litellm.callbacks if callback is not self._failure_logger
        ]


def _callback_available(name: Any) -> bool:
    package = KNOWN_CALLBACK_PACKAGES.get(str(name))
    if package is None or importlib.util.find_spec(package) is not None:
        return True
    sys.stderr.write(
        f"local-brain: litellm callback {name!r} skipped: install the {package!r} package\n"
    )
    return False


def _failure_logger(litellm: Any, routing: Routing) -> Any:
    from litellm.integrations.custom_logger import CustomLogger

    class RouteFailureLogger(CustomLogger):
        # litellm calls hooks by these exact parameter names.
        def log_failure_event(self, kwargs, response_obj, start_time, end_time):
            params = kwargs.get("litellm_params") or {}
            deployment_id = (params.get("model_info") or {}).get("id")
            routing.record_failure(deployment_id, kwargs.get("exception"))

        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
            self.log_failure_event(kwargs, response_obj, start_time, end_time)

    return RouteFailureLogger()


def _routed_model_class() -> type:
    from local_brain.safe_import import import_model_stack

    _, smolagents = import_model_stack()

    class RoutedModel(smolagents.LiteLLMRouterModel):
        """LiteLLMRouterModel without its api_base=None/api_key=None override (pitfall 1),
        accounting each answer in the run's ledger."""

        def __init__(
            self,
            *args: Any,
            routing: Routing,
            agent_name: str,
            reply_filter: Callable[[str], str] | None,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self.routing = routing
            self.agent_name = agent_name
            self.reply_filter = reply_filter

        def _prepare_completion_kwargs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            completion_kwargs = super()._prepare_completion_kwargs(*args, **kwargs)
            for key in ("api_base", "api_key"):
                if completion_kwargs.get(key) is None:
                    completion_kwargs.pop(key, None)
            return completion_kwargs

        def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
            cap = self.routing.window_cap(self.model_id)
            if cap is not None:  # Ollama: size the window for this very request
                messages, _ = fit_messages(messages, cap)
                kwargs["num_ctx"] = num_ctx_for(estimate_tokens(messages), cap)
            chars = sum(len(message_text(m)) for m in messages)
            self.routing.emit(
                ModelCallStarted(self.agent_name, self.model_id, len(messages), chars)
            )
            started = time.monotonic()
            try:
                message = super().generate(messages, *args, **kwargs)
            except Exception as error:
                self.routing.emit(
                    ModelCallFinished(
                        self.agent_name, self.model_id, "", 0, 0, 0.0,
                        time.monotonic() - started, error=one_line(error),
                    )
                )  # fmt: skip
                raise
            self.routing.record_answer(
                self.model_id, self.agent_name, message, time.monotonic() - started, chars
            )
            if self.reply_filter is not None and isinstance(message.content, str):
                message.content = self.reply_filter(message.content)
            return message

    return RoutedModel


def _register_local_models(litellm: Any, model_list: list[dict[str, Any]]) -> None:
    """Tell litellm what local models cost (nothing) and their window, so it does not ask
    the server (``/api/show`` to OLLAMA_API_BASE, design.md pitfall 12)."""
    entries = {}
    for entry in model_list:
        params = entry["litellm_params"]
        if params["model"].startswith(OLLAMA_PREFIXES):
            window = int(params.get("num_ctx") or 8192)
            entries[params["model"]] = {
                "litellm_provider": "ollama_chat",
                "mode": "chat",
                "max_tokens": window,
                "max_input_tokens": window,
                "max_output_tokens": window,
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
            }
    # Written straight into the cost map: litellm.register_model() itself asks /api/show.
    for key, info in entries.items():
        litellm.model_cost[key] = {**litellm.model_cost.get(key, {}), **info}


# -- errors -------------------------------------------------------------------------------

_BACKEND_ERRORS = {
    "APIConnectionError": "cannot reach the model server",
    "Timeout": "the model server did not answer in time",
    "NotFoundError": "model not found",
    "AuthenticationError": "the model provider refused the credentials",
    "PermissionDeniedError": "the model provider refused the credentials",
    "InternalServerError": "the model server failed",
    "ServiceUnavailableError": "the model server is unavailable",
    "BadGatewayError": "the model server is unavailable",
    "RateLimitError": "the model provider is rate limiting",
    "RouterRateLimitError": "no model deployment is available (all failed or cooling down)",
}


def backend_error_from(error: BaseException, model: str) -> BackendUnavailable | None:
    """Translate a litellm failure anywhere in an exception chain into exit status 3."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kinds = {cls.__name__ for cls in type(current).__mro__}
        detail = one_line(current)
        if "Missing credentials" in detail or "api_key client option must be set" in detail:
            return BackendUnavailable(
                f"no API key for model {model}: {detail}",
                hint="set the provider's key variable (LITELLM_PROXY_API_KEY for a LiteLLM "
                "Proxy, OPENAI_API_KEY, GROQ_API_KEY, ...)",
            )
        for kind, summary in _BACKEND_ERRORS.items():
            if kind in kinds:
                return BackendUnavailable(
                    f"{summary} for model {model}: {detail}", _hint(kind, model)
                )
        if "APIError" in kinds and "litellm" in type(current).__module__:
            return BackendUnavailable(f"the model server failed for model {model}: {detail}")
        current = current.__cause__ or current.__context__
    return None


def _hint(kind: str, model: str) -> str:
    bare = model.split("/", 1)[1] if model.startswith(OLLAMA_PREFIXES) else model
    return {
        "APIConnectionError": "start it with `ollama serve`, or check OLLAMA_API_BASE / --api-base",
        "Timeout": "the model may still be loading: retry, or raise router_settings.timeout",
        "NotFoundError": f"install it with `ollama pull {bare}`, or list models with `ollama list`",
        "AuthenticationError": "check the provider's API key variable",
        "PermissionDeniedError": "check the provider's API key variable",
    }.get(kind, "check that the model server is running and healthy")
