"""Ollama's HTTP API (``/api/tags``, ``/api/show``, ``/api/ps``), and the one way this package
asks a model server anything over HTTP outside litellm.

Used by routing (the best installed model when none is named), `doctor` and `models`. Every
request goes straight to the server, whatever the proxy variables say (design.md pitfall 11),
with a short timeout; every failure is a :class:`ServerError` whose ``reason`` says why in a
few words (``connection refused``, ``HTTP 404 Not Found``, ``no answer within 2 s``).
"""

from __future__ import annotations

import errno
import http.client
import json
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from local_brain.errors import BackendUnavailable

TAGS_TIMEOUT_S = 5.0  # a run asking which models are installed
UNREACHABLE_HINT = "start it with `ollama serve`, set OLLAMA_API_BASE, or name a model with -m"


class ServerError(BackendUnavailable):
    """A model server could not be asked, or did not answer as expected.

    ``reason`` is the short cause; ``status`` the HTTP status when the server answered with
    an error (it is reachable then); ``unreachable`` whether nothing answered at all (the
    connection refused, the host unknown or out of reach), as opposed to slow or odd."""

    def __init__(
        self,
        message: str,
        reason: str,
        status: int | None = None,
        hint: str | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message, hint)
        self.reason = reason
        self.status = status
        self.unreachable = unreachable


@dataclass(frozen=True)
class InstalledModel:
    name: str
    size: int
    family: str
    parameter_size: str


@dataclass(frozen=True)
class LoadedModel:
    """A model Ollama holds in memory, and the context it was loaded with."""

    name: str
    context_length: int | None


def request_json(
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TAGS_TIMEOUT_S,
) -> Any:
    """GET (or POST ``body``) ``url`` and parse its JSON answer; raises :class:`ServerError`."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        reason = f"HTTP {error.code} {error.reason}".strip()
        raise ServerError(f"{url}: {reason}", reason, status=error.code) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
        reason = _reason(error, timeout)
        unreachable = _is_unreachable(getattr(error, "reason", None) or error)
        raise ServerError(f"{url}: {reason}", reason, unreachable=unreachable) from None


def _is_unreachable(cause: object) -> bool:
    """Nothing answered: refused, no such host, or no route to it."""
    if isinstance(cause, (ConnectionRefusedError, socket.gaierror)):
        return True
    return isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)


def _reason(error: BaseException, timeout: float) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``."""
    cause = getattr(error, "reason", None) or error
    if isinstance(cause, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, json.JSONDecodeError):
        return "the answer is not JSON"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(cause).strip())
    if text.lower() in ("timed out", "the read operation timed out"):
        return f"no answer within {timeout:g} s"
    if not text:
        return type(cause).__name__
    return text[:1].lower() + text[1:] if text[1:] == text[1:].lower() else text


class OllamaClient:
    """One Ollama server: which models it has, what a model holds, which are loaded."""

    def __init__(self, api_base: str, timeout: float = TAGS_TIMEOUT_S) -> None:
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout

    def tags(self) -> list[InstalledModel]:
        """Installed models, from ``GET /api/tags``."""
        try:
            payload = request_json(self.api_base + "/api/tags", timeout=self.timeout)
        except ServerError as error:
            if is_busy(error):  # it is there: `ollama serve` is no fix
                raise ServerError(
                    f"the Ollama server at {self.api_base} is busy ({error.reason})",
                    error.reason,
                    error.status,
                    BUSY_HINT,
                ) from None
            raise ServerError(
                f"cannot reach Ollama at {self.api_base} ({error.reason})",
                error.reason,
                error.status,
                UNREACHABLE_HINT,
                unreachable=error.unreachable,
            ) from None
        try:
            models = [_installed(entry) for entry in payload.get("models") or []]
        except (AttributeError, TypeError, ValueError):  # JSON, but not Ollama's
            raise self._unexpected("GET /api/tags") from None
        return [model for model in models if model.name]

    def context_length(self, model: str) -> int | None:
        """The model's context window from ``POST /api/show``; None when not reported."""
        payload = request_json(
            self.api_base + "/api/show", {"model": model, "name": model}, timeout=self.timeout
        )
        if not isinstance(payload, dict):
            raise self._unexpected("POST /api/show")
        info = payload.get("model_info") or {}
        details = payload.get("details") or {}
        if not isinstance(info, dict) or not isinstance(details, dict):
            raise self._unexpected("POST /api/show")
        for family in filter(None, [info.get("general.architecture"), details.get("family")]):
            value = info.get(f"{family}.context_length")
            if _is_count(value):
                return value
        return next(
            (v for k, v in info.items() if k.endswith(".context_length") and _is_count(v)), None
        )

    def loaded(self) -> list[LoadedModel]:
        """Models in memory and the context each was loaded with, from ``GET /api/ps``."""
        payload = request_json(self.api_base + "/api/ps", timeout=self.timeout)
        try:
            return [_loaded(entry) for entry in payload.get("models") or []]
        except (AttributeError, TypeError):
            raise self._unexpected("GET /api/ps") from None

    def _unexpected(self, request: str) -> ServerError:
        reason = f"unexpected answer to {request}"
        return ServerError(f"Ollama at {self.api_base} gave an {reason}", reason)


