"""What `local-brain eval` shows and writes: the default model list, the progress bar, the
table, the JSON document and the recommended config file."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from local_brain.config import Settings
from local_brain.evaluation.questions import Question
from local_brain.evaluation.run import Row

MAX_INSTALLED = 6  # the installed models tried when none are named, best first


def default_models(settings: Settings) -> list[str]:
    """The configured models (default, manager, worker, config groups), then the chat
    models the Ollama server has, best first; without repeats."""
    from local_brain.errors import BackendUnavailable
    from local_brain.models.names import choose_best_model
    from local_brain.models.ollama import OllamaClient, ServerError

    names = [settings.model, settings.manager, settings.worker, *settings.group_names]
    try:
        installed = OllamaClient(settings.api_base or settings.ollama_api_base, 3.0).tags()
    except ServerError:
        installed = []
    remaining = list(installed)
    while remaining and len(remaining) > len(installed) - MAX_INSTALLED:
        try:
            best = choose_best_model(remaining)
        except BackendUnavailable:  # no chat model left
            break
        names.append(best)
        remaining = [model for model in remaining if model.name != best]
    models = list(dict.fromkeys(name for name in names if name))
    if not models:
        raise BackendUnavailable(
            "no models to evaluate: none configured and the Ollama server has none",
            hint="name them with --models, or start Ollama (`ollama serve`)",
        )
    return models


class Progress:
    """A progress bar on stderr while the attempts run (only on a terminal)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task("evaluating", total=self.total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc_info)

    def advance(self, label: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=label)


def document(
    rows: list[Row],
    recommendation: dict[str, str | None],
    notes: list[str],
    questions: list[Question],
) -> dict[str, Any]:
    return {
        "rows": [row.as_dict() for row in rows],
        "recommendation": recommendation,
        "questions": [{"kind": q.kind, "text": q.text, "source": q.source} for q in questions],
        "notes": notes,
    }


def table(rows: list[Row], recommendation: dict[str, str | None], notes: list[str]) -> str:
    header = ("model", "role", "score", "correct", "failures", "steps", "tokens", "seconds",
              "tok/s")  # fmt: skip
    lines = [header]
    for row in rows:  # best first within each role
        data = row.as_dict()
        failures = ", ".join(f"{kind} {n}" for kind, n in data["failures"].items()) or "-"
        lines.append((
            data["model"], data["role"], f"{data['score']:.2f}",
            f"{data['correct']}/{data['asked']}", failures, f"{data['median_steps']:g}",
            str(data["tokens"]), f"{data['seconds']:.1f}",
            f"{data['tokens_per_second']:.0f}" if data["tokens_per_second"] else "-",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines]  # fmt: skip
    picked = [f"{role} {model}" for role, model in recommendation.items() if model]
    text.append("")
    text.append("recommended: " + (", ".join(picked) if picked else "none (no model answered)"))
    text += [f"note: {note}" for note in notes]
    return "\n".join(text)


def write_config(
    path: Path,
    recommendation: dict[str, str | None],
    root: Path,
    settings: Settings,
    force: bool = False,
) -> None:
    """The recommendation as a config file in our format: a later run without -m uses it.
    A recommended config group comes along (its ``model_list`` entries, the groups its
    fallbacks name, and ``router_settings``) as the config files wrote it: a key given as
    ``os.environ/NAME`` stays a reference, never the value. Without ``force`` a file that
    appeared while the eval ran is kept (UsageError); the new file is readable by its owner
    only, as it may hold keys the config files held."""
    import os

    import yaml

    from local_brain.errors import UsageError
    from local_brain.transcript import write_atomically

    ours = {key: value for key, value in recommendation.items() if value}
    document: dict[str, Any] = {"local_brain": ours}
    document.update(_carried(settings, [value for value in ours.values() if value]))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"# Written by `local-brain eval` on {stamp} for {root}.\n"
        "# Load it with --config, LOCAL_BRAIN_CONFIG, or copy it to the path\n"
        "# `local-brain config path` prints.\n" + yaml.safe_dump(document, sort_keys=False)
    )
    try:
        if force:
            write_atomically(path, text)
            return
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
    except FileExistsError:
        raise UsageError(f"--write-config {path}: the file exists (add --force)") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise UsageError(f"--write-config {path}: cannot write it ({reason})") from None


def _carried(settings: Settings, models: list[str]) -> dict[str, Any]:
    """``model_list`` entries of the config groups ``models`` name (and of the groups their
    fallbacks name), and ``router_settings``, as written in the config files (before
    ``os.environ/NAME`` and ``${NAME}`` are replaced)."""
    from local_brain.config import merge, read_config_file

    raw: dict[str, Any] = {}
    for config_file in settings.config_files:
        raw = merge(raw, read_config_file(config_file))
    entries = [entry for entry in raw.get("model_list") or [] if isinstance(entry, dict)]
    router = raw.get("router_settings") or {}
    defined = {entry.get("model_name") for entry in entries}
    wanted = [model for model in models if model in defined]
    carried: set[str] = set()
    while wanted:  # a carried group's fallbacks come along, and theirs
        group = wanted.pop()
        if group in carried:
            continue
        carried.add(group)
        wanted += [name for name in _fallbacks(router, group) if name in defined]
    result: dict[str, Any] = {}
    model_list = [entry for entry in entries if entry.get("model_name") in carried]
    if model_list:
        result["model_list"] = model_list
    if router:
        result["router_settings"] = router
    return result


def _fallbacks(router: dict[str, Any], group: str) -> list[str]:
    names: list[str] = []
    for key in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        for rule in router.get(key) or []:
            if isinstance(rule, dict) and isinstance(rule.get(group), list):
                names += [name for name in rule[group] if isinstance(name, str)]
    return names
