"""Settings layers, env references and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_brain.config import load_settings, merge, resolve_env_references
from local_brain.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_packaged_defaults(hermetic_env: Path) -> None:
    settings = load_settings(environ={"HOME": str(hermetic_env)})
    assert settings.max_steps == 15
    assert settings.step_timeout == 30
    assert settings.model is None
    assert settings.ollama_api_base == "http://localhost:11434"
    assert settings.router_settings["num_retries"] == 1
    assert settings.config_files == ()


def test_layers_in_order(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    write(
        tmp_path / "xdg/local-brain/config.yaml", "local_brain: {model: user-model, max_steps: 7}\n"
    )
    explicit = write(tmp_path / "team.yaml", "local_brain: {model: team-model}\n")

    assert load_settings(environ=env).model == "user-model"
    layered = load_settings(str(explicit), environ=env)
    assert layered.model == "team-model"
    assert layered.max_steps == 7  # user file still applies where the later layer is silent
    assert load_settings(str(explicit), environ={**env, "LOCAL_BRAIN_MODEL": "env"}).model == "env"
    flagged = load_settings(
        str(explicit), environ={**env, "LOCAL_BRAIN_MODEL": "env"}, model="flag", max_steps=3
    )
    assert (flagged.model, flagged.max_steps) == ("flag", 3)


def test_local_brain_config_env_var(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "local_brain: {step_timeout: 4.5}\n")
    settings = load_settings(environ={"HOME": str(tmp_path), "LOCAL_BRAIN_CONFIG": str(path)})
    assert settings.step_timeout == 4.5
    assert settings.config_files == (path,)


def test_lists_replace_and_mappings_merge() -> None:
    base = {"model_list": [1, 2], "router_settings": {"timeout": 1, "num_retries": 1}}
    merged = merge(base, {"model_list": [3], "router_settings": {"timeout": 9}})
    assert merged == {"model_list": [3], "router_settings": {"timeout": 9, "num_retries": 1}}


def test_env_references() -> None:
    env = {"KEY": "secret", "HOST": "gpu"}
    value = {
        "a": "os.environ/KEY",
        "b": "${KEY}",
        "c": "http://${HOST}:11434",
        "d": ["os.environ/MISSING"],
        "e": 3,
    }
    assert resolve_env_references(value, env) == {
        "a": "secret",
        "b": "secret",
        "c": "http://gpu:11434",
        "d": [None],
        "e": 3,
    }


def test_model_list_and_groups(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        """
model_list:
  - model_name: worker
    litellm_params: {model: ollama_chat/qwen2.5:3b, api_base: "${HOST}"}
  - model_name: worker
    litellm_params: {model: ollama_chat/qwen2.5:3b, api_base: http://b:11434}
  - model_name: manager
    litellm_params: {model: ollama_chat/qwen3:30b}
""",
    )
    settings = load_settings(str(path), environ={"HOME": str(tmp_path), "HOST": "http://a:1"})
    assert settings.group_names == ["worker", "manager"]
    assert settings.model_list[0]["litellm_params"]["api_base"] == "http://a:1"


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "local_brain:\n  model: a\n bad: [\n")
    with pytest.raises(ConfigError) as error:
        load_settings(str(path), environ={"HOME": str(tmp_path)})
    assert str(path) in str(error.value)
    assert "line 3" in str(error.value)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- just a list\n", "mapping at the top level"),
        ("model_list: {a: 1}\n", "model_list must be a list"),
        ("model_list: [{model_name: x}]\n", "litellm_params.model"),
        ("local_brain: {max_steps: 0}\n", "max_steps must be a positive whole number"),
        ("local_brain: {step_timeout: fast}\n", "step_timeout must be a positive number"),
        ("router_settings: [1]\n", "router_settings must be a mapping"),
    ],
)
def test_invalid_config_is_a_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigError, match=fragment) as error:
        load_settings(str(path), environ={"HOME": str(tmp_path)})
    assert str(path) in str(error.value)
    assert error.value.exit_status == 2


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.yaml"), environ={"HOME": str(tmp_path)})


def test_config_inside_the_repository_is_never_read(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    write(repo / ".local-brain.yaml", "local_brain: {model: evil}\n")
    write(repo / "config.yaml", "local_brain: {model: evil}\n")
    write(repo / "local-brain/config.yaml", "local_brain: {model: evil}\n")
    monkeypatch.chdir(repo)
    assert load_settings(environ={"HOME": str(tmp_path / "home")}).model is None
