"""Tests of the scripted model server, driven by the real litellm over real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local_brain.models.ollama import LoadedModel, OllamaClient
from local_brain.safe_import import import_model_stack
from tests.fakes.model_server import (
    EXHAUSTED_ANSWER,
    EXHAUSTED_REPLY,
    FakeModel,
    Fault,
    ModelServer,
    RecordedRequest,
    Reply,
    Usage,
    closed_port_url,
    shared_prefix_chars,
)

litellm, _ = import_model_stack()  # a plain ``import litellm`` may try the network
MidStreamFallbackError = litellm.exceptions.MidStreamFallbackError

MODEL = "qwen2.5:3b"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is in this repository?"},
]


def ollama(server: ModelServer, model: str = MODEL, **kwargs: Any) -> Any:
    """litellm.completion against the Ollama API of ``server``."""
    kwargs.setdefault("messages", MESSAGES)
    return litellm.completion(model=f"ollama_chat/{model}", api_base=server.url, **kwargs)


def openai(server: ModelServer, model: str = MODEL, provider: str = "openai", **kwargs: Any) -> Any:
    """litellm.completion against the OpenAI-compatible API of ``server`` (no SDK retries)."""
    kwargs.setdefault("messages", MESSAGES)
    kwargs.setdefault("max_retries", 0)
    return litellm.completion(
        model=f"{provider}/{model}", api_base=server.openai_url, api_key="x", **kwargs
    )


def drain(stream: Any) -> tuple[str, Any]:
    """Join a litellm stream's content and return it with the last usage seen."""
    text, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text.append(chunk.choices[0].delta.content)
        if getattr(chunk, "usage", None) is not None:
            usage = chunk.usage
    return "".join(text), usage


def get_json(url: str) -> tuple[int, Any]:
    """GET with urllib; returns status and decoded JSON or text."""
    return _http(urllib.request.Request(url))


def post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST a JSON body with urllib; returns status and decoded JSON or text."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    return _http(request)


def _http(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def only_chat(server: ModelServer) -> RecordedRequest:
    """The single chat request the test made."""
    chats = server.chat_requests()
    assert len(chats) == 1, chats
    return chats[0]


# ---- metadata routes ---------------------------------------------------------------------


def test_tags_show_version_and_models(model_server: ModelServer) -> None:
    model_server.installed = ["qwen3:30b", FakeModel("tiny:1b", context_length=4096)]

    status, tags = get_json(f"{model_server.url}/api/tags")
    assert status == 200
    assert [m["name"] for m in tags["models"]] == ["qwen3:30b", "tiny:1b"]
    first = tags["models"][0]
    assert first["model"] == "qwen3:30b"
    assert isinstance(first["size"], int)
    assert {"family", "parameter_size", "quantization_level"} <= first["details"].keys()
    assert first["details"]["parameter_size"] == "30B"

    status, show = post_json(f"{model_server.url}/api/show", {"model": "tiny:1b"})
    assert status == 200
    assert show["model_info"]["tiny.context_length"] == 4096
    assert show["details"]["family"] == "tiny"

    status, show = post_json(f"{model_server.url}/api/show", {"name": "missing:7b"})
    assert (status, show) == (404, {"error": "model 'missing:7b' not found"})
    assert [r.model for r in model_server.requests_to("/api/show")] == ["tiny:1b", "missing:7b"]

    assert get_json(model_server.url) == (200, "Ollama is running")
    status, version = get_json(f"{model_server.url}/api/version")
    assert status == 200 and "version" in version
    status, models = get_json(f"{model_server.openai_url}/models")
    assert [m["id"] for m in models["data"]] == ["qwen3:30b", "tiny:1b"]


def test_route_fault_applies_to_every_request_on_the_path(model_server: ModelServer) -> None:
    model_server.route_faults["/api/tags"] = Fault.status(503, "overloaded")
    for _ in range(2):
        assert get_json(f"{model_server.url}/api/tags") == (503, {"error": "overloaded"})


def test_closed_port_url_refuses_connections() -> None:
    with pytest.raises(litellm.APIConnectionError, match="Connection refused"):
        litellm.completion(
            model=f"ollama_chat/{MODEL}", api_base=closed_port_url(), messages=MESSAGES
        )


# ---- Ollama chat -------------------------------------------------------------------------


def test_ollama_non_stream_content_usage_and_record(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["The repository holds a CLI."])

    response = ollama(model_server, num_ctx=8192, temperature=0.1)

    assert response.choices[0].message.content == "The repository holds a CLI."
    record = only_chat(model_server)
    assert record.path == "/api/chat" and record.api == "ollama"
    assert record.model == MODEL
    assert record.stream is False  # litellm sends "stream": false explicitly
    assert record.options == {"num_ctx": 8192, "temperature": 0.1}
    assert record.num_ctx == 8192
    assert [m["content"] for m in record.messages] == [m["content"] for m in MESSAGES]
    expected = model_server.usage_for(MESSAGES, "The repository holds a CLI.")
    assert record.usage == expected
    assert response.usage.prompt_tokens == expected.prompt_tokens
    assert response.usage.completion_tokens == expected.completion_tokens
    assert response.usage.total_tokens == expected.total_tokens


def test_ollama_stream_content_and_usage(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Reply("streamed answer in pieces", completion_tokens=17)])

    text, usage = drain(ollama(model_server, stream=True, stream_options={"include_usage": True}))

    assert text == "streamed answer in pieces"
    record = only_chat(model_server)
    assert record.stream is True
    assert record.usage is not None and record.usage.completion_tokens == 17
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        record.usage.prompt_tokens,
        record.usage.completion_tokens,
    )


