"""`doctor`'s settings: a broken config file is a failed check, not the end of `doctor`.

A run stops at a config it cannot read (exit 2); `doctor` is what people run to find out why,
so it reports the problem as the config check (with the file and the line) and runs every
other check on the settings it can still build: without the broken file, else without any
config file or LOCAL_BRAIN_* variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local_brain.config import Settings, load_settings
from local_brain.errors import ConfigError
from local_brain.toolchain import Check

_NOWHERE = "/nonexistent/local-brain-doctor"  # an XDG_CONFIG_HOME without a config file
_KEYED = re.compile(
    r"^config file (?P<path>.+?): (?P<key>(?:local_brain|model_list|router_settings|"
    r"litellm_settings|general_settings)[\w.\[\]]*)"
)


def load_for_doctor(config_file: Path | None, **flags: Any) -> tuple[Settings, Check | None]:
    """The settings to check with, and a failing config check when the config is broken."""
    explicit = str(config_file) if config_file else None
    try:
        return load_settings(explicit, **flags), None
    except ConfigError as error:
        problem = Check(
            "config",
            False,
            f"invalid: {with_line(error.message)}",
            "fix it (`local-brain config path` lists the files); the other checks ran without it",
        )
    for environ in _fallbacks(os.environ):
        try:
            return load_settings(None, environ=environ, **flags), problem
        except ConfigError:
            continue
    return load_settings(None, environ=_fallbacks(os.environ)[-1]), problem


def _fallbacks(environ: Mapping[str, str]) -> list[dict[str, str]]:
    """Ever smaller environments: without LOCAL_BRAIN_CONFIG, then without the user's
    config file, then without any LOCAL_BRAIN_* variable."""
    no_explicit = {k: v for k, v in environ.items() if k != "LOCAL_BRAIN_CONFIG"}
    no_user = {**no_explicit, "XDG_CONFIG_HOME": _NOWHERE}
    bare = {k: v for k, v in no_user.items() if not k.startswith("LOCAL_BRAIN_")}
    return [no_explicit, no_user, bare]


def with_line(message: str) -> str:
    """A config error with the line of the value it is about, when the message names a
    key but not a line: ``config file F: local_brain.max_steps ...`` ->
    ``config file F line 7: local_brain.max_steps ...``."""
    match = _KEYED.match(message)
    if match is None or " line " in message.split(":", 1)[0]:
        return message
    line = line_of(Path(match.group("path")), match.group("key"))
    if line is None:
        return message
    head = f"config file {match.group('path')}"
    return f"{head} line {line}{message[len(head) :]}"


def line_of(path: Path, dotted: str) -> int | None:
    """The 1-based line of ``local_brain.max_steps`` / ``model_list[2]`` in a YAML file."""
    import yaml

    try:
        node: Any = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    for part in re.findall(r"\[\d+\]|[^.\[\]]+", dotted):
        if node is None:
            return None
        if part.startswith("["):
            index = int(part[1:-1])
            items = node.value if isinstance(node, yaml.SequenceNode) else []
            node = items[index] if index < len(items) else None
        elif isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        else:
            return None
    return node.start_mark.line + 1 if node is not None else None
