"""The run's flow, in process: Settings -> RunPlan (flag precedence in one place), the
RunSession's one `finally`, and the typed outcomes (ToolResult, Param conversion, the step
limit, internal errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local_brain.config import load_settings
from local_brain.errors import ConfigError, ToolError
from local_brain.plan import HELPERS, MANAGER, SOLO, make_plan
from local_brain.tools import Param, ToolResult, all_tools
from local_brain.workspace import Workspace
from tests.fakes.model_server import ModelServer
from tests.test_e2e import code

# In-process runs register their model with litellm for the rest of the process; a name of
# their own keeps other tests' expectations about litellm's look-ups (/api/show) intact.
IN_PROCESS_MODEL = "flow-only:1b"


def no_lookup() -> str:
    raise AssertionError("the installed models were looked up")


def settings_with(tmp_path: Path, local_brain: str = "", **flags: Any) -> Any:
    config = tmp_path / "config.yaml"
    config.write_text(f"local_brain:\n{local_brain}" if local_brain else "")
    return load_settings(str(config), environ={"HOME": str(tmp_path)}, **flags)


def test_solo_plan_takes_the_run_wide_model_and_limits(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, model="qwen3:8b", max_steps=4, step_timeout=7)

    plan = make_plan(settings, team=False, installed_default=no_lookup)

    assert not plan.team and plan.helpers == () and plan.worker is None
    assert (plan.lead.name, plan.lead.model, plan.lead.max_steps) == (SOLO, "qwen3:8b", 4)
    assert plan.lead.step_timeout == 7.0 and plan.models == {SOLO: "qwen3:8b"}


def test_the_installed_default_is_looked_up_only_when_no_model_is_named(tmp_path: Path) -> None:
    plan = make_plan(settings_with(tmp_path), team=False, installed_default=lambda: "best:1b")

    assert plan.lead.model == "best:1b"


def test_helper_config_applies_where_no_flag_says_otherwise(tmp_path: Path) -> None:
    own = "  agents:\n    code_search: {model: small:1b, max_steps: 3, step_timeout: 9}\n"
    settings = settings_with(tmp_path, own + "  max_steps: 15\n", manager="big:30b", model="m:3b")

    plan = make_plan(settings, team=True, installed_default=no_lookup)

    helpers = {helper.name: helper for helper in plan.helpers}
    assert plan.team and plan.lead.name == MANAGER and plan.lead.model == "big:30b"
    assert tuple(helpers) == HELPERS and plan.worker == "m:3b"
    assert (helpers["code_search"].model, helpers["code_search"].max_steps) == ("small:1b", 3)
    assert helpers["code_search"].step_timeout == 9.0
    assert (helpers["git_ops"].model, helpers["git_ops"].max_steps) == ("m:3b", 8)


def test_flags_beat_the_helpers_own_config(tmp_path: Path) -> None:
    own = "  agents:\n    code_search: {model: small:1b, max_steps: 3, step_timeout: 9}\n"
    settings = settings_with(
        tmp_path, own, manager="big:30b", worker="w:7b", max_steps=12, step_timeout=4
    )

    plan = make_plan(settings, team=True, installed_default=no_lookup)

    for helper in plan.helpers:
        assert (helper.model, helper.max_steps, helper.step_timeout) == ("w:7b", 12, 4.0)


def test_an_unknown_helper_in_config_is_a_config_error(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "  agents:\n    web_search: {max_steps: 2}\n", model="m")

    with pytest.raises(ConfigError, match=r"local_brain\.agents\.web_search: no such helper"):
        make_plan(settings, team=True, installed_default=no_lookup)


def test_tool_results_are_typed_and_keep_the_text_the_model_sees(make_repo) -> None:
    workspace = Workspace(make_repo({"a.py": "x = 1\n"}))
    read_file = all_tools()["read_file"]

    good = read_file.run(workspace, "a.py")
    bad = read_file.run(workspace, "missing.py")
    wrong = read_file.run(workspace, "a.py", start_line="two")

    assert isinstance(good, ToolResult) and good.ok and "x = 1" in good.text
    assert not bad.ok and bad.text.startswith("Error: ") and bad == bad.text
    assert (
        not wrong.ok and wrong.text == "Error: read_file: start_line must be an integer, got 'two'"
    )


def test_param_owns_its_type_conversion() -> None:
    count = Param("n", "integer", "how many", 10)
    flag = Param("f", "boolean", "on or off", False)
    text = Param("s", "string", "a name")

    assert (count.python_type, flag.python_type, text.python_type) == (int, bool, str)
    assert count.convert("t", "12") == 12 and count.convert("t", 3.0) == 3
    assert flag.convert("t", "Yes") is True and flag.convert("t", 0) is False
    assert text.convert("t", 5) == "5" and count.convert("t", None) is None
    with pytest.raises(ToolError, match="t needs 's'"):
        text.convert("t", None)
    with pytest.raises(ToolError, match="n must be an integer"):
        count.convert("t", True)


def test_a_bug_of_ours_is_an_internal_error_and_still_closes_the_transcript(
    model_server: ModelServer,
    make_repo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from local_brain import agents
    from local_brain.cli import main

    class BuggyAgent:
        def run(self, task: str) -> Any:
            raise KeyError("a bug of ours")

        def cleanup(self) -> None:
            pass

    monkeypatch.setattr(agents, "build", lambda *args, **kwargs: BuggyAgent())
    model_server.installed.append(IN_PROCESS_MODEL)
    monkeypatch.setenv("OLLAMA_API_BASE", model_server.url)
    repo = make_repo({"a.py": "x = 1\n"})
    transcript = tmp_path / "run.jsonl"

    with pytest.raises(SystemExit) as done:
        main(
            [
                "-q",
                "-m",
                IN_PROCESS_MODEL,
                "--root",
                str(repo),
                "--transcript",
                str(transcript),
                "hi",
            ]
        )

    assert done.value.code == 1
    assert "internal error: KeyError: 'a bug of ours'" in capsys.readouterr().err
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [record["event"] for record in records][-2:] == ["error", "run_end"]
    assert records[-2]["message"] == "internal error: KeyError: 'a bug of ours'"
    assert records[-1]["exit_code"] == 1


def test_the_step_limit_is_a_typed_outcome(model_server: ModelServer, make_repo) -> None:
    from local_brain.errors import AgentFailed
    from local_brain.session import RunSession

    model_server.script(None, [code('print("still looking")')] * 3)
    model_server.installed.append(IN_PROCESS_MODEL)
    repo = make_repo({"a.py": "x = 1\n"})
    settings = load_settings(
        None,
        environ={"HOME": str(repo.parent), "OLLAMA_API_BASE": model_server.url},
        model=IN_PROCESS_MODEL,
        max_steps=2,
    )

    with pytest.raises(AgentFailed, match=r"no answer after 2 steps \(step limit reached\)"):
        RunSession("where is x?", Workspace(repo), settings).run()
