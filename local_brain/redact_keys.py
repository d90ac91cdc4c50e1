"""Private key blocks (PEM, OpenSSH, PGP, PuTTY), withheld whole, and lines of a key block
seen without its BEGIN line."""

from __future__ import annotations

import re
from collections.abc import Iterator

_KEY_BEGIN = re.compile(
    r"-{4,5} ?BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}|PuTTY-User-Key-File-\d+:"
)
_KEY_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}")
# Base64 (or hex) key material after the BEGIN line on the same line, e.g. a JSON string
# with literal "\n" escapes.
_KEY_TAIL = re.compile(r"(?:[A-Za-z0-9+/=]|\\[nr])*")
_KEY_BODY = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
# Header lines inside PEM, PGP and PuTTY blocks, perhaps behind a line number.
_KEY_HEADER = re.compile(
    r"[\W\d_]*(?:Proc-Type|DEK-Info|Version|Comment|Encryption|Public-Lines|Private-Lines"
    r"|Private-MAC|Private-Hash|Key-Derivation|Argon2-\w+): "
)
_BLANK = re.compile(r"[\W\d_]*\Z")  # an empty line, perhaps behind a line number or "+"
# A line ending in 60-76 characters of base64 is a line of a key block (PEM lines hold 64,
# OpenSSH 70, some tools wrap at 76) seen without its BEGIN line: read_file from a
# start_line inside the block, or search_code matching one line of it. It must follow the
# tool's line prefix, a quote or an "=", and read as random: both cases and a digit, few
# slashes (unlike a long path). The lines after it are then treated as the block's rest.
# (Base64 blobs written as bare lines, e.g. an embedded font, are withheld too: meaningless
# to a model anyway. Base64 data in a string on a code line is not a bare line.)
_KEY_LINE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{60,76}={0,2}[ \t]*$", re.MULTILINE)
_KEY_LINE_AFTER = frozenset(" \t:-\"'=>")


def key_spans(text: str) -> Iterator[tuple[tuple[int, int], bool]]:
    """Spans of private key material; the flag is True on the first span of each block."""
    has_begin = "PRIVATE KEY" in text or "PuTTY-User-Key-File-" in text
    if not has_begin and _KEY_LINE.search(text) is None:
        return
    in_block = first = False
    offset = 0
    for line in text.splitlines(keepends=True):
        start, body = offset, line.rstrip("\r\n")
        offset += len(line)
        if not in_block:
            begin = _KEY_BEGIN.search(body) if has_begin else None
            if begin is None:
                run = _key_line(body)
                if run is not None:
                    yield (start + run[0], start + run[1]), True
                    in_block = True
                continue
            end = _KEY_END.search(body, begin.end())
            if end is not None:
                yield (start + begin.start(), start + end.end()), True
                continue
            in_block = True
            if begin[0].startswith("PuTTY"):  # "PuTTY-User-Key-File-2: ssh-rsa" is no secret
                first = True
                continue
            tail = _KEY_TAIL.match(body, begin.end())
            yield (start + begin.start(), start + (tail.end() if tail else begin.end())), True
            continue
        end = _KEY_END.search(body)
        runs = list(_KEY_BODY.finditer(body, 0, end.start() if end else len(body)))
        for run in runs:
            yield (start + run.start(), start + run.end()), first
            first = False
        if end is not None or not (runs or _BLANK.match(body) or _KEY_HEADER.match(body)):
            in_block = False


def _key_line(line: str) -> tuple[int, int] | None:
    match = _KEY_LINE.search(line)
    if match is None or (match.start() > 0 and line[match.start() - 1] not in _KEY_LINE_AFTER):
        return None
    run = match[0].rstrip()
    upper = sum(char.isupper() for char in run)
    lower = sum(char.islower() for char in run)
    random = upper * 5 >= len(run) and lower * 5 >= len(run) and any(c.isdigit() for c in run)
    if not random or run.count("/") * 10 > len(run):
        return None
    return match.start(), match.start() + len(run)
