"""`models`, `doctor` and `config` logic against the scripted model server over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from local_brain.config import Settings, load_settings
from local_brain.doctor import Check, doctor_document, format_doctor, run_doctor
from local_brain.inventory import config_view, describe_models, format_config, format_models
from local_brain.masking import mask_url
from tests.fakes.model_server import FakeModel, Fault, ModelServer, closed_port_url

SECRET = "sk-abcdef123456"


def settings_for(
    tmp_path: Path, config: str | None = None, ollama: str | None = None, **env: str
) -> Settings:
    """Settings from a temporary config file, with OLLAMA_API_BASE pointing at ``ollama``."""
    environ = {"HOME": str(tmp_path / "home"), **env}
    if ollama:
        environ["OLLAMA_API_BASE"] = ollama
    path = None
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config)
    return load_settings(str(path) if path else None, environ=environ)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def failed(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks if not check.ok}


# -- models -------------------------------------------------------------------------------


def test_describe_models_lists_installed_models_with_context_length(
    model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.installed = ["qwen3:30b", FakeModel("tiny:1b", context_length=2048)]
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: worker
    litellm_params: {{model: ollama_chat/tiny:1b, api_base: "{model_server.url}"}}
  - model_name: worker
    litellm_params: {{model: openai/gpt-4o-mini, api_key: {SECRET}}}
""",
        ollama=model_server.url,
    )

    data = describe_models(settings)

    assert data["server"] == model_server.url
    assert (data["reachable"], data["error"]) == (True, None)
    installed = {model["name"]: model for model in data["installed"]}
    assert set(installed) == {"qwen3:30b", "tiny:1b"}
    assert installed["tiny:1b"]["context_length"] == 2048
    assert installed["qwen3:30b"]["context_length"] == 32768
    assert installed["qwen3:30b"]["parameter_size"] == "30B"
    assert installed["qwen3:30b"]["family"] == "qwen3"
    assert installed["qwen3:30b"]["size_bytes"] > 0
    assert data["default"] == "qwen3:30b"
    assert data["groups"] == [
        {
            "name": "worker",
            "deployments": [
                {"model": "ollama_chat/tiny:1b", "api_base": model_server.url},
                {"model": "openai/gpt-4o-mini", "api_base": None},
            ],
        }
    ]
    assert SECRET not in json.dumps(data)
    assert len(model_server.requests_to("/api/show")) == 2
    text = format_models(data)
    assert "tiny:1b" in text and "2048" in text and "worker" in text


def test_describe_models_against_an_unreachable_server(tmp_path: Path) -> None:
    dead = closed_port_url()
    data = describe_models(settings_for(tmp_path, ollama=dead))

    assert data["reachable"] is False
    assert "refused" in data["error"]
    assert data["installed"] == [] and data["groups"] == [] and data["default"] is None
    json.dumps(data)
    assert "not reachable" in format_models(data) and "ollama serve" in format_models(data)


# -- doctor -------------------------------------------------------------------------------


def test_doctor_passes_against_a_healthy_server(
    model_server: ModelServer, tmp_path: Path, make_repo
) -> None:
    repo = make_repo({"app.py": "def main():\n    pass\n"})
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: manager
    litellm_params: {{model: ollama_chat/qwen3:30b, api_base: "{model_server.url}", num_ctx: 16384}}
  - model_name: worker
    litellm_params: {{model: ollama/llama3.2, api_base: "{model_server.url}"}}
