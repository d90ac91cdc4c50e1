"""RunSession: one run with its sinks (live view, -v lines, transcript) around ``runner.run``.

The command line and the MCP server's ``ask`` both run through here. Whatever the outcome
(an answer, a failure of ours to report, Ctrl-C, or a bug), one ``finally`` closes the
transcript with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_brain.cancel import CancelToken
from local_brain.config import Settings
from local_brain.conversations import Turn
from local_brain.errors import ExitStatus, LocalBrainError, UsageError, internal_error_message
from local_brain.events import EventSink, Fanout
from local_brain.plan import RunPlan, make_plan
from local_brain.runner import Result
from local_brain.workspace import Workspace

if TYPE_CHECKING:
    from local_brain.models.llamacpp import Engines


class RunSession:
    """One question about one workspace, with where its events go.

    ``progress`` shows the run on stderr (how: ``render.progress_sink``; ``verbose`` adds
    each step's code and output); ``transcript`` records every
    event as JSON Lines.
    """

    def __init__(
        self,
        task: str,
        workspace: Workspace,
        settings: Settings,
        *,
        team: bool = False,
        progress: bool = False,
        verbose: bool = False,
        as_json: bool = False,
        transcript: Path | None = None,
        cancel: CancelToken | None = None,
        history: Sequence[Turn] = (),
        engines: Engines | None = None,
    ) -> None:
        self.task = task
        self.engines = engines  # a long-lived process's in-process engines (runner.run)
        self.history = tuple(history)  # the conversation's earlier turns (conversations.py)
        self.cancel = cancel if cancel is not None else CancelToken()  # Ctrl-C cancels it too
        self.workspace = workspace
        self.settings = settings
        self.team = team
        self.verbose = verbose  # litellm's own log lines shown (briefly) only under -v
        self.sinks = Fanout()
        self.live: Any = None
        if progress:
            from local_brain import render

            sink = render.progress_sink(verbose=verbose, as_json=as_json)
            self.live = sink if isinstance(sink, render.LiveProgress) else None
            self.sinks.sinks.append(sink)
        self.recorder: Any = None
        if transcript is not None:
            if not transcript.resolve().parent.is_dir():
                raise UsageError(
                    f"--transcript {transcript}: its directory does not exist",
                    hint="create the directory first, or write the transcript elsewhere",
                )
            from local_brain.transcript import Transcript

            self.recorder = Transcript(transcript)
            self.sinks.sinks.append(self.recorder)

    def plan(self) -> RunPlan:
        """The run's plan, its models checked before the model stack loads (preflight)."""
        from local_brain.preflight import check_models

        plan = make_plan(
            self.settings, team=self.team, installed_default=lambda: best_installed(self.settings)
        )
        check_models(self.settings, list(plan.models.values()))
        return plan

    def run(self) -> Result:
        """Plan the run and run it; the transcript is closed with whatever happened."""
        from local_brain.models.quiet import quiet_litellm
        from local_brain.runner import run

        on_event: EventSink | None = self.sinks if self.sinks.sinks else None
        outcome: dict[str, Any] = {
            "exit_code": int(ExitStatus.INTERRUPTED),
            "message": "interrupted",
        }
        self._start()
        try:
            with self.live or contextlib.nullcontext(), quiet_litellm(self.verbose):
                result = run(
                    self.task,
                    self.plan(),
                    self.workspace,
                    on_event=on_event,
                    cancel=self.cancel,
                    history=self.history,
                    engines=self.engines,
                )
            outcome = {"exit_code": int(ExitStatus.OK), "result": result}
            return result
        except LocalBrainError as error:
            outcome = {
                "exit_code": int(error.exit_status),
                "message": error.message,
                "hint": error.hint,
            }
            raise
        except KeyboardInterrupt:
            self.cancel.cancel("interrupted")  # what the run left going stops
            raise  # recorded as "interrupted"
        except Exception as error:  # a bug of ours: still recorded
            outcome = {
                "exit_code": int(ExitStatus.AGENT_FAILED),
                "message": internal_error_message(error),
            }
            raise
        finally:
            self._finish(outcome)

    def _start(self) -> None:
        if self.recorder is None:
            return
        settings = self.settings
        models = {"model": settings.model, "manager": settings.manager, "worker": settings.worker}
        self.recorder.start(
            task=self.task,
            root=self.workspace.root,
            mode="team" if self.team else "solo",
            models=models,
        )

    def _finish(self, outcome: dict[str, Any]) -> None:
        if self.recorder is None:
            return
        result = outcome.pop("result", None)
        if result is None:
            self.recorder.finish(**outcome)
            return
        from local_brain.render import result_document

        details = {
            key: value
            for key, value in result_document(result).items()
            if key not in ("answer", "exit_code")
        }
        self.recorder.finish(exit_code=outcome["exit_code"], answer=result.answer, **details)


def best_installed(settings: Settings) -> str:
    """Model rule 4's last resort: the best model the Ollama server has installed."""
    from local_brain.models.names import choose_best_model
    from local_brain.models.ollama import list_installed_models

    return choose_best_model(list_installed_models(settings.api_base or settings.ollama_api_base))
