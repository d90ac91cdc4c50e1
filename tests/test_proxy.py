"""The scale path: the config file local-brain reads also runs a LiteLLM Proxy for a team.

``config/example.yaml`` is loaded by local-brain and handed, with every deployment pointed at
loopback, to a real ``litellm --config`` subprocess. The installed ``local-brain`` then asks
``litellm_proxy/worker`` through that proxy, which routes to the scripted model server, and
once more reads the same file directly with ``--config``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from local_brain.config import load_settings, read_config_file
from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer, closed_port_url
from tests.test_e2e import answer_with_observation, code, run_cli

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config" / "example.yaml"
LITELLM = str(Path(sys.executable).with_name("litellm"))
MASTER_KEY = "sk-local-brain-test-proxy-key"
READY_TIMEOUT_S = 60.0
# Variables from which the proxy would build a database URL and then run prisma.
DATABASE_VARIABLES = (
    "DATABASE_URL",
    "DIRECT_URL",
    "DATABASE_URL_READ_REPLICA",
    "DATABASE_HOST",
    "DATABASE_USERNAME",
    "DATABASE_PASSWORD",
    "DATABASE_NAME",
    "DATABASE_SCHEMA",
)


@dataclass(frozen=True)
class Proxy:
    """A running LiteLLM Proxy and the config file it was started with."""

    url: str
    config: Path
    log: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def loopback_config(server: ModelServer) -> dict[str, Any]:
    """config/example.yaml with Ollama deployments at the scripted server, others on a dead port.

    Cloud deployments stay in (the proxy must accept them) but can never leave loopback.
    """
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    dead = closed_port_url()
    for deployment in data["model_list"]:
        params = deployment["litellm_params"]
        params["api_base"] = server.url if params["model"].startswith("ollama_chat/") else dead
    return data


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, for failure messages."""
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> float:
    """Poll the proxy's liveliness endpoint; return the seconds it took or fail the test."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            pytest.fail(
                f"litellm proxy exited with {process.returncode} before it was ready:\n{tail(log)}"
            )
        try:
            with opener.open(f"{url}/health/liveliness", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"litellm proxy not ready after {READY_TIMEOUT_S:.0f} s:\n{tail(log)}")


@pytest.fixture
def proxy(model_server: ModelServer, tmp_path: Path) -> Iterator[Proxy]:
    """``litellm --config`` on a free port, started from the example config; always stopped."""
    pytest.importorskip("fastapi", reason="litellm[proxy] is not installed (pip install -e .[dev])")
    pytest.importorskip("uvicorn", reason="litellm[proxy] is not installed (pip install -e .[dev])")
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump(loopback_config(model_server), sort_keys=False))
    workdir = tmp_path / "proxy"
    workdir.mkdir()
    log = tmp_path / "proxy.log"
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in DATABASE_VARIABLES}
    env.update(
        LITELLM_MASTER_KEY=MASTER_KEY,
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no price-list download at import
        # litellm asks /api/show at OLLAMA_API_BASE for each Ollama model at start-up,
        # whatever the deployment's api_base: keep that on the scripted server too.
        OLLAMA_API_BASE=model_server.url,
        NO_PROXY="127.0.0.1,localhost",
    )
    command = [LITELLM, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(process, url, log)
        yield Proxy(url=url, config=config, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def test_example_config_loads() -> None:
    """The commented example is valid for local-brain, groups and team settings included."""
    data = read_config_file(EXAMPLE_CONFIG)
    assert "local_brain" in data and "general_settings" in data

    settings = load_settings(str(EXAMPLE_CONFIG), environ={"HOME": "/nonexistent"})

    assert settings.group_names == ["coder", "worker", "manager"]
    assert (settings.model, settings.manager, settings.worker) == ("worker", "manager", "worker")
    assert settings.agents["code_search"] == {"model": "coder", "max_steps": 6}
    assert settings.router_settings["num_retries"] == 1
    managers = [entry for entry in settings.model_list if entry["model_name"] == "manager"]
    assert len({entry["litellm_params"]["api_base"] for entry in managers}) == 2  # two hosts
    cloud = [e for e in settings.model_list if e["litellm_params"]["model"].startswith("groq/")]
    assert cloud and cloud[0]["litellm_params"]["api_key"] is None  # GROQ_API_KEY unset


@pytest.mark.slow  # spawns the installed litellm proxy and local-brain
def test_same_config_serves_local_brain_through_a_litellm_proxy(
    cli: InProcessCli, proxy: Proxy, model_server: ModelServer, make_repo
) -> None:
    """local-brain -> LiteLLM Proxy (example config) -> Ollama; then the same file directly."""
    repo = make_repo(
        {"src/billing/invoice.py": "\n" * 4 + "def compute_total_cents_q7(items):\n    pass\n"}
    )
    question = "Where are totals computed?"
    find = code('print(search_code(pattern="compute_total_cents_q7"))')
    model_server.script("qwen2.5:3b", [find])
    model_server.responder = answer_with_observation

    # Through the proxy. OLLAMA_API_BASE is left unset: the scripted server is reachable
    # for local-brain only through the proxy.
    via_proxy = cli("-m", "litellm_proxy/worker", "--api-base", proxy.url,
                    "--root", str(repo), question,
                    env={"LITELLM_PROXY_API_KEY": MASTER_KEY})  # fmt: skip

    assert via_proxy.returncode == 0, f"{via_proxy.stderr}\nproxy log:\n{tail(proxy.log)}"
    assert "src/billing/invoice.py:5:" in via_proxy.stdout
    proxied = model_server.chat_requests("qwen2.5:3b")
    assert len(proxied) == 2, [(r.path, r.model) for r in model_server.requests]
    assert all(request.num_ctx == 8192 for request in proxied)  # the proxy applied the config
    served = re.findall(r'"POST (?:/v1)?/chat/completions HTTP/1.1" 200', proxy.log.read_text())
    assert len(served) == 2, tail(proxy.log)
    assert model_server.exhausted_requests() == []

    # The very same file, read by local-brain itself (no proxy).
    model_server.clear_requests()
    model_server.script("qwen2.5:3b", [find])
    # Subprocess: this file's litellm_settings (drop_params) would stay set on litellm's module
    # for every later in-process run (local_brain/models/routing.py never restores them).
    direct = run_cli("--config", str(proxy.config), "-m", "worker", "--root", str(repo), question)

    assert direct.returncode == 0, direct.stderr
    assert "src/billing/invoice.py:5:" in direct.stdout
    assert len(model_server.chat_requests("qwen2.5:3b")) == 2
    assert model_server.exhausted_requests() == []
