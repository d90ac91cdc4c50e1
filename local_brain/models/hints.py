"""Hints that fit the provider: what to check when a model is not found, not reachable or
refuses the credentials depends on where the model is served.

Four kinds of route (from the litellm model string and its api_base, the same rules a run
uses in ``models/names.py``):

* ``ollama``: ``ollama_chat/...`` at an Ollama server (``ollama pull``, ``ollama serve``);
* ``openai_compatible``: vLLM, llama.cpp's server, LM Studio, ... behind ``--api-base``
  (check the address, and the model ids the server lists at ``GET /v1/models``);
* ``proxy``: a LiteLLM Proxy (``litellm_proxy/...``; its key is LITELLM_PROXY_API_KEY);
* ``hosted``: a cloud provider's own endpoint (its key variable, e.g. GROQ_API_KEY).

Pure apart from :func:`listed_model_ids`, which asks a server for its model ids over HTTP
with a short timeout. Never imports litellm.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from local_brain.config import Settings
from local_brain.errors import LocalBrainError
from local_brain.masking import mask_url
from local_brain.models.names import deployments_for, is_ollama, served_name

RouteKind = Literal["ollama", "openai_compatible", "proxy", "hosted"]
LISTING_TIMEOUT_S = 2.0

# Providers that are an OpenAI-compatible server when given an api_base.
_OPENAI_COMPATIBLE = frozenset(
    {"openai", "hosted_vllm", "vllm", "lm_studio", "llamafile", "openai_like", "xinference",
     "text-completion-openai", "custom_openai", "oobabooga"}
)  # fmt: skip
# Providers whose credentials are not one API key variable (cloud IAM, local servers).
_NO_KEY_VARIABLE = frozenset(
    {"ollama", "ollama_chat", "hosted_vllm", "vllm", "lm_studio", "llamafile", "openai_like",
     "xinference", "oobabooga", "bedrock", "bedrock_converse", "sagemaker", "sagemaker_chat",
     "vertex_ai", "vertex_ai_beta", "watsonx", "custom", "custom_openai", "petals",
     "triton", "nlp_cloud", "aleph_alpha", "baseten", "replicate_custom"}
)  # fmt: skip
# litellm's variable names where they are not simply PROVIDER_API_KEY.
_KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "litellm_proxy": ("LITELLM_PROXY_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHER_API_KEY"),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY", "FIREWORKSAI_API_KEY"),
    "huggingface": ("HF_TOKEN", "HUGGINGFACE_API_KEY"),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "text-completion-openai": ("OPENAI_API_KEY",),
    "replicate": ("REPLICATE_API_KEY", "REPLICATE_API_TOKEN"),
    "azure": ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
    "azure_ai": ("AZURE_AI_API_KEY",),
    "cloudflare": ("CLOUDFLARE_API_KEY",),
    "github": ("GITHUB_API_KEY",),
    "databricks": ("DATABRICKS_API_KEY",),
}


@dataclass(frozen=True)
class RouteInfo:
    """Where one deployment of a model goes."""

    model: str  # the litellm model string
    api_base: str | None
    api_key: str | None = field(default=None, repr=False)  # set in the deployment itself

    @property
    def provider(self) -> str:
        prefix, slash, _ = self.model.partition("/")
        return prefix if slash else "ollama_chat"

    @property
    def kind(self) -> RouteKind:
        if is_ollama(self.model):
            return "ollama"
        if self.provider == "litellm_proxy":
            return "proxy"
        if self.api_base and self.provider in _OPENAI_COMPATIBLE:
            return "openai_compatible"
        return "hosted"

    @property
    def served(self) -> str:
        return served_name(self.model)


def routes_of(name: str, settings: Settings | None) -> list[RouteInfo]:
    """The deployments a run sends ``name`` to (a config group, provider/model or an Ollama
    name); a bare guess from the name alone when there are no settings."""
    if settings is None:
        return [RouteInfo(name if "/" in name else f"ollama_chat/{name}", None)]
    try:
        if name in settings.group_names:
            entries = [entry for entry in settings.model_list if entry["model_name"] == name]
        else:
            entries = deployments_for(name, settings)
    except LocalBrainError:  # an invalid name: reported elsewhere
        return []
    routes = []
    for entry in entries:
        params = entry.get("litellm_params") or {}
        model = str(params.get("model", name))
        api_base = params.get("api_base")
        if not api_base and is_ollama(model):
            api_base = settings.ollama_api_base
        if not api_base and model.startswith("litellm_proxy/"):
            api_base = os.environ.get("LITELLM_PROXY_API_BASE")
        key = params.get("api_key")
        routes.append(RouteInfo(model, str(api_base).rstrip("/") if api_base else None,
                                str(key) if key else None))  # fmt: skip
    return routes


def key_variables(provider: str) -> tuple[str, ...]:
    """The environment variables litellm reads the provider's API key from; empty when its
    credentials are not a key variable (a local server, cloud IAM)."""
    if provider in _NO_KEY_VARIABLE:
        return ()
    return _KEY_VARIABLES.get(provider, (f"{provider.upper()}_API_KEY",))


def missing_key(route: RouteInfo, environ: Mapping[str, str] | None = None) -> str | None:
    """The key variable a route needs and does not have (None: it has a key, or needs none).
    A local OpenAI-compatible server needs no key."""
    environ = os.environ if environ is None else environ
    if route.api_key or route.kind in ("ollama", "openai_compatible"):
        return None
    names = key_variables(route.provider)
    if not names or any(environ.get(name) for name in names):
        return None
    return names[0]


def listed_model_ids(api_base: str, api_key: str | None = None) -> list[str] | None:
    """The model ids an OpenAI-compatible server lists at ``GET {api_base}/models``; None
    when it cannot be asked or does not answer in that shape."""
    from local_brain.models.ollama import ServerError, request_json

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        payload = request_json(
            api_base.rstrip("/") + "/models", headers=headers, timeout=LISTING_TIMEOUT_S
        )
    except ServerError:
        return None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return None
    return [str(item.get("id")) for item in data if isinstance(item, dict) and item.get("id")]


def did_you_mean(name: str, choices: list[str]) -> str | None:
    """The closest of ``choices`` to a mistyped ``name``, if any is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def groups_hint(name: str, settings: Settings) -> str | None:
    """For a bare name that is not a config group when the config has groups: the groups,
    with the closest first ("did you mean ...?"); None when the config has no groups."""
    groups = settings.group_names
    if not groups or "/" in name:
        return None
    listed = ", ".join(groups[:8]) + (" …" if len(groups) > 8 else "")
    guess = did_you_mean(name, groups)
    if guess:
        return f"did you mean {guess}? the config's model groups: {listed}"
    return f"the config's model groups: {listed} (or an installed Ollama model)"


