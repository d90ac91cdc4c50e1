"""Acceptance pass of issue #16 as a new user: the gaps found after the first round.

Each test is a message a newcomer met that was not one clear line with a hint that fits:
a command group typed alone, a usage error pointing at the wrong help, a JSON error
document printed for a command that said it ignores --json, a busy Ollama server called
unreachable, a cloud model without its key sent to the model stack (and offline, blamed on
the "model server"), a missing directory or config file without a hint.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import InProcessCli
from tests.fakes.model_server import Fault, ModelServer, closed_port_url
from tests.test_cli_newcomer import complete, one_error_line, run_fresh
from tests.test_e2e import LOCAL_BRAIN


def hint_line(stderr: str) -> str:
    hints = [line for line in stderr.splitlines() if line.startswith("local-brain: hint:")]
    assert len(hints) == 1, stderr
    return hints[0]


# -- Click's own errors -------------------------------------------------------------------


def test_a_command_group_alone_names_its_subcommands_in_one_line(cli: InProcessCli) -> None:
    result = cli("config")

    assert result.returncode == 2
    error = one_error_line(result.stderr)
    assert "Usage:" not in error and "--help" not in error  # not the help page in one line
    assert "path" in error and "show" in error
    assert "local-brain config --help" in hint_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "help_of"),
    [
        (["models", "--bogus"], "local-brain models --help"),
        (["tool"], "local-brain tool --help"),
        (["config", "show", "--bogus"], "local-brain config show --help"),
        (["--max-steps", "0", "Q?"], "local-brain --help"),
    ],
)
def test_a_usage_error_points_at_the_help_of_its_command(
    cli: InProcessCli, args: list[str], help_of: str
) -> None:
    result = cli(*args)

    assert result.returncode == 2
    one_error_line(result.stderr)
    assert hint_line(result.stderr) == f"local-brain: hint: see {help_of}"


def test_a_subcommand_that_ignores_json_prints_no_json_error(cli: InProcessCli) -> None:
    result = cli("--json", "config")

    assert result.returncode == 2
    assert "--json does not apply to `config`: ignored" in result.stderr
    assert result.stdout == ""  # it said --json is ignored: no document on stdout
    one_error_line(result.stderr)


def test_json_before_a_subcommand_that_takes_it_still_gets_the_document(
    cli: InProcessCli, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list: [\n")

    result = cli("--json", "config", "show", "--config", str(broken))

    assert result.returncode == 2
    assert '"exit_code": 2' in result.stdout


# -- a busy Ollama server is busy, not unreachable ----------------------------------------


def test_a_busy_ollama_server_is_called_busy_when_choosing_the_default_model(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.route_faults["/api/tags"] = Fault.status(503, "server busy")

    result = cli("--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 3
    assert "busy" in one_error_line(result.stderr)
    assert "ollama serve" not in result.stderr  # it is running: starting it is no fix
    assert "try again" in hint_line(result.stderr)
    assert model_server.chat_requests() == []


# -- a cloud model without its key fails at once, naming the key ---------------------------


@pytest.mark.parametrize(
    ("model", "variable"),
    [
        ("groq/llama-3.1-8b-instant", "GROQ_API_KEY"),
        ("litellm_proxy/worker", "LITELLM_PROXY_API_KEY"),
    ],
)
def test_a_cloud_model_without_its_key_fails_before_the_model_stack_loads(
    model_server: ModelServer, make_repo, monkeypatch: pytest.MonkeyPatch, model: str,
    variable: str,
) -> None:  # fmt: skip
    monkeypatch.delenv(variable, raising=False)
    repo = make_repo({"a.py": "x = 1\n"})

    status, litellm, smolagents, seconds, stderr = run_fresh(
        repo, "-m", model, "--api-base", model_server.openai_url, api_base=model_server.url
    )

    assert status == 3, stderr
    assert f"no API key for model {model}" in one_error_line(stderr)
    assert variable in hint_line(stderr)
    assert not litellm and not smolagents and seconds < 5
    assert model_server.requests == []


def test_a_cloud_model_with_its_key_in_the_config_is_not_refused(
    cli: InProcessCli, model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: team\n"
        f"    litellm_params: {{model: litellm_proxy/worker, api_base: '{model_server.openai_url}',"
        " api_key: sk-in-config}\n"
    )
    model_server.accept_any_model = True
    model_server.script(None, ['Thought: done.\n```python\nfinal_answer("x is 1")\n```'])

    result = cli("--config", str(config), "-m", "team", "--root", str(repo), "Q?")

    assert result.returncode == 0, result.stderr
    assert "x is 1" in result.stdout


# -- a host name that does not resolve is a connection problem -----------------------------


def test_a_host_that_does_not_resolve_is_unreachable_not_a_failing_server() -> None:
    import litellm

    from local_brain.models.failures import backend_error_from

    raised = litellm.InternalServerError(
        message="GroqException - [Errno -2] Name or service not known",
        llm_provider="groq",
        model="llama-3.1-8b-instant",
    )

    error = backend_error_from(raised, "groq/llama-3.1-8b-instant")

    assert error is not None and error.exit_status == 3
    assert error.message.startswith("cannot reach the model provider")
    assert "[Errno" not in error.message
    assert "network" in (error.hint or "")


# -- every bad path gets a hint -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--root", "/nonexistent/r16", "Q?"], "--root"),
        (["--config", "/nonexistent/r16.yaml", "Q?"], "local-brain config path"),
        (["--transcript", "/nonexistent/r16/run.jsonl", "Q?"], "directory"),
    ],
)
def test_a_path_that_does_not_exist_gets_a_hint(
    cli: InProcessCli, make_repo, args: list[str], hint: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli(*args, cwd=repo)

    assert result.returncode == 2
    one_error_line(result.stderr)
    assert hint in hint_line(result.stderr)


def test_a_broken_config_file_gets_a_hint(cli: InProcessCli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("model_list:\n  - {model_name: a\nbad: [\n")

    result = cli("--config", str(broken), "config", "show")

    assert result.returncode == 2
    assert f"invalid YAML in config file {broken} line" in one_error_line(result.stderr)
    assert "fix" in hint_line(result.stderr)


# -- the provider's text distilled, in plain words ----------------------------------------

NGINX_502 = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    "<h1>502 Bad Gateway</h1><hr>nginx</body></html>"
)


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_an_html_page_inside_a_json_error_is_distilled_to_its_title(
    cli: InProcessCli, model_server: ModelServer, make_repo, api: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    path = "/api/chat" if api == "ollama" else "/v1/chat/completions"
    model_server.route_faults[path] = Fault.status(502, NGINX_502)  # sent as {"error": page}
    model = "qwen3:30b" if api == "ollama" else "hosted_vllm/qwen3:30b"
    extra = [] if api == "ollama" else ["--api-base", model_server.openai_url]

    result = cli("-m", model, *extra, "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 3
    error = one_error_line(result.stderr)
    assert error.endswith("an HTML page: 502 Bad Gateway"), error
    assert "<" not in error


def test_one_line_that_is_not_a_chat_stream_is_singular(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, [Fault.garbage()] * 4)

    result = cli("-m", "qwen3:30b", "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 3
    assert "(1 line that is not JSON)" in one_error_line(result.stderr)


def test_a_fallback_notice_distills_an_html_page(
    cli: InProcessCli, model_server: ModelServer, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.script(None, ['Thought: done.\n```python\nfinal_answer("x is 1")\n```'])
    with ModelServer() as broken:
        broken.route_faults["/api/chat"] = Fault.status(502, NGINX_502)
        config = tmp_path / "config.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: primary\n"
            f"    litellm_params: {{model: ollama_chat/qwen3:30b, api_base: '{broken.url}'}}\n"
            "  - model_name: backup\n"
            f"    litellm_params: {{model: ollama_chat/qwen2.5:3b, api_base: '{model_server.url}'}}\n"
            "router_settings: {fallbacks: [{primary: [backup]}]}\n"
        )

        result = cli("--config", str(config), "-m", "primary", "--root", str(repo), "Q?")

    assert result.returncode == 0, result.stderr
    assert "x is 1" in result.stdout
    notice = "model primary failed (an HTML page: 502 Bad Gateway); backup took over"
    assert notice in result.stderr


# -- an option given an empty value ---------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "", "Q?"],
        ["--root", "", "Q?"],
        ["--config", "", "Q?"],
        ["--transcript", "", "Q?"],
        ["--api-base=", "-m", "qwen3:30b", "Q?"],
        ["doctor", "-m", ""],
    ],
)
def test_an_option_given_an_empty_value_is_a_usage_error(
    cli: InProcessCli, model_server: ModelServer, make_repo, args: list[str]
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli(*args, server=model_server, cwd=repo)

    assert result.returncode == 2, result.stderr
    name = args[args.index("") - 1] if "" in args else "--api-base"
    assert f"{name} was given an empty value" in one_error_line(result.stderr)
    assert "leave it out" in hint_line(result.stderr)
    assert model_server.chat_requests() == []


def test_an_empty_question_after_a_flag_is_still_the_empty_question(cli: InProcessCli) -> None:
    result = cli("--json", "")

    assert result.returncode == 2
    assert "the question is empty" in one_error_line(result.stderr)


def test_no_question_at_all_gets_a_hint(cli: InProcessCli) -> None:
    result = cli()

    assert result.returncode == 2
    assert "no prompt" in one_error_line(result.stderr)
    assert "local-brain --help" in hint_line(result.stderr)


def test_blank_standard_input_is_an_empty_question_with_a_hint(make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    completed = subprocess.run(
        [LOCAL_BRAIN, "--root", str(repo), "-m", "qwen2.5:3b"], input=b"  \n\n",
        capture_output=True, text=False, timeout=60,
        env={**os.environ, "OLLAMA_API_BASE": closed_port_url()},
    )  # fmt: skip

    stderr = completed.stderr.decode()
    assert completed.returncode == 2
    assert "the question is empty" in one_error_line(stderr)
    assert "pass it as the argument" in hint_line(stderr)


# -- `local-brain tool` -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["read_fil", "path=a.py"], "unknown tool 'read_fil'", "did you mean 'read_file'?"),
        (["nosuch"], "unknown tool 'nosuch'", "the tools: read_file, list_directory"),
        (["read_file", "a.py"], "key=value pairs, got 'a.py'", "local-brain tool read_file path=a.py"),
        (["git_status", "x"], "key=value pairs, got 'x'", "git_status takes no arguments"),
    ],
)  # fmt: skip
def test_a_mistyped_tool_call_gets_a_hint(
    cli: InProcessCli, make_repo, args: list[str], error: str, hint: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli("tool", *args, "--root", str(repo))

    assert result.returncode == 2
    assert error in one_error_line(result.stderr)
    assert hint in hint_line(result.stderr)


# -- a mistyped provider prefix is not an Ollama model to pull --------------------------------


def test_a_mistyped_provider_is_named_not_pulled(
    cli: InProcessCli, model_server: ModelServer, make_repo
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli("-m", "ollma/qwen3:30b", "--root", str(repo), "Q?", server=model_server)

    assert result.returncode == 3
    assert "does not have ollma/qwen3:30b" in one_error_line(result.stderr)
    assert hint_line(result.stderr).startswith(
        "local-brain: hint: did you mean ollama/qwen3:30b? ('ollma' is not a litellm provider)"
    )


@pytest.mark.parametrize(
    ("model", "hint"),
    [
        ("hosted_vlm/qwen3:30b", "did you mean hosted_vllm/qwen3:30b?"),
        ("qwen3:30b", "name the server's model as hosted_vllm/NAME"),
    ],
)
def test_an_ollama_name_at_a_server_that_is_not_ollama_fails_at_once(
    model_server: ModelServer, make_repo, model: str, hint: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    status, litellm, _, seconds, stderr = run_fresh(
        repo, "-m", model, "--api-base", model_server.openai_url, api_base=model_server.url
    )

    assert status == 3, stderr
    assert "is not an Ollama server (no /api/tags)" in one_error_line(stderr)
    assert hint in hint_line(stderr)
    assert "ollama pull" not in stderr
    assert not litellm and seconds < 5
    assert model_server.chat_requests() == []


def test_quiet_before_a_subcommand_is_dropped_without_a_notice(cli: InProcessCli) -> None:
    result = cli("-q", "--json", "tools")

    assert result.returncode == 0
    assert result.stderr == ""  # -q asked for nothing but the output
    assert result.stdout.startswith("read_file(")


def test_an_ignored_option_is_still_named_without_quiet(cli: InProcessCli) -> None:
    result = cli("--json", "tools")

    assert result.returncode == 0
    assert result.stderr == "local-brain: --json does not apply to `tools`: ignored\n"


# -- the README and --help agree ----------------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_option_in_the_readme_table_is_in_help_and_back(cli: InProcessCli) -> None:
    text = README.read_text(encoding="utf-8")
    table = text.split("Options (`local-brain --help`):", 1)[1].split("\n\n", 2)[1]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = {
        name for cell in first_cells for name in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", cell)
    }
    help_text = cli("--help").stdout
    listed = set(re.findall(r"^\s+(?:(-\w), )?(--[a-z][a-z-]*)", help_text, re.MULTILINE))
    in_help = {name for pair in listed for name in pair if name}

    assert len(documented) > 10, table
    assert documented - in_help == set()  # the README promises no flag that does not exist
    elsewhere = {"-h", "--help", "--continue", "--session"}  # README: Follow-up questions
    assert in_help - documented - elsewhere == set()
    assert "--continue" in text and "--session" in text
    assert "(default: 15)" in help_text and "(default: 30)" in help_text


def test_the_defaults_help_shows_are_the_real_ones(cli: InProcessCli) -> None:
    shown = json.loads(cli("config", "show", "--json").stdout)["local_brain"]

    assert shown["max_steps"] == 15 and shown["step_timeout"] == 30


def test_the_exit_codes_in_help_match_the_readme(cli: InProcessCli) -> None:
    from local_brain.errors import ExitStatus

    text = README.read_text(encoding="utf-8").split("## Exit codes", 1)[1].split("##", 1)[0]
    codes = {int(code) for code in re.findall(r"^\| (\d+) \|", text, re.MULTILINE)}
    help_text = " ".join(cli("--help").stdout.split())

    assert codes == {int(status) for status in ExitStatus}
    for status in codes:
        assert f"{status} " in help_text.split("Exit codes:", 1)[1]


@pytest.mark.parametrize(
    ("steps", "cause"),
    [
        ("1", "the model's reply was unusable (it held no code block to run)"),
        ("2", "the model's replies were unusable (none of its 2 held a code block)"),
    ],
)
def test_unusable_output_is_worded_for_one_reply_and_for_several(
    cli: InProcessCli, model_server: ModelServer, make_repo, steps: str, cause: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    model_server.responder = lambda request: "I think it is in the billing code."  # no code

    result = cli("-m", "qwen2.5:3b", "--max-steps", steps, "--root", str(repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 1
    step_word = "1 step" if steps == "1" else "2 steps"
    assert one_error_line(result.stderr).endswith(f"no answer after {step_word}: {cause}")
    assert "local-brain eval" in hint_line(result.stderr)


# -- a server address without http:// --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "error", "hint"),
    [
        (["-m", "hosted_vllm/qwen3:30b", "--api-base", "127.0.0.1:8000/v1", "Q?"], {},
         "--api-base 127.0.0.1:8000/v1: not a URL", "--api-base http://127.0.0.1:8000/v1"),
        (["-m", "qwen3:30b", "--api-base", "localhost:11434", "Q?"], {},
         "--api-base localhost:11434: not a URL", "--api-base http://localhost:11434"),
        (["Q?"], {"OLLAMA_API_BASE": "localhost:11434"},
         "OLLAMA_API_BASE=localhost:11434: not a URL", "OLLAMA_API_BASE=http://localhost:11434"),
        (["models", "--api-base", "gpu:8000/v1"], {},
         "--api-base gpu:8000/v1: not a URL", "--api-base http://gpu:8000/v1"),
    ],
)  # fmt: skip
def test_a_server_address_without_a_scheme_is_a_usage_error(
    cli: InProcessCli, make_repo, args: list[str], env: dict[str, str], error: str, hint: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli(*args, cwd=repo, env=env)

    assert result.returncode == 2, result.stderr
    assert error in one_error_line(result.stderr)
    assert hint in hint_line(result.stderr)
    assert "internal error" not in result.stderr


def test_a_config_api_base_without_a_scheme_names_its_model(
    cli: InProcessCli, make_repo, tmp_path: Path
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpu\n"
        "    litellm_params: {model: hosted_vllm/qwen3, api_base: 'gpu-box:8000/v1'}\n"
    )

    result = cli("--config", str(config), "-m", "gpu", "--root", str(repo), "Q?")

    assert result.returncode == 2
    assert "model gpu: api_base gpu-box:8000/v1 is not a URL" in one_error_line(result.stderr)
    assert "http://gpu-box:8000/v1" in hint_line(result.stderr)


def test_doctor_names_an_address_without_a_scheme(cli: InProcessCli, make_repo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})

    result = cli("doctor", "--json", "--root", str(repo),
                 env={"OLLAMA_API_BASE": "localhost:11434"})  # fmt: skip

    checks = {check["name"]: check for check in json.loads(result.stdout)["checks"]}
    endpoint = checks["endpoint localhost:11434"]
    assert result.returncode == 1
    assert not endpoint["ok"] and "not a URL" in endpoint["detail"]
    assert endpoint["fix"] == "write the address as a URL: http://localhost:11434"


# -- completion after options ---------------------------------------------------------------


def test_completion_offers_subcommands_after_leading_options(cli: InProcessCli) -> None:
    assert complete(cli, "local-brain --json do") == ["doctor"]
    assert "tool" in complete(cli, "local-brain --root /tmp ")
    doctor_options = complete(cli, "local-brain --json doctor --")
    assert "--model" in doctor_options and "--multi-agent" not in doctor_options
    assert complete(cli, "local-brain --root /tmp tool rea") == ["read_file"]
    assert "--max-steps" in complete(cli, "local-brain why --")  # a question: its options
