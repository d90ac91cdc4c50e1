"""Usage accounting: requests, tokens as the server reported them, cost, and the speed
figures servers give (tokens evaluated vs reused from the prompt cache, model loads,
prefill and generation rates), per model and per agent. Plain data, filled in by the
routed models and read by the renderer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from local_brain.figures import ServerFigures


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0  # as the server reported them (litellm's usage)
    completion_tokens: int = 0
    cost_usd: float = 0.0
    # The server's own figures (figures.ServerFigures), where it reports them:
    prompt_evaluated: int = 0  # prompt tokens it computed...
    prompt_reused: int = 0  # ...and those it took from its prompt cache
    loads: int = 0  # requests for which it (re)loaded the model
    load_s: float = 0.0
    prefill_tokens: int = 0  # tokens and seconds behind the prefill rate...
    prefill_s: float = 0.0
    generated_tokens: int = 0  # ...and behind the generation rate
    generation_s: float = 0.0
    cut_replies: int = 0  # replies stopped at the output cap or for repeating themselves

    def add(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        figures: ServerFigures | None = None,
        cut: bool = False,
    ) -> None:
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += cost_usd
        self.cut_replies += int(cut)
        if figures is None:
            self.prompt_evaluated += prompt_tokens
            return
        self.prompt_evaluated += figures.prompt_evaluated
        self.prompt_reused += figures.prompt_reused or 0
        self.loads += int(figures.loaded)
        self.load_s += figures.load_s if figures.loaded else 0.0
        if figures.prefill_s:
            self.prefill_tokens += figures.prompt_evaluated
            self.prefill_s += figures.prefill_s
        if figures.generation_s and figures.completion_tokens is not None:
            self.generated_tokens += figures.completion_tokens
            self.generation_s += figures.generation_s

    def merge(self, other: Usage) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def prefill_rate(self) -> float | None:
        return self.prefill_tokens / self.prefill_s if self.prefill_s > 0 else None

    @property
    def generation_rate(self) -> float | None:
        return self.generated_tokens / self.generation_s if self.generation_s > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "prompt_tokens_evaluated": self.prompt_evaluated,
            "prompt_tokens_reused": self.prompt_reused,
            "loads": self.loads,
            "load_seconds": round(self.load_s, 3),
            "prefill_tokens_per_second": _rounded(self.prefill_rate),
            "generation_tokens_per_second": _rounded(self.generation_rate),
            "cut_replies": self.cut_replies,
        }

    def summary(self) -> str:
        """``3 req 1200+80 tok, 900 reused, 1 load 2.1 s, 35 tok/s``"""
        parts = [f"{self.requests} req {self.prompt_tokens}+{self.completion_tokens} tok"]
        if self.prompt_reused:
            parts.append(f"{self.prompt_reused} reused")
        if self.loads:
            parts.append(f"{self.loads} load{'s' if self.loads > 1 else ''} {self.load_s:.1f} s")
        if self.generation_rate is not None:
            parts.append(f"{self.generation_rate:.0f} tok/s")
        if self.cut_replies:
            parts.append(f"{self.cut_replies} cut")
        return ", ".join(parts)


@dataclass
class UsageLedger:
    """Every answered model request of a run, by the model that served it and by agent."""

    by_model: dict[str, Usage] = field(default_factory=dict)
    by_agent: dict[str, Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        model: str,
        agent: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost: float,
        figures: ServerFigures | None = None,
        cut: bool = False,
    ) -> None:
        with self._lock:
            for table, key in ((self.by_model, model), (self.by_agent, agent)):
                usage = table.setdefault(key, Usage())
                usage.add(prompt_tokens, completion_tokens, cost, figures, cut)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_model.values():
            total.merge(usage)
        return total

    def summary_line(self) -> str:
        """One line for stderr: each model's requests, tokens and speed, then the cost."""
        parts = [f"{model} {usage.summary()}" for model, usage in self.by_model.items()]
        cost = self.total().cost_usd
        return "usage: " + ("; ".join(parts) or "no model requests") + f"; cost ${cost:.4f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
