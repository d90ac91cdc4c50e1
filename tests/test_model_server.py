"""Tests of the scripted model server, driven by the real litellm over real HTTP."""

from __future__ import annotations

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ["LITELLM_MODE"] = "PRODUCTION"

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import litellm
import pytest
from litellm.exceptions import MidStreamFallbackError

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
)

litellm.suppress_debug_info = True

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


def test_litellm_posts_api_show_after_ollama_calls(model_server: ModelServer) -> None:
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


def test_stop_is_fast_with_a_hanging_handler() -> None:
    server = ModelServer().start()
    server.script(MODEL, [Fault.hang(60)])
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ollama(server, timeout=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
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
