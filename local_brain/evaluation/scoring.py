"""Scoring one answer to one eval question: correct, partly correct, wrong, or no answer.

An answer is correct when it contains one of the question's facts, whatever the wording:
the ``path:line``, a 7+ character sha or the commit subject, the number, the value. A fact
must stand whole (``3`` is not found in ``30``, nor ``a.py:17`` in ``a.py:170``); a commit
sha matches any prefix of 7 or more characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from local_brain.evaluation.questions import Question

Outcome = Literal["correct", "partial", "wrong", "no_answer"]
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
POINTS: dict[Outcome, float] = {"correct": 1.0, "partial": 0.5, "wrong": 0.0, "no_answer": 0.0}


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    failure: str | None = None  # why there was no answer: step_limit, unusable_output, ...

    @property
    def points(self) -> float:
        return POINTS[self.outcome]


def contains_fact(answer: str, fact: str) -> bool:
    """Whether ``answer`` states ``fact`` as a whole: ``src/a.py:17`` is not in
    ``src/a.py:170``, ``3`` is not in ``30``; a commit sha matches any 7+ character prefix."""
    text, fact = _normal(answer), _normal(fact)
    if not fact:
        return False
    if _SHA.fullmatch(fact) and re.search(r"[a-f]", fact):  # a sha, not a plain number
        return any(
            token.startswith(fact) or fact.startswith(token) for token in _SHA.findall(text.lower())
        )
    pattern = rf"(?<![\w/-]){re.escape(fact)}(?!\w|\.\d)"
    return re.search(pattern, text) is not None


def score(question: Question, answer: str | None, failure: str | None = None) -> Verdict:
    if answer is None or not answer.strip():
        return Verdict("no_answer", failure or "empty_answer")
    if any(contains_fact(answer, fact) for fact in question.expected):
        return Verdict("correct")
    if any(contains_fact(answer, fact) for fact in question.partial):
        return Verdict("partial")
    return Verdict("wrong")


def _normal(text: str) -> str:
    return " ".join(text.replace("`", " ").split())
