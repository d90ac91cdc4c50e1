"""Usage accounting: requests, tokens as the server reported them, and cost, per model and
per agent. Plain data, filled in by the routed models and read by the renderer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        self.requests += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += cost_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


@dataclass
class UsageLedger:
    """Every answered model request of a run, by the model that served it and by agent."""

    by_model: dict[str, Usage] = field(default_factory=dict)
    by_agent: dict[str, Usage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self, model: str, agent: str, prompt_tokens: int, completion_tokens: int, cost: float
    ) -> None:
        with self._lock:
            for table, key in ((self.by_model, model), (self.by_agent, agent)):
                table.setdefault(key, Usage()).add(prompt_tokens, completion_tokens, cost)

    def total(self) -> Usage:
        total = Usage()
        for usage in self.by_model.values():
            total.requests += usage.requests
            total.prompt_tokens += usage.prompt_tokens
            total.completion_tokens += usage.completion_tokens
            total.cost_usd += usage.cost_usd
        return total

    def summary_line(self) -> str:
        """One line for stderr: each model's requests and tokens, then the total cost."""
        parts = [
            f"{model} {usage.requests} req {usage.prompt_tokens}+{usage.completion_tokens} tok"
            for model, usage in self.by_model.items()
        ]
        cost = self.total().cost_usd
        return "usage: " + ("; ".join(parts) or "no model requests") + f"; cost ${cost:.4f}"
