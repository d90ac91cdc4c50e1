"""What is installed and what is configured: the `models` and `config show` commands.

Pure logic: no Click, no printing, and never litellm or smolagents (Ollama is asked through
``models/ollama.py``, with short timeouts, several requests at once). Every result is plain
data that serialises to JSON, with secrets masked; ``format_*`` turn it into text for people.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local_brain.config import Settings
from local_brain.errors import LocalBrainError
from local_brain.masking import mask_secrets, mask_url
from local_brain.models.names import choose_best_model, is_ollama
from local_brain.models.ollama import (
    InstalledModel,
    OllamaClient,
    ServerError,
    is_busy,
    list_server_models,
)
from local_brain.units import human_size

HTTP_TIMEOUT_S = 2.0  # every request to a model server
MAX_PARALLEL = 8


def default_server(settings: Settings) -> str:
    """The Ollama server bare model names go to (``--api-base``, else OLLAMA_API_BASE)."""
    return (settings.api_base or settings.ollama_api_base).rstrip("/")


# -- models -------------------------------------------------------------------------------


def describe_models(settings: Settings) -> dict[str, Any]:
    """Installed Ollama models (with context lengths) and the config's model groups.

    ``{"server", "reachable", "error", "installed": [...], "default", "groups": [...]}``;
    ``default`` is the model a run uses when none is named (None when it cannot be told).
    """
    client = OllamaClient(default_server(settings), HTTP_TIMEOUT_S)
    reachable, error, busy, kind = True, None, False, "ollama"
    installed: list[InstalledModel] = []
    try:  # Ollama, else an OpenAI-compatible server (GET /v1/models)
        kind, installed = list_server_models(client.api_base, HTTP_TIMEOUT_S)
    except ServerError as failure:
        reachable, error, busy = False, failure.reason, is_busy(failure)
    names = [model.name for model in installed] if kind == "ollama" else []
    lengths = _context_lengths(client, names) + [None] * (len(installed) - len(names))
    default = settings.model
    if default is None and installed and kind == "ollama":  # what a run without -m picks
        try:
            default = choose_best_model(installed)
        except LocalBrainError:
            default = None
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in settings.model_list:
        params = entry.get("litellm_params") or {}
        model = str(params.get("model", ""))
        api_base = params.get("api_base")
        if api_base is None and is_ollama(model):
            api_base = settings.ollama_api_base
        groups.setdefault(entry["model_name"], []).append(
            {"model": model, "api_base": mask_url(str(api_base)) if api_base else None}
        )
    return {
        "server": mask_url(client.api_base),
        "kind": kind,
        "reachable": reachable,
        "busy": busy,
        "error": error,
        "installed": [
            {
                "name": model.name,
                "size_bytes": model.size,
                "family": model.family,
                "parameter_size": model.parameter_size,
                "context_length": length,
            }
            for model, length in zip(installed, lengths, strict=True)
        ],
        "default": default,
        "groups": [{"name": name, "deployments": items} for name, items in groups.items()],
    }


def _context_lengths(client: OllamaClient, names: list[str]) -> list[int | None]:
    """Each model's window, asked all at once; None where the server cannot tell."""

    def ask(name: str) -> int | None:
        try:
            return client.context_length(name)
        except ServerError:
            return None

    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(names))) as pool:
        return list(pool.map(ask, names))


def format_models(data: dict[str, Any]) -> str:
    """``describe_models`` as text: a table of installed models, then the config's groups."""
    lines: list[str] = []
    server = data["server"]
    kind = "Ollama" if data.get("kind", "ollama") == "ollama" else "OpenAI-compatible server"
    if data.get("busy"):
        lines += [
            f"Model server at {server}: busy ({data['error']})",
            "  it is overloaded or still loading a model: try again shortly",
        ]
    elif not data["reachable"]:
        lines += [
            f"Ollama at {server}: not reachable ({data['error']})",
            "  start it with `ollama serve`, or set OLLAMA_API_BASE",
        ]
    elif not data["installed"]:
        fix = "try `ollama pull qwen2.5-coder:7b`" if kind == "Ollama" else "load one on it"
        lines += [f"{kind} at {server}: no models installed ({fix})"]
    elif kind != "Ollama":  # ids only: /v1/models tells nothing else
        count = len(data["installed"])
        lines.append(f"{kind} at {server}: {count} model{'s' if count != 1 else ''}")
        lines += [f"  {model['name']}" for model in data["installed"]]
        lines.append(f"  use one with: -m hosted_vllm/<name> --api-base {server}")
    else:
        count = len(data["installed"])
        lines.append(f"{kind} at {server}: {count} model{'s' if count != 1 else ''}")
        rows = [("NAME", "SIZE", "PARAMS", "FAMILY", "CONTEXT")]
        for model in data["installed"]:
            mark = " *" if model["name"] == data.get("default") else ""
            rows.append(
                (
                    model["name"] + mark,
                    human_size(model["size_bytes"]),
                    model["parameter_size"] or "-",
                    model["family"] or "-",
                    str(model["context_length"]) if model["context_length"] else "?",
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            lines.append("  " + "  ".join(cells).rstrip())
    if data.get("default"):
        lines.append(f"default model: {data['default']}")
    if data["groups"]:
        lines.append("model groups (config):")
        width = max(len(group["name"]) for group in data["groups"])
        for group in data["groups"]:
            for index, deployment in enumerate(group["deployments"]):
                label = group["name"] if index == 0 else ""
                where = f" @ {deployment['api_base']}" if deployment["api_base"] else ""
                lines.append(f"  {label.ljust(width)}  {deployment['model']}{where}")
    return "\n".join(lines)


# -- config -------------------------------------------------------------------------------


def config_view(settings: Settings) -> dict[str, Any]:
    """The effective settings after every layer, with secrets masked."""
    view = {
        "model_list": settings.model_list,
        "router_settings": settings.router_settings,
        "litellm_settings": settings.litellm_settings,
        "local_brain": {
            "model": settings.model,
            "manager": settings.manager,
            "worker": settings.worker,
            "agents": settings.agents,
            "max_steps": settings.max_steps,
            "step_timeout": settings.step_timeout,
            "num_ctx": settings.num_ctx,
            "max_output_tokens": settings.max_output_tokens,
        },
        "ollama_api_base": settings.ollama_api_base,
        "config_files": [str(path) for path in settings.config_files],
    }
    return mask_secrets(view)


def format_config(view: dict[str, Any]) -> str:
    """``config_view`` as YAML, headed by the files it came from."""
    import yaml

    files = view.get("config_files") or []
    header = "# from: " + (", ".join(files) if files else "packaged defaults only") + "\n"
    body = {key: value for key, value in view.items() if key != "config_files"}
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)
