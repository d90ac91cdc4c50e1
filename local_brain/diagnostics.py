"""What is installed, what is configured, and whether it works: `models`, `doctor`, `config`.

Pure logic for three fast subcommands: no Click, no printing, and never litellm or
smolagents (the model servers are asked directly over HTTP, with short timeouts, several
at once). Every result is plain data that serialises to JSON; ``format_*`` turn it into
text for people.

Secrets never leave this module unmasked: API keys, tokens and passwords in the config, and
credentials embedded in URLs, are shown as ``****`` plus at most their last four characters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local_brain.config import Settings, user_config_path
from local_brain.errors import LocalBrainError
from local_brain.fsguard import find_program
from local_brain.models import (
    OLLAMA_PREFIXES,
    InstalledModel,
    choose_best_model,
    deployments_for,
    list_installed_models,
    with_ollama_defaults,
)

HTTP_TIMEOUT_S = 2.0  # every request to a model server
COMMAND_TIMEOUT_S = 3.0  # git --version, rg --version
MAX_PARALLEL = 8

# litellm provider prefixes that may appear in a config. litellm itself is too slow to
# import here; a name whose prefix is not listed is read as an Ollama name (``user/model``).
KNOWN_PROVIDERS = frozenset(
    {
        "ollama",
        "ollama_chat",
        "openai",
        "openai_like",
        "custom_openai",
        "text-completion-openai",
        "hosted_vllm",
        "vllm",
        "lm_studio",
        "llamafile",
        "lemonade",
        "docker_model_runner",
        "xinference",
        "oobabooga",
        "litellm_proxy",
        "anthropic",
        "azure",
        "azure_ai",
        "bedrock",
        "cerebras",
        "codestral",
        "cohere",
        "cohere_chat",
        "databricks",
        "deepinfra",
        "deepseek",
        "fireworks_ai",
        "friendliai",
        "gemini",
        "github",
        "github_copilot",
        "groq",
        "huggingface",
        "hyperbolic",
        "lambda_ai",
        "meta_llama",
        "mistral",
        "moonshot",
        "nebius",
        "novita",
        "nvidia_nim",
        "openrouter",
        "perplexity",
        "replicate",
        "sagemaker",
        "sambanova",
        "together_ai",
        "vertex_ai",
        "watsonx",
        "xai",
    }
)
# Providers that speak the OpenAI API, so ``GET {api_base}/models`` lists their models.
OPENAI_STYLE = frozenset(
    {
        "openai",
        "openai_like",
        "custom_openai",
        "hosted_vllm",
        "vllm",
        "lm_studio",
        "llamafile",
        "lemonade",
        "docker_model_runner",
        "xinference",
        "litellm_proxy",
    }
)

_SECRET_KEY = re.compile(r"key|secret|token|password", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#]+@")
_URL_SECRET_QUERY = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:key|secret|token|password)[^=&#\s]*=)[^&#\s]+", re.IGNORECASE
)


# -- secrets ------------------------------------------------------------------------------


def mask_secret(value: Any) -> Any:
    """``sk-abcdef123456`` -> ``****3456``; short values -> ``****``; None stays None."""
    if value is None:
        return None
    text = str(value)
    return "****" + text[-4:] if len(text) >= 12 else "****"


def mask_url(text: str) -> str:
    """Hide credentials embedded in URLs: ``https://user:pass@host`` -> ``https://****@host``,
    ``?api_key=...`` -> ``?api_key=****``."""
    text = _URL_USERINFO.sub(lambda match: match.group("scheme") + "****@", text)
    return _URL_SECRET_QUERY.sub(lambda match: match.group("name") + "****", text)


def mask_secrets(value: Any) -> Any:
    """A deep copy of ``value`` with secrets masked: the value of any key named like a key,
    secret, token or password (unless it is a number or a boolean, such as ``max_tokens``),
    and credentials in every URL."""
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if (
                _SECRET_KEY.search(str(key))
                and item is not None
                and not isinstance(item, (bool, int, float, dict, list))
            ):
                masked[key] = mask_secret(item)
            else:
                masked[key] = mask_secrets(item)
        return masked
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Path):
        return str(value)
    return value


# -- small HTTP helpers -------------------------------------------------------------------


def _opener() -> urllib.request.OpenerDirector:
    """Talk to model servers directly, whatever proxy variables say."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}".strip()
    reason = getattr(error, "reason", None) or error
    if isinstance(reason, TimeoutError):
        return _tidy("timed out")
    return _tidy(str(reason)) or type(reason).__name__