def list_installed_models(api_base: str, timeout: float = TAGS_TIMEOUT_S) -> list[InstalledModel]:
    """Models an Ollama server has, from ``/api/tags``."""
    return OllamaClient(api_base, timeout).tags()


BUSY_STATUSES = (429, 503)
BUSY_HINT = "it is overloaded or still loading a model: try again shortly"


def is_busy(error: ServerError) -> bool:
    """A server that is there but cannot answer now: 503/429, or slower than the timeout
    (a refused connection is not busy: nothing listens)."""
    return error.status in BUSY_STATUSES or error.reason.startswith("no answer within")


def list_server_models(
    api_base: str, timeout: float = TAGS_TIMEOUT_S, api_key: str | None = None
) -> tuple[Literal["ollama", "openai"], list[InstalledModel]]:
    """What a model server has, whatever it is: Ollama's ``/api/tags``, else (a server
    without ``/api/tags``: 404 or 405) an OpenAI-compatible ``GET /models`` at
    ``api_base``, then at ``api_base/v1``, with ids only.

    Raises :class:`ServerError` when neither answers; a server that refuses, is busy
    (:func:`is_busy`), fails or does not answer in time is not asked again."""
    base = api_base.rstrip("/")
    try:
        return "ollama", OllamaClient(base, timeout).tags()
    except ServerError as error:
        if error.status not in (404, 405):  # no /api/tags: not Ollama, try /models
            raise  # refused, slow, busy, failing or odd: asking again tells nothing new
        first = error
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    candidates = [base + "/models"]
    if not base.endswith("/v1"):
        candidates.append(base + "/v1/models")
    for url in candidates:
        try:
            payload = request_json(url, headers=headers, timeout=timeout)
        except ServerError as error:
            if is_busy(error) or error.status in (401, 403):
                raise ServerError(f"{base}: {error.reason}", error.reason, error.status) from None
            continue
        data = payload.get("data") if isinstance(payload, dict) else None
        if isinstance(data, list):
            return "openai", [
                InstalledModel(str(item.get("id")), 0, "", "")
                for item in data
                if isinstance(item, dict) and item.get("id")
            ]
    reason = f"neither Ollama nor OpenAI-compatible ({first.reason})"
    raise ServerError(f"{base}: {reason}", reason, first.status)


def _installed(entry: dict[str, Any]) -> InstalledModel:
    details = entry.get("details") or {}
    return InstalledModel(
        name=str(entry.get("name") or entry.get("model") or ""),
        size=int(entry.get("size") or 0),
        family=str(details.get("family") or ""),
        parameter_size=str(details.get("parameter_size") or ""),
    )


def _loaded(entry: dict[str, Any]) -> LoadedModel:
    length = entry.get("context_length")
    name = str(entry.get("name") or entry.get("model") or "")
    return LoadedModel(name=name, context_length=length if _is_count(length) else None)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