local_brain: {{model: manager, worker: worker}}
""",
        ollama=model_server.url,
    )

    started = time.monotonic()
    checks = run_doctor(settings, repo)
    elapsed = time.monotonic() - started

    assert failed(checks) == {}
    assert elapsed < 2.0
    names = by_name(checks)
    assert {
        "config",
        f"endpoint {model_server.url}",
        "default model",
        "model manager",
        "model worker",  # llama3.2 is installed as llama3.2:latest
        "context manager",
        "git",
        "repository",
        "ripgrep",
        "tree-sitter grammars",
    } <= set(names)
    assert str(tmp_path / "config.yaml") in names["config"].detail
    assert "16384" in names["context manager"].detail  # the deployment's own num_ctx
    assert "32768" in names["context manager"].detail
    assert "git repository" in names["repository"].detail
    document = doctor_document(checks)
    assert document["ok"] is True
    assert json.loads(json.dumps(document))["checks"][0] == names["config"].as_dict()
    assert format_doctor(checks).splitlines()[-1] == f"All {len(checks)} checks passed."


def test_doctor_picks_the_default_model_when_none_is_configured(
    model_server: ModelServer, tmp_path: Path
) -> None:
    checks = by_name(run_doctor(settings_for(tmp_path, ollama=model_server.url), None))

    assert "packaged defaults only" in checks["config"].detail
    assert checks["default model"].ok and "qwen2.5-coder:7b" in checks["default model"].detail
    assert checks["context qwen2.5-coder:7b"].ok
    assert "8192" in checks["context qwen2.5-coder:7b"].detail
    assert "repository" not in checks


def test_doctor_without_model_or_server_says_why(tmp_path: Path) -> None:
    dead = closed_port_url()
    checks = run_doctor(settings_for(tmp_path, ollama=dead), None)

    bad = failed(checks)
    assert set(bad) == {f"endpoint {dead}", "default model"}
    assert "refused" in bad["default model"].detail
    assert "ollama serve" in (bad["default model"].fix or "")
    assert "ollama serve" in (bad[f"endpoint {dead}"].fix or "")
    text = format_doctor(checks)
    assert f"✗ endpoint {dead}" in text and "fix: start Ollama with `ollama serve`" in text
    assert text.splitlines()[-1] == f"2 of {len(checks)} checks failed."


def test_doctor_reports_a_dead_endpoint(model_server: ModelServer, tmp_path: Path) -> None:
    dead = closed_port_url()
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: remote
    litellm_params: {{model: ollama_chat/qwen3:30b, api_base: "{dead}"}}
  - model_name: vllm
    litellm_params: {{model: hosted_vllm/qwen3:30b, api_base: "{closed_port_url()}/v1"}}
local_brain: {{model: remote}}
""",
        ollama=model_server.url,
    )

    started = time.monotonic()
    bad = failed(run_doctor(settings, None))
    assert time.monotonic() - started < 2.0

    assert set(bad) == {
        f"endpoint {dead}",
        next(name for name in bad if name.endswith("/v1")),
        "model remote",
        "model vllm",
        "context remote",
    }
    assert "not reachable: connection refused" in bad[f"endpoint {dead}"].detail
    assert "ollama serve" in (bad[f"endpoint {dead}"].fix or "")
    vllm_endpoint = next(check for name, check in bad.items() if name.endswith("/v1"))
    assert "OpenAI-compatible" in vllm_endpoint.detail
    assert "check api_base" in (vllm_endpoint.fix or "")
    assert "not reachable" in bad["model remote"].detail
    assert not model_server.requests_to("/api/show")  # nothing to ask a dead server


def test_doctor_reports_a_missing_model_with_the_pull_command(
    model_server: ModelServer, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: big
    litellm_params: {{model: ollama_chat/qwen9:70b, api_base: "{model_server.url}"}}
local_brain: {{model: big, worker: qwen2.5:3b, agents: {{git_ops: {{model: nope:1b}}}}}}
""",
        ollama=model_server.url,
    )

    checks = run_doctor(settings, None)

    bad = failed(checks)
    assert set(bad) == {"model big", "model nope:1b", "context big"}
    assert "qwen9:70b is not on" in bad["model big"].detail
    assert "qwen3:30b" in bad["model big"].detail  # what the server does have
    assert bad["model big"].fix == "ollama pull qwen9:70b"
    assert bad["model nope:1b"].fix == "ollama pull nope:1b"
    assert "not installed" in bad["context big"].detail
    assert by_name(checks)["model qwen2.5:3b"].ok
    assert "fix: ollama pull qwen9:70b" in format_doctor(checks)


def test_doctor_checks_openai_compatible_servers(model_server: ModelServer, tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: served
    litellm_params: {{model: hosted_vllm/qwen2.5:3b, api_base: "{model_server.openai_url}"}}
  - model_name: absent
    litellm_params: {{model: openai/not-loaded, api_base: "{model_server.openai_url}",
                      api_key: {SECRET}}}
  - model_name: cloud
    litellm_params: {{model: groq/llama-3.3-70b-versatile, api_key: {SECRET}}}
local_brain: {{model: served}}
""",
        ollama=model_server.url,
    )

    checks = run_doctor(settings, None)

    bad = failed(checks)
    assert set(bad) == {"model absent"}
    names = by_name(checks)
    assert names["model served"].ok and "available" in names["model served"].detail
    assert "not checked" in names["model cloud"].detail
    assert "not an Ollama model" in names["context served"].detail
    assert SECRET not in json.dumps(doctor_document(checks))
    models_calls = model_server.requests_to("/v1/models")
    assert models_calls and models_calls[0].headers.get("authorization") == f"Bearer {SECRET}"


