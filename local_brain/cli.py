"""The `local-brain` command: flags -> Settings, a RunSession, errors -> exit codes.

The subcommands live in ``commands.py`` (``eval`` in ``evaluation/command.py``). Kept light on imports: ``--help``, ``--version``,
``tools`` and ``tool`` never import litellm or smolagents.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from local_brain import __version__
from local_brain.commands import COMMANDS, choose_root, model_options, model_settings
from local_brain.errors import ExitStatus, LocalBrainError, UsageError, internal_error_message
from local_brain.evaluation.command import eval_command
from local_brain.exiting import (
    InterruptGuard,
    ReaderLeft,
    flush_stdout,
    is_closed_pipe,
    leave_interrupted,
    reader_left,
    silence_stdout,
)
from local_brain.sessions_command import sessions_command

MAX_STDIN_CHARS = 100_000
MAX_PROMPT_CHARS = 20_000
DEFAULT_COMMAND = "ask"


class PromptFirstGroup(click.Group):
    """`local-brain [OPTIONS] PROMPT` runs the agent; `local-brain NAME ...` a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        group_flag = bool(args) and args[0] in ("--help", "-h", "--version")
        if group_flag or (args and args[0] in self.commands):
            return super().parse_args(ctx, args)
        from local_brain.argv import dispatch, only_leading_options

        if ctx.resilient_parsing:  # completing: offer command names, else the main command's
            if only_leading_options(self, DEFAULT_COMMAND, args):  # `--json do<TAB>`
                return super().parse_args(ctx, [])
            try:  # `--json doctor --<TAB>`: the subcommand's options
                return super().parse_args(ctx, dispatch(self, DEFAULT_COMMAND, args).args)
            except LocalBrainError:  # a word like a mistyped command: the question's
                return super().parse_args(ctx, [DEFAULT_COMMAND, *args])

        routed = dispatch(self, DEFAULT_COMMAND, args)
        quiet = any(name in ("-q", "--quiet") for name in routed.ignored)
        for name in [] if quiet else routed.ignored:  # -q asked for silence: no notice
            click.echo(
                f"local-brain: {name} does not apply to `{routed.args[0]}`: ignored", err=True
            )
        return super().parse_args(ctx, routed.args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OSError as error:
            if is_closed_pipe(error):
                raise ReaderLeft from error
            raise

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
        items += self.commands[DEFAULT_COMMAND].shell_complete(ctx, incomplete)
        return list({item.value: item for item in items}.values())  # --help once

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

    Input limits: the question argument up to 20,000 characters, standard input up to
    100,000 (longer input is cut, with a notice); binary input is refused.
    """


for _command in (*COMMANDS, eval_command, sessions_command):
    cli.add_command(_command)


# -- the main command ---------------------------------------------------------------------


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
@click.option(
    "--continue",
    "continue_last",
    is_flag=True,
    help="A follow-up: continue the last conversation about this repository.",
)
@click.option(
    "--session",
    "session_name",
    metavar="NAME",
    help="Continue (or start) the conversation NAME about this repository.",
)
def ask(
    prompt: str | None,
    root: Path | None,
    config_file: Path | None,
    multi_agent: bool,
    as_json: bool,
    transcript: Path | None,
    verbose: bool,
    quiet: bool,
    continue_last: bool,
    session_name: str | None,
    **model_flags: Any,
) -> None:
    """Answer PROMPT about the repository."""
    from local_brain import render
    from local_brain.conversations import ConversationStore, choose, remember
    from local_brain.session import RunSession
    from local_brain.workspace import Workspace

    task = read_prompt(prompt)
    workspace = Workspace(choose_root(root))
    store = ConversationStore(workspace.root)
    conversation = choose(store, session_name, continue_last)
    settings, team = model_settings(config_file, multi_agent, **model_flags)
    session = RunSession(
        task,
        workspace,
        settings,
        team=team,
        progress=not quiet,
        verbose=verbose,
        as_json=as_json,
        transcript=transcript,
        history=conversation.turns,
    )
    result = session.run()
    warn = (lambda _: None) if quiet else render.print_notice
    saved = remember(store, conversation, task, result.answer, warn)
    if as_json:
        render.print_json(render.result_document(result, {"session": saved}))
    else:
        render.print_answer(result.answer)
    if not quiet:
        render.print_unverified(result.unverified)
        render.print_notice(result.usage.summary_line())


def read_prompt(prompt: str | None) -> str:
    """The question from the argument and/or piped standard input."""
    if prompt is not None and prompt != "-" and not prompt.strip():
        raise UsageError(
            "the question is empty",
            hint='write the question as the argument: `local-brain "Where is X handled?"`; '
            "piped input is context for it",
        )
    piped = _read_piped_stdin() if prompt in (None, "-") or _stdin_is_piped() else None
    if prompt in (None, "-"):
        if piped is None:
            raise UsageError(
                "no prompt: pass a question, or pipe one on standard input",
                hint='local-brain "Where is X handled?"; local-brain --help for the options',
            )
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
        raise UsageError(
            "the question is empty (standard input held only blank space)",
            hint='pipe the question as text, or pass it as the argument: local-brain "…"',
        )
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
    raw = sys.stdin.buffer.read(MAX_STDIN_CHARS * 4 + 1)
    if looks_binary(raw):
        raise UsageError(
            f"standard input looks like binary data, not text ({len(raw):,} bytes read)",
            hint="pipe text (a diff, a log, source code), or ask about the file by its path",
        )
    data = raw.decode("utf-8", errors="replace")
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


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or mostly bytes that are not UTF-8 text (a few stray ones are fine)."""
    if b"\0" in data:
        return True
    sample = data[:65536]
    if not sample:
        return False
    text = sample.decode("utf-8", errors="replace")
    return text.count("\ufffd") > max(8, len(text) // 10)


# -- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI and turn every outcome into an exit status. A traceback only for a bug
    of ours, and only with -v."""
    args = sys.argv[1:] if argv is None else argv
    verbose = any(arg in ("-v", "--verbose") for arg in args)
    as_json = _wants_json(args)
    with InterruptGuard() as guard:
        _main(args, verbose, as_json, guard)


def _wants_json(args: list[str]) -> bool:
    """Whether an error should also be a JSON document: --json given to a command that
    takes it (not one it was dropped from with a notice, such as `--json config`)."""
    if "--json" not in args:
        return False
    if args[0] in cli.commands or args[0] in ("--help", "-h", "--version"):
        return True
    from local_brain.argv import dispatch

    try:
        return "--json" in dispatch(cli, DEFAULT_COMMAND, args).args
    except LocalBrainError:  # a mistyped command: the error itself is reported below
        return True


def _main(args: list[str], verbose: bool, as_json: bool, guard: InterruptGuard) -> NoReturn:
    try:
        from local_brain.argv import refuse_empty_values

        refuse_empty_values(cli, args)
        cli.main(args=args, prog_name="local-brain", standalone_mode=False)
    except click.exceptions.Exit as done:
        flush_stdout()
        sys.exit(done.exit_code)
    except (click.Abort, KeyboardInterrupt):  # Click turns Ctrl-C into Abort
        # Leave now: a normal shutdown would wait for library threads still blocked on
        # the model request being abandoned (Ctrl-C would hang until it times out).
        leave_interrupted(
            lambda: _fail("interrupted", ExitStatus.INTERRUPTED, None, as_json), guard
        )
    except ReaderLeft:
        reader_left()
    except click.ClickException as error:
        _fail(_click_message(error), ExitStatus.USAGE, _help_hint(error), as_json)
    except LocalBrainError as error:
        if error.exit_status == ExitStatus.INTERRUPTED:
            message, hint = error.message, error.hint
            leave_interrupted(lambda: _fail(message, ExitStatus.INTERRUPTED, hint, as_json), guard)
        if verbose and error.__cause__ is not None:  # an ordinary outcome: its cause, no trace
            from local_brain.errors import one_line
            from local_brain.render import print_notice

            print_notice(f"cause: {type(error.__cause__).__name__}: {one_line(error.__cause__)}")
        _fail(error.message, error.exit_status, error.hint, as_json, error.usage)
    except SystemExit as done:
        if type(sys.stdout).__name__ == "_PacifyFlushWrapper":  # Click met a closed pipe
            reader_left()
        raise done
    except Exception as error:  # a bug: still one line, unless -v
        if is_closed_pipe(error):
            reader_left()
        if verbose:
            import traceback

            traceback.print_exc()
        _fail(
            internal_error_message(error),
            ExitStatus.AGENT_FAILED,
            "run again with -v for details, and please report it",
            as_json,
        )
    flush_stdout()
    sys.exit(ExitStatus.OK)


_CLICK_WORDING = (
    (re.compile(r"is not a valid integer range\."), "is not a whole number."),
    (re.compile(r"is not a valid float range\."), "is not a number."),
    (re.compile(r"Directory (.+) is a file\."), r"\1 is a file, not a directory."),
    (re.compile(r"File (.+) is a directory\."), r"\1 is a directory, not a file."),
)


def _click_message(error: click.ClickException) -> str:
    """Click's message, in plainer words where its own are odd."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):  # its message is the help page
        group = error.ctx.command
        names = group.list_commands(error.ctx) if isinstance(group, click.Group) else []
        return f"{error.ctx.command_path} needs a command: {', '.join(names)}"
    message = error.format_message()
    for pattern, replacement in _CLICK_WORDING:
        message = pattern.sub(replacement, message)
    return message


def _help_hint(error: click.ClickException) -> str:
    """``see local-brain [COMMAND ...] --help`` for the command the error is about."""
    ctx = getattr(error, "ctx", None)
    if ctx is None or ctx.parent is None or ctx.command.name == DEFAULT_COMMAND:
        return "see local-brain --help"
    return f"see {ctx.command_path} --help"


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
        try:
            render.print_json(render.error_document(message, status, hint, usage))
        except OSError as error:  # the reader left: the status still says what happened
            if not is_closed_pipe(error):
                raise
            silence_stdout()
    sys.exit(status)
