"""The `local-brain` command: flags -> Settings, call the runner, map errors to exit codes.

Kept light on imports: ``--help``, ``--version``, ``tools`` and ``tool`` never import
litellm or smolagents.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from local_brain import __version__
from local_brain.errors import ExitStatus, LocalBrainError, UsageError
from local_brain.fsguard import find_program

MAX_STDIN_CHARS = 100_000
MAX_PROMPT_CHARS = 20_000
DEFAULT_COMMAND = "ask"


class PromptFirstGroup(click.Group):
    """`local-brain [OPTIONS] PROMPT` runs the agent; `local-brain NAME ...` a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        group_flag = bool(args) and args[0] in ("--help", "-h", "--version")
        completing_command = ctx.resilient_parsing and not args  # offer command names
        if not group_flag and not completing_command and (not args or args[0] not in self.commands):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(
            "local-brain", "[OPTIONS] [PROMPT]\n       local-brain COMMAND [ARGS]..."
        )

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The main command's options (with --version) first, then the subcommands."""
        params = [*self.commands[DEFAULT_COMMAND].get_params(ctx), *self.get_params(ctx)]
        params = [param for param in params if isinstance(param, click.Option)]
        records = list(dict.fromkeys(filter(None, (p.get_help_record(ctx) for p in params))))
        with formatter.section("Options"):
            formatter.write_dl(records)
        self.format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Complete command names and the main command's options alike."""
        items = super().shell_complete(ctx, incomplete)
        return items + self.commands[DEFAULT_COMMAND].shell_complete(ctx, incomplete)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in super().list_commands(ctx) if name != DEFAULT_COMMAND]


@click.group(
    cls=PromptFirstGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Exit codes: 0 answered, 1 the agent could not finish, 2 usage or configuration "
        "error, 3 model backend unavailable, 130 interrupted."
    ),
)
@click.version_option(__version__, "--version", prog_name="local-brain")
def cli() -> None:
    """Answer questions about the repository you are in, with models on your own machine.

    PROMPT is the question; without it the question is read from standard input. With
    both, piped input is attached to the question as context:
    `git diff | local-brain "review this"`. Read-only: it never edits, commits or pushes.
    """


# -- the main command ---------------------------------------------------------------------

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


def _settings(config_file: Path | None, **flags: Any) -> Any:
    from local_brain.config import load_settings

    return load_settings(str(config_file) if config_file else None, **flags)


