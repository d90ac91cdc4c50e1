"""`local-brain eval`: which of my models work on this repository, in which role.

Click and output only; the questions come from ``questions``, the runs and the sums from
``run``. Ctrl-C stops after the current attempt and prints what is done (exit 130).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from local_brain.commands import choose_root, config_option, json_option, load, root_option
from local_brain.errors import ExitStatus, UsageError

DEFAULT_QUESTIONS = 4


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@click.command(name="eval")
@click.option("--models", "models_csv", help="Models to try, comma-separated. Default: the "
              "configured ones and every chat model the Ollama server has.")  # fmt: skip
@click.option("--roles", "roles_csv", help="solo, manager, worker (comma-separated). Default: "
              "solo, and all three when more than one model is tried.")  # fmt: skip
@click.option("--questions", "count", type=click.IntRange(1, 50), default=DEFAULT_QUESTIONS,
              show_default=True, help="Questions per model and role.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="Picks the questions.")
@click.option("--write-config", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the recommendation as a config file.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite the --write-config file.")
@root_option
@config_option
@json_option
def eval_command(
    models_csv: str | None,
    roles_csv: str | None,
    count: int,
    seed: int,
    write_config: Path | None,
    force: bool,
    root: Path | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Ask your models questions about this repository whose answers are known (where a
    definition is, which commit last changed a file, how many files hold a string, a
    config value, what a function returns) and score them per role.

    Exit 0 when it ran (whatever the scores), 2 for bad input, 3 when no model server
    answers at all, 130 on Ctrl-C (after printing what is done).
    """
    from local_brain.evaluation import report, run
    from local_brain.evaluation.questions import generate_questions
    from local_brain.workspace import Workspace

    if write_config is not None and write_config.exists() and not force:
        raise UsageError(f"--write-config {write_config}: the file exists (add --force)")
    roles = _csv(roles_csv)
    unknown = [role for role in roles if role not in run.ROLES]
    if unknown:
        raise UsageError(f"--roles: unknown role {unknown[0]!r} (roles: {', '.join(run.ROLES)})")
    settings = load(config_file)
    workspace = Workspace(choose_root(root))
    models = _csv(models_csv) or report.default_models(settings)
    roles = roles or (list(run.ROLES) if len(models) > 1 else ["solo"])
    question_set = generate_questions(workspace, count, seed)
    if not question_set.questions:
        raise UsageError(
            "no questions could be made from this repository",
            hint="; ".join(question_set.notes) or "try a repository with source files",
        )
    total = len(models) * len(roles) * len(question_set.questions)
    done: list[Any] = []
    interrupted = False
    with report.Progress(total, enabled=sys.stderr.isatty() and not as_json) as progress:
        try:
            for attempt in run.attempts(settings, workspace, models, roles, question_set.questions):
                done.append(attempt)
                progress.advance(f"{attempt.model} · {attempt.role}")
        except KeyboardInterrupt:
            interrupted = True
    rows = run.summarize(done)
    recommendation = run.recommend(rows)
    notes = list(question_set.notes)
    if interrupted:
        notes.append(f"interrupted after {len(done)} of {total} attempts")
    if as_json:
        from local_brain import render

        render.print_json(report.document(rows, recommendation, notes, question_set.questions))
    else:
        click.echo(report.table(rows, recommendation, notes))
    if write_config is not None and not interrupted:
        report.write_config(write_config, recommendation, workspace.root, settings, force)
        click.echo(f"local-brain: wrote {write_config}", err=True)
    if interrupted:  # leave now: library threads may still wait on an abandoned request
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(ExitStatus.INTERRUPTED))
    if done and all(a.verdict.failure == "backend_error" for a in done):
        sys.exit(ExitStatus.BACKEND_UNAVAILABLE)
