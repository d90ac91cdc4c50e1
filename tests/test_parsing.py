"""Tolerant parsing of small models' replies, unit and end to end."""

from __future__ import annotations

import pytest

from local_brain.parsing import NO_CODE_MESSAGE, normalize_reply
from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer


@pytest.mark.parametrize(
    "reply, code",
    [
        ("Thought: x\n```python\nprint(1)\n```", "print(1)"),
        ("Thought: x\n```py\nprint(1)\n```", "print(1)"),
        ("Thought: x\n```\nprint(1)\n```", "print(1)"),
        ("Thought: x\n```Python3\nprint(1)\n```", "print(1)"),
        ("Thought: x\n<code>\nprint(1)\n</code>", "print(1)"),
        ("Thought: x\n<code>print(1)", "print(1)"),
        ("Thought: x\n```python\nprint(1)", "print(1)"),
        ("Final answer: in a.py:3", "final_answer('in a.py:3')"),
        ("**Final Answer**: in a.py:3", "final_answer('in a.py:3')"),
    ],
)
def test_forms_become_one_python_block(reply: str, code: str) -> None:
    assert f"```python\n{code}\n```" in normalize_reply(reply)


def test_think_sections_never_run() -> None:
    reply = (
        '<think>\n```python\nprint("evil")\n```\n</think>\nThought: ok\n```python\nprint(1)\n```'
    )
    normalized = normalize_reply(reply)
    assert "evil" not in normalized and "```python\nprint(1)\n```" in normalized
    assert normalize_reply("<think>never closed ```python\nprint(2)\n```") == ""


def test_other_languages_are_left_alone() -> None:
    normalized = normalize_reply("```bash\nrm -rf /\n```\n```\nprint(5)\n```")
    assert "```bash\nrm -rf /\n```" in normalized and "```python\nprint(5)\n```" in normalized


def test_sloppy_replies_work_end_to_end(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"src/app.py": "def main_k7():\n    pass\n"})
    model_server.script(
        None,
        [
            '<think>I should search.\n```python\nfinal_answer("from think")\n```</think>\n'
            'Thought: search\n```\nprint(search_code(pattern="main_k7"))\n```',
            "I am not sure what to do.",
            "Thought: read\n<code>print(read_file('src/app.py'))</code>",
            "Final answer: main_k7 is defined in src/app.py:1",
        ],
    )

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "main_k7 is defined in src/app.py:1"
    observations = [request.last_text for request in model_server.chat_requests()[1:]]
    assert "src/app.py:1:" in observations[0]
    assert NO_CODE_MESSAGE in observations[1]
    assert "I am not sure what to do." not in observations[1]  # no echo of the whole reply
    assert "def main_k7" in observations[2]
