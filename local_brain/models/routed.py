"""The model stack's classes, extended once: imported only after ``safe_import`` has loaded
litellm and smolagents with the environment protected (design.md pitfalls 2 and 11)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from local_brain.errors import one_line
from local_brain.events import ModelCallFinished, ModelCallStarted
from local_brain.safe_import import import_model_stack
from local_brain.window import estimate_tokens, fit_messages, message_text, num_ctx_for

if TYPE_CHECKING:
    from local_brain.models.routing import Routing

_, smolagents = import_model_stack()

from litellm.integrations.custom_logger import CustomLogger  # noqa: E402  (after safe_import)


class RouteFailureLogger(CustomLogger):
    """Tells the run's Routing about every failed deployment call. Handed to litellm with
    each request (``failure_callback=[...]``), never put in litellm's global lists."""

    def __init__(self, routing: Routing) -> None:
        super().__init__()
        self.routing = routing

    # litellm calls hooks by these exact parameter names (design.md pitfall 13).
    def log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        params = kwargs.get("litellm_params") or {}
        deployment_id = (params.get("model_info") or {}).get("id")
        self.routing.record_failure(deployment_id, kwargs.get("exception"))

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.log_failure_event(kwargs, response_obj, start_time, end_time)


class RoutedModel(smolagents.LiteLLMRouterModel):
    """LiteLLMRouterModel without its api_base=None/api_key=None override (pitfall 1),
    sizing Ollama's window per request and accounting each answer in the run's ledger."""

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
        completion_kwargs["failure_callback"] = [self.routing.failure_logger]
        return completion_kwargs

    def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        cap = self.routing.window_cap(self.model_id)
        if cap is not None:  # Ollama: size the window for this very request
            messages, _ = fit_messages(messages, cap)
            kwargs["num_ctx"] = num_ctx_for(estimate_tokens(messages), cap)
        chars = sum(len(message_text(m)) for m in messages)
        self.routing.emit(ModelCallStarted(self.agent_name, self.model_id, len(messages), chars))
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
