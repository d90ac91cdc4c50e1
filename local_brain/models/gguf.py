"""GGUF model files: where they are, whether a file is one, and what it needs in memory.

- ``llamacpp/<path>`` names a GGUF file; ``llamacpp/ollama:NAME`` an installed Ollama model,
  found read-only in Ollama's own store: ``$OLLAMA_MODELS`` (else ``~/.ollama/models``),
  ``manifests/registry.ollama.ai/library/NAME/TAG`` names the layer of media type
  ``application/vnd.ollama.image.model``, whose file is ``blobs/sha256-<hex>``.
- A GGUF file starts with the magic bytes ``GGUF``; its header holds the metadata the memory
  estimate needs (layers, attention heads, embedding width).

Pure file reading: no engine, no network, never litellm.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from local_brain.errors import ConfigError

MAGIC = b"GGUF"
OLLAMA_PREFIX = "ollama:"
MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_REGISTRY = ("registry.ollama.ai", "library")
KV_BYTES = 2  # f16 keys and values, llama.cpp's default cache type
OVERHEAD = 1.15  # compute buffers and the rest, on top of weights and cache
MAX_ARRAY_ITEMS = 10_000_000  # a header claiming more is not a file we should walk


@dataclass(frozen=True)
class OllamaGguf:
    """One installed Ollama model usable in-process: ``name`` (``NAME:TAG``) and its file."""

    name: str
    path: Path
    size: int


# -- where the file is --------------------------------------------------------------------


def resolve(spec: str) -> Path:
    """The GGUF file ``spec`` (what follows ``llamacpp/``) names; ConfigError when there is
    none or it is not a GGUF file."""
    if spec.startswith(OLLAMA_PREFIX):
        return ollama_model(spec.removeprefix(OLLAMA_PREFIX))
    if not spec.strip():
        raise ConfigError(
            "llamacpp/ needs a GGUF file: llamacpp/<path-to-file.gguf> or llamacpp/ollama:NAME"
        )
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"GGUF file not found: {path}",
            hint="name an existing .gguf file after llamacpp/, or an installed Ollama model "
            "as llamacpp/ollama:NAME",
        )
    return check_magic(path)


def check_magic(path: Path) -> Path:
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    if magic != MAGIC:
        raise ConfigError(
            f"not a GGUF file: {path}",
            hint="llama.cpp runs GGUF models only (the file must start with 'GGUF')",
        )
    return path


def ollama_models_dir() -> Path:
    configured = os.environ.get("OLLAMA_MODELS")
    return Path(configured).expanduser() if configured else Path.home() / ".ollama" / "models"


def ollama_model(name: str, models_dir: Path | None = None) -> Path:
    """The GGUF blob of an installed Ollama model (``qwen3``, ``qwen3:8b``, ``user/model:tag``)."""
    root = models_dir or ollama_models_dir()
    manifest = _manifest_path(root, name)
    if manifest is None or not manifest.is_file():
        raise ConfigError(
            f"Ollama model not found: {name} (no manifest under {root / 'manifests'})",
            hint="list usable models with `local-brain models`; set OLLAMA_MODELS if Ollama "
            "keeps its models elsewhere",
        )
    digest = _model_digest(manifest)
    if digest is None:
        raise ConfigError(f"Ollama model {name} has no model layer in {manifest}")
    blob = root / "blobs" / digest.replace(":", "-")
    if not blob.is_file():
        raise ConfigError(f"Ollama model {name}: its model file {blob} is missing")
    try:
        return check_magic(blob)
    except ConfigError:
        raise ConfigError(
            f"Ollama model {name} is not stored as a GGUF file ({blob})",
            hint="llama.cpp runs GGUF models only",
        ) from None


def installed_ollama_models(models_dir: Path | None = None) -> list[OllamaGguf]:
    """Every installed Ollama model whose blob is a GGUF file, by name."""
    root = models_dir or ollama_models_dir()
    found: list[OllamaGguf] = []
    for name, manifest in _manifests(root):
        digest = _model_digest(manifest)
        blob = root / "blobs" / digest.replace(":", "-") if digest else None
        if blob is None or not blob.is_file():
            continue
        try:
            check_magic(blob)
        except ConfigError:
            continue
        found.append(OllamaGguf(name, blob, blob.stat().st_size))
    return sorted(found, key=lambda model: model.name)


def _manifest_path(root: Path, name: str) -> Path | None:
    base, _, tag = name.partition(":")
    parts = [part for part in base.split("/") if part]
    if not parts or any(part in (".", "..") for part in [*parts, tag]) or "/" in tag:
        return None
    if len(parts) == 1:
        parts = [*OLLAMA_REGISTRY, *parts]
    elif len(parts) == 2:
        parts = [OLLAMA_REGISTRY[0], *parts]
    return root.joinpath("manifests", *parts, tag or "latest")


def _manifests(root: Path) -> Iterator[tuple[str, Path]]:
    top = root / "manifests"
    if not top.is_dir():
        return
    for manifest in top.glob("*/*/*/*"):
        if not manifest.is_file():
            continue
        host, namespace, model, tag = manifest.relative_to(top).parts
        if (host, namespace) == OLLAMA_REGISTRY:
            yield f"{model}:{tag}", manifest
        elif host == OLLAMA_REGISTRY[0]:
            yield f"{namespace}/{model}:{tag}", manifest
        else:
            yield f"{host}/{namespace}/{model}:{tag}", manifest


def _model_digest(manifest: Path) -> str | None:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    layers = data.get("layers") if isinstance(data, dict) else None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == MODEL_LAYER:
            digest = layer.get("digest")
            if isinstance(digest, str) and digest.startswith("sha256:") and "/" not in digest:
                return digest
    return None


# -- what it needs ------------------------------------------------------------------------


def metadata(path: Path) -> dict[str, Any]:
    """The header's key/value metadata (arrays are skipped, not kept)."""
    with path.open("rb") as handle:
        if handle.read(4) != MAGIC:
            raise ValueError("not a GGUF file")
        (version,) = struct.unpack("<I", handle.read(4))
        count_format = "<I" if version == 1 else "<Q"
        size = struct.calcsize(count_format)
        struct.unpack(count_format, handle.read(size))  # tensors
        (pairs,) = struct.unpack(count_format, handle.read(size))
        found: dict[str, Any] = {}
        for _ in range(pairs):
            key = _string(handle)
            (kind,) = struct.unpack("<I", handle.read(4))
            found[key] = _value(handle, kind)
        return found


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip


