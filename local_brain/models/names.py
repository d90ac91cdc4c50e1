"""Model-name rules (design.md, "Model names"). Pure: no network, and never ``import litellm``.

1. a ``model_name`` from the config's ``model_list`` is that routed group;
2. ``provider/model`` with a litellm provider prefix passes through (``--api-base`` applies);
3. a bare name (``qwen3:30b``) means ``ollama_chat/<name>`` at ``OLLAMA_API_BASE``;
4. no name: ``LOCAL_BRAIN_MODEL``, the config's default, else the best installed model.

Which prefixes are providers is litellm's own knowledge (its ``LlmProviders`` enum). Importing
litellm takes seconds (design.md pitfall 2) and `doctor` needs the list without calling a
model, so the list is read from litellm's source when litellm is not loaded yet.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_brain.config import Settings
from local_brain.errors import BackendUnavailable, ConfigError

if TYPE_CHECKING:
    from local_brain.models.ollama import InstalledModel

OLLAMA_PREFIXES = ("ollama_chat/", "ollama/")
LLAMACPP_PREFIX = "llamacpp/"  # models/llamacpp.py: llama.cpp in-process

# Preferred families for code exploration, best first. A model not listed ranks after all
# listed ones; within a family the larger parameter count wins.
RECOMMENDED_FAMILIES = (
    "qwen3-coder",
    "qwen2.5-coder",
    "devstral",
    "deepseek-coder-v2",
    "qwen3",
    "gpt-oss",
    "qwen2.5",
    "codestral",
    "deepseek-r1",
    "llama3.3",
    "llama3.1",
    "mistral-small",
    "gemma3",
    "phi4",
    "llama3.2",
    "mistral",
    "codellama",
)
_NOT_CHAT_MODELS = re.compile(r"embed|bge|minilm|nomic|rerank|whisper|llava|clip", re.IGNORECASE)


# -- providers ----------------------------------------------------------------------------


@functools.cache
def litellm_providers() -> frozenset[str]:
    """Every provider name litellm knows (``openai``, ``ollama_chat``, ``ai21``, ...)."""
    loaded = sys.modules.get("litellm")
    if loaded is None:
        from_source = _providers_in_litellm_source()
        if from_source:
            return from_source
        from local_brain.safe_import import import_model_stack

        loaded, _ = import_model_stack()
    return frozenset(str(getattr(provider, "value", provider)) for provider in loaded.provider_list)


def _providers_in_litellm_source() -> frozenset[str]:
    """The values of ``litellm.types.utils.LlmProviders``, read without running litellm."""
    spec = importlib.util.find_spec("litellm")  # a top-level package: not imported by this
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    source = Path(next(iter(spec.submodule_search_locations)), "types", "utils.py")
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return frozenset()
    match = re.search(r"^class LlmProviders\b.*?(?=^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    try:
        tree = ast.parse(match.group(0)) if match else None
    except SyntaxError:
        tree = None
    if tree is None or not tree.body or not isinstance(tree.body[0], ast.ClassDef):
        return frozenset()
    return frozenset(
        node.value.value
        for node in tree.body[0].body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def provider_of(name: str) -> str | None:
    """The litellm provider a name is prefixed with (``groq`` for ``groq/llama-3``), None for
    a bare name or an Ollama namespace (``user/model``)."""
    prefix, slash, _ = name.partition("/")
    return prefix if slash and prefix in litellm_providers() else None


def is_ollama(model: str) -> bool:
    """Whether a litellm model string goes to Ollama (``ollama_chat/...``, ``ollama/...``)."""
    return model.startswith(OLLAMA_PREFIXES)


def served_name(model: str) -> str:
    """The name the server knows: ``ollama_chat/qwen3:30b`` -> ``qwen3:30b``; a name without
    a provider prefix stays as it is."""
    prefix, slash, rest = model.partition("/")
    return rest if slash and prefix in litellm_providers() else model


def canonical_name(name: str) -> str:
    """Ollama's view of a name: ``llama3.2`` is ``llama3.2:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


# -- deployments --------------------------------------------------------------------------


def deployments_for(name: str, settings: Settings) -> list[dict[str, Any]]:
    """The model_list entries a model name needs on top of the config's own (rules 1-3)."""
    if name in settings.group_names:
        return []
    if name.startswith(LLAMACPP_PREFIX):  # a GGUF file run in-process: models/llamacpp.py
        return [{"model_name": name, "litellm_params": {"model": name}}]
    provider = provider_of(name)
    if provider is not None:
        params: dict[str, Any] = {"model": name}
        if settings.api_base:
            params["api_base"] = settings.api_base
        if provider in ("ollama_chat", "ollama") and "api_base" not in params:
            params["api_base"] = settings.ollama_api_base
        if provider == "openai" and settings.api_base and not os.environ.get("OPENAI_API_KEY"):
            params["api_key"] = "local-server"  # local OpenAI-compatible servers need none
        return [{"model_name": name, "litellm_params": params}]
    if not name.strip() or any(char.isspace() for char in name):
        raise ConfigError(f"invalid model name: {name!r}")
    api_base = settings.api_base or settings.ollama_api_base
    return [
        {
            "model_name": name,
            "litellm_params": {"model": f"ollama_chat/{name}", "api_base": api_base},
        }
    ]


def with_ollama_defaults(deployment: dict[str, Any], num_ctx: int) -> dict[str, Any]:
    """Ollama truncates prompts silently at its small default window: always send num_ctx."""
    params = dict(deployment["litellm_params"])
    if is_ollama(params["model"]):
        params.setdefault("num_ctx", num_ctx)
        if params["model"].startswith("ollama/"):
            params["model"] = "ollama_chat/" + params["model"].removeprefix("ollama/")
    return {**deployment, "litellm_params": params}


# -- rule 4: the best installed model -----------------------------------------------------


def choose_best_model(installed: Sequence[InstalledModel]) -> str:
    """Pick the installed model best suited to code exploration."""
    candidates = [model for model in installed if not _NOT_CHAT_MODELS.search(model.name)]
    if not candidates:
        raise BackendUnavailable(
            "Ollama has no chat models installed",
            hint="install one, e.g. `ollama pull qwen2.5-coder:7b`, or name a model with -m",
        )

    def rank(model: InstalledModel) -> tuple[int, float, int]:
        base = model.name.split(":")[0].split("/")[-1].lower()
        family_rank = next(
            (index for index, family in enumerate(RECOMMENDED_FAMILIES) if base == family),
            len(RECOMMENDED_FAMILIES),
        )
        return (family_rank, -_billions(model), -model.size)

    return min(candidates, key=rank).name


def _billions(model: InstalledModel) -> float:
    match = re.search(r"(\d+(?:\.\d+)?)\s*[bB]", model.parameter_size or model.name)
    return float(match.group(1)) if match else 0.0
