"""`local-brain eval` over scripted models of known quality: one that answers exactly, one
that answers at once with invented paths and lines, one that never writes usable output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from local_brain.evaluation.questions import Question, generate_questions
from local_brain.evaluation.scoring import contains_fact, score
from local_brain.workspace import Workspace
from tests.fakes.model_server import ModelServer
from tests.fakes.scripted_models import BAD, GOOD, UNUSABLE, code, responder_for

SEED = 7


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {
            "pyproject.toml": '[project]\nname = "billing"\nversion = "2.7.1"\n',
            "src/billing/invoice.py": "\n\ndef compute_total(items):\n    return sum(items)\n",
            "src/billing/tax.py": "RATE = 7\n\n\ndef tax_rate():\n    return RATE\n",
            "src/billing/models.py": "class InvoiceLine:\n    cents = 0\n",
            ".env": "STRIPE_KEY=sk_live_abc\n",
        },
        commits=[
            (
                "Round tax down (kiwi-3)",
                {"src/billing/tax.py": "RATE = 8\n\n\ndef tax_rate():\n    return RATE\n"},
            )
        ],
    )


def run_eval(cli, model_server: ModelServer, repo: Path, tmp_path: Path, *extra: str):
    questions = generate_questions(Workspace(repo), 3, SEED).questions
    model_server.responder = responder_for(questions)
    config = tmp_path / "limits.yaml"  # the good model plays the other role of each team
    config.write_text(f"local_brain: {{max_steps: 3, manager: '{GOOD}', worker: '{GOOD}'}}\n")
    return cli("eval", "--models", f"{UNUSABLE},{BAD},{GOOD}", "--questions", "3", "--seed",
               str(SEED), "--root", str(repo), "--config", str(config), *extra,
               server=model_server)  # fmt: skip


def test_eval_ranks_the_models_and_recommends_the_best(
    cli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    result = run_eval(cli, model_server, repo, tmp_path, "--json")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    document = json.loads(result.stdout)
    rows = {(row["model"], row["role"]): row for row in document["rows"]}
    assert len(rows) == 9 and all(row["asked"] == 3 for row in rows.values())
    for role in ("solo", "manager", "worker"):
        good, bad, unusable = (rows[(model, role)] for model in (GOOD, BAD, UNUSABLE))
        assert good["score"] == 1.0 and good["correct"] == 3, (role, good)
        assert bad["score"] == 0.0 and unusable["score"] == 0.0
    assert rows[(BAD, "solo")]["wrong"] == 3
    assert rows[(BAD, "solo")]["unverified_citations"] == 3  # the inventions are flagged
    assert rows[(UNUSABLE, "solo")]["no_answer"] == 3
    assert rows[(UNUSABLE, "solo")]["failures"] == {"unusable_output": 3}
    assert (
        rows[(GOOD, "solo")]["median_steps"] == 1 and rows[(GOOD, "manager")]["median_steps"] == 2
    )
    assert rows[(GOOD, "solo")]["tokens_per_second"] == pytest.approx(50, rel=0.05)  # the server's
    assert rows[(GOOD, "solo")]["tokens"] > 0 and rows[(GOOD, "solo")]["seconds"] > 0
    ranked = [row["model"] for row in document["rows"] if row["role"] == "solo"]
    assert ranked == [GOOD, BAD, UNUSABLE]
    assert document["recommendation"] == {"model": GOOD, "manager": GOOD, "worker": GOOD}


def test_the_table_and_the_written_config_that_a_later_run_accepts(
    cli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    written = tmp_path / "recommended.yaml"

    result = run_eval(cli, model_server, repo, tmp_path, "--roles", "solo",
                      "--write-config", str(written))  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "role", "score", "correct", "failures", "steps",
                                "tokens", "seconds", "tok/s"]  # fmt: skip
    assert re.match(rf"{re.escape(GOOD)}\s+solo\s+1\.00\s+3/3", lines[1])
    assert "recommended: model qwen3:30b" in result.stdout
    assert yaml.safe_load(written.read_text()) == {"local_brain": {"model": GOOD}}

    model_server.clear_requests()
    model_server.responder = None
    model_server.script(None, [code('final_answer("done")')])
    later = cli("--config", str(written), "--root", str(repo), "Q?", server=model_server)
    assert later.returncode == 0, later.stderr
    assert [request.model for request in model_server.chat_requests()] == [GOOD]

    again = run_eval(cli, model_server, repo, tmp_path, "--write-config", str(written))
    assert again.returncode == 2 and "exists (add --force)" in again.stderr


def test_bad_input_is_one_line_and_exit_2(cli, repo: Path) -> None:
    result = cli("eval", "--roles", "solo,boss", "--models", GOOD, "--root", str(repo))
    assert result.returncode == 2
    assert "unknown role 'boss'" in result.stderr and "Traceback" not in result.stderr


def test_facts_match_whole_and_shas_by_prefix() -> None:
    assert contains_fact("defined at src/a.py:17.", "src/a.py:17")
    assert not contains_fact("defined at src/a.py:170", "src/a.py:17")
    assert contains_fact("3 files", "3") and not contains_fact("30 files", "3")
    assert contains_fact("commit 1a2b3c4d5e6f", "1a2b3c4")
    question = Question("count", "How many?", ("3",), (), "search")
    assert score(question, "three, i.e. 3").outcome == "correct"
    assert score(question, None, "step_limit").outcome == "no_answer"


def test_a_model_the_server_lacks_is_a_result_not_a_crash(
    cli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    model_server.installed = [GOOD]  # BAD is not installed: every request for it is a 404

    result = run_eval(cli, model_server, repo, tmp_path, "--roles", "solo", "--json")

    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows[BAD]["failures"] == {"backend_error": 3} and rows[BAD]["no_answer"] == 3
    assert rows[GOOD]["score"] == 1.0
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ctrl_c_prints_what_is_done(model_server: ModelServer, repo: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.fakes.model_server import Fault
    from tests.test_faults import default_sigint

    questions = generate_questions(Workspace(repo), 2, SEED).questions
    model_server.responder = responder_for(questions)
    model_server.script(BAD, [code('final_answer("no idea")'), Fault.hang(60)])
    process = subprocess.Popen(  # the signal is the point: the installed command
        [str(Path(sys.executable).with_name("local-brain")), "eval", "--models", BAD,
         "--questions", "2", "--seed", str(SEED), "--root", str(repo)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OLLAMA_API_BASE": model_server.url},
        preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(model_server.chat_requests(BAD)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    assert re.search(rf"{re.escape(BAD)}\s+solo\s+0\.00\s+0/1", stdout)
    assert "interrupted after 1 of 2 attempts" in stdout
    assert "Traceback" not in stderr


# -- counts, carried config groups, one attempt's crash ---------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        "2",
        "2.",
        "2 files",
        "It appears in 2 files.",
        "Two files contain it: src/app/config.py and src/app/main.py.",
        "Files: 2",
        "The number of files is 2.",
        "It is found in 2 Python files (src/a.py:4, src/b.py:1).",
        "2 (src/app/config.py and src/app/main.py)",
        "**2**",
        "Answer: 2 — in src/v3/a.py and src/v3/b.py",
        "It is in **2** files, not 3 as the docs say.",
    ],
)
def test_a_count_stated_as_the_count_is_correct(answer: str) -> None:
    question = Question("count", "How many files?", ("2",), (), "search")
    assert score(question, answer).outcome == "correct"


@pytest.mark.parametrize(
    "answer",
    [
        "It appears in 3 files; the first match is on line 2 of src/a.py.",
        "See src/a.py:2 and src/b.py:2 and src/c.py:9: 3 files in all.",
        "Only src/v2/api.py has it, so 1 file.",
        "12 files",
        "As of 2 releases ago it was in 5 files.",
        "I found it in src/a.py:2.",
        "I could not count them; line 2 of src/a.py mentions it.",
        "1 file in src and 2 in tests: 3 files.",
    ],
)
def test_a_number_that_is_not_the_count_is_not_correct(answer: str) -> None:
    question = Question("count", "How many files?", ("2",), (), "search")
    assert score(question, answer).outcome == "wrong"


def test_the_written_config_carries_the_groups_and_keeps_secret_references(
    cli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    questions = generate_questions(Workspace(repo), 2, SEED).questions
    model_server.responder = responder_for(questions)
    config = tmp_path / "groups.yaml"
    config.write_text(
        f"model_list:\n"
        f"  - model_name: strong\n"
        f"    litellm_params: {{model: 'ollama_chat/{GOOD}', api_base: os.environ/EVAL_BASE,"
        f" api_key: os.environ/EVAL_SECRET}}\n"
        f"  - model_name: weak\n"
        f"    litellm_params: {{model: 'ollama_chat/{BAD}', api_base: os.environ/EVAL_BASE}}\n"
        f"router_settings: {{timeout: 77, fallbacks: [{{strong: [weak]}}]}}\n"
        f"local_brain: {{max_steps: 3}}\n"
    )
    env = {"EVAL_BASE": model_server.url, "EVAL_SECRET": "sk-very-secret-value"}
    written = tmp_path / "recommended.yaml"

    result = cli("eval", "--models", "weak,strong", "--roles", "solo", "--questions", "2",
                 "--seed", str(SEED), "--root", str(repo), "--config", str(config),
                 "--write-config", str(written), server=model_server, env=env)  # fmt: skip

    assert result.returncode == 0, result.stderr
    text = written.read_text()
    assert "sk-very-secret-value" not in text and model_server.url not in text
    assert written.stat().st_mode & 0o077 == 0  # it may hold keys: its owner's only
    data = yaml.safe_load(text)
    assert data["local_brain"] == {"model": "strong"}
    entries = {entry["model_name"]: entry["litellm_params"] for entry in data["model_list"]}
    assert entries["strong"] == {"model": f"ollama_chat/{GOOD}", "api_base": "os.environ/EVAL_BASE",
                                 "api_key": "os.environ/EVAL_SECRET"}  # fmt: skip
    assert "weak" in entries  # the fallback the router settings name comes along
    assert data["router_settings"] == {"timeout": 77, "fallbacks": [{"strong": ["weak"]}]}

    model_server.clear_requests()
    model_server.responder = None
    model_server.script(None, [code('final_answer("done")')])
    later = cli("--config", str(written), "--root", str(repo), "Q?", server=model_server, env=env)
    assert later.returncode == 0, later.stderr
    assert [request.model for request in model_server.chat_requests()] == [GOOD]


def test_an_unexpected_error_in_one_attempt_is_a_failure_kind_not_the_end(
    cli, model_server: ModelServer, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import local_brain.runner

    real_run = local_brain.runner.run
    calls = []

    def run_that_breaks_once(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise ValueError("a bug somewhere\nsecond line")
        return real_run(*args, **kwargs)

    monkeypatch.setattr(local_brain.runner, "run", run_that_breaks_once)

    result = run_eval(cli, model_server, repo, tmp_path, "--roles", "solo", "--json")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and len(calls) == 9
    rows = {row["model"]: row for row in json.loads(result.stdout)["rows"]}
    assert rows[UNUSABLE]["failures"] == {
        "internal error: ValueError: a bug somewhere": 1,
        "unusable_output": 2,
    }
    assert rows[GOOD]["score"] == 1.0


def test_a_count_in_words_among_prose() -> None:
    question = Question("count", "How many files?", ("2",), (), "search")
    assert score(question, "2 (one in src, one in tests)").outcome == "correct"
    assert score(question, "Two.").outcome == "correct"
    assert score(question, "In one file: src/a.py.").outcome == "wrong"


def test_a_config_file_that_appears_during_the_eval_is_not_overwritten(
    cli, model_server: ModelServer, repo: Path, tmp_path: Path
) -> None:
    written = tmp_path / "recommended.yaml"
    questions = generate_questions(Workspace(repo), 1, SEED).questions
    respond = responder_for(questions)

    def respond_and_create(request):
        if not written.exists():
            written.write_text("# mine\n")
        return respond(request)

    model_server.responder = respond_and_create
    result = cli("eval", "--models", GOOD, "--questions", "1", "--seed", str(SEED),
                 "--root", str(repo), "--write-config", str(written),
                 server=model_server)  # fmt: skip

    assert result.returncode == 2 and "exists (add --force)" in result.stderr
    assert written.read_text() == "# mine\n"
    assert "Traceback" not in result.stderr

    forced = cli("eval", "--models", GOOD, "--questions", "1", "--seed", str(SEED),
                 "--root", str(repo), "--write-config", str(written), "--force",
                 server=model_server)  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert yaml.safe_load(written.read_text()) == {"local_brain": {"model": GOOD}}
