"""One context window and one output cap per deployment, decided before the first request.

Ollama reloads a model whenever a request's ``num_ctx`` differs from the context it holds
the model with (design.md pitfall 14), so each Ollama deployment gets one ``num_ctx`` for the
whole run, shared by every agent: its own ``num_ctx``, else ``local_brain.num_ctx``, never
more than the model was trained for (``/api/show``), and exactly the context of the loaded
copy when ``/api/ps`` shows one at least that large (nothing reloads then). Every other route
gets a known window too (``model_info.max_input_tokens``, what the server reports, litellm's
model table, else a safe default), so compaction works everywhere.

Every deployment gets an output cap, ``max_tokens`` (litellm sends it as Ollama's
``num_predict``): its own, else ``local_brain.max_output_tokens``, at most a quarter of a
small window so the prompt keeps room.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from local_brain.config import MAX_OUTPUT_TOKENS, MIN_OUTPUT_TOKENS
from local_brain.models.names import canonical_name, is_ollama, provider_of, served_name
from local_brain.models.ollama import LoadedModel, OllamaClient, ServerError, request_json

PROBE_TIMEOUT_S = 2.0
DEFAULT_WINDOW = 8192  # a route that tells nothing about its window
LOCAL_PROVIDERS = frozenset({"openai", "hosted_vllm", "lm_studio", "llamafile", "litellm_proxy"})


@dataclass(frozen=True)
class Window:
    """One deployment's context for the run: ``tokens`` (prompt and reply together), and
    ``source``, how it was decided (for ``-v`` and ``doctor``)."""

    tokens: int
    source: str


def output_cap(configured: int | None, default: int, window: int) -> int:
    """The reply cap: the deployment's own, else the default limited to a quarter of the
    window (so a 2,048-token window still leaves 1,536 for the prompt), within bounds."""
    cap = configured if configured is not None else min(default, max(window // 4, 1))
    return max(MIN_OUTPUT_TOKENS, min(cap, MAX_OUTPUT_TOKENS))


def resolve_windows(
    model_list: list[dict[str, Any]],
    num_ctx: int,
    max_output_tokens: int,
    skip_api_bases: set[str],
    model_info: Callable[[str], dict[str, Any] | None] | None = None,
) -> list[dict[str, Any]]:
    """``model_list`` with each deployment's window and cap fixed for the run: Ollama's
    ``num_ctx`` and every route's ``max_tokens`` in ``litellm_params``, the window in
    ``model_info["max_input_tokens"]`` and its source in ``model_info["window_source"]``.

    Servers are asked all at once with a short timeout; one that does not answer keeps the
    configured values. ``skip_api_bases`` (known dead) are not asked. ``model_info`` looks a
    cloud model up in litellm's table."""
    ollama_bases = (
        {
            str(entry["litellm_params"].get("api_base") or "")
            for entry in model_list
            if is_ollama(str(entry["litellm_params"]["model"]))
        }
        - skip_api_bases
        - {""}
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = dict(zip(ollama_bases, pool.map(_loaded_models, ollama_bases), strict=True))
        windows = list(
            pool.map(
                lambda entry: _window_for(entry, num_ctx, loaded, skip_api_bases, model_info),
                model_list,
            )
        )
    resolved = []
    for entry, window in zip(model_list, windows, strict=True):
        params = dict(entry["litellm_params"])
        cap = output_cap(_int(params.get("max_tokens")), max_output_tokens, window.tokens)
        params["max_tokens"] = cap
        if is_ollama(params["model"]):
            params["num_ctx"] = window.tokens
        info = {
            **(entry.get("model_info") or {}),
            "max_input_tokens": window.tokens,
            "window_source": window.source,
        }
        resolved.append({**entry, "litellm_params": params, "model_info": info})
    return resolved


def _window_for(
    entry: dict[str, Any],
    num_ctx: int,
    loaded: dict[str, list[LoadedModel]],
    skip: set[str],
    model_info: Callable[[str], dict[str, Any] | None] | None,
) -> Window:
    params = entry["litellm_params"]
    model = str(params["model"])
    configured = _int((entry.get("model_info") or {}).get("max_input_tokens")) or _int(
        params.get("max_input_tokens")
    )
    if is_ollama(model):
        api_base = str(params.get("api_base") or "")
        wanted = _int(params.get("num_ctx")) or num_ctx
        if not api_base or api_base in skip:
            return Window(wanted, "configured (server not reachable)")
        return _ollama_window(api_base, served_name(model), wanted, loaded.get(api_base, []))
    if configured:  # an in-process engine (models/llamacpp.py) names its own source
        source = (entry.get("model_info") or {}).get("window_source")
        return Window(configured, str(source or "configured (max_input_tokens)"))
    api_base = params.get("api_base")
    if api_base and provider_of(model) in LOCAL_PROVIDERS and api_base not in skip:
        reported = _server_window(str(api_base), served_name(model))
        if reported:
            return Window(reported, "reported by the server")
    known = _int((model_info(model) or {}).get("max_input_tokens")) if model_info else None
    if known:
        return Window(known, "litellm's model table")
    return Window(DEFAULT_WINDOW, "assumed (set model_info.max_input_tokens)")


def _ollama_window(api_base: str, model: str, wanted: int, loaded: list[LoadedModel]) -> Window:
    try:
        trained = OllamaClient(api_base, PROBE_TIMEOUT_S).context_length(model)
    except ServerError:
        trained = None
    source = "configured"
    if trained is not None and trained < wanted:
        wanted, source = trained, "the model's trained context"
    for copy in loaded:
        if (
            canonical_name(copy.name) == canonical_name(model)
            and copy.context_length is not None
            and wanted <= copy.context_length <= (trained or copy.context_length)
        ):
            return Window(copy.context_length, "the context of the loaded model")
    return Window(wanted, source)


def _loaded_models(api_base: str) -> list[LoadedModel]:
    try:
        return OllamaClient(api_base, PROBE_TIMEOUT_S).loaded()
    except ServerError:
        return []


def _server_window(api_base: str, model: str) -> int | None:
    """An OpenAI-compatible server's window: vLLM's ``max_model_len`` in ``/v1/models``,
    llama.cpp's ``n_ctx`` in ``/props``."""
    base = api_base.rstrip("/")
    try:
        listing = request_json(base + "/models", timeout=PROBE_TIMEOUT_S)
    except ServerError:
        listing = None
    entries = listing.get("data") if isinstance(listing, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            length = _int(entry.get("max_model_len"))
            if length:
                return length
    parts = urlsplit(base)
    root = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    try:
        props = request_json(root + "/props", timeout=PROBE_TIMEOUT_S)
    except ServerError:
        return None
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    return _int(settings.get("n_ctx")) if isinstance(settings, dict) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None