def test_doctor_says_a_num_ctx_larger_than_the_model_is_clamped(
    model_server: ModelServer, tmp_path: Path
) -> None:
    model_server.installed.append(FakeModel("tiny:1b", context_length=2048))
    too_big = settings_for(
        tmp_path, "local_brain: {model: tiny:1b, num_ctx: 4096}\n", ollama=model_server.url
    )

    context = by_name(run_doctor(too_big, None))["context tiny:1b"]

    assert context.ok  # every run clamps it to the model's own window
    assert "num_ctx 4096 is more than tiny:1b's 2048 tokens: runs use 2048" in context.detail

    fitting = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: tiny
    litellm_params: {{model: ollama_chat/tiny:1b, api_base: "{model_server.url}", num_ctx: 2048}}
local_brain: {{model: tiny, num_ctx: 4096}}
""",
        ollama=model_server.url,
    )
    context = by_name(run_doctor(fitting, None))["context tiny"]
    assert context.ok and "2048" in context.detail


def test_an_unused_default_server_does_not_fail_the_doctor(
    model_server: ModelServer, tmp_path: Path
) -> None:
    dead = closed_port_url()
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: main
    litellm_params: {{model: ollama_chat/qwen3:30b, api_base: "{model_server.url}"}}
local_brain: {{model: main}}
""",
        ollama=dead,
    )

    checks = run_doctor(settings, None)

    assert failed(checks) == {}
    assert "not needed" in by_name(checks)[f"endpoint {dead}"].detail


def test_a_hanging_server_is_given_up_on_quickly(model_server: ModelServer, tmp_path: Path) -> None:
    model_server.route_faults["/api/tags"] = Fault.hang(30)
    settings = settings_for(tmp_path, ollama=model_server.url)

    started = time.monotonic()
    bad = failed(run_doctor(settings, None))
    assert time.monotonic() - started < 3.5

    assert "no answer within" in bad[f"endpoint {model_server.url}"].detail
    assert "default model" in bad


def test_doctor_knows_every_litellm_provider(
    model_server: ModelServer, tmp_path: Path, monkeypatch
) -> None:
    """A provider litellm knows (here ai21) is hosted by it, not an Ollama model to pull."""
    monkeypatch.setenv("AI21_API_KEY", "ai21-key")
    settings = settings_for(
        tmp_path, "local_brain: {model: ai21/jamba-1.5-mini}\n", ollama=model_server.url
    )

    checks = by_name(run_doctor(settings, None))

    assert failed(list(checks.values())) == {}
    assert checks["model ai21/jamba-1.5-mini"].detail == "hosted by ai21 (key set), not checked"
    assert "not an Ollama model" in checks["context ai21/jamba-1.5-mini"].detail
    assert not model_server.requests_to("/api/show")


