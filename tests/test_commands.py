"""The models, doctor and config commands, run as installed commands."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.model_server import ModelServer, closed_port_url
from tests.test_e2e import run_cli


def test_models_lists_the_servers_models(model_server: ModelServer) -> None:
    text = run_cli("models", server=model_server)
    document = run_cli("models", "--json", server=model_server)

    assert text.returncode == 0, text.stderr
    assert "qwen3:30b" in text.stdout and "qwen2.5-coder:7b" in text.stdout
    names = {model["name"] for model in json.loads(document.stdout)["installed"]}
    assert {"qwen3:30b", "qwen2.5:3b", "qwen2.5-coder:7b"} <= names


def test_models_against_a_dead_server_exits_3() -> None:
    result = run_cli("models", env={"OLLAMA_API_BASE": closed_port_url()})

    assert result.returncode == 3
    assert "Traceback" not in result.stderr


def test_doctor_passes_when_healthy_and_fails_with_the_reason_when_not(
    model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model_list:\n  - model_name: main\n    litellm_params: "
        f'{{model: ollama_chat/qwen2.5:3b, api_base: "{model_server.url}"}}\n'
        "local_brain: {model: main}\n"
    )
    healthy = run_cli("doctor", "--config", str(config), "--root", str(repo), server=model_server)
    dead = run_cli(
        "doctor", "--json", "--root", str(repo), env={"OLLAMA_API_BASE": closed_port_url()}
    )

    assert healthy.returncode == 0, healthy.stdout
    assert "✗" not in healthy.stdout and "✓ git" in healthy.stdout
    assert dead.returncode == 1
    document = json.loads(dead.stdout)
    assert document["ok"] is False
    failed = [check for check in document["checks"] if not check["ok"]]
    assert any("ollama serve" in (check["fix"] or "") for check in failed)


def test_config_show_masks_secrets_and_path_lists_files(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n  - model_name: cloud\n    litellm_params: "
        "{model: groq/llama-3.1-8b-instant, api_key: gsk_supersecretvalue9876}\n"
    )

    shown = run_cli("config", "show", "--config", str(config))
    paths = run_cli("config", "path", "--config", str(config))

    assert shown.returncode == 0 and paths.returncode == 0
    assert "gsk_supersecretvalue9876" not in shown.stdout and "****9876" in shown.stdout
    assert paths.stdout.splitlines()[0].endswith("local-brain/config.yaml")
    assert str(config) in paths.stdout.splitlines()


def test_shell_completion_offers_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        env = {"COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1),
               "_LOCAL_BRAIN_COMPLETE": "bash_complete"}  # fmt: skip
        result = run_cli(env=env)
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert "doctor" in complete("local-brain do")
    assert {"--manager", "--max-steps"} <= set(complete("local-brain --ma"))
    assert "--root" in complete("local-brain -m x --ro")
