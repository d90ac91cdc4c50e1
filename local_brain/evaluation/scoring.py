"""Scoring one answer to one eval question: correct, partly correct, wrong, or no answer.

An answer is correct when it contains one of the question's facts, whatever the wording:
the ``path:line``, a 7+ character sha or the commit subject, the number, the value. A fact
must stand whole (``3`` is not found in ``30``, nor ``a.py:17`` in ``a.py:170``); a commit
sha matches any prefix of 7 or more characters. A count must be stated as the count ("2
files", "files: 2", the only number of a short answer), not appear by chance in a line
number, a path or a year.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from local_brain.evaluation.questions import Question

Outcome = Literal["correct", "partial", "wrong", "no_answer"]
_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen \
fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
# a standalone number: not part of a name, a path, a path:line, a version or a decimal
_NUMBER = re.compile(
    rf"(?<![\w./\\:#@$-])(?:(?P<digits>\d{{1,6}})|(?P<word>{'|'.join(_WORDS)}))"
    r"(?![\w/\\@-]|[.:,]\d)",
    re.I,
)
_NOT_A_COUNT_BEFORE = re.compile(r"\b(?:lines?|ln|col(?:umn)?|version|step|rows?)\s*$", re.I)
_FILES_AFTER = re.compile(r"[*_]*(?:\s+[A-Za-z-]+){0,3}?\s+files?\b", re.I)  # "2 Python files"
_COUNT_BEFORE = re.compile(  # "files: 2", "the number of files is 2", "Answer: **2**"
    r"\b(?:files?|count|total|number|answer)\b[^.\d\n]{0,30}?(?:[:=]|\bis|\bare|\bof)"
    r"[\s*_`]*$",
    re.I,
)
SHORT_ANSWER_WORDS = 40
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


def states_count(answer: str, count: int) -> bool:
    """Whether ``answer`` gives ``count`` as its count of files: the largest number stated
    as a count of files ("2 files", "two Python files", "files: 2"; a total is never smaller
    than its parts), else the only number of a short answer. Line numbers, paths, versions
    and years are no counts."""
    stated: list[int] = []
    digits: set[int] = set()
    words: set[int] = set()  # "one" is often prose: a count only when nothing else is
    for match in _NUMBER.finditer(answer):
        before = answer[max(0, match.start() - 60) : match.start()]
        if _NOT_A_COUNT_BEFORE.search(before):
            continue
        if match["digits"]:
            value = int(match["digits"])
            digits.add(value)
        else:
            value = _WORDS.index(match["word"].lower())
            words.add(value)
        if _FILES_AFTER.match(answer, match.end()) or _COUNT_BEFORE.search(before):
            stated.append(value)
    if stated:
        return max(stated) == count
    return (digits or words) == {count} and len(answer.split()) <= SHORT_ANSWER_WORDS


def score(question: Question, answer: str | None, failure: str | None = None) -> Verdict:
    if answer is None or not answer.strip():
        return Verdict("no_answer", failure or "empty_answer")
    if question.kind == "count":
        counts = [int(fact) for fact in question.expected if fact.isdigit()]
        text = _normal(answer)
        return Verdict("correct" if any(states_count(text, n) for n in counts) else "wrong")
    if any(contains_fact(answer, fact) for fact in question.expected):
        return Verdict("correct")
    if any(contains_fact(answer, fact) for fact in question.partial):
        return Verdict("partial")
    return Verdict("wrong")


def _normal(text: str) -> str:
    return " ".join(text.replace("`", " ").split())