def test_doctor_reports_a_bad_root_as_a_failed_check(
    model_server: ModelServer, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from local_brain.cli import cli

    missing = tmp_path / "nonexistent"
    result = CliRunner().invoke(
        cli,
        ["doctor", "--json", "--root", str(missing)],
        env={"HOME": str(tmp_path), "OLLAMA_API_BASE": model_server.url},
    )

    assert result.exit_code == 1, result.output
    checks = {check["name"]: check for check in json.loads(result.output)["checks"]}
    assert checks["repository"]["ok"] is False
    assert str(missing) in checks["repository"]["detail"]
    assert [name for name, check in checks.items() if not check["ok"]] == ["repository"]


# -- config -------------------------------------------------------------------------------


def test_config_view_masks_secrets_and_lists_files(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        f"""
model_list:
  - model_name: team
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: {SECRET}
      api_base: https://alice:hunter2@llm.example.com/v1
      max_tokens: 4096
      aws_secret_access_key: abc
  - model_name: proxy
    litellm_params: {{model: litellm_proxy/worker, api_base: "http://gpu:4000/?token=t0ps3cr3t"}}
litellm_settings: {{callbacks: [langfuse], langfuse_public_key: pk-lf-0123456789}}
local_brain: {{model: team, num_ctx: 16384}}
""",
        ollama="http://bob:pw@ollama.lan:11434",
    )

    view = config_view(settings)

    params = view["model_list"][0]["litellm_params"]
    assert params["api_key"] == "****3456"
    assert params["api_base"] == "https://****@llm.example.com/v1"
    assert params["max_tokens"] == 4096  # a number, not a secret
    assert params["aws_secret_access_key"] == "****"
    assert view["model_list"][1]["litellm_params"]["api_base"] == "http://gpu:4000/?token=****"
    assert view["litellm_settings"]["langfuse_public_key"] == "****6789"
    assert view["ollama_api_base"] == "http://****@ollama.lan:11434"
    assert view["local_brain"]["model"] == "team" and view["local_brain"]["num_ctx"] == 16384
    assert view["local_brain"]["max_steps"] == 15
    assert view["config_files"] == [str(tmp_path / "config.yaml")]
    assert settings.model_list[0]["litellm_params"]["api_key"] == SECRET  # not modified

    text = format_config(view)
    for secret in (SECRET, "hunter2", "t0ps3cr3t", "pk-lf-0123456789", "pw@"):
        assert secret not in text
        assert secret not in json.dumps(view)
    assert text.startswith(f"# from: {tmp_path / 'config.yaml'}\n")
    assert yaml.safe_load(text)["router_settings"]["num_retries"] == 1


def test_config_view_with_packaged_defaults_only(tmp_path: Path) -> None:
    view = config_view(settings_for(tmp_path))
    assert view["config_files"] == [] and view["model_list"] == []
    assert format_config(view).startswith("# from: packaged defaults only\n")


def test_mask_url_leaves_plain_urls_alone() -> None:
    assert mask_url("http://localhost:11434") == "http://localhost:11434"
    assert mask_url("https://u@h/x?a=1&api_key=zz") == "https://****@h/x?a=1&api_key=****"


def test_inspect_never_imports_the_model_stack(model_server: ModelServer, tmp_path: Path) -> None:
    script = (
        "import sys, json\n"
        "from local_brain.config import load_settings\n"
        "from local_brain.doctor import run_doctor\n"
        "from local_brain.inventory import describe_models, config_view\n"
        "s = load_settings()\n"
        "describe_models(s); run_doctor(s, None); config_view(s)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('litellm', 'smolagents'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "OLLAMA_API_BASE": model_server.url, "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_a_failing_server_is_reported_not_raised(model_server: ModelServer, tmp_path: Path) -> None:
    settings = settings_for(tmp_path, ollama=model_server.url)
    model_server.route_faults["/api/tags"] = Fault.status(500, "boom")
    data = describe_models(settings)
    assert (data["reachable"] is False and "500" in data["error"]) or "Internal" in data["error"]
    assert (
        "Internal Server Error"
        in by_name(run_doctor(settings))[f"endpoint {model_server.url}"].detail
    )

    model_server.route_faults["/api/tags"] = Fault.garbage("[1, 2]")
    assert describe_models(settings)["error"] == "unexpected answer to GET /api/tags"
    assert not by_name(run_doctor(settings))[f"endpoint {model_server.url}"].ok


def test_git_checks_run_git_as_the_git_tools_do(make_repo, monkeypatch) -> None:
    # The user's GIT_* variables are dropped, as the hardened runner drops them: a stray
    # GIT_DIR must not make doctor call a repository "not a git repository".
    from local_brain.toolchain import git_check, repository_check

    repo = make_repo({"app.py": "x = 1\n"})
    monkeypatch.setenv("GIT_DIR", "/nonexistent")
    assert repository_check(repo).detail == f"{repo} (git repository)"
    assert git_check().detail.startswith("git version")


# -- through the CLI: models and doctor as a newcomer meets them (issue 16) ----------------


def test_models_writes_an_unreachable_server_to_stderr(cli, tmp_path: Path) -> None:
    dead = closed_port_url()

    result = cli("models", env={"OLLAMA_API_BASE": dead, "HOME": str(tmp_path)})

    assert result.returncode == 3
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert (
        lines[0]
        == f"local-brain: error: cannot reach a model server at {dead} (connection refused)"
    )
    assert lines[1].startswith("local-brain: hint:") and len(lines) == 2

    as_json = cli("models", "--json", env={"OLLAMA_API_BASE": dead, "HOME": str(tmp_path)})
    assert as_json.returncode == 3
    document = json.loads(as_json.stdout)
    assert document["reachable"] is False and "refused" in document["error"]
    assert "cannot reach" in as_json.stderr


def test_models_lists_an_openai_compatible_server(
    cli, model_server: ModelServer, tmp_path: Path
) -> None:
    result = cli("models", "--api-base", model_server.openai_url, env={"HOME": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"OpenAI-compatible server at {model_server.openai_url}: 4 models"
    )
    assert "  qwen2.5:3b\n" in result.stdout and "Not Found" not in result.stdout
    assert model_server.requests_to("/v1/models")

    as_json = json.loads(cli("models", "--json", "--api-base", model_server.openai_url).stdout)
    assert as_json["kind"] == "openai" and as_json["reachable"] is True
    assert "qwen3:30b" in [model["name"] for model in as_json["installed"]]


def test_a_busy_server_is_reported_as_busy(cli, model_server: ModelServer, tmp_path: Path) -> None:
    model_server.route_faults["/api/tags"] = Fault.status(503, "server busy, please try again")

    result = cli("models", server=model_server, env={"HOME": str(tmp_path)})

    assert result.returncode == 3 and result.stdout == ""
    assert "is busy (HTTP 503" in result.stderr and "cannot reach" not in result.stderr

    doctor = cli("doctor", "--json", server=model_server, env={"HOME": str(tmp_path)})
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    endpoint = checks[f"endpoint {model_server.url}"]
    assert endpoint["ok"] is False and "busy" in endpoint["detail"]
    assert "not reachable" not in endpoint["detail"]


def _user_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xdg" / "local-brain" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_doctor_with_broken_yaml_still_runs_the_other_checks(
    cli, model_server: ModelServer, tmp_path: Path, make_repo
) -> None:
    repo = make_repo({"app.py": "x = 1\n"})
    path = _user_config(tmp_path, "local_brain:\n  model: qwen2.5:3b\n  agents: [oops\n")

    result = cli("doctor", "--root", str(repo), server=model_server,
                 env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})  # fmt: skip

    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("✗ config") and str(path) in first and " line " in first
    assert f"✓ endpoint {model_server.url}" in result.stdout  # the rest still ran
    assert "✓ repository" in result.stdout and "✓ git" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("1 of ")


def test_doctor_with_a_bad_value_names_its_line(
    cli, model_server: ModelServer, tmp_path: Path
) -> None:
    path = _user_config(tmp_path, "# mine\nlocal_brain:\n  model: qwen2.5:3b\n  max_steps: -1\n")

    result = cli("doctor", "--json", server=model_server,
                 env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})  # fmt: skip

    assert result.returncode == 1
    checks = json.loads(result.stdout)["checks"]
    assert checks[0]["name"] == "config" and checks[0]["ok"] is False
    assert f"config file {path} line 4: local_brain.max_steps" in checks[0]["detail"]
    assert any(check["name"].startswith("endpoint") and check["ok"] for check in checks)


