"""Scripted replies: the agent's reply format (``code``), what the last observation was, and
models of known quality for `local-brain eval` (tests and benchmarks): GOOD answers
exactly (as a manager it delegates, then passes the helper's report on), BAD answers at once
with an invented path and line, UNUSABLE never writes code."""

from __future__ import annotations

import json
from collections.abc import Callable

from local_brain.evaluation.questions import Question
from tests.fakes.model_server import RecordedRequest

GOOD, BAD, UNUSABLE = "qwen3:30b", "qwen2.5:3b", "llama3.2:latest"


def code(body: str) -> str:
    """A reply in the agent's format: a thought, then one code block."""
    return f"Thought: let me look.\n```python\n{body}\n```"


def last_observation(request: RecordedRequest) -> str:
    """The tool output local-brain sent back to the model in this request."""
    text = request.last_text
    text = text.split("Execution logs:", 1)[1] if "Execution logs:" in text else text
    return text.split("Last output from code snippet:", 1)[0].strip()


def question_for(request: RecordedRequest, questions: list[Question]) -> Question:
    task = json.dumps(request.messages)
    return next(q for q in questions if json.dumps(q.text)[1:-1] in task)


def responder_for(questions: list[Question]) -> Callable[[RecordedRequest], str]:
    def respond(request: RecordedRequest) -> str:
        model = request.model or ""
        question = question_for(request, questions)
        if model.startswith(UNUSABLE.split(":")[0]):
            return "I believe the answer is somewhere in the billing code."  # never any code
        if model.startswith(BAD.split(":")[0]):
            return code('final_answer("It is in src/billing/nowhere.py:999")')
        is_manager = "code_search(task" in json.dumps(request.messages[0])
        if not is_manager:
            return code(f"final_answer({question.expected[0]!r})")
        if "Execution logs" not in request.last_text:
            return code(f"print(code_search(task={question.text!r}))")
        return code(f"final_answer({last_observation(request)!r})")

    return respond