def test_litellm_posts_api_show_after_ollama_calls(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An in-process local-brain run earlier in the session registers its models in litellm's
    # cost map (so that litellm does not ask /api/show); forget that here.
    for key in [k for k in litellm.model_cost if k.endswith(f"/{MODEL}")]:
        monkeypatch.delitem(litellm.model_cost, key)
    model_server.script(MODEL, ["one", "two"])
    ollama(model_server)
    drain(ollama(model_server, stream=True))

    shows = model_server.requests_to("/api/show")
    assert shows, "litellm 1.106 looks up model info via /api/show"
    assert all(r.body == {"name": MODEL} and r.status == 200 for r in shows)


def test_ollama_api_base_from_environment(
    model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_BASE", model_server.url)
    model_server.script(MODEL, ["via env"])

    response = litellm.completion(model=f"ollama_chat/{MODEL}", messages=MESSAGES)

    assert response.choices[0].message.content == "via env"
    assert only_chat(model_server).model == MODEL


def test_usable_from_a_subprocess(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["from another process"])
    code = (
        "import litellm\n"
        f"r = litellm.completion(model='ollama_chat/{MODEL}', messages=[{{'role': 'user', "
        "'content': 'hi'}])\n"
        "print(r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens)\n"
    )
    env = {**os.environ, "OLLAMA_API_BASE": model_server.url}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    usage = only_chat(model_server).usage
    assert usage is not None
    expected = f"from another process {usage.prompt_tokens} {usage.completion_tokens}"
    assert result.stdout.strip() == expected


def test_max_prompt_tokens_caps_reported_prompt_tokens(model_server: ModelServer) -> None:
    model_server.max_prompt_tokens = 3
    model_server.script(MODEL, ["capped"])

    response = ollama(model_server)

    assert response.usage.prompt_tokens == 3
    assert only_chat(model_server).usage == Usage(3, model_server.completion_tokens_for("capped"))


def test_stop_sequences_cut_the_reply(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["Thought: x\n<code>\nfinal_answer(1)\n</code>\nObservation: y"])

    response = ollama(model_server, stop=["</code>", "Observation:"])

    assert response.choices[0].message.content == "Thought: x\n<code>\nfinal_answer(1)\n"
    assert only_chat(model_server).options["stop"] == ["</code>", "Observation:"]


# ---- OpenAI-compatible chat --------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "hosted_vllm"])
def test_openai_non_stream_content_and_usage(model_server: ModelServer, provider: str) -> None:
    model_server.script(MODEL, ["openai style"])

    response = openai(model_server, provider=provider)

    assert response.choices[0].message.content == "openai style"
    record = only_chat(model_server)
    assert (record.path, record.api, record.model, record.stream) == (
        "/v1/chat/completions",
        "openai",
        MODEL,
        False,
    )
    assert record.usage is not None
    assert response.usage.prompt_tokens == record.usage.prompt_tokens
    assert response.usage.completion_tokens == record.usage.completion_tokens


def test_openai_stream_with_usage_chunk(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Reply("sse streamed words", prompt_tokens=99)])

    text, usage = drain(openai(model_server, stream=True, stream_options={"include_usage": True}))

    assert text == "sse streamed words"
    record = only_chat(model_server)
    assert record.stream is True
    assert record.body["stream_options"] == {"include_usage": True}
    assert record.usage == Usage(99, model_server.completion_tokens_for("sse streamed words"))
    assert (usage.prompt_tokens, usage.completion_tokens) == (99, record.usage.completion_tokens)


# ---- errors and faults -------------------------------------------------------------------


def test_unknown_model_is_404_not_found(model_server: ModelServer) -> None:
    with pytest.raises(litellm.NotFoundError, match="try pulling it first"):
        ollama(model_server, model="ghost:1b")
    with pytest.raises(litellm.NotFoundError, match="try pulling it first"):
        openai(model_server, model="ghost:1b")
    assert [r.status for r in model_server.chat_requests("ghost:1b")] == [404, 404]


def test_accept_any_model(model_server: ModelServer) -> None:
    model_server.accept_any_model = True
    model_server.script(None, ["anything goes"])
    assert ollama(model_server, model="ghost:1b").choices[0].message.content == "anything goes"


@pytest.mark.parametrize("stream", [False, True])
def test_status_500_raises(model_server: ModelServer, stream: bool) -> None:
    model_server.script(MODEL, [Fault.status(500, "boom"), Fault.status(500, "boom")])

    with pytest.raises(litellm.InternalServerError, match="boom"):
        drain(ollama(model_server, stream=True)) if stream else ollama(model_server)
    with pytest.raises(litellm.InternalServerError, match="boom"):
        drain(openai(model_server, stream=True)) if stream else openai(model_server)
    assert [r.status for r in model_server.chat_requests()] == [500, 500]


def test_hang_times_out_without_blocking_other_requests(model_server: ModelServer) -> None:
    model_server.script("qwen3:30b", [Fault.hang(30)])
    model_server.script(MODEL, ["still served"])
    errors: list[BaseException] = []

    def hung_call() -> None:
        try:
            ollama(model_server, model="qwen3:30b", timeout=1)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=hung_call)
    thread.start()
    time.sleep(0.2)
    assert ollama(model_server).choices[0].message.content == "still served"
    thread.join(timeout=5)

    assert len(errors) == 1 and isinstance(errors[0], litellm.Timeout), errors
    assert model_server.chat_requests("qwen3:30b")[0].fault == "hang"