def test_doctor_fails_a_cloud_model_without_its_key(
    cli, model_server: ModelServer, tmp_path: Path
) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(
        "model_list:\n  - model_name: cloud\n"
        "    litellm_params: {model: groq/llama-3.3-70b-versatile}\n"
    )

    result = cli("doctor", "--config", str(config), server=model_server)
    keyed = cli("doctor", "--config", str(config), server=model_server,
                env={"GROQ_API_KEY": "gsk-set"})  # fmt: skip

    assert result.returncode == 1
    assert "✗ model cloud" in result.stdout and "GROQ_API_KEY is not set" in result.stdout
    assert "fix: set GROQ_API_KEY" in result.stdout
    assert keyed.returncode == 0, keyed.stdout
    assert "hosted by groq (key set)" in keyed.stdout


def test_doctor_takes_a_model_and_api_base_like_a_run(
    cli, model_server: ModelServer, tmp_path: Path
) -> None:
    url = model_server.openai_url
    good = cli("doctor", "-m", "openai/qwen2.5:3b", "--api-base", url, server=model_server)
    absent = cli("doctor", "-m", "hosted_vllm/nope", "--api-base", url, server=model_server)

    assert good.returncode == 0, good.stdout
    assert f"✓ endpoint {url}" in good.stdout and "OpenAI-compatible, 4 models" in good.stdout
    assert "✓ model openai/qwen2.5:3b" in good.stdout and "API key" not in good.stdout
    assert absent.returncode == 1
    assert "✗ model hosted_vllm/nope" in absent.stdout and "qwen2.5:3b" in absent.stdout
