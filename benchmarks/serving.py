"""Model loads per run and the share of prompt tokens the server re-evaluates.

The scripted server plays Ollama's scheduler (a load whenever ``num_ctx`` changes, a
per-model prompt-prefix cache reported as ``prompt_eval_cached_count``). Each scenario runs
the installed ``local-brain`` twice: as it is, and with the previous release's rules put
back (``BEFORE``: a ``num_ctx`` sized per request in 1,024-token steps, and old
observations shortened a little more at every step once the window is tight). The figures
are counts, not times, so one run of each is exact.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.fakes.model_server import ModelServer

MODEL = "qwen2.5:3b"

# The previous release's window rules, patched into a run (see the module docstring).
BEFORE = """
import sys
from local_brain.models import routed
from local_brain import window

def num_ctx_for(estimated, cap):
    wanted = estimated + 1024
    rounded = -(-wanted // 1024) * 1024
    return max(min(rounded, cap), min(2048, cap))

def fit_messages(messages, cap):
    fitted = list(messages)
    for index in range(2, max(2, len(fitted) - 2)):
        if window.estimate_tokens(fitted) + 1024 <= cap:
            break
        text = window.message_text(fitted[index])
        if len(text) > 300:
            fitted[index] = window._with_text(
                fitted[index], text[:300] + " […shortened to fit the context window]")
    return fitted

class NoCompaction:
    def __init__(self, window_tokens, reply_room):
        self.window = window_tokens
    def fit(self, messages):
        return messages

stock_generate = routed.RoutedModel.generate

def generate(self, messages, *args, **kwargs):
    cap, _ = self.routing.window(self.model_id)
    messages = fit_messages(messages, cap)
    kwargs["num_ctx"] = num_ctx_for(window.estimate_tokens(messages), cap)
    return stock_generate(self, messages, *args, **kwargs)

routed.Compactor = NoCompaction
routed.RoutedModel.generate = generate
from local_brain.cli import main
main(sys.argv[1:])
"""

AFTER = "import sys\nfrom local_brain.cli import main\nmain(sys.argv[1:])\n"


def code(body: str) -> str:
    return f"Thought: let me look.\n```python\n{body}\n```"


def reading(steps: int) -> list[str]:
    return [code(f'print(read_file("part{n % 6}.txt"))') for n in range(steps)] + [
        code('final_answer("done")')
    ]


def _scenarios(server: ModelServer) -> dict[str, tuple[list[str], Callable[[], None]]]:
    def solo(steps: int) -> Callable[[], None]:
        return lambda: server.script(MODEL, reading(steps))

    def warm() -> None:
        server.preload(MODEL, 16384)
        server.script(MODEL, reading(4))

    def team() -> None:  # one model, so one queue, in the order the requests come
        server.script(MODEL, [
            code('print(code_search(task="find line 5"))'), *reading(1),
            code('print(file_explorer(task="read part1.txt"))'), *reading(1),
            code('final_answer("done")'),
        ])  # fmt: skip

    return {
        "solo, cold server": (["-m", MODEL], solo(4)),
        "solo, warm server (model loaded with 16k)": (["-m", MODEL], warm),
        "team on one model, cold server": (["--manager", MODEL, "--worker", MODEL], team),
        "solo, long run that must compact": (["-m", MODEL, "--max-steps", "30"], solo(14)),
    }


def serving_table() -> str:
    """A Markdown table: loads per run and the re-evaluated share, before and after."""
    lines = [
        "| scenario | loads before | loads now | re-evaluated before | re-evaluated now |",
        "|---|---|---|---|---|",
    ]
    with ModelServer() as server, tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp, "repo")
        repo.mkdir()
        text = "".join(f"line {n} " + "x" * 70 + "\n" for n in range(300))
        for n in range(6):
            (repo / f"part{n}.txt").write_text(text)
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        for name, (flags, script) in _scenarios(server).items():
            figures = [
                _measure(server, flags, script, program, repo) for program in (BEFORE, AFTER)
            ]
            (loads_before, share_before), (loads_now, share_now) = figures
            lines.append(
                f"| {name} | {loads_before} | {loads_now} | {share_before:.0%} | {share_now:.0%} |"
            )
    return "\n".join(lines)


def _measure(
    server: ModelServer, flags: list[str], script: Callable[[], None], program: str, repo: Path
) -> tuple[int, float]:
    for loaded in list(server.loaded_models()):
        server.unload(loaded)
    server.clear_script()
    server.clear_requests()
    loads_before = server.loads()
    server.prefix_cache = True
    server.report_cached_count = True
    script()
    subprocess.run(
        [sys.executable, "-c", program, *flags, "--root", str(repo), "Q?"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "OLLAMA_API_BASE": server.url},
    )  # fmt: skip
    requests = server.chat_requests()
    total = sum(request.prompt_tokens_total for request in requests) or 1
    evaluated = sum(request.prompt_tokens_evaluated for request in requests)
    return server.loads() - loads_before, evaluated / total
