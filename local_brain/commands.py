"""The subcommands (`tools`, `tool`, `models`, `doctor`, `config`, `mcp`) and the options and
input helpers they share with the main command in ``cli.py``.

Kept light on imports: ``tools``, ``tool`` and ``config`` never import litellm or smolagents.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from local_brain.errors import ExitStatus, LocalBrainError, UsageError
from local_brain.fsguard import find_program

# -- options shared with the main command -------------------------------------------------

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Repository to explore. Default: the git top-level of the current directory, "
    "else the current directory.",
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (LiteLLM proxy format). Also LOCAL_BRAIN_CONFIG.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


def model_options(command: Any) -> Any:
    """The model and limit flags shared by the main command and `mcp`. The command gets
    ``root``, ``config_file`` and ``multi_agent``, and the rest as ``**model_flags`` for
    :func:`model_settings`."""
    options = [
        click.option(
            "-m", "--model", help="Model: a config model group, provider/model, or an Ollama name."
        ),
        click.option(
            "--multi-agent", is_flag=True, help="Team mode: a manager delegating to helpers."
        ),
        click.option("--manager", help="Team mode: the manager's model (implies --multi-agent)."),
        click.option("--worker", help="Team mode: the helpers' model (implies --multi-agent)."),
        root_option,
        config_option,
        click.option("--api-base", help="Server URL for the model (e.g. http://gpu-box:11434)."),
        click.option(
            "--max-steps",
            type=click.IntRange(1, 200),
            help="Agent steps before giving up (default: 15).",
        ),
        click.option(
            "--step-timeout",
            type=click.FloatRange(0.1, 3600),
            help="Seconds allowed for one step of model-written code (default: 30).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load(config_file: Path | None, **flags: Any) -> Any:
    """Settings from every layer, ``flags`` on top."""
    from local_brain.config import load_settings

    return load_settings(str(config_file) if config_file else None, **flags)


def model_settings(
    config_file: Path | None, multi_agent: bool, **model_flags: Any
) -> tuple[Any, bool]:
    """Settings from the model flags, and whether they ask for team mode."""
    team = multi_agent or bool(model_flags.get("manager")) or bool(model_flags.get("worker"))
    return check_urls(load(config_file, **model_flags)), team


def check_urls(settings: Any) -> Any:
    """Refuse a server address without http:// or https:// (``localhost:11434``, as Ollama's
    own OLLAMA_HOST allows): left alone it fails late, as "cannot reach" or worse."""
    from local_brain.errors import ConfigError

    def bad(url: Any) -> bool:
        return isinstance(url, str) and not url.lower().startswith(("http://", "https://"))

    if bad(settings.api_base):
        raise UsageError(
            f"--api-base {settings.api_base}: not a URL (it needs http:// or https://)",
            hint=f"e.g. --api-base http://{settings.api_base}",
        )
    if bad(settings.ollama_api_base):
        raise ConfigError(
            f"OLLAMA_API_BASE={settings.ollama_api_base}: not a URL (it needs http:// or https://)",
            hint=f"e.g. export OLLAMA_API_BASE=http://{settings.ollama_api_base}",
        )
    for entry in settings.model_list:
        url = (entry.get("litellm_params") or {}).get("api_base")
        if bad(url):
            raise ConfigError(
                f"model {entry.get('model_name')}: api_base {url} is not a URL (it needs "
                "http:// or https://)",
                hint=f"write it as http://{url} in the config",
            )
    return settings


def choose_root(root: Path | None) -> Path:
    """--root as given (it must be a directory), else the git top-level of the current
    directory, else the current directory. The file system root and the home directory
    are refused unless named explicitly."""
    if root is not None:
        if not root.exists():
            raise UsageError(
                f"--root {root}: no such directory",
                hint="give --root an existing directory, or leave it out to use the git "
                "top-level of the current directory",
            )
        if not root.is_dir():
            raise UsageError(
                f"--root {root}: not a directory", hint="give --root the repository's directory"
            )
        return root.resolve()
    cwd = Path.cwd()
    git = find_program("git", cwd) or "git-not-found"  # never a git committed in the tree
    try:
        top = subprocess.run(
            [git, "-c", "core.fsmonitor=false", "rev-parse", "--show-toplevel"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        top = ""
    chosen = Path(top).resolve() if top else cwd.resolve()
    if chosen == Path(chosen.anchor) or chosen == Path.home().resolve():
        raise UsageError(
            f"refusing to explore {chosen} as a repository",
            hint="cd into a project, or pass --root explicitly",
        )
    return chosen


# -- tools --------------------------------------------------------------------------------


@click.command(name="tools")
def tools_command() -> None:
    """List the repository tools the model can call."""
    from local_brain.agents import prompt_line
    from local_brain.tools import all_tools

    for spec in all_tools().values():
        click.echo(prompt_line(spec))


def _tool_names(incomplete: str) -> list[str]:
    from local_brain.tools import all_tools

    return [name for name in all_tools() if name.startswith(incomplete)]


@click.command(name="tool", context_settings={"ignore_unknown_options": True})
@click.argument("name", shell_complete=lambda ctx, param, incomplete: _tool_names(incomplete))
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
@root_option
def tool_command(name: str, arguments: tuple[str, ...], root: Path | None) -> None:
    """Run one tool and print exactly what the model would see.

    ARGUMENTS are key=value pairs, e.g. `local-brain tool search_code pattern="def main"`.
    Exit 1 when the tool reports an error.
    """
    from local_brain.tools import all_tools
    from local_brain.workspace import Workspace

    specs = all_tools()
    if name not in specs:
        import difflib

        close = difflib.get_close_matches(name, list(specs), n=1, cutoff=0.6)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"unknown tool {name!r}", hint=f"{guess}the tools: {', '.join(specs)}")
    kwargs: dict[str, str] = {}
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep or not key:
            params = specs[name].params
            example = f"local-brain tool {name} {params[0].name}={argument}" if params else ""
            raise UsageError(
                f"tool arguments are key=value pairs, got {argument!r}",
                hint=f"e.g. {example}" if example else f"{name} takes no arguments",
            )
        kwargs[key] = value
    workspace = Workspace(choose_root(root))
    result = specs[name].run(workspace, **kwargs)
    click.echo(result.text)
    if not result.ok:
        sys.exit(ExitStatus.AGENT_FAILED)


# -- models, doctor, config ---------------------------------------------------------------


def _print(as_json: bool, document: Any, text: str, nl: bool = True) -> None:
    from local_brain import render

    if as_json:
        render.print_json(document)
    else:
        click.echo(text, nl=nl)


@click.command(name="models")
@config_option
@click.option(
    "--api-base",
    help="Model server URL: Ollama, or an OpenAI-compatible server such as "
    "http://host:8000/v1 (default: OLLAMA_API_BASE).",
)
@json_option
def models_command(config_file: Path | None, api_base: str | None, as_json: bool) -> None:
    """List the models the server has (Ollama, or OpenAI-compatible: /v1/models) and the
    model groups from config.

    Exit 3 when the server cannot be reached or is busy (one line on stderr).
    """
    from local_brain import inventory
    from local_brain.models import gguf_report

    settings = check_urls(load(config_file, api_base=api_base))
    data = inventory.describe_models(settings)
    data["gguf"] = gguf_report.describe(settings)  # in-process llamacpp/ models
    text = "\n".join(
        filter(None, [inventory.format_models(data), gguf_report.format_text(data["gguf"])])
    )
    if data["reachable"]:
        _print(as_json, data, "" if as_json else text)
        return
    failure = _server_failure(data)
    if not as_json:
        gguf_text = gguf_report.format_text(data["gguf"])
        if gguf_text:  # usable without the server: in-process GGUF models
            click.echo(gguf_text)
        raise failure  # one line and a hint on stderr, nothing else on stdout
    from local_brain import render

    _print(as_json, data, "")  # the whole document, "reachable": false
    render.print_error(failure.message, failure.hint)
    sys.exit(ExitStatus.BACKEND_UNAVAILABLE)


def _server_failure(data: dict[str, Any]) -> LocalBrainError:
    """Why `models` could not list the server's models, as an exit-3 error."""
    from local_brain.errors import BackendUnavailable
    from local_brain.models.ollama import BUSY_HINT

    server, error = data["server"], data["error"]
    if data.get("busy"):
        return BackendUnavailable(f"the model server at {server} is busy ({error})", BUSY_HINT)
    if str(error).startswith("neither Ollama"):
        return BackendUnavailable(
            f"the server at {server} answers, but lists no models: {error}",
            "check --api-base (an OpenAI-compatible server's URL usually ends in /v1)",
        )
    if server.rstrip("/").endswith("/v1"):
        hint = "start the server, or check --api-base"
    else:
        hint = "start it with `ollama serve`, or set OLLAMA_API_BASE / --api-base"
    return BackendUnavailable(f"cannot reach a model server at {server} ({error})", hint)