def model_options(command: Any) -> Any:
    """The model and limit flags shared by the main command and `mcp`."""
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
            "--max-steps", type=click.IntRange(1, 200), help="Agent steps before giving up."
        ),
        click.option(
            "--step-timeout",
            type=click.FloatRange(0.1, 3600),
            help="Seconds allowed for one step of model-written code.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _model_settings(config_file: Path | None, multi_agent: bool, **flags: Any) -> tuple[Any, bool]:
    """Settings from the model flags, and whether they ask for team mode."""
    team = multi_agent or bool(flags.get("manager")) or bool(flags.get("worker"))
    return _settings(config_file, **flags), team


@cli.command(name=DEFAULT_COMMAND, hidden=True)
@click.argument("prompt", required=False)
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option(
    "--transcript",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the run's events as JSON Lines to this file.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show each step's code and output on stderr.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Print nothing but the answer (errors still go to stderr)."
)
def ask(
    prompt: str | None,
    model: str | None,
    multi_agent: bool,
    manager: str | None,
    worker: str | None,
    root: Path | None,
    config_file: Path | None,
    api_base: str | None,
    max_steps: int | None,
    step_timeout: float | None,
    as_json: bool,
    transcript: Path | None,
    verbose: bool,
    quiet: bool,
) -> None:
    """Answer PROMPT about the repository."""
    from local_brain import render
    from local_brain.events import Fanout
    from local_brain.runner import run
    from local_brain.transcript import Transcript
    from local_brain.workspace import Workspace

    task = read_prompt(prompt)
    workspace = Workspace(choose_root(root))
    settings, team = _model_settings(
        config_file,
        multi_agent,
        model=model,
        manager=manager,
        worker=worker,
        api_base=api_base,
        max_steps=max_steps,
        step_timeout=step_timeout,
    )
    sinks = Fanout()
    live = None
    if not quiet:
        if sys.stderr.isatty() and not as_json and not os.environ.get("NO_COLOR"):
            live = render.LiveProgress(verbose=verbose)
            sinks.sinks.append(live)
        else:
            sinks.sinks.append(render.StepPrinter(verbose=verbose, show_steps=verbose))
    recorder = None
    if transcript is not None:
        if not transcript.resolve().parent.is_dir():
            raise UsageError(f"--transcript {transcript}: its directory does not exist")
        recorder = Transcript(transcript)
        models = {"model": settings.model, "manager": settings.manager, "worker": settings.worker}
        recorder.start(
            task=task, root=workspace.root, mode="team" if team else "solo", models=models
        )
        sinks.sinks.append(recorder)
    try:
        with live or contextlib.nullcontext():
            result = run(task, settings, workspace, on_event=sinks, multi_agent=team)
    except LocalBrainError as error:
        if recorder is not None:
            recorder.finish(
                exit_code=int(error.exit_status), message=error.message, hint=error.hint
            )
        raise
    except KeyboardInterrupt:
        if recorder is not None:
            recorder.finish(exit_code=int(ExitStatus.INTERRUPTED), message="interrupted")
        raise
    document = render.result_document(result)
    if recorder is not None:
        details = {
            key: value for key, value in document.items() if key not in ("answer", "exit_code")
        }
        recorder.finish(exit_code=0, answer=result.answer, **details)
    if as_json:
        render.print_json(document)
    else:
        render.print_answer(result.answer)
    if not quiet:
        render.print_notice(result.usage.summary_line())


def read_prompt(prompt: str | None) -> str:
    """The question from the argument and/or piped standard input."""
    piped = _read_piped_stdin() if prompt in (None, "-") or _stdin_is_piped() else None
    if prompt in (None, "-"):
        if piped is None:
            raise UsageError("no prompt: pass a question, or pipe one on standard input")
        task = piped
    else:
        if len(prompt) > MAX_PROMPT_CHARS:
            from local_brain.render import print_notice

            print_notice(f"the prompt was cut to its first {MAX_PROMPT_CHARS} characters")
            prompt = prompt[:MAX_PROMPT_CHARS] + " […prompt truncated by local-brain]"
        task = prompt
        if piped and piped.strip():
            task = (
                f"{prompt}\n\n--- context from standard input ---\n{piped}\n--- end of context ---"
            )
    if not task.strip():
        raise UsageError("the prompt is empty")
    return task


def _stdin_is_piped() -> bool:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _read_piped_stdin() -> str | None:
    if sys.stdin is None or sys.stdin.isatty() or not _stdin_is_piped():
        return None
    data = sys.stdin.buffer.read(MAX_STDIN_CHARS * 4 + 1).decode("utf-8", errors="replace")
    if len(data) > MAX_STDIN_CHARS:
        from local_brain.render import print_notice

        print_notice(f"standard input cut to its first {MAX_STDIN_CHARS} characters")
        data = data[:MAX_STDIN_CHARS] + "\n[… input truncated by local-brain]"
    from local_brain.redact import redact

    cleaned = redact(data)  # a piped diff can carry a committed key, like any tool output
    if cleaned.count:
        from local_brain.render import print_notice

        print_notice(f"{cleaned.count} secret(s) in standard input withheld from the model")
    return cleaned.text


def choose_root(root: Path | None) -> Path:
    """--root as given (it must be a directory), else the git top-level of the current
    directory, else the current directory. The file system root and the home directory
    are refused unless named explicitly."""
    if root is not None:
        if not root.exists():
            raise UsageError(f"--root {root}: no such directory")
        if not root.is_dir():
            raise UsageError(f"--root {root}: not a directory")
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


@cli.command(name="tools")
def tools_command() -> None:
    """List the repository tools the model can call."""
    from local_brain.agents import prompt_line
    from local_brain.tools import all_tools

    for spec in all_tools().values():
        click.echo(prompt_line(spec))


@cli.command(name="tool", context_settings={"ignore_unknown_options": True})
@click.argument("name")
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
        raise UsageError(f"unknown tool {name!r}; choose from {', '.join(specs)}")
    kwargs: dict[str, str] = {}
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep or not key:
            raise UsageError(f"tool arguments are key=value pairs, got {argument!r}")
        kwargs[key] = value
    workspace = Workspace(choose_root(root))
    output = specs[name].run(workspace, **kwargs)
    click.echo(output)
    if output.startswith("Error: "):
        sys.exit(ExitStatus.AGENT_FAILED)


# -- models, doctor, config ---------------------------------------------------------------


@cli.command(name="models")
@config_option
@click.option("--api-base", help="Ollama server URL (default: OLLAMA_API_BASE).")
@json_option
def models_command(config_file: Path | None, api_base: str | None, as_json: bool) -> None:
    """List the models the Ollama server has and the model groups from config.

    Exit 3 when the server cannot be reached.
    """
    from local_brain import inventory, render

    data = inventory.describe_models(_settings(config_file, api_base=api_base))
    if as_json:
        render.print_json(data)
    else:
        click.echo(inventory.format_models(data))
    if not data["reachable"]:
        sys.exit(ExitStatus.BACKEND_UNAVAILABLE)


@cli.command(name="doctor")
@config_option
@root_option
@json_option
def doctor_command(config_file: Path | None, root: Path | None, as_json: bool) -> None:
    """Check the setup: config, endpoints, models, context size, git, search and grammars.

    Exit 0 only when every check passes, else 1.
    """
    from local_brain import doctor, render

    settings = _settings(config_file)
    try:
        workspace_root: Path | None = choose_root(root)
    except LocalBrainError:
        workspace_root = root  # a bad --root fails the repository check, with its path
    checks = doctor.run_doctor(settings, workspace_root)
    if as_json:
        render.print_json(doctor.doctor_document(checks))
    else:
        click.echo(doctor.format_doctor(checks))
    if not all(check.ok for check in checks):
        sys.exit(ExitStatus.AGENT_FAILED)


@cli.group(name="config")
def config_group() -> None:
    """Show the effective configuration or where it comes from."""


@config_group.command(name="show")
@config_option
@json_option
def config_show(config_file: Path | None, as_json: bool) -> None:
    """The effective settings after every layer, with secrets masked."""
    from local_brain import inventory, render

    view = inventory.config_view(_settings(config_file))
    if as_json:
        render.print_json(view)
    else:
        click.echo(inventory.format_config(view), nl=False)


@config_group.command(name="path")
@config_option
def config_path(config_file: Path | None) -> None:
    """The user config file's path (first line), then each config file in effect."""
    from local_brain.config import user_config_path

    click.echo(str(user_config_path(os.environ)))
    for path in _settings(config_file).config_files:
        click.echo(str(path))


# -- mcp ----------------------------------------------------------------------------------


@cli.command(name="mcp")
@model_options
def mcp_command(
    root: Path | None,
    model: str | None,
    multi_agent: bool,
    manager: str | None,
    worker: str | None,
    config_file: Path | None,
    api_base: str | None,
    max_steps: int | None,
    step_timeout: float | None,
) -> None:
    """Serve the repository tools, ask and list_models over MCP (stdio).

    For Claude Code: claude mcp add local-brain -- local-brain mcp --root /path/to/repo
    """
    if importlib.util.find_spec("mcp") is None:
        raise UsageError("local-brain mcp needs the MCP SDK", hint="pip install 'local-brain[mcp]'")
    from local_brain.mcp_server import build_server
    from local_brain.workspace import Workspace

    workspace = Workspace(choose_root(root))
    settings, team = _model_settings(
        config_file,
        multi_agent,
        model=model,
        manager=manager,
        worker=worker,
        api_base=api_base,
        max_steps=max_steps,
        step_timeout=step_timeout,
    )
    build_server(workspace, settings, multi_agent=team).run(transport="stdio")


# -- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI and turn every outcome into an exit status; no traceback unless -v."""
    args = sys.argv[1:] if argv is None else argv
    verbose = any(arg in ("-v", "--verbose") for arg in args)
    as_json = "--json" in args
    try:
        cli.main(args=args, prog_name="local-brain", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        _fail("interrupted", ExitStatus.INTERRUPTED, None, as_json)
    except click.ClickException as error:
        hint = "see local-brain --help"
        _fail(error.format_message(), ExitStatus.USAGE, hint, as_json)
    except LocalBrainError as error:
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(error.message, error.exit_status, error.hint, as_json, error.usage)
    except KeyboardInterrupt:
        _fail("interrupted", ExitStatus.INTERRUPTED, None, as_json)
    except BrokenPipeError:
        sys.stderr.close()
        os._exit(0)
    except Exception as error:  # a bug: still one line, unless -v
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(
            f"internal error: {type(error).__name__}: {error}",
            ExitStatus.AGENT_FAILED,
            "run again with -v for details, and please report it",
            as_json,
        )
    sys.exit(ExitStatus.OK)


def _fail(
    message: str, status: ExitStatus, hint: str | None, as_json: bool, usage: Any = None
) -> NoReturn:
    """One error line (and a hint); the partial usage of a failed run; the JSON document."""
    from local_brain import render

    message = " ".join(message.split())
    render.print_error(message, hint)
    if usage is not None and usage.by_model:
        render.print_notice(usage.summary_line())
    if as_json:
        render.print_json(render.error_document(message, status, hint, usage))
    sys.exit(status)