def _string(handle: BinaryIO) -> str:
    (length,) = struct.unpack("<Q", handle.read(8))
    return handle.read(length).decode("utf-8", "replace")


def _value(handle: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, handle.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        return _string(handle)
    if kind == 9:
        (item_kind,) = struct.unpack("<I", handle.read(4))
        (items,) = struct.unpack("<Q", handle.read(8))
        if items > MAX_ARRAY_ITEMS:
            raise ValueError("array too large")
        if item_kind in _SCALARS:
            handle.seek(items * struct.calcsize(_SCALARS[item_kind]), os.SEEK_CUR)
        else:
            for _ in range(items):
                _value(handle, item_kind)
        return None
    raise ValueError(f"unknown GGUF value type {kind}")


def memory_needed(path: Path, n_ctx: int) -> int | None:
    """Bytes a model needs with an ``n_ctx`` context: weights, key/value cache, some
    overhead. None when the header does not tell the model's shape."""
    try:
        meta = metadata(path)
        weights = path.stat().st_size
    except (OSError, ValueError, struct.error):
        return None
    arch = meta.get("general.architecture")

    def number(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        return int(value) if isinstance(value, int) and value > 0 else None

    layers, embedding, heads = number("block_count"), number("embedding_length"), None
    heads = number("attention.head_count")
    if not layers or not embedding or not heads:
        return None
    kv_heads = number("attention.head_count_kv") or heads
    key_width = number("attention.key_length") or embedding // heads
    value_width = number("attention.value_length") or embedding // heads
    per_token = layers * kv_heads * (key_width + value_width) * KV_BYTES
    return int((weights + per_token * n_ctx) * OVERHEAD)


def trained_context(path: Path) -> int | None:
    """The context the model was trained with (``<arch>.context_length``), if told."""
    try:
        meta = metadata(path)
    except (OSError, ValueError, struct.error):
        return None
    value = meta.get(f"{meta.get('general.architecture')}.context_length")
    return int(value) if isinstance(value, int) and value > 0 else None


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``, else physical memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
