"""The Python search engine's matching step, run as a child process: ``python -I -S``.

A regex from the model can backtrack without end under Python's ``re`` (``(a+)+$`` against
a line of ``a``s ending in ``b``), and a file in the repository can be anything. So the
matching runs here, in a process the parent kills with its process group at the deadline
and whose address space it limits (``ripgrep.run_bounded``).

Protocol: one JSON request on stdin, one JSON result on stdout (ASCII). Standard library
only, so it runs without site-packages; it imports nothing from the repository.

Request: ``root``, ``files`` (root-relative, in path order), ``pattern``, ``ignore_case``,
``limit`` (hits to return), ``max_file_bytes``, ``line_bytes``, ``hit_bytes``,
``open_flags`` (``fsguard.OPEN_FLAGS``: no symlink, no blocking on a FIFO, no controlling tty).
Result: ``counts`` {path: matching lines}, ``hits`` [[path, line, text]] (the first
``limit`` in path order), ``unreadable`` (some files could not be read).
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

BINARY_SNIFF_BYTES = 8192


def lines(handle: BinaryIO, line_bytes: int) -> Iterator[bytes]:
    """The file's lines, each cut to ``line_bytes`` (the rest of a longer line is skipped)."""
    while True:
        raw = handle.readline(line_bytes)
        if not raw:
            return
        if len(raw) == line_bytes and not raw.endswith(b"\n"):
            while True:
                rest = handle.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
        yield raw


def search(request: dict) -> dict:
    regex = re.compile(request["pattern"], re.IGNORECASE if request["ignore_case"] else 0)
    root: str = request["root"]
    limit: int = request["limit"]
    counts: dict[str, int] = {}
    hits: list[list[object]] = []
    unreadable = False
    for relative in request["files"]:
        try:
            fd = os.open(os.path.join(root, relative), request["open_flags"])
        except OSError:
            unreadable = True
            continue
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > request["max_file_bytes"]:
                continue  # FIFOs and devices are never read; large files are not searched
            if b"\x00" in handle.read(BINARY_SNIFF_BYTES):
                continue
            handle.seek(0)
            count = 0
            for number, raw in enumerate(lines(handle, request["line_bytes"]), start=1):
                if regex.search(raw.decode("utf-8", errors="replace").rstrip("\n")) is None:
                    continue
                count += 1
                if len(hits) < limit:
                    text = raw[: request["hit_bytes"]].decode("utf-8", errors="replace")
                    hits.append([relative, number, text])
            if count:
                counts[relative] = count
    return {"counts": counts, "hits": hits, "unreadable": unreadable}


def main() -> int:
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    result = search(request)
    sys.stdout.write(json.dumps(result, ensure_ascii=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
