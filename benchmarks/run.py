"""Reproducible measurements of local-brain's speed and size goals.

Run from the repository root, in the environment local-brain is installed in:

    python benchmarks/run.py [--runs 7] [--tree PATH]

It prints one Markdown table: median, min and max over the runs, the baseline, and the
ratio to it. Scripted runs use the test suite's scripted model server on 127.0.0.1; no
network is used. Timings on a shared machine are noisy: compare medians.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.evaluation import evaluation_report
from benchmarks.serving import serving_table
from tests.fakes.model_server import ModelServer

LOCAL_BRAIN = str(Path(sys.executable).with_name("local-brain"))
Row = tuple[str, list[float], str, float | None, str]


def timed(command: list[str], runs: int, **kwargs: object) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
        times.append(time.perf_counter() - started)
    return times


def startup_rows(runs: int) -> list[Row]:
    click = timed([sys.executable, "-c", "import click"], runs)
    help_ = timed([LOCAL_BRAIN, "--help"], runs)
    stack = timed(
        [sys.executable, "-c", "import litellm, smolagents"],
        runs,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    first_request = launch_to_first_request(runs)
    return [
        ("`local-brain --help`", help_, "`python -c 'import click'`", statistics.median(click), "≤ 3"),
        ("launch → first model request", first_request, "`import litellm, smolagents`",
         statistics.median(stack), "≤ 1.2"),
    ]  # fmt: skip


def launch_to_first_request(runs: int) -> list[float]:
    times = []
    with ModelServer() as server, tempfile.TemporaryDirectory() as repo:
        Path(repo, "a.py").write_text("x = 1\n")
        for _ in range(runs):
            server.clear_requests()
            server.script(None, ['```python\nfinal_answer("ok")\n```'])
            started = time.time()
            subprocess.run(
                [LOCAL_BRAIN, "-m", "qwen2.5:3b", "--root", repo, "Q?"],
                capture_output=True,
                env={**os.environ, "OLLAMA_API_BASE": server.url},
                check=False,
            )
            times.append(server.chat_requests()[0].received_at - started)
    return times


def search_rows(runs: int, tree: Path, pattern: str) -> list[Row]:
    grep = timed(["grep", "-rIn", pattern, str(tree)], runs)
    ours = timed(
        [LOCAL_BRAIN, "tool", "search_code", f"pattern={pattern}", "--root", str(tree)], runs
    )
    rows: list[Row] = [
        (f"`search_code {pattern!r}` on {tree.name}", ours, "`grep -rIn`", statistics.median(grep), "≤ 1.5")
    ]  # fmt: skip
    rg = shutil.which("rg") or str(Path(sysconfig.get_path("scripts")) / "rg")
    if Path(rg).exists():
        rg_times = timed([rg, "-n", "--no-config", pattern, str(tree)], runs)
        rows.append(
            (f"`search_code {pattern!r}`", ours, "`rg -n`", statistics.median(rg_times), "—")
        )
    return rows


def match_counts(tree: Path, pattern: str) -> str:
    grep = subprocess.run(["grep", "-rIn", pattern, str(tree)], capture_output=True, check=False)
    grep_lines = grep.stdout.count(b"\n")
    ours = subprocess.run(
        [LOCAL_BRAIN, "tool", "search_code", f"pattern={pattern}", "--root", str(tree)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    first = ours.stdout.splitlines()[0] if ours.stdout else "?"
    match = re.match(r"(\d+) match", first)
    ours_count = int(match.group(1)) if match else -1
    return f"grep -rIn: {grep_lines} lines; search_code: {ours_count} matches ({first})"


def prompt_rows() -> list[Row]:
    from local_brain.agents import ROSTER, build, make_smolagents_tool
    from local_brain.config import load_settings
    from local_brain.plan import make_plan
    from local_brain.safe_import import import_model_stack
    from local_brain.tools import all_tools
    from local_brain.workspace import Workspace

    _, smolagents = import_model_stack()

    class Idle:
        model_id = "benchmark"

        def generate(self, *args: object, **kwargs: object) -> None:
            return None

    workspace = Workspace(Path.cwd())
    specs = all_tools()

    def stock_size(tool_names: list[str], managed: list[object] | None = None) -> int:
        tools = [make_smolagents_tool(specs[name], workspace) for name in tool_names]
        agent = smolagents.CodeAgent(tools=tools, model=Idle(), managed_agents=managed or [])
        return len(agent.system_prompt)

    def agent_for(team: bool) -> Any:
        settings = load_settings(environ={"HOME": tempfile.gettempdir()}, model="benchmark")
        plan = make_plan(settings, team=team, installed_default=lambda: "benchmark")
        return build(plan, lambda each: Idle(), workspace, step_callback_for=lambda name: None)

    rows: list[Row] = []
    solo = agent_for(team=False)
    rows.append(("solo agent system prompt (chars)", [len(solo.system_prompt)],
                 "stock CodeAgent, same 9 tools", stock_size(list(specs)), "—"))  # fmt: skip
    team = agent_for(team=True)
    for role in ROSTER:
        helper = team.managed_agents[role.name]
        rows.append((f"{role.name} system prompt (chars)", [len(helper.system_prompt)],
                     "stock CodeAgent, same tools", stock_size(list(role.tools)), "≤ 0.5"))  # fmt: skip
    stock_manager = stock_size([], managed=list(team.managed_agents.values()))
    rows.append(("manager system prompt (chars)", [len(team.system_prompt)],
                 "stock CodeAgent, same helpers", stock_manager, "≤ 5,000 chars"))  # fmt: skip
    for agent in (solo, team, *team.managed_agents.values()):
        agent.cleanup()
    return rows


def scripted_rows(runs: int) -> tuple[list[Row], list[str]]:
    notes = []
    rows: list[Row] = []
    with ModelServer() as server, tempfile.TemporaryDirectory() as repo:
        Path(repo, "src").mkdir()
        Path(repo, "src", "app.py").write_text("def main():\n    return 1\n")
        subprocess.run(["git", "init", "-q", repo], check=True)
        scenarios: dict[str, tuple[list[str], Callable[[], None]]] = {
            "scripted single-agent run": (
                ["-m", "qwen2.5:3b"],
                lambda: server.script(
                    None,
                    [
                        '```python\nprint(search_code(pattern="def main"))\n```',
                        '```python\nfinal_answer("src/app.py:1")\n```',
                    ],
                ),
            ),
            "scripted team run": (
                ["--manager", "qwen3:30b", "--worker", "qwen2.5:3b"],
                lambda: (
                    server.script(
                        "qwen3:30b",
                        [
                            '```python\nprint(code_search(task="where is main?"))\n```',
                            '```python\nfinal_answer("src/app.py:1")\n```',
                        ],
                    ),
                    server.script(
                        "qwen2.5:3b",
                        [
                            '```python\nfinal_answer(search_code(pattern="def main"))\n```',
                        ],
                    ),
                ),
            ),
        }
        for name, (flags, script) in scenarios.items():
            times, peaks = [], []
            for _ in range(runs):
                server.clear_script()
                server.clear_requests()
                script()
                started = time.perf_counter()
                completed = subprocess.run(
                    [sys.executable, "-c", PEAK, LOCAL_BRAIN, *flags, "--root", repo, "Q?"],
                    capture_output=True, text=True, check=False,
                    env={**os.environ, "OLLAMA_API_BASE": server.url},
                )  # fmt: skip
                times.append(time.perf_counter() - started)
                peaks.append(int(completed.stdout.split()[1]) / 1024)
            requests = server.chat_requests()
            sent = sum(r.usage.prompt_tokens for r in requests if r.usage)
            rows.append((name, times, "—", None, "—"))
            notes.append(
                f"{name}: {len(requests)} requests, {sent} prompt tokens sent, "
                f"peak memory {statistics.median(peaks):.0f} MB (median)"
            )
    return rows, notes


PEAK = """
import resource, subprocess, sys
completed = subprocess.run(sys.argv[1:], capture_output=True)
print(completed.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def render(rows: list[Row]) -> str:
    lines = [
        "| measurement | median | min | max | baseline | ratio | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, values, baseline_name, baseline, goal in rows:
        median = statistics.median(values)
        is_size = "(chars)" in name
        fmt = (lambda v: f"{v:,.0f}") if is_size else (lambda v: f"{v:.3f} s")
        base = "—" if baseline is None else f"{baseline_name}: {fmt(baseline)}"
        ratio = "—" if not baseline else f"{median / baseline:.2f}"
        lines.append(
            f"| {name} | {fmt(median)} | {fmt(min(values))} | {fmt(max(values))} | {base} "
            f"| {ratio} | {goal} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--tree", type=Path, default=Path(sysconfig.get_path("purelib")))
    parser.add_argument("--pattern", default="def ")
    parser.add_argument("--serving-only", action="store_true", help="only the loads table")
    parser.add_argument("--eval-only", action="store_true", help="only the eval table")
    options = parser.parse_args()
    if options.serving_only:
        print(serving_table())
        return
    if options.eval_only:
        print_evaluation()
        return

    rows = startup_rows(options.runs)
    rows += search_rows(options.runs, options.tree, options.pattern)
    rows += prompt_rows()
    scripted, notes = scripted_rows(max(3, options.runs // 2))
    rows += scripted
    print(render(rows))
    print()
    print(f"- match counts on {options.tree}: {match_counts(options.tree, options.pattern)}")
    for note in notes:
        print(f"- {note}")
    print(f"- {os.cpu_count()} cores; Python {sys.version.split()[0]}; runs: {options.runs}")
    print()
    print("Model loads per run and prompt tokens re-evaluated (of all prompt tokens sent), on")
    print("the scripted Ollama scheduler; before = the previous release's window rules:")
    print()
    print(serving_table())
    print()
    print_evaluation()


def print_evaluation() -> None:
    table, seconds = evaluation_report()
    print("`local-brain eval` over three scripted models (exact, inventing, unusable):")
    print()
    print("```")
    print(table)
    print("```")
    print()
    print(f"3 models x 3 roles x 4 questions in {seconds:.1f} s against the scripted server.")


if __name__ == "__main__":
    main()
