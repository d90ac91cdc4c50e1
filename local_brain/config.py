"""Settings: packaged defaults < user file < --config/LOCAL_BRAIN_CONFIG < env < flags.

The file format is LiteLLM's proxy config (``model_list``, ``router_settings``,
``litellm_settings``) plus our own ``local_brain`` section, so one file serves both
local-brain and ``litellm --config``. Config files are only ever read from the places
above: never from inside the repository being explored.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from local_brain.errors import ConfigError

DEFAULT_OLLAMA_API_BASE = "http://localhost:11434"
MIN_OUTPUT_TOKENS = 256  # the bounds of a reply cap (local_brain.max_output_tokens, max_tokens)
MAX_OUTPUT_TOKENS = 16_384
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know about models and limits, after all layers."""

    model_list: list[dict[str, Any]]
    router_settings: dict[str, Any]
    litellm_settings: dict[str, Any]
    model: str | None
    manager: str | None
    worker: str | None
    agents: dict[str, dict[str, Any]]
    max_steps: int
    step_timeout: float
    tool_time: float
    num_ctx: int
    ollama_api_base: str
    max_output_tokens: int = 1500
    first_token_timeout: float = 300.0
    stall_timeout: float = 60.0
    api_base: str | None = None
    config_files: tuple[Path, ...] = field(default=())
    from_flags: frozenset[str] = field(default=frozenset())  # settings given as CLI flags

    @property
    def group_names(self) -> list[str]:
        """Model groups defined by the config, in file order, without repeats."""
        return list(dict.fromkeys(entry["model_name"] for entry in self.model_list))


def user_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "local-brain" / "config.yaml"