def test_hang_then_reply(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Fault.hang(0.2, then="late but fine")])
    started = time.monotonic()
    assert ollama(model_server, timeout=5).choices[0].message.content == "late but fine"
    assert time.monotonic() - started >= 0.2


def ollama_in_background(server: ModelServer) -> tuple[threading.Thread, list[BaseException]]:
    """An Ollama chat started in a thread; its exception, if any, lands in the list."""
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ollama(server, timeout=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    return thread, errors


def test_stop_is_fast_with_a_hanging_handler() -> None:
    server = ModelServer().start()
    server.script(MODEL, [Fault.hang(60)])
    thread, errors = ollama_in_background(server)
    deadline = time.monotonic() + 5
    while not server.chat_requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], litellm.APIConnectionError), errors


@pytest.mark.parametrize(
    ("fault", "stream", "expected"),
    [
        (Fault.disconnect(), False, litellm.APIConnectionError),
        (Fault.disconnect(), True, litellm.APIConnectionError),
        (Fault.truncated(), False, litellm.APIConnectionError),
        # litellm wraps a stream that breaks after it started in MidStreamFallbackError.
        (Fault.truncated(), True, MidStreamFallbackError),
        (Fault.garbage(), False, litellm.APIConnectionError),
    ],
    ids=["disconnect", "disconnect-stream", "truncated", "truncated-stream", "garbage"],
)
def test_connection_faults_on_ollama(
    model_server: ModelServer, fault: Fault, stream: bool, expected: type[Exception]
) -> None:
    model_server.script(MODEL, [fault])
    with pytest.raises(expected):
        drain(ollama(model_server, stream=True)) if stream else ollama(model_server)
    assert only_chat(model_server).fault == fault.kind


