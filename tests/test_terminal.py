"""Terminal and CI experience: the transcript and the live progress view."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from local_brain.events import (
    Delegated,
    FallbackNotice,
    ModelCallFinished,
    ModelCallStarted,
    StepFinished,
    ToolCalled,
)
from local_brain.render import LiveProgress
from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer
from tests.test_e2e import code, run_cli


@pytest.mark.slow
def test_transcript_records_the_run(model_server: ModelServer, make_repo, tmp_path: Path) -> None:
    repo = make_repo({"src/app.py": "def main():\n    return 1\n", ".env": "KEY=SECRET_77\n"})
    model_server.script(
        None,
        [
            code('print(search_code(pattern="def main"))\nprint(read_file(".env"))'),
            code('final_answer("main is in src/app.py:1")'),
        ],
    )
    transcript = tmp_path / "run.jsonl"

    result = run_cli("-m", "qwen2.5:3b", "--root", str(repo), "--transcript", str(transcript),
                     "Where is main?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    kinds = [record["event"] for record in records]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("model_call_started") == 2 and kinds.count("model_call_finished") == 2
    assert "step_finished" in kinds and "final_answer" in kinds
    tools = [record for record in records if record["event"] == "tool_called"]
    assert [(t["tool"], t["error"]) for t in tools] == [("search_code", False), ("read_file", True)]
    assert tools[0]["arguments"] == {"pattern": "def main"} and tools[0]["output_chars"] > 0
    finished = [record for record in records if record["event"] == "model_call_finished"]
    reported = model_server.total_usage()
    assert sum(record["prompt_tokens"] for record in finished) == reported.prompt_tokens
    assert records[-1]["repository_unmodified"] is True and records[-1]["exit_code"] == 0
    assert "SECRET_77" not in transcript.read_text()
    assert not list(tmp_path.glob(".run.jsonl.*"))  # no temporary file left behind


@pytest.mark.slow
def test_transcript_records_failure(model_server: ModelServer, make_repo, tmp_path: Path) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    transcript = tmp_path / "run.jsonl"

    result = run_cli("-m", "missing:1b", "--root", str(repo), "--transcript", str(transcript),
                     "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 3
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert records[-2]["event"] == "error" and "ollama pull" in records[-2]["hint"]
    assert records[-1]["exit_code"] == 3


def render_progress(events: list[object], verbose: bool = False) -> str:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120, color_system=None)
    progress = LiveProgress(console=console, verbose=verbose)
    for event in events:
        progress(event)
    console.print(progress.renderable())
    return stream.getvalue()


def test_live_view_shows_the_agent_tree() -> None:
    output = render_progress(
        [
            ModelCallStarted("manager", "qwen3:30b", 2, 900),
            ModelCallFinished("manager", "qwen3:30b", "qwen3:30b", 300, 40, 0.0, 1.5),
            Delegated("code_search", "qwen2.5:3b", "Find the login handler"),
            ModelCallStarted("code_search", "qwen2.5:3b", 2, 500),
            ModelCallFinished("code_search", "qwen2.5:3b", "qwen2.5:3b", 200, 20, 0.0, 0.7),
            ToolCalled("search_code", {"pattern": "login"}, 321, 0.01, False),
            StepFinished("code_search", "qwen2.5:3b", 1, "print(1)", "1", None, 0.8, 200, 20),
            ModelCallStarted("code_search", "qwen2.5:3b", 4, 800),
            FallbackNotice("primary", "connection refused", "backup"),
        ]
    )
    lines = output.splitlines()
    assert "model primary failed (connection refused); backup took over" in lines[0]
    assert "560 tokens" in output  # 300+40+200+20 so far
    manager_line = next(line for line in lines if "manager (qwen3:30b)" in line)
    helper_line = next(line for line in lines if "code_search (qwen2.5:3b)" in line)
    tool_line = next(line for line in lines if "search_code(pattern='login')" in line)
    assert "step 2" in helper_line and "thinking" in helper_line
    assert "task: Find the login handler" in helper_line
    # The helper hangs under the manager, its tool call under the helper.
    assert manager_line.index("manager") < helper_line.index("code_search")
    assert helper_line.index("code_search") < tool_line.index("search_code")
    assert "321 chars" in tool_line


def test_live_view_verbose_prints_code_and_output() -> None:
    output = render_progress(
        [
            StepFinished(
                "agent", "m", 1, 'print(read_file("a.py"))', "a.py: lines 1-1", None, 1, 1, 1
            )
        ],
        verbose=True,
    )
    assert 'print(read_file("a.py"))' in output and "a.py: lines 1-1" in output


def test_transcript_in_a_missing_directory_is_a_usage_error(
    cli: InProcessCli, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli("-m", "qwen2.5:3b", "--root", str(repo), "--transcript",
                     str(tmp_path / "missing" / "t.jsonl"), "Q?")  # fmt: skip

    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_live_view_says_what_it_does_before_the_first_tokens() -> None:
    output = render_progress([])
    waiting = render_progress([ModelCallStarted("agent", "qwen2.5:3b", 2, 900)])

    assert "0 tokens" not in output and "0 tokens" not in waiting.splitlines()[0]
    assert any(word in output for word in ("starting", "loading the model stack", "probing"))
    assert "waiting for the model's first reply" in waiting


def test_live_view_counts_the_steps_that_ran() -> None:
    two_steps = [
        ModelCallStarted("agent", "m", 2, 900),
        ModelCallFinished("agent", "m", "m", 100, 10, 0.0, 1.0),
        StepFinished("agent", "m", 1, "print(1)", "1", None, 1.0, 100, 10),
        ModelCallStarted("agent", "m", 4, 1200),
        ModelCallFinished("agent", "m", "m", 100, 10, 0.0, 1.0),
        StepFinished("agent", "m", 2, 'final_answer("x")', None, None, 1.0, 100, 10),
    ]

    output = render_progress(two_steps)
    limited = render_progress(
        [*two_steps, StepFinished("agent", "m", 3, None, None, "max steps", 0.0, 0, 0, True)]
    )

    assert "step 2 · " in output and "done" in output and "step 3" not in output
    assert "step 2 · " in limited and "step limit reached" in limited
    assert "step 3" not in limited