def with_groups_hint(hint: str | None, names: list[str], settings: Settings) -> str | None:
    """``hint`` headed by the config's model groups when one of ``names`` (bare names that
    are not groups) may be a mistyped group: "did you mean ...?" first."""
    found = [groups_hint(name, settings) for name in names]
    guess = next((text for text in found if text and text.startswith("did you mean")), None)
    groups = guess or next((text for text in found if text), None)
    if groups is None:
        return hint
    return f"{groups}; or {hint}" if hint else groups


def not_found_hint(route: RouteInfo, settings: Settings | None, name: str) -> str:
    """What to check when the server says it does not have the model."""
    if route.kind == "ollama":
        guess = groups_hint(name, settings) if settings is not None else None
        pull = f"install it with `ollama pull {route.served}`, or list models with `ollama list`"
        return f"{guess}; or {pull}" if guess else pull
    if route.kind in ("openai_compatible", "proxy"):
        where = mask_url(route.api_base or "the server")
        ids = listed_model_ids(route.api_base, _key_of(route)) if route.api_base else None
        if ids:
            listed = ", ".join(ids[:8]) + (" …" if len(ids) > 8 else "")
            guess = did_you_mean(route.served, ids)
            prefix = f"did you mean {guess}? " if guess else ""
            return f"{prefix}{where} serves: {listed}; check -m and --api-base"
        return f"check --api-base ({where}) and the model id the server lists at GET /v1/models"
    return f"check the model name against {route.provider}'s list of models"


def unreachable_hint(route: RouteInfo) -> str:
    """What to check when the server cannot be reached."""
    if route.kind == "ollama":
        return "start it with `ollama serve`, or check OLLAMA_API_BASE / --api-base"
    where = mask_url(route.api_base or "")
    if route.kind == "proxy":
        return f"start the LiteLLM Proxy, or check its address ({where}: api_base / --api-base)"
    if route.kind == "openai_compatible":
        return f"start the server, or check --api-base / api_base in the config ({where})"
    return "check the network connection to the provider (and any proxy settings)"


def key_hint(route: RouteInfo) -> str:
    """What to check when the provider refuses the credentials."""
    if route.kind == "proxy":
        return "check LITELLM_PROXY_API_KEY (the LiteLLM Proxy's key), or api_key in the config"
    if route.kind == "openai_compatible":
        return "check the server's API key (api_key in the config, or OPENAI_API_KEY)"
    if route.kind == "ollama":
        return "check the credentials the server (or a proxy in front of it) expects"
    names = key_variables(route.provider)
    if names:
        return f"check {names[0]} (the {route.provider} API key), or api_key in the config"
    return f"check the credentials {route.provider} expects"


def _key_of(route: RouteInfo) -> str | None:
    if route.api_key or route.kind != "proxy":
        return route.api_key
    return os.environ.get("LITELLM_PROXY_API_KEY")


def hint_route(name: str, settings: Settings | None) -> RouteInfo:
    """The route hints are about: the first deployment of ``name``."""
    routes = routes_of(name, settings)
    return routes[0] if routes else RouteInfo(name, None)