def test_garbage_line_in_ollama_stream_is_skipped_by_litellm(model_server: ModelServer) -> None:
    """Surprise pinned here: litellm ignores a non-JSON NDJSON line instead of raising."""
    model_server.script(MODEL, [Fault.garbage()])
    assert drain(ollama(model_server, stream=True)) == ("", None)


def test_garbage_on_openai_raises(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Fault.garbage()])
    with pytest.raises(litellm.InternalServerError, match="Expecting value"):
        openai(model_server)


# ---- scripting ---------------------------------------------------------------------------


def test_queues_per_model_then_default_then_exhausted(model_server: ModelServer) -> None:
    model_server.installed.append("llama3.2")
    model_server.script("llama3.2:latest", ["llama 1"])
    model_server.script(None, ["default 1"])

    assert ollama(model_server, model="llama3.2").choices[0].message.content == "llama 1"
    assert ollama(model_server, model="llama3.2").choices[0].message.content == "default 1"
    exhausted = ollama(model_server, model="llama3.2").choices[0].message.content
    assert exhausted == EXHAUSTED_REPLY and EXHAUSTED_ANSWER in exhausted
    assert [r.exhausted for r in model_server.chat_requests("llama3.2")] == [False, False, True]
    assert len(model_server.exhausted_requests()) == 1
    assert model_server.remaining_total() == 0


def test_exhausted_reply_can_be_a_fault(model_server: ModelServer) -> None:
    model_server.exhausted_reply = Fault.status(500, "script exhausted")
    with pytest.raises(litellm.InternalServerError, match="script exhausted"):
        ollama(model_server)


def test_responder_computes_reply_from_request(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["scripted first"])
    model_server.responder = lambda request: f"echo: {request.last_text}"

    assert ollama(model_server).choices[0].message.content == "scripted first"
    assert ollama(model_server).choices[0].message.content == "echo: What is in this repository?"


def test_concurrent_requests_each_get_one_reply(model_server: ModelServer) -> None:
    replies = [f"reply {i}" for i in range(8)]
    model_server.script(MODEL, replies)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: ollama(model_server), range(8)))

    assert sorted(r.choices[0].message.content for r in results) == replies
    assert model_server.total_usage(MODEL) == sum(
        (r.usage for r in model_server.chat_requests()), Usage()
    )
    assert model_server.total_usage().completion_tokens == sum(
        r.usage.completion_tokens for r in results
    )


# ---- helpers for the raw-HTTP tests below -------------------------------------------------


def chat(server: ModelServer, model: str = MODEL, **body: Any) -> tuple[int, Any]:
    """A non-streaming Ollama /api/chat call over urllib."""
    body = {"model": model, "messages": MESSAGES, "stream": False, **body}
    return post_json(f"{server.url}/api/chat", body)


def completions(server: ModelServer, model: str = MODEL, **body: Any) -> tuple[int, Any]:
    """A non-streaming OpenAI /v1/chat/completions call over urllib."""
    return post_json(
        f"{server.openai_url}/chat/completions", {"model": model, "messages": MESSAGES, **body}
    )


def stream_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streaming request; the decoded NDJSON lines or SSE ``data:`` events."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    events = []
    with urllib.request.urlopen(request, timeout=5) as response:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data: "):
                line = line[len("data: ") :]
            if line and line != "[DONE]":
                events.append(json.loads(line))
    return events


def ollama_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["message"]["content"] for e in events if "message" in e)


def openai_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def ps(server: ModelServer) -> list[dict[str, Any]]:
    status, body = get_json(f"{server.url}/api/ps")
    assert status == 200
    return body["models"]


# ---- loaded models and reloads -----------------------------------------------------------


