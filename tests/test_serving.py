"""Behaving well on real model servers: one load per model per run, a prompt prefix the server
can reuse, a cap on every reply, and figures that tell the truth.

The scripted server plays Ollama's scheduler (a load whenever ``num_ctx`` changes, /api/ps,
a per-model prompt-prefix cache, ``num_predict``) and llama.cpp/vLLM's usage reports; litellm
and smolagents run for real, in-process.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from local_brain.models.context import MAX_OUTPUT_TOKENS, MIN_OUTPUT_TOKENS
from tests.fakes.model_server import FakeModel, Fault, ModelServer, RecordedRequest, Reply
from tests.test_e2e import code

MODEL = "qwen2.5:3b"
BIG = "qwen3:30b"


@pytest.fixture
def big_repo(make_repo) -> Path:
    lines = "".join(f"line {n} " + "x" * 70 + "\n" for n in range(300))
    return make_repo({f"part{n}.txt": lines for n in range(4)} | {"README.md": "# demo\n"})


def reading_steps(count: int) -> list[str]:
    """A run that reads a big file per step, then answers."""
    steps = [code(f'print(read_file("part{n % 4}.txt"))') for n in range(count)]
    return [*steps, code('final_answer("done")')]


def caps(requests: list[RecordedRequest]) -> set[int | None]:
    return {request.output_cap for request in requests}


def test_a_cold_server_loads_the_model_once_and_every_request_is_capped(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.script(MODEL, reading_steps(3))

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    chats = model_server.chat_requests()
    assert len(chats) == 4
    assert model_server.loads(MODEL) == 1
    assert {request.num_ctx for request in chats} == {8192}  # one size for the whole run
    assert caps(chats) == {1500}
    assert all(MIN_OUTPUT_TOKENS <= cap <= MAX_OUTPUT_TOKENS for cap in caps(chats))  # type: ignore[operator]


def test_a_team_on_one_model_loads_it_once(cli, model_server: ModelServer, big_repo: Path) -> None:
    model_server.script(MODEL, [code('print(code_search(task="Find line 5"))')])
    model_server.script(MODEL, [code('final_answer(read_file("part0.txt", end_line=5))')])
    model_server.script(MODEL, [code('final_answer("manager done")')])

    result = cli("--manager", MODEL, "--worker", MODEL, "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert len(model_server.chat_requests()) == 3
    assert model_server.loads(MODEL) == 1
    assert {request.num_ctx for request in model_server.chat_requests()} == {8192}


def test_a_team_on_two_models_loads_each_once(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.script(BIG, [code('print(code_search(task="a"))'), code('print(git_ops(task="b"))'),
                              code('final_answer("ok")')])  # fmt: skip
    model_server.script(MODEL, [code('final_answer("found a")'), code('final_answer("found b")')])

    result = cli("--manager", BIG, "--worker", MODEL, "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert model_server.loads(BIG) == 1 and model_server.loads(MODEL) == 1


def test_a_warm_server_holding_a_larger_context_loads_nothing(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.preload(MODEL, 16384)
    model_server.script(MODEL, reading_steps(2))

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert model_server.loads() == 0
    assert {request.num_ctx for request in model_server.chat_requests()} == {16384}


def test_the_window_never_exceeds_what_the_model_was_trained_for(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.installed = [FakeModel(name=MODEL, context_length=4096)]
    config = tmp_path / "c.yaml"
    config.write_text("local_brain: {num_ctx: 32768}\n")
    model_server.script(MODEL, reading_steps(1))

    result = cli("--config", str(config), "-m", MODEL, "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert {request.num_ctx for request in model_server.chat_requests()} == {4096}
    assert caps(model_server.chat_requests()) == {1024}  # a quarter of a small window


def test_a_run_that_must_compact_reuses_most_of_its_prompt(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.prefix_cache = True
    config = tmp_path / "c.yaml"
    config.write_text("local_brain: {num_ctx: 16384, max_steps: 20}\n")
    model_server.script(MODEL, reading_steps(12))

    result = cli("--config", str(config), "-m", MODEL, "--root", str(big_repo), "--json", "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    chats = model_server.chat_requests()
    shortened = [r for r in chats if "shortened to fit the context window" in r.last_text
                 or any("shortened to fit" in str(m.get("content")) for m in r.body["messages"])]  # fmt: skip
    assert shortened, "the run never had to compact: make the files bigger"
    for request in chats:  # no request exceeds its window (prompt plus reply room)
        assert request.prompt_tokens_total + (request.output_cap or 0) <= request.num_ctx
    evaluated = sum(request.prompt_tokens_evaluated for request in chats)
    total = sum(request.prompt_tokens_total for request in chats)
    assert evaluated <= total / 2, f"{evaluated} of {total} prompt tokens re-evaluated"
    assert model_server.loads(MODEL) == 1


def test_a_long_run_compacts_without_cutting_fresh_observations_or_giving_up(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.prefix_cache = True
    config = tmp_path / "c.yaml"  # about 1,600 tokens of instructions, 2,000 per observation
    config.write_text("local_brain: {num_ctx: 8192, max_steps: 40}\n")
    model_server.script(MODEL, reading_steps(30))

    result = cli("--config", str(config), "-m", MODEL, "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr  # not a false "window too small" (exit 2)
    assert result.stdout.strip() == "done"
    chats = model_server.chat_requests()
    assert len(chats) == 31
    for request in chats:
        assert request.prompt_tokens_total + (request.output_cap or 0) <= request.num_ctx
        assert "shortened to fit" not in request.last_text  # the newest observation is whole
    assert any("left out to fit" in json.dumps(r.body["messages"]) for r in chats)
    evaluated = sum(request.prompt_tokens_evaluated for request in chats)
    total = sum(request.prompt_tokens_total for request in chats)
    assert evaluated <= total / 2, f"{evaluated} of {total} prompt tokens re-evaluated"


def test_server_figures_reach_the_json_usage(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.prefix_cache = True
    model_server.report_cached_count = True
    model_server.script(MODEL, reading_steps(2))

    result = cli("-m", MODEL, "--root", str(big_repo), "--json", "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    usage = json.loads(result.stdout)["usage"][MODEL]
    chats = model_server.chat_requests()
    assert usage["loads"] == 1
    assert usage["load_seconds"] == pytest.approx(1.5, abs=0.01)
    assert usage["prompt_tokens_reused"] == sum(r.prompt_tokens_cached for r in chats) > 0
    assert usage["prompt_tokens_evaluated"] == sum(r.prompt_tokens_evaluated for r in chats)
    assert usage["generation_tokens_per_second"] == pytest.approx(50, rel=0.05)
    assert usage["prefill_tokens_per_second"] == pytest.approx(500, rel=0.05)
    assert "cut the context" not in result.stderr


def test_reused_prompt_tokens_are_no_sign_of_truncation(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.prefix_cache = True  # reports evaluated tokens only, like older servers
    model_server.script(MODEL, reading_steps(3))

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert any(r.prompt_tokens_cached > 100 for r in model_server.chat_requests())
    assert "cut the context" not in result.stderr


def test_a_server_that_cuts_the_context_is_still_noticed(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.report_cached_count = True
    model_server.max_prompt_tokens = 1500  # this server cuts long prompts
    model_server.script(MODEL, reading_steps(2))

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "cut the context" in line]
    assert len(warnings) == 1  # warned once


RAMBLING = " ".join(f"item{n}" for n in range(3000))  # long, never the same twice


def test_a_reply_cut_at_the_cap_fails_its_step_with_a_note(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.script(MODEL, [Reply(RAMBLING), code('final_answer("short and sweet")')])

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "short and sweet"
    first, second = model_server.chat_requests()
    assert first.output_cap == 1500 and first.finish_reason == "length"
    assert "cut off at the 1500-token limit" in second.last_text
    notices = [line for line in result.stderr.splitlines() if "output cap" in line]
    assert len(notices) == 1, result.stderr


def test_a_model_that_never_stops_ends_the_run(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.script(MODEL, [Reply(RAMBLING)] * 10)

    result = cli("-m", MODEL, "--root", str(big_repo), "--json", "Q?", server=model_server)

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert "output cap" in document["error"] and "2 times in a row" in document["error"]
    assert len(model_server.chat_requests()) == 2
    assert document["usage"][MODEL]["cut_replies"] == 2


def test_a_model_repeating_itself_is_stopped_early(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.ignore_output_caps = True  # it would go on for ever
    model_server.script(MODEL, [Reply.endless("la "), code('final_answer("fine")')])

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    first, second = model_server.chat_requests()
    assert "kept repeating the same text" in second.last_text
    assert "kept repeating the same text and was stopped" in result.stderr
    assert first.client_gone and model_server.open_generations() == 0  # the server stopped


def test_a_model_that_repeats_itself_every_time_ends_the_run(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.ignore_output_caps = True
    model_server.script(MODEL, [Reply.endless("la ")] * 5)

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 1
    assert "repeated itself 2 times in a row" in result.stderr


def test_a_reply_stopped_for_repeating_counts_its_tokens(
    cli, model_server: ModelServer, big_repo: Path
) -> None:
    model_server.ignore_output_caps = True
    model_server.script(MODEL, [Reply.endless("la "), code('final_answer("fine")')])

    result = cli("-m", MODEL, "--root", str(big_repo), "--json", "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    usage = json.loads(result.stdout)["usage"][MODEL]
    stopped, answered = model_server.chat_requests()
    assert stopped.usage is None and answered.usage is not None  # no figures for the first
    assert usage["prompt_tokens"] >= stopped.prompt_tokens_total + answered.usage.prompt_tokens
    assert usage["completion_tokens"] >= answered.usage.completion_tokens + 50  # "la la la…"


def test_stopping_a_repeating_reply_is_no_failure_of_the_deployment(
    cli, model_server: ModelServer, big_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local_brain.models.routing import Routing

    failures: list[str] = []
    record_failure = Routing.record_failure

    def spy(self: Routing, deployment_id: str | None, error: BaseException | None) -> None:
        failures.append(f"{type(error).__name__}: {error}")
        record_failure(self, deployment_id, error)

    monkeypatch.setattr(Routing, "record_failure", spy)
    model_server.ignore_output_caps = True
    loop = ("the same sentence again and again, " * 20)[:600]  # one chunk already repeats
    model_server.script(MODEL, [Reply.endless(loop, chunk_delay=2), code('final_answer("fine")')])

    result = cli("-m", MODEL, "--root", str(big_repo), "Q?", server=model_server)

    assert result.returncode == 0, result.stderr
    assert "kept repeating the same text" in result.stderr
    assert failures == []  # we stopped it ourselves: not held against the deployment
    wait_for_no_generation(model_server)
    assert model_server.chat_requests()[0].client_gone and model_server.open_generations() == 0


def wait_for_no_generation(model_server: ModelServer) -> None:
    deadline = time.monotonic() + 5
    while model_server.open_generations() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_stalled_stream_is_cut_and_named(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.ignore_output_caps = True
    model_server.script(MODEL, [Reply.endless("tick ", chunk_delay=5)])  # a token every 5 s
    config = tmp_path / "c.yaml"
    config.write_text("local_brain: {stall_timeout: 1}\n")

    started = time.monotonic()
    result = cli("--config", str(config), "-m", MODEL, "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    assert time.monotonic() - started < 30
    assert f"model {MODEL} stopped sending tokens for 1 s (stalled)" in result.stderr
    assert "stall_timeout" in result.stderr and "ollama serve" not in result.stderr
    wait_for_no_generation(model_server)
    assert model_server.open_generations() == 0  # the server was told to stop


def test_no_first_token_in_time_is_named(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.script(MODEL, [Fault.hang(30)])
    config = tmp_path / "c.yaml"
    config.write_text("local_brain: {first_token_timeout: 1}\n")

    result = cli("--config", str(config), "-m", MODEL, "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    assert "sent no first token within 1 s (still loading, or reading a long prompt)" in (
        result.stderr
    )
    assert "first_token_timeout" in result.stderr


@pytest.mark.parametrize("route", ["ollama_chat", "hosted_vllm"])
def test_a_request_given_up_on_before_its_first_byte_is_closed(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path, route: str
) -> None:
    model_server.script(MODEL, [Fault.hang(60, then=Reply("too late"))])  # still loading
    base = model_server.url if route == "ollama_chat" else model_server.openai_url
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: slow\n"
        f"    litellm_params: {{model: {route}/{MODEL}, api_base: {base}}}\n"
        "    model_info: {max_input_tokens: 8192}\n"
        "local_brain: {first_token_timeout: 1}\n"
    )

    started = time.monotonic()
    result = cli("--config", str(config), "-m", "slow", "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    assert "sent no first token within 1 s" in result.stderr
    assert time.monotonic() - started < 30
    (request,) = model_server.chat_requests()
    deadline = time.monotonic() + 5
    while not request.client_gone and time.monotonic() < deadline:
        time.sleep(0.05)
    assert request.client_gone  # closed at once: the server stops loading for nobody
    assert request.status is None  # it never got to answer


def test_a_fallback_in_the_middle_of_a_stream_is_credited_to_the_model_that_answered(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.script(BIG, [Fault.truncated("")])  # the stream breaks before any text
    model_server.script(MODEL, [code('final_answer("from the backup")')])
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: primary\n"
        f"    litellm_params: {{model: ollama_chat/{BIG}, api_base: {model_server.url}}}\n"
        "  - model_name: backup\n"
        f"    litellm_params: {{model: ollama_chat/{MODEL}, api_base: {model_server.url}}}\n"
        "router_settings: {fallbacks: [{primary: [backup]}], num_retries: 0}\n"
    )

    result = cli("--config", str(config), "-m", "primary", "--root", str(big_repo), "--json",
                 "Q?", server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["answer"] == "from the backup"
    assert set(document["usage"]) == {"backup"}, document["usage"]
    (answered,) = model_server.chat_requests(MODEL)
    assert answered.usage is not None
    usage = document["usage"]["backup"]
    assert usage["completion_tokens"] == answered.usage.completion_tokens
    assert usage["loads"] == 1  # the backup's own figures, not the broken stream's
    assert [f["took_over"] for f in document["fallbacks"]] == ["backup"]
    assert "backup took over" in result.stderr


def test_an_openai_compatible_route_with_a_small_window_is_compacted(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: small\n"
        f"    litellm_params: {{model: hosted_vllm/{MODEL}, api_base: {model_server.openai_url}}}\n"
        "    model_info: {max_input_tokens: 4096}\n"
    )
    model_server.script(MODEL, reading_steps(3))

    result = cli("--config", str(config), "-m", "small", "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    chats = model_server.chat_requests()
    assert caps(chats) == {1024}
    for request in chats:
        assert request.prompt_tokens_total + 1024 <= 4096


def test_a_request_given_up_on_is_closed_and_named_truthfully(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.ignore_output_caps = True  # generates past max_tokens, forever
    model_server.script(MODEL, [Reply.endless()])
    config = tmp_path / "c.yaml"  # an openai/ route goes through the OpenAI SDK: one request
    config.write_text(
        "model_list:\n"
        "  - model_name: plain\n"
        f"    litellm_params: {{model: openai/{MODEL}, api_base: {model_server.openai_url},"
        " api_key: none}\n"
        "router_settings: {timeout: 2, num_retries: 0}\n"
    )

    result = cli("--config", str(config), "-m", "plain", "--root", str(big_repo), "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 3
    assert "did not finish in time (still loading, generating, or stalled)" in result.stderr
    assert "ollama serve" not in result.stderr
    wait_for_no_generation(model_server)
    assert model_server.open_generations() == 0  # the server was told to stop generating
    assert all(request.client_gone for request in model_server.chat_requests())


def test_an_openai_compatible_stream_is_watched_and_its_figures_read(
    cli, model_server: ModelServer, big_repo: Path, tmp_path: Path
) -> None:
    model_server.openai_style = "llamacpp"  # usage counts evaluated tokens; timings say more
    model_server.prefix_cache = True
    model_server.ignore_output_caps = True
    model_server.script(MODEL, [*reading_steps(1)[:1], Reply.endless("la "),
                                code('final_answer("done")')])  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: cpp\n"
        f"    litellm_params: {{model: hosted_vllm/{MODEL}, api_base: {model_server.openai_url}}}\n"
        "    model_info: {max_input_tokens: 16384}\n"
    )

    result = cli("--config", str(config), "-m", "cpp", "--root", str(big_repo), "--json", "Q?",
                 server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert all(request.stream for request in model_server.chat_requests())
    assert "kept repeating the same text" in model_server.chat_requests()[2].last_text
    usage = json.loads(result.stdout)["usage"]["cpp"]
    finished = [r for r in model_server.chat_requests() if not r.client_gone]  # figures came
    assert len(finished) == 2  # the repeating reply was cut off before its usage chunk
    assert usage["prompt_tokens_reused"] == sum(r.prompt_tokens_cached for r in finished) > 0
    assert usage["generation_tokens_per_second"] == pytest.approx(50, rel=0.05)
    assert "cut the context" not in result.stderr


def test_the_scripted_server_says_so_before_closing_after_a_status_fault(
    model_server: ModelServer,
) -> None:
    import http.client

    model_server.script(MODEL, [Fault.status(500, "boom")])
    connection = http.client.HTTPConnection("127.0.0.1", model_server.port, timeout=5)
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    connection.request("POST", "/api/chat", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 500 and response.getheader("Connection") == "close"
    response.read()
    connection.close()
