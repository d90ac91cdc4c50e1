"""Lines holding a secret are invisible to search: neither shown nor counted.

``redact`` withholds a secret in every row a tool prints, but a search's counts are made on
the files as they are: a model could ask ``"password": "hunter2h`` then ``"password":
"hunterX`` and learn a withheld value one character at a time from "1 match" and "0
matches". So after ripgrep has counted, the matching lines that hold a secret are taken out
of the counts and the rows, as if they did not match at all; the search fallback leaves
out every file with such a line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from local_brain.fsguard import open_regular
from local_brain.redact import TRIGGER, TRIGGER_PATTERN, secret_line_indexes
from local_brain.tools.listing import rg_path
from local_brain.tools.ripgrep import DeadlinePassed, rg_base_command, run_rg
from local_brain.workspace import Workspace

# Longer matching lines are checked on their first part only, the preview the rows show.
MAX_COLUMNS = 1000


def without_secret_lines(
    rg: str,
    ws: Workspace,
    counts: dict[str, int],
    case: str,
    pattern: str,
    walk: list[str],
    deadline: float,
) -> tuple[dict[str, int], dict[str, set[int]]]:
    """``counts`` with every match on a secret line taken out (files left with none are
    dropped), and those lines (1-based) per file, to skip when rows are read. ``walk`` is
    the counting run's file selection (size cap, glob, exclusions, ignore rules, target).

    ripgrep lists the matching lines, a second ripgrep keeps those that match
    ``TRIGGER_PATTERN`` (Python's regex engine is far too slow for this), and only those
    few are checked by the detectors.
    """
    if not counts:
        return counts, {}
    command = [*rg_base_command(rg), "--line-number", "--no-heading", "--with-filename"]
    command += ["--null", "--max-columns", str(MAX_COLUMNS), "--max-columns-preview"]
    command += [case, f"--regexp={pattern}", *walk]
    matched = run_rg(command, ws.root, deadline - time.monotonic()).stdout
    hidden: dict[str, set[int]] = {}
    if matched:
        trigger = [*rg_base_command(rg), "--text", "--no-line-number", "--ignore-case"]
        trigger += [f"--regexp={TRIGGER_PATTERN.removeprefix('(?i)')}", "-"]
        run = run_rg(trigger, ws.root, deadline - time.monotonic(), input_bytes=matched)
        _collect(run.stdout, hidden)
    adjusted = dict(counts)
    for relative, numbers in hidden.items():
        if relative in adjusted:
            adjusted[relative] -= len(numbers)
            if adjusted[relative] <= 0:
                del adjusted[relative]
    return adjusted, hidden


def _collect(candidates: bytes, hidden: dict[str, set[int]]) -> None:
    """Add the secret lines among ``path NUL number:text`` rows to ``hidden``."""
    rows: list[tuple[str, int]] = []
    texts: list[str] = []
    for raw in candidates.split(b"\n"):
        path_bytes, separator, rest = raw.partition(b"\x00")
        number, _, text = rest.partition(b":")
        if separator and number.isdigit():
            rows.append((rg_path(path_bytes), int(number)))
            texts.append(text.decode("utf-8", errors="replace").replace("\r", " "))
    for index in secret_line_indexes("\n".join(texts)):
        relative, number = rows[index]
        hidden.setdefault(relative, set()).add(number)


def files_with_secrets(
    ws: Workspace, files: Iterable[str], max_bytes: int, deadline: float
) -> set[str]:
    """The files (read up to ``max_bytes`` each) with a line holding a secret: for the
    search fallback, which leaves such files out altogether."""
    found: set[str] = set()
    for relative in files:
        if time.monotonic() > deadline:
            raise DeadlinePassed
        try:
            with open_regular(ws.root / relative) as handle:
                text = handle.read(max_bytes).decode("utf-8", errors="replace")
        except OSError:
            continue
        candidates = [line for line in text.splitlines() if TRIGGER.search(line)]
        if candidates and secret_line_indexes("\n".join(candidates)):
            found.add(relative)
    return found
