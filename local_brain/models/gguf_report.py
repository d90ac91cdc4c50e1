"""What `models` and `doctor` say about GGUF models run in-process (``llamacpp/...``).

`models`: the GGUF files the config names and the installed Ollama models usable as
``llamacpp/ollama:NAME``. `doctor`: per ``llamacpp/`` route, that the engine imports, the
file is there and is GGUF, and the context fits in memory. Never litellm or smolagents;
nothing is loaded into the engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from local_brain.config import Settings
from local_brain.errors import ConfigError
from local_brain.models import gguf
from local_brain.models.llamacpp import EXTRA, INSTALL_HINT, PREFIX, engine_installed, is_llamacpp
from local_brain.toolchain import Check
from local_brain.units import human_size


def describe(settings: Settings) -> dict[str, Any]:
    """``{"engine_installed", "files": [...], "ollama": [...]}`` for ``models --json``."""
    files = []
    for entry in settings.model_list:
        params = entry.get("litellm_params") or {}
        model = str(params.get("model", ""))
        if not is_llamacpp(model):
            continue
        try:
            path: Path | None = gguf.resolve(model.removeprefix(PREFIX))
            error = None
        except ConfigError as failure:
            path, error = None, failure.message
        files.append(
            {
                "group": entry["model_name"],
                "model": model,
                "path": str(path) if path else None,
                "size_bytes": path.stat().st_size if path else None,
                "error": error,
            }
        )
    ollama = [
        {"name": PREFIX + "ollama:" + found.name, "path": str(found.path),
         "size_bytes": found.size}
        for found in gguf.installed_ollama_models()
    ]  # fmt: skip
    return {"engine_installed": engine_installed(), "files": files, "ollama": ollama}


def format_text(data: dict[str, Any]) -> str:
    """``describe`` as text lines for `models` (empty when there is nothing to say)."""
    if not data["files"] and not data["ollama"]:
        return ""
    engine = "" if data["engine_installed"] else f" (not installed: pip install '{EXTRA}')"
    lines = [f"in-process GGUF models (llama.cpp){engine}:"]
    for item in data["files"]:
        where = (
            f"{item['path']}  {human_size(item['size_bytes'])}" if item["path"] else item["error"]
        )
        lines.append(f"  {item['group']}  {where}")
    for item in data["ollama"]:
        lines.append(f"  {item['name']}  {human_size(item['size_bytes'])}")
    return "\n".join(lines)


def engine_check(label: str, model: str, num_ctx: int) -> Check:
    """One `doctor` check for a ``llamacpp/`` route: the engine imports, the file is a GGUF
    file, and ``num_ctx`` tokens of context fit in the memory available now."""
    name = f"model {label}"
    try:
        import xllamacpp  # noqa: F401  (does the engine load, not just is it there)
    except ImportError as error:
        detail = f"in-process llama.cpp engine not installed ({error})"
        return Check(name, False, detail, INSTALL_HINT.removeprefix("install the in-process "))
    try:
        path = gguf.resolve(model.removeprefix(PREFIX))
    except ConfigError as error:
        return Check(name, False, error.message, error.hint or "fix the path after llamacpp/")
    detail = f"in-process llama.cpp, {path} ({human_size(path.stat().st_size)})"
    needed, available = gguf.memory_needed(path, num_ctx), gguf.available_memory()
    if needed is None or available is None:
        return Check(name, True, f"{detail}; memory for {num_ctx} tokens not estimated")
    fits = f"a {num_ctx}-token context needs about {human_size(needed)}"
    if needed > available:
        return Check(
            name,
            False,
            f"{detail}; {fits}, but only {human_size(available)} is available",
            "lower num_ctx for this model, or free memory",
        )
    return Check(name, True, f"{detail}; {fits} of {human_size(available)} available")


def context_check(label: str, model: str, num_ctx: int) -> Check:
    """`doctor`'s context line for a ``llamacpp/`` route: the context the engine allocates
    (``num_ctx``: its KV cache, the window every agent on it works to), and whether the
    model was trained for that much."""
    name = f"context {label}"
    detail = f"the in-process engine allocates a {num_ctx}-token context (num_ctx)"
    try:
        path = gguf.resolve(model.removeprefix(PREFIX))
    except ConfigError:
        return Check(name, True, detail)  # the model check says what is wrong with the file
    trained = gguf.trained_context(path)
    if trained is None:
        return Check(name, True, detail)
    if num_ctx > trained:
        return Check(
            name,
            False,
            f"{detail}, more than the {trained} tokens the model was trained with",
            f"lower num_ctx for this model to at most {trained}",
        )
    return Check(name, True, f"{detail}; the model was trained with {trained}")