def test_chat_loads_once_and_reloads_when_num_ctx_changes(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["one", "two", "three"])

    _, first = chat(model_server, options={"num_ctx": 8192})
    _, second = chat(model_server, options={"num_ctx": 8192})
    _, third = chat(model_server)  # no num_ctx: Ollama's default 4096, so a reload

    assert [r.loaded for r in model_server.chat_requests()] == [True, False, True]
    assert model_server.load_events == [(MODEL, 8192), (MODEL, 4096)]
    assert model_server.loads(MODEL) == 2 and model_server.loads() == 2
    assert model_server.loads("qwen3:30b") == 0
    assert first["load_duration"] == model_server.load_duration_ns == 1_500_000_000
    assert second["load_duration"] == model_server.warm_load_duration_ns < 1_000_000
    assert third["load_duration"] == 1_500_000_000
    assert first["total_duration"] > first["load_duration"] > second["total_duration"]
    [entry] = ps(model_server)
    assert entry["name"] == entry["model"] == MODEL
    assert entry["context_length"] == 4096
    assert {"size", "digest", "details", "expires_at", "size_vram"} <= entry.keys()
    assert entry["details"]["parameter_size"] == "3B"
    assert OllamaClient(model_server.url).loaded() == [LoadedModel(MODEL, 4096)]


def test_preload_is_a_warm_server_without_load_events(model_server: ModelServer) -> None:
    model_server.preload("llama3.2", 8192)
    model_server.script(None, ["warm"])

    _, body = chat(model_server, model="llama3.2:latest", options={"num_ctx": 8192})

    assert body["load_duration"] == model_server.warm_load_duration_ns
    assert model_server.load_events == [] and model_server.loads() == 0
    assert only_chat(model_server).loaded is False
    assert model_server.loaded_models() == {"llama3.2:latest": 8192}
    assert [m["context_length"] for m in ps(model_server)] == [8192]


def test_max_loaded_models_evicts_the_least_recently_used(model_server: ModelServer) -> None:
    model_server.max_loaded_models = 2
    a, b, c = "qwen2.5:3b", "qwen3:30b", "qwen2.5-coder:7b"
    for model in (a, b, a, c, b):
        chat(model_server, model=model)

    # a, b loaded; a used again; c evicts b (LRU); b evicts a
    assert model_server.load_events == [(a, 4096), (b, 4096), (c, 4096), (b, 4096)]
    assert list(model_server.loaded_models()) == [c, b]
    assert [m["name"] for m in ps(model_server)] == [b, c]  # most recently used first


def test_empty_requests_load_and_keep_alive_zero_unloads(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["answered, then unloaded"])

    status, body = post_json(f"{model_server.url}/api/generate", {"model": MODEL})
    assert status == 200 and body["done_reason"] == "load" and body["response"] == ""
    assert model_server.load_events == [(MODEL, 4096)]
    assert [m["name"] for m in ps(model_server)] == [MODEL]

    status, body = post_json(f"{model_server.url}/api/generate", {"model": MODEL, "keep_alive": 0})
    assert (status, body["done_reason"], body["done"]) == (200, "unload", True)
    assert ps(model_server) == []
    assert model_server.remaining(MODEL) == 1  # neither consumed a scripted reply

    _, body = chat(model_server, keep_alive="0s")
    assert body["message"]["content"] == "answered, then unloaded"
    assert wait_until(lambda: ps(model_server) == [])  # unloaded after the answer, like Ollama
    assert model_server.loads() == 2

    status, body = post_json(f"{model_server.url}/api/chat", {"model": MODEL, "keep_alive": 0})
    assert (status, body["done_reason"], body["message"]["content"]) == (200, "unload", "")


def test_openai_routes_never_load(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["a", "b"])
    completions(model_server)
    completions(model_server)
    assert model_server.load_events == [] and ps(model_server) == []
    assert [r.loaded for r in model_server.chat_requests()] == [False, False]


# ---- prompt-prefix cache -----------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You answer questions about a repository. " * 40}


def test_prefix_cache_is_off_by_default(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["first", "second"])
    conversation = [SYSTEM, {"role": "user", "content": "q1"}]
    chat(model_server, messages=conversation)
    _, body = chat(model_server, messages=conversation)

    record = model_server.chat_requests()[-1]
    total = model_server.prompt_tokens_for(conversation)
    assert (record.prompt_tokens_total, record.prompt_tokens_cached) == (total, 0)
    assert body["prompt_eval_count"] == record.prompt_tokens_evaluated == total
    assert "prompt_eval_cached_count" not in body


