"""`doctor`: whether the setup works: config, endpoints, models, context size, local tools.

Pure logic: no Click, no printing, and never litellm or smolagents. Model servers are asked
through ``models/ollama.py`` with short timeouts, all at once; which route a model name takes
follows ``models/names.py``, the same rules a run uses. Every check is plain data
(:class:`Check`); secrets never appear in one.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_brain.config import Settings, user_config_path
from local_brain.errors import LocalBrainError
from local_brain.inventory import HTTP_TIMEOUT_S, MAX_PARALLEL, default_server
from local_brain.masking import mask_url
from local_brain.models.hints import RouteInfo, key_variables, missing_key
from local_brain.models.llamacpp import is_llamacpp
from local_brain.models.names import (
    canonical_name,
    choose_best_model,
    deployments_for,
    is_ollama,
    served_name,
    with_ollama_defaults,
)
from local_brain.models.ollama import (
    BUSY_HINT,
    InstalledModel,
    OllamaClient,
    ServerError,
    is_busy,
    list_server_models,
    request_json,
)
from local_brain.toolchain import (
    Check,
    git_check,
    grammars_check,
    repository_check,
    ripgrep_check,
)


@dataclass(frozen=True)
class _Route:
    """One deployment a configured model name is routed to."""

    label: str  # the name as the user wrote it (group, provider/model or Ollama name)
    model: str  # litellm model, ollama/ normalised to ollama_chat/
    api_base: str | None  # effective; None for a cloud provider's own endpoint
    api_key: str | None
    num_ctx: int | None  # what is sent to Ollama

    @property
    def is_ollama(self) -> bool:
        return is_ollama(self.model)

    @property
    def served_name(self) -> str:
        """The model name the server knows."""
        return served_name(self.model)


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
    busy: bool = False  # it is there, but overloaded or too slow to answer now


def doctor_document(checks: list[Check]) -> dict[str, Any]:
    """``{"ok": bool, "checks": [...]}`` for ``doctor --json``."""
    return {"ok": all(check.ok for check in checks), "checks": [c.as_dict() for c in checks]}


def run_doctor(
    settings: Settings, workspace_root: Path | None = None, config_problem: Check | None = None
) -> list[Check]:
    """Check config, endpoints, models, the default model's context, git, rg and grammars,
    and ``workspace_root`` when given (a path that is not a directory fails the check).
    ``config_problem``: the config could not be read (``doctor_config.load_for_doctor``),
    and ``settings`` were built without it.

    Network probes and local checks all run at once, with short timeouts.
    """
    checks = [config_problem or _config_check(settings)]
    routes, route_errors = _configured_routes(settings)
    server = default_server(settings)
    endpoints = {server: _Endpoint(server, ollama=True, used=settings.model is None)}
    for route in routes:
        if route.api_base is not None:
            endpoints.setdefault(route.api_base, _Endpoint(route.api_base, route.is_ollama, True))
            endpoints[route.api_base].used = True

    with ThreadPoolExecutor(max_workers=4 + min(MAX_PARALLEL, len(endpoints))) as pool:
        local: list[Future[Check]] = [
            pool.submit(git_check),
            pool.submit(ripgrep_check),
            pool.submit(grammars_check),
        ]
        if workspace_root is not None:
            local.append(pool.submit(repository_check, workspace_root))
        probes = [
            pool.submit(_probe, endpoint, _key_for(endpoint.url, routes))
            for endpoint in endpoints.values()
        ]
        for probe in probes:
            probe.result()
        checks += [_endpoint_check(endpoint) for endpoint in endpoints.values()]
        default_check, default_routes = _default_model(settings, endpoints[server])
        checks.append(default_check)
        checks += route_errors
        checks += [_model_check(route, endpoints) for route in _unique(routes)]
        checks += _context_checks(pool, default_routes, endpoints)
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


# -- routes -------------------------------------------------------------------------------


def _configured_routes(settings: Settings) -> tuple[list[_Route], list[Check]]:
    """Every route the config and the model settings name, and a failing check for each
    name that cannot be read."""
    routes = [_route(entry["model_name"], entry, settings) for entry in settings.model_list]
    errors: list[Check] = []
    names = [settings.model, settings.manager, settings.worker]
    names += [agent.get("model") for agent in settings.agents.values()]
    for name in dict.fromkeys(str(n) for n in names if n):
        try:
            routes += _routes_of(name, settings)
        except LocalBrainError as error:
            errors.append(Check(f"model {name}", False, error.message, "fix the model name"))
    return routes, errors


def _routes_of(name: str, settings: Settings) -> list[_Route]:
    """The routes a model name takes (design rules 1-3), as a run would take them."""
    if name in settings.group_names:
        entries = [entry for entry in settings.model_list if entry["model_name"] == name]
    else:
        entries = deployments_for(name, settings)
    return [_route(name, entry, settings) for entry in entries]


def _route(label: str, entry: dict[str, Any], settings: Settings) -> _Route:
    params = with_ollama_defaults(entry, settings.num_ctx)["litellm_params"]
    model = str(params["model"])
    api_base = params.get("api_base")
    if not api_base and is_ollama(model):
        api_base = settings.ollama_api_base
    try:
        num_ctx = int(params["num_ctx"]) if params.get("num_ctx") is not None else None
    except (TypeError, ValueError):
        num_ctx = None
    if num_ctx is None and is_llamacpp(model):  # the engine's context
        num_ctx = settings.num_ctx
    key = params.get("api_key")
    return _Route(
        label=label,
        model=model,
        api_base=str(api_base).rstrip("/") if api_base else None,
        api_key=str(key) if key else None,
        num_ctx=num_ctx,
    )


def _unique(routes: list[_Route]) -> list[_Route]:
    seen: dict[tuple[str, str, str | None], _Route] = {}
    for route in routes:
        seen.setdefault((route.label, route.model, route.api_base), route)
    return list(seen.values())


def _key_for(url: str, routes: list[_Route]) -> str | None:
    return next((r.api_key for r in routes if r.api_base == url and r.api_key), None)


# -- endpoints and models -----------------------------------------------------------------


def _probe(endpoint: _Endpoint, api_key: str | None) -> None:
    """Fill in what the endpoint answers: Ollama's /api/tags, else an OpenAI-style /models
    (an "Ollama" endpoint that turns out to be OpenAI-compatible is marked so)."""
    if endpoint.ollama:
        try:
            kind, installed = list_server_models(endpoint.url, HTTP_TIMEOUT_S, api_key)
        except ServerError as error:
            endpoint.error, endpoint.busy = error.reason, is_busy(error)
            return
        endpoint.ollama = kind == "ollama"
        endpoint.installed = installed if endpoint.ollama else None
        endpoint.models = [model.name for model in installed]
        return
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        payload = request_json(endpoint.url + "/models", headers=headers, timeout=HTTP_TIMEOUT_S)
    except ServerError as error:
        if error.status is None or is_busy(error):
            endpoint.error, endpoint.busy = error.reason, is_busy(error)
        else:  # it answered: reachable, but lists nothing
            endpoint.listing_error = error.reason
        return
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, list):
        endpoint.models = [str(item.get("id")) for item in data if isinstance(item, dict)]
    else:
        endpoint.listing_error = "unexpected answer to GET /models"


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
    if endpoint.busy:
        return Check(name, False, f"{kind}, busy: {endpoint.error}", BUSY_HINT)
    if not endpoint.url.lower().startswith(("http://", "https://")):
        fix = f"write the address as a URL: http://{endpoint.url}"
        return Check(name, False, "not a URL (it needs http:// or https://)", fix)
    if endpoint.ollama:
        fix = "start Ollama with `ollama serve`, or check api_base / OLLAMA_API_BASE"
    else:
        fix = "start the server, or check api_base in the config"
    return Check(name, False, f"{kind}, not reachable: {endpoint.error}", fix)


def _default_model(settings: Settings, server: _Endpoint) -> tuple[Check, list[_Route]]:
    """The model a run uses when none is named, and its routes."""
    if settings.model:
        try:
            routes = _routes_of(settings.model, settings)
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
    if not server.ollama:  # an OpenAI-compatible server: a run needs -m
        detail = f"none configured, and {mask_url(server.url)} is not Ollama"
        fix = f"name one: -m hosted_vllm/<model id> --api-base {mask_url(server.url)}"
        return Check("default model", False, detail, fix), []
    try:
        best = choose_best_model(server.installed or [])
    except LocalBrainError as error:
        return Check("default model", False, error.message, error.hint), []
    detail = f"{best} (none configured: the best model installed on {mask_url(server.url)})"
    return Check("default model", True, detail), _routes_of(best, settings)


def _model_check(route: _Route, endpoints: dict[str, _Endpoint]) -> Check:
    if is_llamacpp(route.model):  # in-process: the engine, the file, the memory
        from local_brain.models.gguf_report import engine_check

        return engine_check(route.label, route.model, route.num_ctx or 0)
    name = f"model {route.label}"
    prefix = "" if route.label in (route.model, route.served_name) else f"{route.model}: "
    info = RouteInfo(route.model, route.api_base, route.api_key)
    variable = missing_key(info)
    if variable is not None:  # a run would fail at its first request
        detail = f"{prefix}no API key: {variable} is not set"
        return Check(name, False, detail, f"set {variable}, or api_key in the config")
    if route.api_base is None:
        provider = route.model.split("/", 1)[0] if "/" in route.model else "its provider"
        keyed = " (key set)" if key_variables(provider) else ""
        return Check(name, True, f"{prefix}hosted by {provider}{keyed}, not checked")
    endpoint = endpoints[route.api_base]
    where = mask_url(route.api_base)
    if endpoint.error is not None:
        state = "busy" if endpoint.busy else "not reachable"
        return Check(name, False, f"{prefix}cannot check: {where} is {state}")
    if endpoint.models is None:
        return Check(name, True, f"{prefix}not checked: {where} does not list its models")
    wanted = route.served_name
    if route.is_ollama:
        present = canonical_name(wanted) in {canonical_name(m) for m in endpoint.models}
        fix = f"ollama pull {wanted}"
    else:
        present = wanted in endpoint.models
        fix = f"load {wanted} on the server, or use a model id it lists (-m or the config)"
    if present:
        return Check(name, True, f"{prefix}available on {where}")
    listed = ", ".join(endpoint.models[:8]) + (" …" if len(endpoint.models) > 8 else "")
    detail = f"{prefix}{wanted} is not on {where} (it has: {listed or 'nothing'})"
    return Check(name, False, detail, fix)


def _context_checks(
    pool: ThreadPoolExecutor, routes: list[_Route], endpoints: dict[str, _Endpoint]
) -> list[Check]:
    """For each Ollama route of the default model: num_ctx against the model's window
    (a larger num_ctx is clamped by every run; the check says so)."""
    ollama = [r for r in _unique(routes) if r.is_ollama and r.api_base]
    if not routes:
        return []
    if not ollama and is_llamacpp(routes[0].model):  # in-process: what the engine allocates
        from local_brain.models.gguf_report import context_check

        return [context_check(routes[0].label, routes[0].model, routes[0].num_ctx or 0)]
    if not ollama:
        return [
            Check(f"context {routes[0].label}", True, "not an Ollama model: the server sets it")
        ]
    problems = {id(route): _known_problem(route, endpoints) for route in ollama}
    futures = {
        id(route): pool.submit(
            OllamaClient(route.api_base or "", HTTP_TIMEOUT_S).context_length, route.served_name
        )
        for route in ollama
        if problems[id(route)] is None
    }
    checks = []
    for route in ollama:
        name = f"context {route.label}"
        if problems[id(route)] is not None:
            checks.append(Check(name, False, f"cannot check: {problems[id(route)]}"))
            continue
        sent = route.num_ctx or 0
        try:
            window = futures[id(route)].result()
        except ServerError as error:
            detail = f"cannot ask {route.served_name}'s window: {error.reason}"
            checks.append(Check(name, False, detail))
            continue
        if window is None:
            detail = f"num_ctx {sent}; the server does not report the model's context length"
            checks.append(Check(name, True, detail))
        elif sent > window:  # runs clamp it (models/context.py): worth knowing, not a failure
            detail = (
                f"num_ctx {sent} is more than {route.served_name}'s {window} tokens: "
                f"runs use {window}"
            )
            checks.append(Check(name, True, detail))
        else:
            detail = f"num_ctx {sent} fits {route.served_name}'s {window} tokens"
            checks.append(Check(name, True, detail))
    return checks


def _known_problem(route: _Route, endpoints: dict[str, _Endpoint]) -> str | None:
    """Why /api/show cannot tell anything for this route, when the probes already know."""
    endpoint = endpoints.get(route.api_base or "")
    if endpoint is None:
        return None
    if endpoint.error is not None:
        return f"{mask_url(endpoint.url)} is not reachable"
    installed = {canonical_name(name) for name in endpoint.models or []}
    if endpoint.models is not None and canonical_name(route.served_name) not in installed:
        return f"{route.served_name} is not installed"
    return None
