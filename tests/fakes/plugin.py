"""Pytest plugin: the ``model_server`` fixture (a scripted Ollama/OpenAI-compatible server).

Registered from ``tests/conftest.py`` via ``pytest_plugins``.  See
:mod:`tests.fakes.model_server` for the scripting API.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.model_server import ModelServer


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A started :class:`ModelServer` on a free 127.0.0.1 port, stopped after the test.

    Point the app at it with ``OLLAMA_API_BASE=model_server.url`` (Ollama API) or
    ``api_base=model_server.openai_url`` (OpenAI-compatible API).
    """
    server = ModelServer().start()
    try:
        yield server
    finally:
        server.stop()
