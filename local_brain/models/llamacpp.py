"""llama.cpp in-process: ``llamacpp/<file.gguf>`` models run inside local-brain, no server.

``xllamacpp`` (the optional extra ``local-brain[llamacpp]``) carries llama.cpp's own HTTP
server. :class:`Engines` starts it in this process, once per GGUF file and settings for the
run, bound to 127.0.0.1 on a free port, and rewrites each ``llamacpp/`` deployment into an
OpenAI-compatible one (``hosted_vllm/<alias>`` at that address): the Router, fallbacks,
output caps, the streaming watch, the server's figures (llama.cpp ``timings``) and usage
then work exactly as for any other server. The engine's context is the window compaction
works to. Only the groups a run can reach (its models and their fallbacks) get an engine.

Who closes the engines: a one-shot run's ``Routing`` owns its :class:`Engines` and closes
them with itself, whatever the outcome. A long-lived process (the MCP server, ``eval``)
hands every ``Routing`` the same :class:`Engines` (its pool), so a model loads once per
process, not per question, and closes the pool when it ends.

One slot per engine, on purpose: a team's agents take turns (a manager waits while its
helper runs), and llama.cpp keeps an idle prompt in its host-memory prompt cache
(``cache_idle_slots``, ``cache_ram_mib``) and restores it when that prompt comes back, so
a manager and a helper alternating on one slot each keep their prefix (cache_n) without
the KV memory of a second slot (``tests/test_llamacpp.py`` checks it on the real engine).

Engine settings come from the deployment's ``litellm_params``: ``num_ctx`` (else
``local_brain.num_ctx``), ``n_threads``, ``n_gpu_layers``; they are taken out before the
deployment reaches litellm.
"""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_brain.errors import BackendUnavailable, ConfigError
from local_brain.models import gguf
from local_brain.models.names import LLAMACPP_PREFIX
from local_brain.models.ollama import ServerError, request_json

PREFIX = LLAMACPP_PREFIX
EXTRA = "local-brain[llamacpp]"
INSTALL_HINT = f"install the in-process engine with `pip install '{EXTRA}'`"
ENGINE_PARAMS = ("num_ctx", "n_threads", "n_gpu_layers")
ROUTED_PREFIX = "hosted_vllm/"  # an OpenAI-compatible server litellm streams (streaming.py)
HOST = "127.0.0.1"
PROPS_TIMEOUT_S = 10.0  # a local engine that has just loaded


def is_llamacpp(model: str) -> bool:
    return model.startswith(PREFIX)


def engine_installed() -> bool:
    try:
        return importlib.util.find_spec("xllamacpp") is not None
    except (ImportError, ValueError):
        return False


def require_engine(name: str) -> None:
    """Fail fast (exit 2) when ``name`` needs the engine and the extra is not installed."""
    if not engine_installed():
        raise ConfigError(
            f"model {name} runs in-process with llama.cpp, but the engine is not installed",
            hint=INSTALL_HINT,
        )


def check_model(name: str) -> Path:
    """What can be known before the model stack loads: the engine is installed and the
    name points at a GGUF file. Returns the file."""
    require_engine(name)
    return gguf.resolve(name.removeprefix(PREFIX))


@dataclass(frozen=True)
class EngineSpec:
    """One engine: the file and the settings it is loaded with."""

    path: Path
    n_ctx: int
    n_threads: int | None = None
    n_gpu_layers: int | None = None


def engine_spec(params: dict[str, Any], num_ctx: int) -> EngineSpec:
    """The engine a ``llamacpp/`` deployment's ``litellm_params`` asks for."""
    model = str(params["model"])
    path = gguf.resolve(model.removeprefix(PREFIX)).resolve()
    return EngineSpec(
        path=path,
        n_ctx=_positive(params.get("num_ctx"), "num_ctx") or num_ctx,
        n_threads=_positive(params.get("n_threads"), "n_threads"),
        n_gpu_layers=_count(params.get("n_gpu_layers"), "n_gpu_layers", minimum=-1),
    )


