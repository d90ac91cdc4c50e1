"""The models, doctor and config commands, run in-process through the CLI entry point."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import InProcessCli
from tests.fakes.model_server import ModelServer, closed_port_url


def test_models_lists_the_servers_models(cli: InProcessCli, model_server: ModelServer) -> None:
    text = cli("models", server=model_server)
    document = cli("models", "--json", server=model_server)

    assert text.returncode == 0, text.stderr
    assert "qwen3:30b" in text.stdout and "qwen2.5-coder:7b" in text.stdout
    names = {model["name"] for model in json.loads(document.stdout)["installed"]}
    assert {"qwen3:30b", "qwen2.5:3b", "qwen2.5-coder:7b"} <= names


def test_models_against_a_dead_server_exits_3(cli: InProcessCli) -> None:
    result = cli("models", env={"OLLAMA_API_BASE": closed_port_url()})

    assert result.returncode == 3
    assert "Traceback" not in result.stderr


def test_doctor_passes_when_healthy_and_fails_with_the_reason_when_not(
    cli: InProcessCli, model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model_list:\n  - model_name: main\n    litellm_params: "
        f'{{model: ollama_chat/qwen2.5:3b, api_base: "{model_server.url}"}}\n'
        "local_brain: {model: main}\n"
    )
    healthy = cli("doctor", "--config", str(config), "--root", str(repo), server=model_server)
    dead = cli("doctor", "--json", "--root", str(repo), env={"OLLAMA_API_BASE": closed_port_url()})

    assert healthy.returncode == 0, healthy.stdout
    assert "✗" not in healthy.stdout and "✓ git" in healthy.stdout
    assert dead.returncode == 1
    document = json.loads(dead.stdout)
    assert document["ok"] is False
    failed = [check for check in document["checks"] if not check["ok"]]
    assert any("ollama serve" in (check["fix"] or "") for check in failed)


def test_config_show_masks_secrets_and_path_lists_files(cli: InProcessCli, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n  - model_name: cloud\n    litellm_params: "
        "{model: groq/llama-3.1-8b-instant, api_key: gsk_supersecretvalue9876}\n"
    )

    shown = cli("config", "show", "--config", str(config))
    paths = cli("config", "path", "--config", str(config))

    assert shown.returncode == 0 and paths.returncode == 0
    assert "gsk_supersecretvalue9876" not in shown.stdout and "****9876" in shown.stdout
    assert paths.stdout.splitlines()[0].endswith("local-brain/config.yaml")
    assert str(config) in paths.stdout.splitlines()


def test_shell_completion_offers_commands_and_options(cli: InProcessCli) -> None:
    def complete(words: str) -> list[str]:
        env = {"COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1),
               "_LOCAL_BRAIN_COMPLETE": "bash_complete"}  # fmt: skip
        result = cli(env=env)
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert "doctor" in complete("local-brain do")
    assert {"--manager", "--max-steps"} <= set(complete("local-brain --ma"))
    assert "--root" in complete("local-brain -m x --ro")


def test_usage_errors_exit_2(cli: InProcessCli, tmp_path: Path) -> None:
    missing_root = cli("--root", str(tmp_path / "nope"), "Q?")
    file_root = tmp_path / "file.txt"
    file_root.write_text("x")
    root_is_file = cli("--root", str(file_root), "Q?")
    bad_flag = cli("--no-such-flag", "Q?")
    empty = cli("--root", str(tmp_path), "   ")
    bad_config_path = tmp_path / "bad.yaml"
    bad_config_path.write_text("model_list: [\n")
    bad_config = cli("--config", str(bad_config_path), "--root", str(tmp_path), "Q?")

    for result in (missing_root, root_is_file, bad_flag, empty, bad_config):
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("local-brain: error:")
    assert str(bad_config_path) in bad_config.stderr


def test_tool_command_search_code(cli: InProcessCli, billing_repo: Path) -> None:
    result = cli("tool", "search_code", "pattern=def compute", cwd=billing_repo)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"1 match in 1 file", lines[0])
    assert lines[1].startswith("src/billing/invoice.py:17: def compute_total_cents_q7")


def test_tool_command_errors(cli: InProcessCli, billing_repo: Path) -> None:
    refused = cli("tool", "read_file", "path=.env", cwd=billing_repo)
    unknown = cli("tool", "no_such_tool", cwd=billing_repo)
    malformed = cli("tool", "read_file", "README.md", cwd=billing_repo)

    assert refused.returncode == 1 and refused.stdout.startswith("Error: path refused")
    assert "SECRET" not in refused.stdout
    assert unknown.returncode == 2 and "unknown tool" in unknown.stderr
    assert malformed.returncode == 2 and "key=value" in malformed.stderr