def test_ollama_prefix_cache_reports_only_evaluated_tokens(model_server: ModelServer) -> None:
    model_server.prefix_cache = True
    model_server.script(MODEL, ["looked at README", "it is a CLI", "after reload"])
    turn1 = [SYSTEM, {"role": "user", "content": "What is this?"}]
    turn2 = [*turn1, {"role": "assistant", "content": "looked at README"},
             {"role": "user", "content": "And then?"}]  # fmt: skip

    _, first = chat(model_server, messages=turn1)
    _, second = chat(model_server, messages=turn2)
    _, third = chat(model_server, messages=turn2, options={"num_ctx": 8192})  # reload

    one, two, three = model_server.chat_requests()
    total1 = model_server.prompt_tokens_for(turn1)
    assert (one.prompt_tokens_total, one.prompt_tokens_cached) == (total1, 0)
    assert first["prompt_eval_count"] == total1 and "prompt_eval_cached_count" not in first

    seen = [*turn1, {"role": "assistant", "content": "looked at README"}]  # prompt + reply
    total2 = model_server.prompt_tokens_for(turn2)
    cached2 = shared_prefix_chars(seen, turn2) // 4
    assert cached2 == sum(len(m["content"]) for m in seen) // 4
    assert cached2 > total1 - 5  # the whole first turn and the reply were reused
    assert (two.prompt_tokens_total, two.prompt_tokens_cached) == (total2, cached2)
    assert two.prompt_tokens_evaluated == total2 - cached2
    assert second["prompt_eval_count"] == two.usage.prompt_tokens == total2 - cached2
    # speed figures follow the evaluated / generated counts
    assert second["prompt_eval_duration"] == round((total2 - cached2) * 1e9 / 500)
    assert second["eval_duration"] == round(second["eval_count"] * 1e9 / 50)

    assert three.loaded and three.prompt_tokens_cached == 0  # a reload empties the cache
    assert third["prompt_eval_count"] == total2


def test_newer_ollama_reports_cached_count_within_prompt_eval_count(
    model_server: ModelServer,
) -> None:
    model_server.prefix_cache = True
    model_server.report_cached_count = True
    model_server.script(MODEL, ["a", "b"])
    conversation = [SYSTEM, {"role": "user", "content": "q"}]
    _, first = chat(model_server, messages=conversation)
    _, second = chat(model_server, messages=conversation)

    record = model_server.chat_requests()[-1]
    total, cached = record.prompt_tokens_total, record.prompt_tokens_cached
    assert first["prompt_eval_cached_count"] == 0 and cached and cached > 0
    assert (second["prompt_eval_count"], second["prompt_eval_cached_count"]) == (total, cached)
    assert record.usage is not None and record.usage.prompt_tokens == total
    evaluated = second["prompt_eval_count"] - second["prompt_eval_cached_count"]
    assert evaluated == record.prompt_tokens_evaluated
    assert second["prompt_eval_duration"] == round(evaluated * 1e9 / 500)


def test_prefix_cache_after_truncation_keeps_one_evaluated_token(
    model_server: ModelServer,
) -> None:
    model_server.prefix_cache = True
    model_server.max_prompt_tokens = 50
    model_server.script(MODEL, ["a", "b"])
    conversation = [SYSTEM, {"role": "user", "content": "same question"}]
    chat(model_server, messages=conversation)
    _, body = chat(model_server, messages=conversation)

    record = model_server.chat_requests()[-1]
    assert (record.prompt_tokens_total, record.prompt_tokens_cached) == (50, 49)
    assert body["prompt_eval_count"] == record.prompt_tokens_evaluated == 1


def test_openai_vllm_style_reports_total_and_cached_tokens(model_server: ModelServer) -> None:
    model_server.prefix_cache = True
    model_server.script(MODEL, ["x", "y"])
    conversation = [SYSTEM, {"role": "user", "content": "q"}]
    completions(model_server, messages=conversation)
    _, body = completions(model_server, messages=conversation)

    record = model_server.chat_requests()[-1]
    assert record.prompt_tokens_cached and record.prompt_tokens_cached > 0
    assert body["usage"]["prompt_tokens"] == record.prompt_tokens_total
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": record.prompt_tokens_cached}
    assert "timings" not in body


