"""Failures known before the model stack loads: checked in a fraction of a second.

Importing litellm and smolagents takes seconds. A model name that cannot work, an Ollama
server that is not there, or a model it does not have is known from the name and one
``GET /api/tags``, so a run checks those first and fails at once. Anything uncertain (a
server slow to answer, one that is not Ollama, a config group, a hosted provider) is left
to the run itself. Never imports litellm (``models.names`` reads its provider list from
source).
"""

from __future__ import annotations

from local_brain.config import Settings
from local_brain.errors import BackendUnavailable, ConfigError
from local_brain.models.hints import with_groups_hint
from local_brain.models.llamacpp import check_model, is_llamacpp
from local_brain.models.names import canonical_name, provider_of
from local_brain.models.ollama import OllamaClient, ServerError

PROBE_TIMEOUT_S = 2.0  # a server slower than this is left to the run to judge
_UNREACHABLE_MARKERS = (
    "connection refused",
    "name or service not known",
    "nodename nor servname",
    "no route to host",
    "network is unreachable",
    "temporary failure in name resolution",
)


def check_models(settings: Settings, names: list[str], timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise at once for a named model that cannot be used: an invalid name, an Ollama
    server that refuses connections, or a model that Ollama server says it does not have."""
    wanted: dict[str, list[str]] = {}  # Ollama server -> names of models asked of it
    fallback_keys = _fallback_keys(settings)
    for name in dict.fromkeys(names):
        if name in settings.group_names or name in fallback_keys:
            continue
        if is_llamacpp(name):  # in-process: the engine installed, the GGUF file there
            check_model(name)
            continue
        provider = provider_of(name)
        if provider is None:
            if not name.strip() or any(char.isspace() for char in name):
                raise ConfigError(
                    f"invalid model name: {name!r}",
                    hint="a model is an Ollama name (qwen2.5-coder:7b), provider/model, or a "
                    "model group from the config",
                )
            served = name
        elif provider in ("ollama", "ollama_chat"):
            served = name.partition("/")[2]
        else:
            continue  # a hosted provider or an OpenAI-compatible server: the run decides
        api_base = settings.api_base or settings.ollama_api_base
        wanted.setdefault(api_base, []).append(served)
    for api_base, served_names in wanted.items():
        try:
            _check_server(api_base, served_names, timeout)
        except BackendUnavailable as error:  # a mistyped config group? name the groups
            error.hint = with_groups_hint(error.hint, served_names, settings)
            raise


def _check_server(api_base: str, served_names: list[str], timeout: float) -> None:
    try:
        installed = OllamaClient(api_base, timeout).tags()
    except ServerError as error:
        if error.status is None and error.reason.lower().startswith(_UNREACHABLE_MARKERS):
            raise BackendUnavailable(
                f"cannot reach the Ollama server at {api_base} ({error.reason}) "
                f"for model {served_names[0]}",
                hint="start it with `ollama serve`, or point OLLAMA_API_BASE or --api-base "
                "at the server that has the model",
            ) from None
        return  # slow, busy, or not Ollama: the run will find out what it is
    have = {canonical_name(model.name) for model in installed}
    for name in served_names:
        if canonical_name(name) not in have:
            raise BackendUnavailable(
                f"model not found: the Ollama server at {api_base} does not have {name}",
                hint=f"install it with `ollama pull {name}`, or list models with "
                "`local-brain models`",
            )


def _fallback_keys(settings: Settings) -> set[str]:
    """Names that have fallbacks in the config: the Router may serve them elsewhere."""
    keys: set[str] = set()
    for rule in settings.router_settings.get("fallbacks") or []:
        if isinstance(rule, dict):
            keys.update(str(key) for key in rule)
    return keys
