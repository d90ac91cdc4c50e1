"""Sizes as people read them, in one convention for every command and tool."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``27 bytes``, ``3.4 KB``, ``4.4 GB``: binary units (1 KB = 1024 bytes), as ``ls -h``
    and ``du -h`` count, and as local-brain's own limits are stated (``search_code`` skips
    files over 64 MB = 64 x 1024 x 1024 bytes), so a size can be compared with a limit."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"
