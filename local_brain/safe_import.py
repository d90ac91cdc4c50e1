"""Import litellm and smolagents without letting them phone home or read a repo's .env.

Both libraries load a ``.env`` into ``os.environ`` at import time (litellm unless
``LITELLM_MODE=PRODUCTION``; smolagents unconditionally). Run inside a repository, that
file would steer us: keys, ``OLLAMA_API_BASE``, ``HTTP_PROXY``. litellm also fetches a
price list from the internet at import unless told to use its bundled copy. This module is
the one place that imports them, and it keeps the environment exactly as the user set it.
"""

from __future__ import annotations

import os
from types import ModuleType

OFFLINE_ENVIRONMENT = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # bundled price list, no download
    "LITELLM_MODE": "PRODUCTION",  # litellm: no load_dotenv()
    "HF_HUB_OFFLINE": "1",  # no tokenizer fetches from a hub
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
}

_imported: dict[str, ModuleType] = {}


def import_model_stack() -> tuple[ModuleType, ModuleType]:
    """Return (litellm, smolagents), imported once with the environment protected."""
    if not _imported:
        for name, value in OFFLINE_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        before = dict(os.environ)
        import dotenv
        import dotenv.main

        real_load = dotenv.load_dotenv
        dotenv.load_dotenv = _no_dotenv
        dotenv.main.load_dotenv = _no_dotenv
        try:
            import litellm
            import smolagents
            import smolagents.remote_executors
        finally:
            dotenv.load_dotenv = real_load
            dotenv.main.load_dotenv = real_load
            _restore_environment(before)
        litellm.suppress_debug_info = True  # it prints "Give Feedback" banners to stdout
        litellm.telemetry = False
        litellm.set_verbose = False
        _imported["litellm"] = litellm
        _imported["smolagents"] = smolagents
    return _imported["litellm"], _imported["smolagents"]


def _no_dotenv(*_args: object, **_kwargs: object) -> bool:
    return False


def _restore_environment(before: dict[str, str]) -> None:
    for name in set(os.environ) - set(before):
        del os.environ[name]
    for name, value in before.items():
        if os.environ.get(name) != value:
            os.environ[name] = value
