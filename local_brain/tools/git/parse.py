"""Pure parsers for git output, and the diff filter that drops sensitive file sections."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from local_brain.workspace import CONTROL_CHARS, is_sensitive_path, printable, shorten_line

MAX_COUNTED_LINES = 200_000  # past this, a diff's length is reported as "more than"

CONTROL = CONTROL_CHARS
_HEADER_SPLIT = re.compile(r' "?b/')


def clean(text: str) -> str:
    return shorten_line(printable(text))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def omitted_note(count: int) -> str:
    return f"({plural(count, 'sensitive file')} omitted)"


# -- -z listings ----------------------------------------------------------------------------


def parse_name_status(out: bytes, cut: bool) -> list[tuple[str, list[str]]]:
    """``--name-status -z`` output: (status, [path]) or (R/C status, [old, new])."""
    tokens = out.decode("utf-8", errors="replace").split("\0")
    entries: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(tokens):
        status = tokens[index]
        index += 1
        if not status:
            continue
        width = 2 if status[:1] in ("R", "C") else 1
        paths = tokens[index : index + width]
        index += width
        if len(paths) < width or not all(paths):
            break
        entries.append((status, paths))
    if cut and entries:
        entries.pop()
    return entries


def parse_numstat(out: bytes, cut: bool) -> list[tuple[str, str, list[str]]]:
    """``--numstat -z`` output: (added, deleted, [path] or [old, new])."""
    tokens = out.decode("utf-8", errors="replace").split("\0")
    entries: list[tuple[str, str, list[str]]] = []
    index = 0
    while index < len(tokens):
        record = tokens[index]
        index += 1
        parts = record.split("\t", 2)
        if len(parts) != 3:
            continue
        added, deleted, path = parts
        if path:
            entries.append((added, deleted, [path]))
        else:
            paths = tokens[index : index + 2]
            index += 2
            if len(paths) < 2:
                break
            entries.append((added, deleted, paths))
    if cut and entries:
        entries.pop()
    return entries


@dataclass(frozen=True)
class RawEntry:
    """One file pair of ``diff --raw -z --no-abbrev``."""

    status: str  # A C D M R T U X (the score of R/C dropped)
    old_id: str  # blob ids; all zeros for "none" or "not hashed" (a working-tree file)
    new_id: str
    paths: tuple[str, ...]  # (path,) or, for R and C, (old, new)

    def blob_ids(self) -> set[str]:
        return {blob for blob in (self.old_id, self.new_id) if blob.strip("0")}


def parse_raw(out: bytes, cut: bool) -> list[RawEntry]:
    """``--raw -z`` output: ``:mode mode id id STATUS\\0path\\0[path\\0]`` records."""
    tokens = out.decode("utf-8", errors="surrogateescape").split("\0")
    entries: list[RawEntry] = []
    index = 0
    while index < len(tokens):
        meta = tokens[index]
        index += 1
        if not meta.startswith(":"):
            continue
        fields = meta[1:].split(" ")
        if len(fields) != 5 or not fields[4]:
            break
        letter = fields[4][:1]
        width = 2 if letter in ("R", "C") else 1
        paths = tokens[index : index + width]
        index += width
        if len(paths) < width or not all(paths):
            break
        entries.append(RawEntry(letter, fields[2], fields[3], tuple(paths)))
    if cut and entries:
        entries.pop()
    return entries


# -- unified diffs --------------------------------------------------------------------------


class DiffCap:
    """Keeps the first lines of a diff within a line and character budget; counts the rest."""

    def __init__(self, max_lines: int, max_chars: int) -> None:
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.shown: list[str] = []
        self.chars = 0
        self.total = 0
        self.cut = False
        self.over_count_limit = False
        self.dropped_sections = 0

    def add(self, line: str) -> bool:
        """Take one line; False once there is no point reading further."""
        self.total += 1
        if not self.cut:
            text = shorten_line(line)
            if len(self.shown) < self.max_lines and self.chars + len(text) + 1 <= self.max_chars:
                self.shown.append(text)
                self.chars += len(text) + 1
                return True
            self.cut = True
        if self.total >= MAX_COUNTED_LINES:
            self.over_count_limit = True
            return False
        return True


_SECTION_STARTS = ("diff --git ", "diff --cc ", "diff --combined ")
_PATH_LINES = ("rename from ", "rename to ", "copy from ", "copy to ")


def filter_sensitive_sections(lines: Iterator[str], cap: DiffCap) -> Iterator[str]:
    """Drop every file section of a diff that names a sensitive path anywhere in its header.

    The header (``diff --git`` up to the first hunk) is held back until it is complete, so
    a rename to or from a sensitive name is caught before anything of the section is shown.
    """
    header: list[str] | None = None
    sensitive = False
    skipping = False
    for line in lines:
        unmerged = line.startswith("* Unmerged path ")
        if unmerged or line.startswith(_SECTION_STARTS):
            if header is not None and not sensitive:
                yield from header
            elif header is not None:
                cap.dropped_sections += 1
            header, sensitive, skipping = None, False, False
            if unmerged:
                if not _quoted_path_is_sensitive(line[len("* Unmerged path ") :]):
                    yield line
                continue
            header, sensitive = [line], _header_is_sensitive(line)
            continue
        if header is not None:
            if line.startswith("@@"):
                if sensitive:
                    cap.dropped_sections += 1
                    skipping = True
                else:
                    yield from header
                    yield line
                header = None
                continue
            sensitive = sensitive or _header_line_is_sensitive(line)
            header.append(line)
            continue
        if not skipping:
            yield line
    if header is not None:
        if sensitive:
            cap.dropped_sections += 1
        else:
            yield from header


def _header_is_sensitive(line: str) -> bool:
    """Every way of splitting ``diff --git a/X b/Y`` is checked, so odd names cannot hide."""
    if not line.startswith("diff --git "):  # diff --cc / --combined: one path
        return _quoted_path_is_sensitive(line.split(" ", 2)[-1])
    rest = line[len("diff --git ") :]
    candidates = [rest]
    for match in _HEADER_SPLIT.finditer(rest):
        candidates += [rest[: match.start()], rest[match.start() + 1 :]]
    return any(_quoted_path_is_sensitive(candidate) for candidate in candidates)


def _header_line_is_sensitive(line: str) -> bool:
    for lead in _PATH_LINES:
        if line.startswith(lead):
            return _quoted_path_is_sensitive(line[len(lead) :])
    if line.startswith(("--- ", "+++ ")):
        return _quoted_path_is_sensitive(line[4:].rstrip("\t"))
    return False


def _quoted_path_is_sensitive(text: str) -> bool:
    path = unquote(text.strip())
    for prefix in ("a/", "b/"):
        if path.startswith(prefix) and is_sensitive_path(path[len(prefix) :]):
            return True
    return is_sensitive_path(path)


_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote(text: str) -> str:
    """Undo git's C-style quoting of a path ("a/tab\\there"); other text is returned as is."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    body = text[1:-1]
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            octal = body[index + 1 : index + 4]
            if re.fullmatch(r"[0-7]{3}", octal):
                out.append(int(octal, 8) & 0xFF)
                index += 4
                continue
            if following in _ESCAPES:
                out.append(_ESCAPES[following])
                index += 2
                continue
        out += char.encode("utf-8", errors="replace")
        index += 1
    return out.decode("utf-8", errors="replace")