@click.command(name="doctor")
@click.option("-m", "--model", help="Check this model too, as a run with -m would use it.")
@click.option("--api-base", help="Server URL for the model, as for a run.")
@config_option
@root_option
@json_option
def doctor_command(
    model: str | None,
    api_base: str | None,
    config_file: Path | None,
    root: Path | None,
    as_json: bool,
) -> None:
    """Check the setup: config, endpoints, models, context size, git, search and grammars.

    A broken config file fails the config check; the other checks still run. Exit 0 only
    when every check passes, else 1.
    """
    from local_brain import doctor
    from local_brain.doctor_config import load_for_doctor

    settings, config_problem = load_for_doctor(config_file, model=model, api_base=api_base)
    try:
        workspace_root: Path | None = choose_root(root)
    except LocalBrainError:
        workspace_root = root  # a bad --root fails the repository check, with its path
    checks = doctor.run_doctor(settings, workspace_root, config_problem)
    _print(as_json, doctor.doctor_document(checks), doctor.format_doctor(checks))
    if not all(check.ok for check in checks):
        sys.exit(ExitStatus.AGENT_FAILED)


@click.group(name="config")
def config_group() -> None:
    """Show the effective configuration or where it comes from."""


@config_group.command(name="show")
@config_option
@json_option
def config_show(config_file: Path | None, as_json: bool) -> None:
    """The effective settings after every layer, with secrets masked."""
    from local_brain import inventory

    view = inventory.config_view(load(config_file))
    _print(as_json, view, "" if as_json else inventory.format_config(view), nl=False)


@config_group.command(name="path")
@config_option
def config_path(config_file: Path | None) -> None:
    """The user config file's path (first line), then each config file in effect."""
    from local_brain.config import user_config_path

    click.echo(str(user_config_path(os.environ)))
    for path in load(config_file).config_files:
        click.echo(str(path))


# -- mcp ----------------------------------------------------------------------------------


@click.command(name="mcp")
@model_options
def mcp_command(
    root: Path | None, config_file: Path | None, multi_agent: bool, **model_flags: Any
) -> None:
    """Serve the repository tools, ask and list_models over MCP (stdio).

    For Claude Code: claude mcp add local-brain -- local-brain mcp --root /path/to/repo
    """
    if importlib.util.find_spec("mcp") is None:
        raise UsageError("local-brain mcp needs the MCP SDK", hint="pip install 'local-brain[mcp]'")
    from local_brain.mcp_server import build_server
    from local_brain.workspace import Workspace

    workspace = Workspace(choose_root(root))
    settings, team = model_settings(config_file, multi_agent, **model_flags)
    build_server(workspace, settings, multi_agent=team).run(transport="stdio")


COMMANDS = (tools_command, tool_command, models_command, doctor_command, config_group, mcp_command)
