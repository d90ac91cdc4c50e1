"""One litellm Router per run, shared by every agent, and what it does when a route fails.

The only module that builds litellm objects. litellm keeps callbacks and Routers in module
globals (design.md pitfall 23), so :class:`Routing` is a context manager that takes back
everything it registered when the run ends: a long-lived process (``local-brain mcp``) that
routes one run after another does not grow.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from local_brain.config import Settings
from local_brain.errors import BackendUnavailable
from local_brain.events import (
    ContextTruncated,
    EventSink,
    FallbackNotice,
    ModelCallFinished,
    ReplyCut,
)
from local_brain.figures import ServerFigures
from local_brain.health import refused_endpoints
from local_brain.models.context import (
    DEFAULT_WINDOW,
    MIN_OUTPUT_TOKENS,
    resolve_windows,
)
from local_brain.models.failures import distill, is_connection_error
from local_brain.models.hints import RouteInfo, unreachable_hint
from local_brain.models.litellm_globals import shared_callbacks, shared_settings
from local_brain.models.llamacpp import Engines, reachable
from local_brain.models.names import deployments_for, is_ollama, with_ollama_defaults
from local_brain.models.streaming import StreamLimits
from local_brain.usage import UsageLedger
from local_brain.window import looks_truncated

COOLDOWN_S = 24 * 3600  # a failed deployment sits out the rest of the run
STREAMED_PREFIXES = ("ollama_chat/", "hosted_vllm/")  # see models/streaming.py
KNOWN_CALLBACK_PACKAGES = {
    "langfuse": "langfuse",
    "otel": "opentelemetry",
    "opentelemetry": "opentelemetry",
    "arize": "opentelemetry",
    "mlflow": "mlflow",
}
CALLBACK_SETTINGS = ("callbacks", "success_callback", "failure_callback")


class Routing:
    """One litellm Router for the run, shared by every agent, with the run's usage ledger.

    Endpoints that refuse connections are found by a fast probe before the first request
    and cooled down for the whole run, as is any deployment that fails during it; the
    Router's fallbacks then carry on, and each switch is reported once.

    Use it as ``with Routing(settings, names) as routing:``; leaving the block (or
    :meth:`close`) detaches the Router and the configured callbacks from litellm.
    """

    def __init__(
        self,
        settings: Settings,
        names: list[str],
        on_event: EventSink | None = None,
        engines: Engines | None = None,
    ) -> None:
        from local_brain.safe_import import import_model_stack

        litellm, _ = import_model_stack()
        from local_brain.models.routed import RAW_RESPONSES, RouteFailureLogger

        self._litellm = litellm
        self.ledger = UsageLedger()
        self.fallbacks: list[FallbackNotice] = []
        self.on_event = on_event
        self._failures: dict[str, str] = {}  # deployment id -> why it failed
        self._announced: set[tuple[str, str]] = set()
        self._truncating: set[str] = set()
        self._cut: set[str] = set()
        self._lock = threading.Lock()
        self._callbacks: list[tuple[str, Any]] = []  # configured callbacks this run attached
        self._settings: list[str] = []  # litellm module settings this run holds
        self.router: Any = None
        self.failure_logger = RouteFailureLogger(self)  # handed to litellm with each request
        self.stream_limits = StreamLimits(settings.first_token_timeout, settings.stall_timeout)
        # llamacpp/ models run in-process: until close(), or in the caller's pool
        self._owns_engines = engines is None
        self.engines = Engines() if engines is None else engines

        model_list = [dict(entry) for entry in settings.model_list]
        for name in dict.fromkeys(names):
            model_list += deployments_for(name, settings)
        model_list = [with_ollama_defaults(entry, settings.num_ctx) for entry in model_list]
        try:
            wanted = reachable(names, settings.router_settings)
            model_list = self.engines.start(model_list, settings.num_ctx, wanted)
        except BaseException:
            self._close_engines()
            raise
        api_bases = {entry["litellm_params"].get("api_base") for entry in model_list} - {None}
        refused = refused_endpoints(api_bases)
        model_list = resolve_windows(
            model_list, settings.num_ctx, settings.max_output_tokens, refused, _table(litellm)
        )
        _register_local_models(litellm, model_list)
        router_settings = {"cooldown_time": COOLDOWN_S, **settings.router_settings}
        try:
            shared_callbacks.acquire(litellm, [("input_callback", RAW_RESPONSES)])
            self._callbacks.append(("input_callback", RAW_RESPONSES))
            self._apply_litellm_settings(settings.litellm_settings)
            self.router = litellm.Router(model_list=model_list, **router_settings)
            self._cool_down_refused_endpoints(refused)
            for name in dict.fromkeys(names):
                self._require_live_route(name)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Routing:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Take back what this run registered with litellm: the Router's own callbacks and
        its entry in litellm's list of live Routers, the configured callbacks, and the
        module settings ``litellm_settings`` changed. Safe to call more than once."""
        if self.router is not None:
            self.router.discard()
        callbacks, self._callbacks = self._callbacks, []
        shared_callbacks.release(self._litellm, callbacks)
        settings, self._settings = self._settings, []
        for key in settings:
            shared_settings.release(self._litellm, key)
        self._close_engines()

    def _close_engines(self) -> None:
        if self._owns_engines:  # a pool's engines outlive this run; its owner closes them
            self.engines.close()

    # -- set-up ---------------------------------------------------------------------------

    def _apply_litellm_settings(self, litellm_settings: dict[str, Any]) -> None:
        """Apply ``litellm_settings`` as the proxy does: module attributes, and callbacks
        (Langfuse, OpenTelemetry, ...) when their packages are installed."""
        for key, value in litellm_settings.items():
            if key in CALLBACK_SETTINGS:
                wanted = value if isinstance(value, list) else [value]
                usable = [(key, name) for name in wanted if _callback_available(name)]
                shared_callbacks.acquire(self._litellm, usable)
                self._callbacks += usable
            else:
                shared_settings.acquire(self._litellm, key, value)
                self._settings.append(key)

    def _cool_down_refused_endpoints(self, refused: set[str]) -> None:
        for deployment in self.router.model_list:
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
            params = first["litellm_params"]
            raise BackendUnavailable(
                f"{self._failures[first['model_info']['id']]} (model {name})",
                hint=unreachable_hint(RouteInfo(params["model"], params.get("api_base"))),
            )

    def window(self, name: str) -> tuple[int, int]:
        """(context tokens, reply cap) that hold for every route of ``name``, fallbacks
        included: the smallest window and the largest cap among them."""
        chain = [name, *self._fallbacks_of(name)]
        deployments = [d for d in self.router.model_list if d["model_name"] in chain]
        if not deployments:
            return DEFAULT_WINDOW, MIN_OUTPUT_TOKENS
        tokens = min(int(d["model_info"]["max_input_tokens"]) for d in deployments)
        cap = max(int(d["litellm_params"]["max_tokens"]) for d in deployments)
        return tokens, cap

    def streams(self, name: str) -> StreamLimits | None:
        """The limits to stream ``name`` under, when every route for it (fallbacks
        included) goes through litellm's own HTTP handler (Ollama, ``hosted_vllm/``);
        None: send it as one request."""
        chain = [name, *self._fallbacks_of(name)]
        models = [d["litellm_params"]["model"] for d in self.router.model_list
                  if d["model_name"] in chain]  # fmt: skip
        if not models or not all(model.startswith(STREAMED_PREFIXES) for model in models):
            return None
        return self.stream_limits

    def _fallbacks_of(self, name: str) -> list[str]:
        chain: list[str] = []
        for rule in self.router.fallbacks or []:
            if isinstance(rule, dict) and name in rule:
                chain += [str(group) for group in rule[name]]
        return chain

    # -- during the run -------------------------------------------------------------------

    def record_failure(self, deployment_id: str | None, error: BaseException | None) -> None:
        """Called by litellm for every failed call this run's models make."""
        if not deployment_id:
            return
        reason = distill(error) if error is not None else "failed"  # no raw bodies
        if error is not None and is_connection_error(error):  # litellm never cools these
            self._cool_down(deployment_id, reason)
        else:
            with self._lock:
                self._failures.setdefault(deployment_id, reason)

    def record_answer(
        self,
        requested: str,
        agent: str,
        message: Any,
        duration_s: float,
        sent_chars: int,
        figures: ServerFigures | None = None,
        cut: bool = False,
    ) -> None:
        """Account for one answered request; announce a fallback or a server that cut the
        prompt, each the first time. Tokens the server took from its prompt cache count as
        read: only a server that tells what it read (or reused) is judged."""
        hidden = getattr(message.raw, "_hidden_params", None) or {}
        deployment = self.router.get_deployment(model_id=hidden.get("model_id") or "")
        served = deployment.model_name if deployment is not None else requested
        tokens = message.token_usage
        prompt_tokens = tokens.input_tokens if tokens else 0
        completion_tokens = tokens.output_tokens if tokens else 0
        cost = float(hidden.get("response_cost") or 0.0)
        self.ledger.record(served, agent, prompt_tokens, completion_tokens, cost, figures, cut)
        if served != requested:
            self._announce(requested, served)
        read = figures.prompt_read if figures is not None else prompt_tokens
        truncated = read is not None and looks_truncated(read, sent_chars)
        if truncated and served not in self._truncating:
            self._truncating.add(served)
            self.emit(ContextTruncated(served, sent_chars, read))
        rate = None
        if figures is not None and figures.generation_s and figures.completion_tokens:
            rate = figures.completion_tokens / figures.generation_s
        elif duration_s > 0 and completion_tokens:
            rate = completion_tokens / duration_s  # the whole request: a lower bound
        self.emit(
            ModelCallFinished(
                agent, requested, served, prompt_tokens, completion_tokens, cost, duration_s,
                tokens_per_s=rate,
                prompt_tokens_evaluated=figures.prompt_evaluated if figures else None,
                prompt_tokens_reused=figures.prompt_reused if figures else None,
                load_s=figures.load_s if figures and figures.loaded else 0.0,
            )
        )  # fmt: skip

    def announce_cut(self, event: ReplyCut) -> None:
        """Tell the user once per model that its replies run into the output cap."""
        with self._lock:
            first = event.model not in self._cut
            self._cut.add(event.model)
        if first:
            self.emit(event)

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
        self.emit(notice)

    def model(self, name: str, agent: str, reply_filter: Callable[[str], str] | None = None) -> Any:
        """A smolagents model for one agent, sending every request through the Router;
        ``reply_filter`` rewrites each reply's text before the agent reads it."""
        from local_brain.models.routed import RoutedModel

        return RoutedModel(
            model_id=name,
            model_list=self.router.model_list,
            client=self.router,
            retry=False,  # the Router retries; smolagents' own 429 retry waits a minute
            flatten_messages_as_text=True,
            routing=self,
            agent_name=agent,
            reply_filter=reply_filter,
        )


def _callback_available(name: Any) -> bool:
    package = KNOWN_CALLBACK_PACKAGES.get(str(name))
    if package is None or importlib.util.find_spec(package) is not None:
        return True
    sys.stderr.write(
        f"local-brain: litellm callback {name!r} skipped: install the {package!r} package\n"
    )
    return False


def _table(litellm: ModuleType) -> Callable[[str], dict[str, Any] | None]:
    """litellm's knowledge of a cloud model's window, without asking any server."""

    def lookup(model: str) -> dict[str, Any] | None:
        if is_ollama(model):
            return None
        try:
            return dict(litellm.get_model_info(model))
        except Exception:  # litellm raises a bare Exception for a model it does not know
            return None

    return lookup


def _register_local_models(litellm: ModuleType, model_list: list[dict[str, Any]]) -> None:
    """Tell litellm what local models cost (nothing) and their window, so it does not ask
    the server (``/api/show`` to OLLAMA_API_BASE, design.md pitfall 12)."""
    entries = {}
    for entry in model_list:
        params = entry["litellm_params"]
        if is_ollama(params["model"]):
            window = int(params.get("num_ctx") or DEFAULT_WINDOW)
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
