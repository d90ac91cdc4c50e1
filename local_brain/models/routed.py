"""The model stack's classes, extended once: imported only after ``safe_import`` has loaded
litellm and smolagents with the environment protected (design.md pitfalls 2 and 11)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from local_brain.errors import BackendUnavailable, ConfigError, RunawayOutput, one_line
from local_brain.events import ModelCallFinished, ModelCallStarted, ReplyCut
from local_brain.figures import ServerFigures, parse_figures
from local_brain.models.names import is_ollama
from local_brain.models.streaming import (
    ModelStalled,
    NotAChatStream,
    StreamLimits,
    stream_reply,
)
from local_brain.parsing import cut_reply_note, repeated_reply_note, reply_cut
from local_brain.safe_import import import_model_stack
from local_brain.window import (
    Compactor,
    WindowTooSmall,
    estimate_tokens,
    message_text,
    text_tokens,
)

if TYPE_CHECKING:
    from local_brain.models.routing import Routing

_, smolagents = import_model_stack()

MAX_CUTS_IN_A_ROW = 2  # a model cut at its cap this often in a row is not going to stop
MAX_KEPT_RESPONSES = 64

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


class RawResponseTap(CustomLogger):
    """Keeps each answer's raw JSON (litellm reads only a few of its fields) until the
    routed model that asked picks it up by litellm's call id. litellm calls this hook in the
    requesting thread, before the completion returns. It sits in litellm's global
    ``input_callback`` list while some Routing uses it (see ``litellm_globals.SharedCallbacks``)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._responses: dict[str, str] = {}

    def log_post_api_call(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        call_id, raw = kwargs.get("litellm_call_id"), kwargs.get("original_response")
        if not isinstance(call_id, str) or not isinstance(raw, str):
            return
        with self._lock:
            self._responses[call_id] = raw
            while len(self._responses) > MAX_KEPT_RESPONSES:  # answers nobody picked up
                self._responses.pop(next(iter(self._responses)))

    def take(self, call_id: str | None) -> str | None:
        with self._lock:
            return self._responses.pop(call_id, None) if call_id else None


RAW_RESPONSES = RawResponseTap()


class RoutedModel(smolagents.LiteLLMRouterModel):
    """LiteLLMRouterModel without its api_base=None/api_key=None override (pitfall 1) that
    keeps its conversation inside the window without rewriting its prefix, notices replies
    cut at the output cap, and accounts each answer (with the server's own figures)."""

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
        self.compactor: Compactor | None = None
        self.cuts_in_a_row = 0

    def _prepare_completion_kwargs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        completion_kwargs = super()._prepare_completion_kwargs(*args, **kwargs)
        for key in ("api_base", "api_key"):
            if completion_kwargs.get(key) is None:
                completion_kwargs.pop(key, None)
        completion_kwargs["failure_callback"] = [self.routing.failure_logger]
        return completion_kwargs

    def generate(self, messages: list[Any], *args: Any, **kwargs: Any) -> Any:
        reply_cut.set(None)
        window, cap = self.routing.window(self.model_id)
        if self.compactor is None or self.compactor.window != window:
            self.compactor = Compactor(window, cap)
        try:
            messages = self.compactor.fit(messages)
        except WindowTooSmall as error:
            raise ConfigError(
                f"model {self.model_id}'s context window of {window} tokens cannot hold the "
                f"instructions, the question and the latest result ({error})",
                hint="raise num_ctx (local_brain.num_ctx or the deployment's own), or use a "
                "model with a longer context",
            ) from None
        chars = sum(len(message_text(m)) for m in messages)
        self.routing.emit(ModelCallStarted(self.agent_name, self.model_id, len(messages), chars))
        started = time.monotonic()
        limits = self.routing.streams(self.model_id)
        try:
            if limits is None:
                message = super().generate(messages, *args, **kwargs)
                figures, repeating = self._figures(message), False
            else:
                message, figures, repeating = self._streamed(messages, limits, *args, **kwargs)
        except Exception as error:
            self.routing.emit(
                ModelCallFinished(
                    self.agent_name, self.model_id, "", 0, 0, 0.0,
                    time.monotonic() - started, error=one_line(error),
                )
            )  # fmt: skip
            raise
        cut = repeating or _finish_reason(message, figures) == "length"
        self.routing.record_answer(
            self.model_id, self.agent_name, message, time.monotonic() - started, chars,
            figures, cut,
        )  # fmt: skip
        if cut:
            self._reply_was_cut(cap, repeating)
        else:
            self.cuts_in_a_row = 0
        if self.reply_filter is not None and isinstance(message.content, str):
            message.content = self.reply_filter(message.content)
        return message

    def _figures(self, message: Any) -> ServerFigures | None:
        hidden = getattr(message.raw, "_hidden_params", None) or {}
        raw = RAW_RESPONSES.take(hidden.get("litellm_call_id"))
        served = str(hidden.get("litellm_model_name") or "")
        return parse_figures(raw, ollama=is_ollama(served))

    def _streamed(
        self, messages: list[Any], limits: StreamLimits, stop_sequences: Any = None, **kwargs: Any
    ) -> tuple[Any, ServerFigures | None, bool]:
        """One streamed request under watch (models/streaming.py): the reply, the server's
        figures from its last line, and whether it was stopped for repeating itself."""
        completion_kwargs = self._prepare_completion_kwargs(
            messages=messages, stop_sequences=stop_sequences, model=self.model_id,
            api_base=self.api_base, api_key=self.api_key, convert_images_to_image_urls=True,
            custom_role_conversions=self.custom_role_conversions, **kwargs,
        )  # fmt: skip
        try:
            reply = stream_reply(
                lambda http: self.client.completion(
                    **completion_kwargs, stream=True, stream_options={"include_usage": True},
                    client=http,
                ),
                limits,
            )  # fmt: skip
        except ModelStalled as stalled:
            raise _stall_error(self.model_id, stalled) from None
        except NotAChatStream as error:
            raise BackendUnavailable(
                f"the model server failed for model {self.model_id}: {error}",
                hint="check that --api-base (or OLLAMA_API_BASE) points at a model server",
            ) from None
        figures = parse_figures(reply.last_line, ollama=reply.ollama_format)
        prompt = reply.prompt_tokens or (figures.prompt_read or 0 if figures else 0)
        completion = reply.completion_tokens or (figures.completion_tokens or 0 if figures else 0)
        if reply.repeating:  # stopped before the server's count: the tokens were still spent
            prompt = prompt or estimate_tokens(messages)
            completion = completion or text_tokens(reply.text)
        message = smolagents.ChatMessage(
            role=smolagents.MessageRole.ASSISTANT,
            content=reply.text,
            raw=SimpleNamespace(
                _hidden_params=reply.hidden_params,
                choices=[SimpleNamespace(finish_reason=reply.finish_reason)],
            ),
            token_usage=smolagents.TokenUsage(input_tokens=prompt, output_tokens=completion),
        )
        return message, figures, reply.repeating

    def _reply_was_cut(self, cap: int, repeating: bool = False) -> None:
        """The reply hit the output cap (or was stopped repeating itself): this step fails
        with a note to the model (its code may be cut mid-line and must not run), and a
        model that keeps doing it ends the run."""
        self.cuts_in_a_row += 1
        self.routing.announce_cut(ReplyCut(self.agent_name, self.model_id, cap, repeating))
        if self.cuts_in_a_row >= MAX_CUTS_IN_A_ROW:
            how = "repeated itself" if repeating else f"wrote until its {cap}-token output cap"
            raise RunawayOutput(
                f"model {self.model_id} {how} {self.cuts_in_a_row} times in a row",
                hint="use an instruction-tuned (chat) model, or raise "
                "local_brain.max_output_tokens if its replies are long but sound",
            )
        reply_cut.set(repeated_reply_note() if repeating else cut_reply_note(cap))


def _stall_error(model: str, stalled: ModelStalled) -> BackendUnavailable:
    if stalled.first:
        return BackendUnavailable(
            f"model {model} sent no first token within {stalled.seconds:g} s (still loading, "
            "or reading a long prompt)",
            hint="raise local_brain.first_token_timeout, or use a smaller model or num_ctx",
        )
    return BackendUnavailable(
        f"model {model} stopped sending tokens for {stalled.seconds:g} s (stalled)",
        hint="check the model server (load, memory); raise local_brain.stall_timeout",
    )


def _finish_reason(message: Any, figures: ServerFigures | None) -> str | None:
    if figures is not None and figures.finish_reason:
        return figures.finish_reason
    choices = getattr(message.raw, "choices", None) or []
    return getattr(choices[0], "finish_reason", None) if choices else None
