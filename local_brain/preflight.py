"""Failures known before the model stack loads: checked in a fraction of a second.

Importing litellm and smolagents takes seconds. A model name that cannot work, an Ollama
server that is not there, or a model it does not have is known from the name and one
``GET /api/tags``, and a cloud model without its key variable from the environment, so a
run checks those first and fails at once. Anything uncertain (a server slow to answer, one
that is not Ollama, a config group, whether a provider takes the key) is left to the run
itself. Never imports litellm (``models.names`` reads its provider list from source).
"""

from __future__ import annotations

import difflib

from local_brain.config import Settings
from local_brain.errors import BackendUnavailable, ConfigError
from local_brain.models.failures import missing_key_hint
from local_brain.models.hints import missing_key, routes_of, with_groups_hint
from local_brain.models.llamacpp import check_model, is_llamacpp
from local_brain.models.names import canonical_name, litellm_providers, provider_of
from local_brain.models.ollama import OllamaClient, ServerError

PROBE_TIMEOUT_S = 2.0  # a server slower than this is left to the run to judge
# Providers that may authenticate without a key variable (Azure AD tokens, OAuth logins).
_KEY_NOT_ALWAYS_NEEDED = frozenset({"azure", "azure_ai", "github_copilot"})


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
            _check_key(name, settings)
            continue  # a hosted provider or an OpenAI-compatible server: the run decides
        api_base = settings.api_base or settings.ollama_api_base
        wanted.setdefault(api_base, []).append(served)
    for api_base, served_names in wanted.items():
        try:
            _check_server(api_base, served_names, timeout)
        except BackendUnavailable as error:  # a mistyped config group? name the groups
            error.hint = with_groups_hint(error.hint, served_names, settings)
            raise


def _check_key(name: str, settings: Settings) -> None:
    """A cloud provider or a LiteLLM Proxy named with -m whose key variable is unset: the
    run would load the model stack only to be refused (offline, to fail on the network)."""
    for route in routes_of(name, settings):
        variable = missing_key(route)
        if variable is not None and route.provider not in _KEY_NOT_ALWAYS_NEEDED:
            raise BackendUnavailable(f"no API key for model {name}", missing_key_hint(route))


def _check_server(api_base: str, served_names: list[str], timeout: float) -> None:
    try:
        installed = OllamaClient(api_base, timeout).tags()
    except ServerError as error:
        if error.unreachable:
            raise BackendUnavailable(
                f"cannot reach the Ollama server at {api_base} ({error.reason}) "
                f"for model {served_names[0]}",
                hint="start it with `ollama serve`, or point OLLAMA_API_BASE or --api-base "
                "at the server that has the model",
            ) from None
        if error.status == 404:  # it answers, without Ollama's API: not an Ollama model
            raise BackendUnavailable(
                f"{api_base} is not an Ollama server (no /api/tags), but {served_names[0]} "
                "names an Ollama model",
                hint=_provider_hint(served_names[0])
                or f"name the server's model as hosted_vllm/NAME (`local-brain models "
                f"--api-base {api_base}` lists them), or point --api-base at Ollama",
            ) from None
        return  # slow, busy, or odd: the run will find out what it is
    have = {canonical_name(model.name) for model in installed}
    for name in served_names:
        if canonical_name(name) not in have:
            pull = f"install it with `ollama pull {name}`, or list models with `local-brain models`"
            guess = _provider_hint(name)
            raise BackendUnavailable(
                f"model not found: the Ollama server at {api_base} does not have {name}",
                hint=f"{guess}; or {pull}" if guess else pull,
            )


def _provider_hint(name: str) -> str | None:
    """ "did you mean hosted_vllm/x?" for ``hosted_vlm/x``: a prefix that is not a litellm
    provider makes the whole name an Ollama model, which a near-miss never meant."""
    prefix, slash, rest = name.partition("/")
    if not slash:
        return None
    close = difflib.get_close_matches(prefix, sorted(litellm_providers()), n=1, cutoff=0.75)
    if not close:
        return None
    return f"did you mean {close[0]}/{rest}? ({prefix!r} is not a litellm provider)"


def _fallback_keys(settings: Settings) -> set[str]:
    """Names that have fallbacks in the config: the Router may serve them elsewhere."""
    keys: set[str] = set()
    for rule in settings.router_settings.get("fallbacks") or []:
        if isinstance(rule, dict):
            keys.update(str(key) for key in rule)
    return keys
