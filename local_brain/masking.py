"""Secrets masked for display: what `config show`, `models` and `doctor` print never holds an
API key, token or password. A key is shown as ``****`` plus at most its last four characters;
credentials embedded in URLs as ``****``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_SECRET_KEY = re.compile(r"key|secret|token|password", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@?#]+@")
_URL_SECRET_QUERY = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:key|secret|token|password)[^=&#\s]*=)[^&#\s]+", re.IGNORECASE
)


def mask_secret(value: Any) -> Any:
    """``sk-abcdef123456`` -> ``****3456``; short values -> ``****``; None stays None."""
    if value is None:
        return None
    text = str(value)
    return "****" + text[-4:] if len(text) >= 12 else "****"


def mask_url(text: str) -> str:
    """Hide credentials embedded in URLs: ``https://user:pass@host`` -> ``https://****@host``,
    ``?api_key=...`` -> ``?api_key=****``."""
    text = _URL_USERINFO.sub(lambda match: match.group("scheme") + "****@", text)
    return _URL_SECRET_QUERY.sub(lambda match: match.group("name") + "****", text)


def mask_secrets(value: Any) -> Any:
    """A deep copy of ``value`` with secrets masked: the value of any key named like a key,
    secret, token or password (unless it is a number or a boolean, such as ``max_tokens``),
    and credentials in every URL."""
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            if (
                _SECRET_KEY.search(str(key))
                and item is not None
                and not isinstance(item, (bool, int, float, dict, list))
            ):
                masked[key] = mask_secret(item)
            else:
                masked[key] = mask_secrets(item)
        return masked
    if isinstance(value, (list, tuple)):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Path):
        return str(value)
    return value