def load_settings(
    config_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Build Settings from every layer. ``flags`` are CLI values; None means "not given".

    Flags: model, manager, worker, api_base, max_steps, step_timeout.
    """
    environ = os.environ if environ is None else environ
    merged = _read_packaged_defaults()
    loaded: list[Path] = []

    user_file = user_config_path(environ)
    if user_file.is_file():
        merged = merge(merged, read_config_file(user_file))
        loaded.append(user_file)

    explicit = config_file or environ.get("LOCAL_BRAIN_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            source = "--config" if config_file else "LOCAL_BRAIN_CONFIG"
            raise ConfigError(
                f"config file not found: {path} (from {source})",
                hint="check the path; `local-brain config path` shows where config is read from",
            )
        merged = merge(merged, read_config_file(path))
        loaded.append(path)

    merged = resolve_env_references(merged, environ)
    return _settings_from(merged, environ, flags, tuple(loaded))


_FIX_FILE_HINT = "fix the file (`local-brain config path` lists the config files in effect)"


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse and validate one config file; every problem is a ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}", hint=_FIX_FILE_HINT) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(
            f"invalid YAML in config file {path}{where}: {problem}", hint=_FIX_FILE_HINT
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping at the top level")
    _validate(data, path)
    return _anchor_gguf_paths(data, path.resolve().parent)


_LLAMACPP = "llamacpp/"  # models/llamacpp.py (not imported: models/ imports this module)


def _anchor_gguf_paths(data: dict[str, Any], directory: Path) -> dict[str, Any]:
    """A relative ``llamacpp/<file.gguf>`` in a config file names a file next to that
    file, not in whatever directory local-brain runs from (``~``, absolute paths,
    ``ollama:NAME`` and a leading ``${VAR}`` are left as written)."""
    for entry in data.get("model_list") or []:
        params = entry.get("litellm_params") if isinstance(entry, dict) else None
        model = params.get("model") if isinstance(params, dict) else None
        if not isinstance(model, str) or not model.startswith(_LLAMACPP):
            continue
        spec = model.removeprefix(_LLAMACPP)
        written_as_is = spec.startswith(("~", "ollama:", "${")) or Path(spec).is_absolute()
        if spec.strip() and not written_as_is:
            params["model"] = _LLAMACPP + str(directory / spec)
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value (lists included) replaces."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def resolve_env_references(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ``os.environ/NAME`` (a whole value) and ``${NAME}`` (anywhere in a string).

    A whole-value reference to an unset variable becomes None, so an unused cloud
    deployment whose key is not set does not stop a local run.
    """
    if isinstance(value, dict):
        return {key: resolve_env_references(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env_references(item, environ) for item in value]
    if isinstance(value, str):
        if value.startswith("os.environ/"):
            return environ.get(value.removeprefix("os.environ/"))
        whole = _ENV_REFERENCE.fullmatch(value)
        if whole:
            return environ.get(whole.group(1))
        return _ENV_REFERENCE.sub(lambda match: environ.get(match.group(1), ""), value)
    return value


def _read_packaged_defaults() -> dict[str, Any]:
    text = resources.files("local_brain.defaults").joinpath("default.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def _validate(data: dict[str, Any], path: Path) -> None:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"config file {path}: {message}")

    model_list = data.get("model_list")
    if model_list is not None:
        if not isinstance(model_list, list):
            raise fail("model_list must be a list of deployments")
        for index, entry in enumerate(model_list):
            if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
                raise fail(f"model_list[{index}] needs a model_name")
            params = entry.get("litellm_params")
            if not isinstance(params, dict) or not isinstance(params.get("model"), str):
                raise fail(
                    f"model_list[{index}] ({entry['model_name']}) needs litellm_params.model"
                )
    for section in ("router_settings", "litellm_settings", "general_settings", "local_brain"):
        if data.get(section) is not None and not isinstance(data[section], dict):
            raise fail(f"{section} must be a mapping")
    ours = data.get("local_brain") or {}
    for key in ("max_steps", "num_ctx"):
        if key in ours and ours[key] is not None:
            _positive(ours[key], f"local_brain.{key}", fail, integer=True)
    _output_cap(ours.get("max_output_tokens"), "local_brain.max_output_tokens", fail)
    for index, entry in enumerate(model_list or []):
        cap = entry["litellm_params"].get("max_tokens")
        _output_cap(cap, f"model_list[{index}] ({entry['model_name']}) max_tokens", fail)
    for key in ("step_timeout", "tool_time", "first_token_timeout", "stall_timeout"):
        if key in ours and ours[key] is not None:
            _positive(ours[key], f"local_brain.{key}", fail, integer=False)
    agents = ours.get("agents")
    if agents is not None and not (
        isinstance(agents, dict) and all(isinstance(v, dict) for v in agents.values())
    ):
        raise fail("local_brain.agents must map helper names to settings")


def _output_cap(value: Any, name: str, fail: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_OUTPUT_TOKENS <= value <= MAX_OUTPUT_TOKENS
    ):
        raise fail(
            f"{name} must be a whole number from {MIN_OUTPUT_TOKENS} to {MAX_OUTPUT_TOKENS}, "
            f"got {value!r}"
        )


def _positive(value: Any, name: str, fail: Any, *, integer: bool) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        kind = "a positive whole number" if integer else "a positive number"
        raise fail(f"{name} must be {kind}, got {value!r}")


def _settings_from(
    merged: dict[str, Any],
    environ: Mapping[str, str],
    flags: dict[str, Any],
    loaded: tuple[Path, ...],
) -> Settings:
    ours = merged.get("local_brain") or {}

    def pick(flag: str, env_name: str | None = None) -> Any:
        if flags.get(flag) is not None:
            return flags[flag]
        if env_name and environ.get(env_name):
            return environ[env_name]
        return ours.get(flag)

    return Settings(
        model_list=list(merged.get("model_list") or []),
        router_settings=dict(merged.get("router_settings") or {}),
        litellm_settings=dict(merged.get("litellm_settings") or {}),
        model=pick("model", "LOCAL_BRAIN_MODEL") or None,
        manager=pick("manager") or None,
        worker=pick("worker") or None,
        agents={name: dict(value) for name, value in (ours.get("agents") or {}).items()},
        max_steps=int(pick("max_steps")),
        step_timeout=float(pick("step_timeout")),
        tool_time=float(ours.get("tool_time") or 120),
        num_ctx=int(ours.get("num_ctx") or 8192),
        max_output_tokens=int(ours.get("max_output_tokens") or 1500),
        first_token_timeout=float(ours.get("first_token_timeout") or 300),
        stall_timeout=float(ours.get("stall_timeout") or 60),
        ollama_api_base=(environ.get("OLLAMA_API_BASE") or DEFAULT_OLLAMA_API_BASE).rstrip("/"),
        api_base=flags.get("api_base") or None,
        config_files=loaded,
        from_flags=frozenset(name for name, value in flags.items() if value is not None),
    )
