"""Tolerant reading of small models' replies.

smolagents runs only closed ```` ```python ````/```` ```py ```` blocks. Local models also write
bare ```` ``` ```` fences, ``<code>`` tags, a last fence left open, ``<think>`` sections (whose
code must never run) and plain ``Final answer: ...`` lines. ``normalize_reply`` rewrites
those forms into the one smolagents runs, before it parses the reply.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

NO_CODE_MESSAGE = (
    "No code block found. Reply with 'Thought: ...' and one ```python block that calls the "
    'tools, or final_answer("...") when you know the answer.'
)

# Set by the routed model when a reply hit the output cap, read (and cleared) by the parse
# step that follows in the same thread: the cut reply's code must not run.
reply_cut: ContextVar[str | None] = ContextVar("reply_cut", default=None)


def cut_reply_note(cap: int) -> str:
    return (
        f"Your reply was cut off at the {cap}-token limit, so none of it ran. Reply briefly: "
        "one short Thought line, then one small ```python block."
    )


def repeated_reply_note() -> str:
    return (
        "Your reply kept repeating the same text, so it was stopped and none of it ran. "
        "Reply briefly: one short Thought line, then one small ```python block."
    )


_THINK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL | re.IGNORECASE)
_CODE_TAG = re.compile(r"<code>\s*(.*?)\s*(</code>|\Z)", re.DOTALL | re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^```[ \t]*([A-Za-z0-9_+-]*)[ \t]*$", re.MULTILINE)
_FINAL_LINE = re.compile(
    r"^\s*\**final[ _]answer\**\s*[:：]\s*(.+)$", re.IGNORECASE | re.DOTALL | re.MULTILINE
)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


def normalize_reply(text: str) -> str:
    """The reply with its code in closed ```` ```python ```` blocks, thinking removed."""
    text = _THINK.sub("", text or "").strip()
    if "```" not in text and "<code>" in text.lower():
        text = _CODE_TAG.sub(lambda match: f"```python\n{match.group(1)}\n```", text)
    text = _normalize_fences(text)
    if "```python" not in text:
        final = _FINAL_LINE.search(text)
        if final:
            answer = final.group(1).strip()
            text = f"{text[: final.start()].rstrip()}\n```python\nfinal_answer({answer!r})\n```"
    return text.strip()


def _normalize_fences(text: str) -> str:
    """Label opening fences as python (when they are python or bare) and close the last."""
    lines = text.split("\n")
    inside = False
    for index, line in enumerate(lines):
        match = _FENCE_OPEN.match(line)
        if not match:
            continue
        if inside:
            inside = False
            lines[index] = "```"
        elif match.group(1).lower() in _PYTHON_TAGS:
            inside = True
            lines[index] = "```python"
        else:
            inside = True  # another language's block: left as it is, never run
    if inside:
        lines.append("```")
    return "\n".join(lines)