def test_openai_llamacpp_style_timings(model_server: ModelServer) -> None:
    model_server.prefix_cache = True
    model_server.openai_style = "llamacpp"
    model_server.script(MODEL, ["x", Reply("streamed", completion_tokens=10), "z"])
    conversation = [SYSTEM, {"role": "user", "content": "q"}]
    _, first = completions(model_server, messages=conversation)
    events = stream_events(
        f"{model_server.openai_url}/chat/completions",
        {"model": MODEL, "messages": conversation, "stream": True,
         "stream_options": {"include_usage": True}},
    )  # fmt: skip

    one, two = model_server.chat_requests()
    assert first["timings"]["cache_n"] == 0
    assert (
        first["usage"]["prompt_tokens"] == first["timings"]["prompt_n"] == one.prompt_tokens_total
    )
    finish, usage_event = events[-2], events[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage_event["choices"] == []
    timings = usage_event["timings"]
    assert timings == finish["timings"]
    assert timings["cache_n"] == two.prompt_tokens_cached > 0
    assert (
        timings["prompt_n"] == two.prompt_tokens_evaluated == usage_event["usage"]["prompt_tokens"]
    )
    assert timings["predicted_n"] == 10
    assert timings["predicted_ms"] == pytest.approx(10 / 50 * 1000)
    assert timings["predicted_per_second"] == pytest.approx(50)
    assert timings["prompt_per_second"] == pytest.approx(500)
    assert timings["prompt_ms"] == pytest.approx(two.prompt_tokens_evaluated / 500 * 1000)
    assert openai_text(events) == "streamed"

    model_server.llamacpp_prompt_tokens = "total"  # what current llama-server reports
    _, third = completions(model_server, messages=conversation)
    assert third["usage"]["prompt_tokens"] == model_server.chat_requests()[-1].prompt_tokens_total
    assert third["timings"]["prompt_n"] < third["usage"]["prompt_tokens"]


# ---- output caps -------------------------------------------------------------------------

LONG = "The repository holds a small command line tool and its tests. " * 10


def test_ollama_num_predict_cuts_the_reply(model_server: ModelServer) -> None:
    model_server.script(MODEL, [LONG, LONG, "short"])

    _, body = chat(model_server, options={"num_predict": 5})
    events = stream_events(
        f"{model_server.url}/api/chat",
        {"model": MODEL, "messages": MESSAGES, "options": {"num_predict": 5}},
    )
    _, short = chat(model_server, options={"num_predict": 5})

    assert body["message"]["content"] == LONG[:20]
    assert (body["done_reason"], body["eval_count"]) == ("length", 5)
    assert ollama_text(events) == LONG[:20]
    assert events[-1]["done"] and events[-1]["done_reason"] == "length"
    assert (short["message"]["content"], short["done_reason"]) == ("short", "stop")
    assert [r.output_cap for r in model_server.chat_requests()] == [5, 5, 5]
    assert [r.finish_reason for r in model_server.chat_requests()] == ["length", "length", "stop"]


def test_openai_max_tokens_cut_the_reply(model_server: ModelServer) -> None:
    model_server.script(MODEL, [LONG, LONG, LONG])

    _, body = completions(model_server, max_tokens=3)
    _, newer = completions(model_server, max_completion_tokens=4, max_tokens=99)
    events = stream_events(
        f"{model_server.openai_url}/chat/completions",
        {"model": MODEL, "messages": MESSAGES, "stream": True, "max_tokens": 2,
         "stream_options": {"include_usage": True}},
    )  # fmt: skip

    assert body["choices"][0]["message"]["content"] == LONG[:12]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    assert newer["choices"][0]["message"]["content"] == LONG[:16]
    assert openai_text(events) == LONG[:8]
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 2
    assert [r.output_cap for r in model_server.chat_requests()] == [3, 4, 2]


def test_no_cap_recorded_as_none(model_server: ModelServer) -> None:
    model_server.script(MODEL, ["a", "b"])
    chat(model_server, options={"num_predict": -1})  # Ollama: -1 means unlimited
    completions(model_server)
    assert [r.output_cap for r in model_server.chat_requests()] == [None, None]


def test_litellm_ollama_num_ctx_and_max_tokens(model_server: ModelServer) -> None:
    model_server.script(MODEL, [LONG * 5])

    response = litellm.completion(
        model=f"ollama_chat/{MODEL}",
        api_base=model_server.url,
        messages=MESSAGES,
        num_ctx=8192,
        max_tokens=300,
    )

    record = only_chat(model_server)
    assert record.options["num_predict"] == 300 and record.output_cap == 300
    assert record.options["num_ctx"] == 8192
    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == (LONG * 5)[:1200]
    assert response.usage.completion_tokens == 300
    assert model_server.load_events == [(MODEL, 8192)]


def test_litellm_openai_max_tokens_and_cached_tokens(model_server: ModelServer) -> None:
    model_server.prefix_cache = True
    model_server.script(MODEL, [LONG, LONG])
    conversation = [SYSTEM, {"role": "user", "content": "q"}]

    openai(model_server, messages=conversation, max_tokens=10)
    response = openai(model_server, messages=conversation, max_tokens=10)

    assert response.choices[0].finish_reason == "length"
    assert response.choices[0].message.content == LONG[:40]
    assert response.usage.completion_tokens == 10
    record = model_server.chat_requests()[-1]
    assert record.output_cap == 10
    assert response.usage.prompt_tokens == record.prompt_tokens_total
    assert response.usage.prompt_tokens_details.cached_tokens == record.prompt_tokens_cached > 0


# ---- endless generations -----------------------------------------------------------------


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_endless_with_a_cap_stops_at_the_cap(model_server: ModelServer, api: str) -> None:
    model_server.script(MODEL, [Reply.endless("la ")])
    if api == "ollama":
        _, body = chat(model_server, options={"num_predict": 7})
        text, reason = body["message"]["content"], body["done_reason"]
    else:
        _, body = completions(model_server, max_tokens=7)
        text, reason = body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]
    assert (text, reason) == (("la " * 10)[:28], "length")
    assert model_server.open_generations() == 0