class Engine:
    """llama.cpp's server for one GGUF file, in this process, on 127.0.0.1."""

    def __init__(self, spec: EngineSpec, alias: str) -> None:
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(spec.path)
        params.model_alias = {alias} if isinstance(params.model_alias, set) else alias
        params.n_ctx = spec.n_ctx
        params.n_parallel = 1  # one slot: the whole context for each request, one cache
        params.hostnames = [HOST]
        params.port = 0  # a free port
        params.cache_prompt = True
        params.endpoint_metrics = True  # the engine's own token counters, for checks
        params.ui = False
        params.verbosity = 0  # llama.cpp logs nothing on our terminal
        # llama.cpp's threads wait on each other at every token: one more thread than the
        # CPUs free (its own default counts the host's, not this process's; local-brain's
        # tools and stream reader need one too) makes it many times slower
        # (benchmarks/RESULTS.md). Default: the usable CPUs but one.
        threads = spec.n_threads or max(1, usable_cpus() - 1)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        if spec.n_gpu_layers is not None:
            params.n_gpu_layers = spec.n_gpu_layers
        self.spec = spec
        self.alias = alias
        try:
            self._server: Any = xllamacpp.Server(params)
        except RuntimeError as error:
            raise BackendUnavailable(
                f"llama.cpp could not load {spec.path} with a {spec.n_ctx}-token context ({error})",
                hint="check the file with `local-brain doctor`; a smaller num_ctx needs less "
                "memory",
            ) from None
        self.address = str(self._server.listening_address).rstrip("/")
        self.n_ctx = self._loaded_context() or spec.n_ctx

    def _loaded_context(self) -> int | None:
        """The context llama.cpp really allocated (it may fit a smaller one to memory)."""
        try:
            props = request_json(self.address + "/props", timeout=PROPS_TIMEOUT_S)
        except ServerError:
            return None
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None

    @property
    def api_base(self) -> str:
        return self.address + "/v1"

    def close(self) -> None:
        """Stop the server and free the model (llama.cpp does both when it is dropped)."""
        self._server = None


class Engines:
    """In-process engines: one per GGUF file and settings, shared by every agent and
    deployment that uses it. A run's own, or a long-lived process's pool (use it as
    ``with Engines() as pool:``)."""

    def __init__(self) -> None:
        self._engines: dict[EngineSpec, Engine] = {}
        self._lock = threading.Lock()
        self.loads = 0  # engines started over this object's life

    def __enter__(self) -> Engines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(
        self, model_list: list[dict[str, Any]], num_ctx: int, wanted: set[str] | None = None
    ) -> list[dict[str, Any]]:
        """``model_list`` with every ``llamacpp/`` deployment of a ``wanted`` group (None:
        every group) served by a started engine; the others are left out, unloaded."""
        rewritten = []
        for entry in model_list:
            params = dict(entry["litellm_params"])
            if not is_llamacpp(str(params.get("model", ""))):
                rewritten.append(entry)
                continue
            if wanted is not None and entry.get("model_name") not in wanted:
                continue  # a group this run cannot reach: no engine, no memory
            require_engine(str(params["model"]))
            engine = self._engine(engine_spec(params, num_ctx))
            for key in ENGINE_PARAMS:
                params.pop(key, None)
            params.update(model=ROUTED_PREFIX + engine.alias, api_base=engine.api_base)
            params.setdefault("api_key", "in-process")
            info = {
                **(entry.get("model_info") or {}),
                "max_input_tokens": engine.n_ctx,
                "window_source": "the in-process engine's context",
                "gguf_path": str(engine.spec.path),
            }
            rewritten.append({**entry, "litellm_params": params, "model_info": info})
        return rewritten

    def _engine(self, spec: EngineSpec) -> Engine:
        with self._lock:
            engine = self._engines.get(spec)
            if engine is None:
                stem = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.path.stem) or "model"
                alias = f"{stem}-{len(self._engines) + 1}"
                engine = self._engines[spec] = Engine(spec, alias)
                self.loads += 1
            return engine

    @property
    def addresses(self) -> list[str]:
        return [engine.address for engine in self._engines.values()]

    def close(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.close()


FALLBACK_SETTINGS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


def reachable(names: list[str], router_settings: dict[str, Any]) -> set[str]:
    """The groups a run on ``names`` may send a request to: the names and, transitively,
    their fallbacks (and ``default_fallbacks``) in ``router_settings``."""
    rules: dict[str, list[str]] = {}
    for key in FALLBACK_SETTINGS:
        for rule in router_settings.get(key) or []:
            if isinstance(rule, dict):
                for group, targets in rule.items():
                    listed = targets if isinstance(targets, list) else [targets]
                    rules.setdefault(str(group), []).extend(str(t) for t in listed)
    defaults = router_settings.get("default_fallbacks") or []
    todo = [*names, *(str(d) for d in (defaults if isinstance(defaults, list) else [defaults]))]
    found: set[str] = set()
    while todo:
        group = todo.pop()
        if group not in found:
            found.add(group)
            todo += rules.get(group, [])
    return found


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _positive(value: Any, key: str) -> int | None:
    number = _count(value, key)
    if number == 0:
        raise ConfigError(f"{key} must be a positive whole number, not {value!r}")
    return number


def _count(value: Any, key: str, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be a whole number, not {value!r}")
    return value
