"""What a model server says about one answer: tokens evaluated and reused, load and speed.

Read from the server's own JSON (litellm keeps only prompt and completion counts):

- Ollama: ``prompt_eval_count``, ``prompt_eval_cached_count`` (Ollama 0.3x and later: then
  ``prompt_eval_count`` counts the cached tokens too; older servers count only what they
  evaluated and say nothing of the cache), ``load_duration``, ``prompt_eval_duration``,
  ``eval_count``, ``eval_duration`` (nanoseconds), ``done_reason``.
- llama.cpp's server: ``timings.prompt_n`` (evaluated), ``timings.cache_n`` (reused),
  ``prompt_ms``, ``predicted_n``, ``predicted_ms``.
- OpenAI-compatible servers: ``usage.prompt_tokens`` (all of them) and
  ``usage.prompt_tokens_details.cached_tokens``.

Pure: no litellm, no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LOAD_SECONDS = 0.5  # a load_duration this long means the model was (re)loaded for the request


@dataclass(frozen=True)
class ServerFigures:
    """One answer as the server counted it. ``prompt_read`` counts every prompt token the
    model read (evaluated or taken from its cache), ``prompt_reused`` those from the cache;
    each is None when the server does not tell. Times are None when not reported."""

    prompt_evaluated: int
    prompt_reused: int | None
    prompt_read: int | None
    completion_tokens: int | None
    load_s: float = 0.0
    prefill_s: float | None = None
    generation_s: float | None = None
    finish_reason: str | None = None

    @property
    def loaded(self) -> bool:
        return self.load_s >= LOAD_SECONDS


def parse_figures(raw: str | None, ollama: bool) -> ServerFigures | None:
    """The figures in a server's raw JSON answer; None when it is not JSON we know."""
    try:
        payload = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict):
        return None
    return _ollama(payload) if ollama else _openai(payload)


def _ollama(payload: dict[str, Any]) -> ServerFigures:
    count = _count(payload.get("prompt_eval_count"))
    cached = _count(payload.get("prompt_eval_cached_count"))
    load_s = _seconds(payload.get("load_duration"), 1e9) or 0.0
    if cached is not None:  # newer Ollama: the count includes the cached tokens
        read = max(count or 0, cached)
        evaluated, reused = read - cached, cached
    else:  # older Ollama counts what it evaluated; a fresh load had nothing cached
        evaluated = count or 0
        reused = 0 if load_s >= LOAD_SECONDS else None
        read = evaluated if reused == 0 else None
    return ServerFigures(
        prompt_evaluated=evaluated,
        prompt_reused=reused,
        prompt_read=read,
        completion_tokens=_count(payload.get("eval_count")),
        load_s=load_s,
        prefill_s=_seconds(payload.get("prompt_eval_duration"), 1e9),
        generation_s=_seconds(payload.get("eval_duration"), 1e9),
        finish_reason=_text(payload.get("done_reason")),
    )


def _openai(payload: dict[str, Any]) -> ServerFigures:
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    choices = payload.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    finish = _text(first.get("finish_reason")) if isinstance(first, dict) else None
    timings = payload.get("timings")
    if isinstance(timings, dict) and _count(timings.get("prompt_n")) is not None:
        evaluated = _count(timings.get("prompt_n")) or 0
        reused = _count(timings.get("cache_n")) or 0
        return ServerFigures(
            prompt_evaluated=evaluated,
            prompt_reused=reused,
            prompt_read=evaluated + reused,
            completion_tokens=_count(timings.get("predicted_n")),
            prefill_s=_seconds(timings.get("prompt_ms"), 1e3),
            generation_s=_seconds(timings.get("predicted_ms"), 1e3),
            finish_reason=finish,
        )
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    total = _count(usage.get("prompt_tokens")) or 0
    return ServerFigures(
        prompt_evaluated=max(total - (cached or 0), 0),
        prompt_reused=cached,
        prompt_read=total,
        completion_tokens=_count(usage.get("completion_tokens")),
        finish_reason=finish,
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _seconds(value: Any, per_second: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value) / per_second


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