def test_endless_without_cap_holds_until_the_client_gives_up(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Reply.endless()])
    connection = http.client.HTTPConnection("127.0.0.1", model_server.port, timeout=0.3)
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": False})
    connection.request("POST", "/api/chat", body, {"Content-Type": "application/json"})
    with pytest.raises(socket.timeout):
        connection.getresponse()
    assert model_server.open_generations() == 1  # still generating for nobody...

    connection.close()  # ...until the client closes its abandoned request

    assert wait_until(lambda: model_server.open_generations() == 0)
    record = only_chat(model_server)
    assert record.client_gone and record.status is None


def test_endless_through_litellm_timeout_is_released(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Reply.endless()])
    with pytest.raises(litellm.Timeout):
        ollama(model_server, timeout=0.5)
    assert wait_until(lambda: model_server.open_generations() == 0)
    assert only_chat(model_server).client_gone


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_endless_stream_runs_until_the_client_disconnects(
    model_server: ModelServer, api: str
) -> None:
    model_server.script(MODEL, [Reply.endless("la ", chunk_delay=0.01)])
    path = "/api/chat" if api == "ollama" else "/v1/chat/completions"
    connection = http.client.HTTPConnection("127.0.0.1", model_server.port, timeout=5)
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True})
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    lines = [response.readline() for _ in range(20)]  # keeps coming
    assert all(lines) and model_server.open_generations() == 1

    connection.close()

    assert wait_until(lambda: model_server.open_generations() == 0)
    record = only_chat(model_server)
    assert record.client_gone and record.status == 200


def test_stop_ends_an_endless_generation() -> None:
    server = ModelServer().start()
    server.script(MODEL, [Reply.endless()])
    thread, errors = ollama_in_background(server)
    assert wait_until(lambda: server.open_generations() == 1)
    server.stop()
    thread.join(timeout=5)
    assert server.open_generations() == 0 and errors
    assert not only_chat(server).client_gone


# ---- pacing ------------------------------------------------------------------------------


def test_pace_generation_really_takes_the_reported_time(model_server: ModelServer) -> None:
    model_server.script(MODEL, [Reply("paced", completion_tokens=5), "unpaced"])
    model_server.load_duration_ns = 200_000_000
    model_server.pace_generation = True

    started = time.monotonic()
    _, body = chat(model_server)  # load 0.2 s + 5 tokens at 50/s = 0.1 s
    elapsed = time.monotonic() - started

    assert elapsed >= (body["load_duration"] + body["eval_duration"]) / 1e9 >= 0.3
    model_server.pace_generation = False
    started = time.monotonic()
    chat(model_server)
    assert time.monotonic() - started < 0.2