def _tidy(reason: str) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", reason.strip())
    if text.lower() in ("timed out", "the read operation timed out"):
        return f"no answer within {HTTP_TIMEOUT_S:g} s"
    return text[:1].lower() + text[1:] if text[1:] == text[1:].lower() else text


def _request_json(
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = HTTP_TIMEOUT_S,
) -> Any:
    """GET (or POST ``body``) and parse JSON; raises urllib/OS/ValueError on failure."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with _opener().open(request, timeout=timeout) as response:
        return json.load(response)


def _parallel(calls: Iterable[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once and return their results (or exceptions) in order."""
    calls = list(calls)
    if not calls:
        return []

    def guarded(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(calls))) as pool:
        return list(pool.map(guarded, calls))


# -- Ollama -------------------------------------------------------------------------------


def canonical_name(name: str) -> str:
    """Ollama's view of a name: ``llama3.2`` is ``llama3.2:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def ollama_name(model: str) -> str:
    """``ollama_chat/qwen3:30b`` -> ``qwen3:30b``."""
    for prefix in OLLAMA_PREFIXES:
        if model.startswith(prefix):
            return model.removeprefix(prefix)
    return model


def context_length(api_base: str, model: str, timeout: float = HTTP_TIMEOUT_S) -> int | None:
    """The model's context window from Ollama's ``/api/show``, None when not reported.

    Raises urllib/OS/ValueError when the server cannot be asked or the model is unknown.
    """
    payload = _request_json(
        api_base.rstrip("/") + "/api/show", {"model": model, "name": model}, timeout=timeout
    )
    info = payload.get("model_info") or {}
    families = [info.get("general.architecture"), (payload.get("details") or {}).get("family")]
    for family in filter(None, families):
        value = info.get(f"{family}.context_length")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for key, value in info.items():
        if key.endswith(".context_length") and isinstance(value, int):
            return value
    return None


def _context_or_none(api_base: str, model: str) -> int | None:
    try:
        return context_length(api_base, model)
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None


# -- models -------------------------------------------------------------------------------


def default_server(settings: Settings) -> str:
    """The Ollama server bare model names go to (``--api-base``, else OLLAMA_API_BASE)."""
    return (settings.api_base or settings.ollama_api_base).rstrip("/")


def describe_models(settings: Settings) -> dict[str, Any]:
    """Installed Ollama models (with context lengths) and the config's model groups.

    ``{"server", "reachable", "error", "installed": [...], "default", "groups": [...]}``;
    ``default`` is the model a run uses when none is named (None when it cannot be told).
    """
    server = default_server(settings)
    reachable, error = True, None
    installed: list[InstalledModel] = []
    try:
        installed = list_installed_models(server, timeout=HTTP_TIMEOUT_S)
    except LocalBrainError as failure:
        reachable, error = False, _unwrap(failure.message)
    except (AttributeError, TypeError):  # JSON, but not Ollama's
        reachable, error = False, "unexpected answer to GET /api/tags"
    lengths = _parallel(
        [lambda name=model.name: _context_or_none(server, name) for model in installed]
    )
    default = settings.model
    if default is None and installed:
        try:
            default = choose_best_model(installed)
        except LocalBrainError:
            default = None
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in settings.model_list:
        params = entry.get("litellm_params") or {}
        model = str(params.get("model", ""))
        api_base = params.get("api_base")
        if api_base is None and model.startswith(OLLAMA_PREFIXES):
            api_base = settings.ollama_api_base
        groups.setdefault(entry["model_name"], []).append(
            {"model": model, "api_base": mask_url(str(api_base)) if api_base else None}
        )
    return {
        "server": mask_url(server),
        "reachable": reachable,
        "error": error,
        "installed": [
            {
                "name": model.name,
                "size_bytes": model.size,
                "family": model.family,
                "parameter_size": model.parameter_size,
                "context_length": length if isinstance(length, int) else None,
            }
            for model, length in zip(installed, lengths, strict=True)
        ],
        "default": default,
        "groups": [{"name": name, "deployments": items} for name, items in groups.items()],
    }


def format_models(data: dict[str, Any]) -> str:
    """``describe_models`` as text: a table of installed models, then the config's groups."""
    lines: list[str] = []
    server = data["server"]
    if not data["reachable"]:
        lines += [
            f"Ollama at {server}: not reachable ({data['error']})",
            "  start it with `ollama serve`, or set OLLAMA_API_BASE",
        ]
    elif not data["installed"]:
        lines += [f"Ollama at {server}: no models installed (try `ollama pull qwen2.5-coder:7b`)"]
    else:
        count = len(data["installed"])
        lines.append(f"Ollama at {server}: {count} model{'s' if count != 1 else ''}")
        rows = [("NAME", "SIZE", "PARAMS", "FAMILY", "CONTEXT")]
        for model in data["installed"]:
            mark = " *" if model["name"] == data.get("default") else ""
            rows.append(
                (
                    model["name"] + mark,
                    _human_size(model["size_bytes"]),
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


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"  # pragma: no cover


# -- doctor -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One doctor finding: ``fix`` says what to do when ``ok`` is false."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Deployment:
    """One route a configured model name takes."""

    label: str  # the name as the user wrote it (group, provider/model or Ollama name)
    model: str  # litellm model, ollama/ normalised to ollama_chat/
    provider: str
    api_base: str | None  # effective; None for a cloud provider's own endpoint
    api_key: str | None
    num_ctx: int | None  # what is sent to Ollama

    @property
    def is_ollama(self) -> bool:
        return self.model.startswith(OLLAMA_PREFIXES)

    @property
    def served_name(self) -> str:
        """The model name the server knows."""
        return self.model.split("/", 1)[1] if "/" in self.model else self.model


@dataclass
class _Endpoint:
    """What one api_base answered."""

    url: str
    ollama: bool
    used: bool  # some configured deployment goes there
    models: list[str] | None = None  # what it lists (None: not listed)
    installed: list[InstalledModel] | None = None  # Ollama's /api/tags
    error: str | None = None  # None: reachable
    listing_error: str | None = None  # reachable, but it would not list models


def doctor_document(checks: list[Check]) -> dict[str, Any]:
    """``{"ok": bool, "checks": [...]}`` for ``doctor --json``."""
    return {"ok": all(check.ok for check in checks), "checks": [c.as_dict() for c in checks]}


def run_doctor(settings: Settings, workspace_root: Path | None = None) -> list[Check]:
    """Check config, endpoints, models, the default model's context, git, rg and grammars.

    Network probes and local checks all run at once, with short timeouts.
    """
    checks = [_config_check(settings)]
    references, reference_errors = _configured_deployments(settings)
    server = default_server(settings)
    endpoints: dict[str, _Endpoint] = {
        server: _Endpoint(server, ollama=True, used=False),
    }
    for deployment in references:
        if deployment.api_base is None:
            continue
        endpoint = endpoints.setdefault(
            deployment.api_base, _Endpoint(deployment.api_base, deployment.is_ollama, used=True)
        )
        endpoint.used = True
    if settings.model is None:
        endpoints[server].used = True  # the default model is picked from its models

    with ThreadPoolExecutor(max_workers=4 + min(MAX_PARALLEL, len(endpoints))) as pool:
        local: list[Future[Check]] = [
            pool.submit(_git_check),
            pool.submit(_ripgrep_check),
            pool.submit(_grammars_check),
        ]
        if workspace_root is not None:
            local.append(pool.submit(_repository_check, workspace_root))
        probes = [
            pool.submit(_probe, endpoint, _key_for(endpoint.url, references))
            for endpoint in endpoints.values()
        ]
        for probe in probes:
            probe.result()
        checks += [_endpoint_check(endpoint) for endpoint in endpoints.values()]
        default_check, default_deployments = _default_model(settings, endpoints[server])
        checks.append(default_check)
        checks += reference_errors
        checks += [_model_check(d, endpoints) for d in _unique(references)]
        checks += _context_checks(pool, default_deployments, endpoints)
        checks += [future.result() for future in local]
    return checks


def format_doctor(checks: list[Check]) -> str:
    """One line per check, ``✓``/``✗``, with the fix under each failure, and a summary."""
    width = min(max((len(check.name) for check in checks), default=0), 40)
    lines = []
    for check in checks:
        lines.append(f"{'✓' if check.ok else '✗'} {check.name.ljust(width)}  {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"  {' ' * width}  fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    if failed:
        lines.append(f"{failed} of {len(checks)} checks failed.")
    else:
        lines.append(f"All {len(checks)} checks passed.")
    return "\n".join(lines)


def _config_check(settings: Settings) -> Check:
    if settings.config_files:
        files = ", ".join(str(path) for path in settings.config_files)
        return Check("config", True, f"valid: {files}")
    user_file = user_config_path(os.environ)
    return Check("config", True, f"packaged defaults only (no {user_file})")


def _configured_deployments(settings: Settings) -> tuple[list[_Deployment], list[Check]]:
    """Every route the config and the model settings name, and a failing check for each
    name that cannot be read."""
    deployments: list[_Deployment] = []
    errors: list[Check] = []
    for entry in settings.model_list:
        deployments.append(_deployment(entry["model_name"], entry, settings))
    names = [settings.model, settings.manager, settings.worker]
    names += [agent.get("model") for agent in settings.agents.values()]
    for name in dict.fromkeys(str(n) for n in names if n):
        try:
            deployments += _deployments_of(name, settings)
        except LocalBrainError as error:
            errors.append(Check(f"model {name}", False, error.message, "fix the model name"))
    return deployments, errors


def _deployments_of(name: str, settings: Settings) -> list[_Deployment]:
    """The routes a model name takes (design rules 1-3), without asking litellm."""
    if name in settings.group_names:
        entries = [entry for entry in settings.model_list if entry["model_name"] == name]
    else:
        entries = deployments_for(name, settings, set(KNOWN_PROVIDERS))
    return [_deployment(name, entry, settings) for entry in entries]


def _deployment(label: str, entry: dict[str, Any], settings: Settings) -> _Deployment:
    params = with_ollama_defaults(entry, settings.num_ctx)["litellm_params"]
    model = str(params["model"])
    provider = model.split("/", 1)[0] if "/" in model else ""
    api_base = params.get("api_base")
    if not api_base and model.startswith(OLLAMA_PREFIXES):
        api_base = settings.ollama_api_base
    try:
        num_ctx = int(params["num_ctx"]) if params.get("num_ctx") is not None else None
    except (TypeError, ValueError):
        num_ctx = None
    key = params.get("api_key")
    return _Deployment(
        label=label,
        model=model,
        provider=provider,
        api_base=str(api_base).rstrip("/") if api_base else None,
        api_key=str(key) if key else None,
        num_ctx=num_ctx,
    )


def _unique(deployments: list[_Deployment]) -> list[_Deployment]:
    seen: dict[tuple[str, str, str | None], _Deployment] = {}
    for deployment in deployments:
        seen.setdefault((deployment.label, deployment.model, deployment.api_base), deployment)
    return list(seen.values())


def _key_for(url: str, deployments: list[_Deployment]) -> str | None:
    return next((d.api_key for d in deployments if d.api_base == url and d.api_key), None)


def _probe(endpoint: _Endpoint, api_key: str | None) -> None:
    """Fill in what the endpoint answers: Ollama's /api/tags, else an OpenAI-style /models."""
    if endpoint.ollama:
        try:
            endpoint.installed = list_installed_models(endpoint.url, HTTP_TIMEOUT_S)
            endpoint.models = [model.name for model in endpoint.installed]
        except LocalBrainError as error:
            endpoint.error = _unwrap(error.message)
        except (AttributeError, TypeError):  # JSON, but not Ollama's
            endpoint.error = "unexpected answer to GET /api/tags"
        return
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        payload = _request_json(endpoint.url + "/models", headers=headers)
    except urllib.error.HTTPError as error:  # it answered: reachable, but lists nothing
        endpoint.listing_error = _reason(error)
        return
    except (urllib.error.URLError, OSError, ValueError) as error:
        endpoint.error = _reason(error)
        return
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, list):
        endpoint.models = [str(item.get("id")) for item in data if isinstance(item, dict)]
    else:
        endpoint.listing_error = "unexpected answer to GET /models"


def _unwrap(message: str) -> str:
    """``cannot reach Ollama at X (reason)`` -> ``reason``."""
    match = re.search(r"\((.*)\)$", message)
    return _tidy(match.group(1) if match else message)


def _endpoint_check(endpoint: _Endpoint) -> Check:
    kind = "Ollama" if endpoint.ollama else "OpenAI-compatible"
    name = f"endpoint {mask_url(endpoint.url)}"
    if endpoint.error is None:
        if endpoint.models is not None:
            count = len(endpoint.models)
            detail = f"{kind}, {count} model{'s' if count != 1 else ''}"
        else:
            detail = f"{kind}, reachable (models not listed: {endpoint.listing_error})"
        return Check(name, True, detail)
    if not endpoint.used:
        return Check(
            name,
            True,
            f"{kind} default server not reachable ({endpoint.error}); "
            "not needed by the configured models",
        )
    if endpoint.ollama:
        fix = "start Ollama with `ollama serve`, or check api_base / OLLAMA_API_BASE"
    else:
        fix = "start the server, or check api_base in the config"
    return Check(name, False, f"{kind}, not reachable: {endpoint.error}", fix)


def _default_model(settings: Settings, server: _Endpoint) -> tuple[Check, list[_Deployment]]:
    """The model a run uses when none is named, and its routes."""
    if settings.model:
        try:
            routes = _deployments_of(settings.model, settings)
        except LocalBrainError:
            routes = []  # reported with the model checks
        return Check("default model", True, f"{settings.model} (configured)"), routes
    if server.error is not None:
        return (
            Check(
                "default model",
                False,
                f"none configured, and Ollama at {mask_url(server.url)} cannot be asked "
                f"for its models: {server.error}",
                "start Ollama with `ollama serve`, or set local_brain.model / LOCAL_BRAIN_MODEL",
            ),
            [],
        )
    try:
        best = choose_best_model(server.installed or [])
    except LocalBrainError as error:
        return Check("default model", False, error.message, error.hint), []
    detail = f"{best} (none configured: the best model installed on {mask_url(server.url)})"
    return Check("default model", True, detail), _deployments_of(best, settings)


def _model_check(deployment: _Deployment, endpoints: dict[str, _Endpoint]) -> Check:
    label = deployment.label
    name = f"model {label}"
    route = "" if deployment.served_name == label else f"{deployment.model}: "
    if deployment.api_base is None:
        host = deployment.provider or "its provider"
        return Check(name, True, f"{route}hosted by {host}, not checked")
    endpoint = endpoints[deployment.api_base]
    where = mask_url(deployment.api_base)
    if endpoint.error is not None:
        return Check(name, False, f"{route}cannot check: {where} is not reachable")
    if endpoint.models is None:
        return Check(name, True, f"{route}not checked: {where} does not list its models")
    wanted = deployment.served_name
    if deployment.is_ollama:
        present = canonical_name(wanted) in {canonical_name(m) for m in endpoint.models}
        fix = f"ollama pull {wanted}"
    else:
        present = wanted in endpoint.models
        fix = f"load {wanted} on the server, or fix the model name in the config"
    if present:
        return Check(name, True, f"{route}available on {where}")
    listed = ", ".join(endpoint.models[:8]) + (" …" if len(endpoint.models) > 8 else "")
    detail = f"{route}{wanted} is not on {where} (it has: {listed or 'nothing'})"
    return Check(name, False, detail, fix)


def _context_checks(
    pool: ThreadPoolExecutor, deployments: list[_Deployment], endpoints: dict[str, _Endpoint]
) -> list[Check]:
    """For each Ollama route of the default model: num_ctx against the model's window."""
    ollama = [d for d in _unique(deployments) if d.is_ollama and d.api_base]
    if not deployments:
        return []
    if not ollama:
        label = deployments[0].label
        return [Check(f"context {label}", True, "not an Ollama model: the server sets it")]
    futures = {
        id(d): pool.submit(context_length, d.api_base or "", d.served_name)
        for d in ollama
        if _known_problem(d, endpoints) is None
    }
    checks = []
    for deployment in ollama:
        name = f"context {deployment.label}"
        problem = _known_problem(deployment, endpoints)
        if problem is not None:
            checks.append(Check(name, False, f"cannot check: {problem}"))
            continue
        future = futures[id(deployment)]
        sent = deployment.num_ctx or 0
        try:
            window = future.result()
        except (urllib.error.URLError, OSError, ValueError, AttributeError) as error:
            checks.append(Check(name, False, f"cannot ask {deployment.served_name}'s window: "
                                f"{_reason(error)}"))  # fmt: skip
            continue
        if window is None:
            detail = f"num_ctx {sent}; the server does not report the model's context length"
            checks.append(Check(name, True, detail))
        elif sent > window:
            detail = (
                f"local-brain sends num_ctx {sent} but {deployment.served_name} "
                f"holds {window} tokens"
            )
            fix = (
                f"set local_brain.num_ctx (or num_ctx in the deployment's litellm_params) "
                f"to {window} or less, or use a model with a longer context"
            )
            checks.append(Check(name, False, detail, fix))
        else:
            detail = f"num_ctx {sent} fits {deployment.served_name}'s {window} tokens"
            checks.append(Check(name, True, detail))
    return checks


def _known_problem(deployment: _Deployment, endpoints: dict[str, _Endpoint]) -> str | None:
    """Why /api/show cannot tell anything for this route, when the probes already know."""
    endpoint = endpoints.get(deployment.api_base or "")
    if endpoint is None:
        return None
    if endpoint.error is not None:
        return f"{mask_url(endpoint.url)} is not reachable"
    installed = {canonical_name(name) for name in endpoint.models or []}
    if endpoint.models is not None and canonical_name(deployment.served_name) not in installed:
        return f"{deployment.served_name} is not installed"
    return None


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def _git_check() -> Check:
    fix = "install git (git-scm.com, or your package manager)"
    try:
        result = _run([find_program("git") or "git", "--version"])
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("git", False, f"`git --version` failed: {error}", fix)
    if result.returncode != 0:
        return Check("git", False, f"`git --version` exited {result.returncode}", fix)
    return Check("git", True, result.stdout.strip())


def _repository_check(root: Path) -> Check:
    name = "repository"
    if not root.is_dir():
        return Check(name, False, f"{root}: not a directory", "cd into a project or pass --root")
    try:
        git = find_program("git", root) or "git-not-found"  # never one committed in the tree
        result = _run(
            [git, "-c", "core.fsmonitor=false", "rev-parse", "--is-inside-work-tree"], cwd=root
        )
        inside = result.returncode == 0 and result.stdout.strip() == "true"
    except (OSError, subprocess.TimeoutExpired):
        inside = False
    if inside:
        return Check(name, True, f"{root} (git repository)")
    return Check(name, True, f"{root} (not a git repository: the git tools will report errors)")


def _ripgrep_check() -> Check:
    from local_brain.tools.ripgrep import find_rg, rg_environment

    fix = "pip install ripgrep, or install rg with your package manager"
    path = find_rg()
    if path is None:
        return Check("ripgrep", False, "rg not found: search_code falls back to slow Python", fix)
    try:
        result = _run([path, "--version"], env=rg_environment())
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("ripgrep", False, f"{path} --version failed: {error}", fix)
    if result.returncode != 0:
        return Check("ripgrep", False, f"{path} --version exited {result.returncode}", fix)
    version = (result.stdout.splitlines() or ["rg"])[0].strip()
    return Check("ripgrep", True, f"{version} ({path})")


def _grammars_check() -> Check:
    from local_brain.tools import definitions

    languages = list(definitions._GRAMMARS)
    broken = []
    for language in languages:
        try:
            definitions._compiled(language)
        except definitions.GrammarUnavailable as error:
            broken.append(f"{language} ({error})")
        except Exception as error:  # e.g. tree_sitter itself missing or incompatible
            broken.append(f"{language} ({type(error).__name__}: {error})")
    if broken:
        return Check(
            "tree-sitter grammars",
            False,
            f"{len(broken)} of {len(languages)} do not load: " + "; ".join(broken),
            "reinstall local-brain (pip install --force-reinstall local-brain) to get "
            "matching tree-sitter grammar packages",
        )
    return Check("tree-sitter grammars", True, f"{len(languages)} load: {', '.join(languages)}")


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
