"""A Routing takes back what it registered with litellm: many runs in one process (as
`local-brain mcp` makes them) leave litellm's global lists and its Routers as they were."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from local_brain.config import Settings, load_settings
from local_brain.errors import BackendUnavailable
from local_brain.models import Routing
from local_brain.safe_import import import_model_stack
from tests.fakes.model_server import ModelServer, closed_port_url

# litellm's module-level callback lists: a Router adds its hooks to several of them, and
# litellm copies whatever sits in `callbacks` into the others on the next request.
CALLBACK_LISTS = (
    "callbacks",
    "input_callback",
    "success_callback",
    "failure_callback",
    "service_callback",
    "_async_input_callback",
    "_async_success_callback",
    "_async_failure_callback",
)


def settings_for(tmp_path: Path, primary_base: str, backup_base: str) -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: primary
    litellm_params: {{model: ollama_chat/absent:1b, api_base: "{primary_base}"}}
  - model_name: backup
    litellm_params: {{model: ollama_chat/qwen2.5:3b, api_base: "{backup_base}"}}
router_settings:
  fallbacks: [{{primary: [backup]}}]
litellm_settings:
  callbacks: [local_brain_test_hook]
  success_callback: [local_brain_test_sink]
"""
    )
    return load_settings(str(config), environ={"HOME": str(tmp_path)})


def model_stack() -> Any:
    """litellm, imported the way local-brain does it (offline, environment untouched)."""
    litellm, _ = import_model_stack()
    return litellm


def litellm_state() -> dict[str, int]:
    """The sizes of litellm's global registries, and how many Routers are alive."""
    litellm = model_stack()
    from litellm.router import _live_routers  # litellm's registry of Routers in use

    gc.collect()
    state = {name: len(getattr(litellm, name)) for name in CALLBACK_LISTS}
    state["live routers (litellm.router._live_routers)"] = len(_live_routers)
    state["Router objects"] = sum(isinstance(o, litellm.Router) for o in gc.get_objects())
    return state


def ask(routing: Routing) -> Any:
    from smolagents.models import ChatMessage

    message = ChatMessage(role="user", content=[{"type": "text", "text": "Which file?"}])
    return routing.model("primary", "agent").generate([message])


def test_twenty_runs_in_one_process_leave_no_growth(
    model_server: ModelServer, tmp_path: Path
) -> None:
    litellm = model_stack()
    settings = settings_for(tmp_path, model_server.url, model_server.url)

    def one_run() -> None:
        with Routing(settings, ["primary"]) as routing:
            assert litellm.callbacks.count("local_brain_test_hook") == 1
            assert litellm.success_callback.count("local_brain_test_sink") == 1
            ask(routing)
            # every run hears about its own failures: the primary is not installed
            assert [notice.took_over for notice in routing.fallbacks] == ["backup"]
            assert "absent:1b" in routing.fallbacks[0].reason

    for _ in range(2):  # litellm keeps the first Router's hooks and a few recent ones cached
        one_run()
    before = litellm_state()
    for _ in range(20):
        one_run()
    after = litellm_state()

    assert {k: v for k, v in after.items() if k != "Router objects"} == {
        k: v for k, v in before.items() if k != "Router objects"
    }
    assert after["Router objects"] <= before["Router objects"]
    assert "local_brain_test_hook" not in litellm.callbacks
    assert "local_brain_test_sink" not in litellm.success_callback
    assert len(model_server.chat_requests("qwen2.5:3b")) == 22


def test_configured_callbacks_stay_while_any_routing_uses_them(
    model_server: ModelServer, tmp_path: Path
) -> None:
    litellm = model_stack()
    settings = settings_for(tmp_path, model_server.url, model_server.url)
    first = Routing(settings, ["backup"])
    second = Routing(settings, ["backup"])
    assert litellm.callbacks.count("local_brain_test_hook") == 1
    first.close()
    assert litellm.callbacks.count("local_brain_test_hook") == 1
    second.close()
    second.close()  # a second close is harmless
    assert "local_brain_test_hook" not in litellm.callbacks


def test_a_routing_that_cannot_start_leaves_nothing_behind(
    model_server: ModelServer, tmp_path: Path
) -> None:
    litellm = model_stack()
    with Routing(settings_for(tmp_path, model_server.url, model_server.url), ["backup"]):
        pass  # litellm's own first-use set-up happens here
    before = litellm_state()

    dead = settings_for(tmp_path, closed_port_url(), closed_port_url())
    with pytest.raises(BackendUnavailable, match="cannot connect"):
        Routing(dead, ["primary"])

    assert litellm_state() == before
    assert "local_brain_test_hook" not in litellm.callbacks


def test_litellm_settings_are_given_back_when_the_run_ends(
    model_server: ModelServer, tmp_path: Path
) -> None:
    litellm = model_stack()
    before = (litellm.drop_params, litellm.request_timeout)
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: local
    litellm_params: {{model: ollama_chat/qwen2.5:3b, api_base: "{model_server.url}"}}
litellm_settings: {{drop_params: true, request_timeout: 42}}
"""
    )
    settings = load_settings(str(config), environ={"HOME": str(tmp_path)})

    with Routing(settings, ["local"]) as outer:
        assert (litellm.drop_params, litellm.request_timeout) == (True, 42)
        with Routing(settings, ["local"]):  # a second run at the same time (mcp)
            pass
        assert litellm.drop_params is True  # still held by the run going on
        assert outer.router is not None

    assert (litellm.drop_params, litellm.request_timeout) == before
