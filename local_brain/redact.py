"""Withholding secrets from text: the content check behind the sensitive-file policy.

The policy in ``workspace.py`` keeps files with secret names out of reach; this module is
the second layer, for secrets in files with ordinary names (a key pasted into
``config.py``, a token in a commit's diff). ``redact`` replaces each secret it finds with
``MARKER`` and keeps the rest of the line, so the model still sees the structure:
``API_KEY = "[secret withheld by local-brain]"``.

What it looks for:

* token formats, with the regular expressions of Yelp's ``detect-secrets`` detectors (AWS,
  GitHub, GitLab, Slack, Stripe, OpenAI, JWT, basic-auth URLs, npm, PyPI, SendGrid, ...),
  plus a few formats that release does not know (fine-grained GitHub tokens, Google API
  keys, ``sk-`` keys of OpenAI/Anthropic style, Hugging Face, age, Bearer headers);
* private key blocks (PEM, OpenSSH, PGP, PuTTY), withheld whole;
* assignments to a secret-sounding name whose value looks like a secret. Under a name from
  ``detect-secrets``' KeywordDetector list (password, secret, api_key, ...) a value needs 8+
  characters without spaces, two letters and a digit, and no template syntax; letter-only
  values (``"x-api-key"``, ``tokenValue``), numbers, and names or paths holding a keyword
  are names or settings, not secrets. Under a weaker name (``*token*``, ``*_key``) it also
  needs 16+ characters with 2+ digits. Bare (unquoted) values that read as code
  (``settings.API_KEY``, ``make_token(user)``, ``f(token=token,``) are skipped.

It deliberately does not run the detectors' bare high-entropy string search: git object ids,
hashes in lock files and base64 test data would all be withheld. ``detect-secrets``' own
``scan_line`` is not used either: with every plugin and filter it takes 150-200 ms for one
24,000-character tool output and, in its ad-hoc mode, reports thousands of false positives
in plain code. Running the chosen detectors' compiled patterns over the whole text costs a
few milliseconds instead.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from local_brain.redact_keys import key_spans
from local_brain.redact_keywords import keyword_spans
from local_brain.redact_tokens import token_spans

MARKER = "[secret withheld by local-brain]"


@dataclass(frozen=True)
class RedactResult:
    """The text with every secret found replaced by ``MARKER``, and how many were found."""

    text: str
    count: int


# -- the redactor ---------------------------------------------------------------------------


# Every line holding something ``redact`` withholds also matches this (a superset, valid in
# both Python's and ripgrep's regex syntax): search uses it to find the few lines worth
# checking, so that a line with a secret is neither shown nor counted (a count would let a
# model guess a withheld value one character at a time). Keep it in step with the detectors.
TRIGGER_PATTERN = (
    r"(?i)(?:key|pass|pwd|secret|token|contras|credential|auth)[\w.-]*['\"`\]]{0,2}\s*[:=]"
    r"|(?:basic|bearer)[ \t]+[a-z0-9+/._~-]{8}|private key|putty-user-key"
    r"|(?:akia|asia)[0-9a-z]{12}|gh[pousr]_[a-z0-9]{16}|github_pat_|gl[a-z]{2,6}-[a-z0-9_-]{16}"
    r"|xox[a-z]-|[rs]k_live|sk-[a-z0-9_-]{16}|npm_[a-z0-9]{30}|pypi-[a-z0-9_-]{16}"
    r"|aiza[0-9a-z_-]{30}|hf_[a-z0-9]{24}|age-secret-key|eyj[a-z0-9_-]{8}|sg\.[a-z0-9_-]{16}"
    r"|hooks\.slack|sq0[a-z]{3}-|[0-9a-f]{32}-us[0-9]|://[^/\s:@]+:[^/\s@]+@"
    r"|(?:ac|sk)[a-f0-9]{32}|[0-9]{8,10}:[a-z0-9_-]{35}|[a-z0-9_-]{23,}\.[a-z0-9_-]{6}\."
    r"|[a-z0-9+/]{60}"
)
TRIGGER = re.compile(TRIGGER_PATTERN.removeprefix("(?i)"), re.IGNORECASE)


def holds_secret(text: str) -> bool:
    """True when ``redact`` would withhold something in ``text`` (a file name, a line)."""
    return TRIGGER.search(text) is not None and bool(_secret_spans(text)[0])


def redact(text: str) -> RedactResult:
    """Replace every secret found in ``text`` with ``MARKER``; pure and fast (milliseconds
    for a 24,000-character tool output)."""
    spans, count = _secret_spans(text)
    if not spans:
        return RedactResult(text, 0)
    return RedactResult(_replace(text, spans), count)


def secret_line_indexes(text: str) -> set[int]:
    """The 0-based indexes of the lines of ``text`` that hold (part of) a secret."""
    spans, _count = _secret_spans(text)
    if not spans:
        return set()
    starts = [0] + [index + 1 for index, char in enumerate(text) if char == "\n"]
    lines: set[int] = set()
    for start, end in spans:
        first = bisect.bisect_right(starts, start) - 1
        last = bisect.bisect_right(starts, max(start, end - 1)) - 1
        lines.update(range(first, last + 1))
    return lines


def _secret_spans(text: str) -> tuple[list[tuple[int, int]], int]:
    """Every withheld span, and how many secrets they are (a key block counts once)."""
    if not text:
        return [], 0
    key_block_spans: list[tuple[int, int]] = []
    blocks = 0
    for span, first in key_spans(text):
        key_block_spans.append(span)
        blocks += first
    others = {
        span
        for span in (*token_spans(text), *keyword_spans(text))
        if not any(start <= span[0] and span[1] <= end for start, end in key_block_spans)
    }
    return [*key_block_spans, *others], blocks + len(others)


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    pieces: list[str] = []
    cursor = 0
    for start, end in merged:
        pieces += [text[cursor:start], MARKER]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)
