"""Secrets by their format: the token patterns ``redact`` withholds.

detect-secrets' detectors (their compiled patterns only, loaded on first use), a few
formats that release does not know, and base64 "user:password" credentials. A hit is
widened over the characters a token continues with, and masks and templates in
documentation are passed over. See ``redact.py`` for the whole design.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from re import Pattern

# -- detect-secrets' detectors -----------------------------------------------------------


@dataclass(frozen=True)
class _Detectors:
    patterns: tuple[tuple[Pattern[str], str], ...]  # with a literal every hit contains
    jwt_patterns: frozenset[Pattern[str]]
    jwt_is_valid: Callable[[str], bool]
    strong_keyword: Pattern[str]


@functools.cache
def detectors() -> _Detectors:
    """detect-secrets' patterns, loaded on first use: importing it costs ~70 ms (it pulls
    in ``requests``), which ``local-brain tools`` and ``--help`` need not pay.

    Left out: ArtifactoryDetector (its "AP[0-9A-F]..." pattern matches identifiers such as
    APDUCommand), the IBM/Cloudant/SoftLayer keyword detectors (the keyword rule in
    ``redact_keywords`` covers them), IPPublicDetector (not a secret), the high-entropy
    detectors (see ``redact.py``) and PrivateKeyDetector (it finds the BEGIN line only;
    ``redact_keys`` withholds the whole block).
    """
    from detect_secrets.plugins.aws import AWSKeyDetector
    from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
    from detect_secrets.plugins.basic_auth import BasicAuthDetector
    from detect_secrets.plugins.discord import DiscordBotTokenDetector
    from detect_secrets.plugins.github_token import GitHubTokenDetector
    from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.keyword import DENYLIST
    from detect_secrets.plugins.mailchimp import MailchimpDetector
    from detect_secrets.plugins.npm import NpmDetector
    from detect_secrets.plugins.openai import OpenAIDetector
    from detect_secrets.plugins.pypi_token import PypiTokenDetector
    from detect_secrets.plugins.sendgrid import SendGridDetector
    from detect_secrets.plugins.slack import SlackDetector
    from detect_secrets.plugins.square_oauth import SquareOAuthDetector
    from detect_secrets.plugins.stripe import StripeDetector
    from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
    from detect_secrets.plugins.twilio import TwilioKeyDetector

    detectors = (
        AWSKeyDetector, AzureStorageKeyDetector, BasicAuthDetector, DiscordBotTokenDetector,
        GitHubTokenDetector, GitLabTokenDetector, JwtTokenDetector, MailchimpDetector,
        NpmDetector, OpenAIDetector, PypiTokenDetector, SendGridDetector, SlackDetector,
        SquareOAuthDetector, StripeDetector, TelegramBotTokenDetector, TwilioKeyDetector,
    )  # fmt: skip
    gates: dict[type, str] = {MailchimpDetector: "-us"}  # skip its slow pattern when absent
    return _Detectors(
        patterns=tuple(
            (pattern, gates.get(detector, ""))
            for detector in detectors
            for pattern in detector.denylist
        ),
        jwt_patterns=frozenset(JwtTokenDetector.denylist),
        jwt_is_valid=JwtTokenDetector.is_formally_valid,
        strong_keyword=re.compile("|".join(DENYLIST), re.IGNORECASE),
    )


# Token formats detect-secrets 1.5 does not know, each with whether a hit needs more evidence
# (``long_and_digit_rich``) than its prefix. A hit must start at a word boundary. (Patterns
# start with a literal: a leading \b or character class makes Python's regex engine try
# every position, several times slower.)
_EXTRA_PATTERNS: tuple[tuple[Pattern[str], bool], ...] = (
    (re.compile(r"github_pat_[A-Za-z0-9_]{22,}"), False),
    (re.compile(r"AIza[0-9A-Za-z_-]{35}"), False),
    (re.compile(r"hf_[A-Za-z0-9]{30,}"), False),
    (re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{50,}"), False),
    (re.compile(r"sk-(?:proj-|svcacct-|admin-|ant-[a-z]+\d\d-)?[A-Za-z0-9_-]{20,}"), True),
    (re.compile(r"Bearer[ \t]+([A-Za-z0-9._~+/-]{16,}=*)"), True),
    (re.compile(r"bearer[ \t]+([A-Za-z0-9._~+/-]{16,}=*)"), True),
    (re.compile(r"npm_[A-Za-z0-9]{36}"), False),
    (re.compile(r"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/-]{20,}"), False),
)
# "user:password" in base64: HTTP Basic credentials and Docker's config.json "auth" entries.
_BASIC_CREDENTIALS = (
    re.compile(r"Basic[ \t]+([A-Za-z0-9+/]{8,}={0,2})"),
    re.compile(r"basic[ \t]+([A-Za-z0-9+/]{8,}={0,2})"),
    re.compile(r"\"auth\"[ \t]*:[ \t]*\"([A-Za-z0-9+/]{8,}={0,2})\""),
)

# Characters a token continues with; a hit is widened over them so that a pattern matching
# a token's prefix (the OpenAI pattern, the lazy JWT pattern) withholds the whole token.
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_-]")


# Hits that are documentation, not secrets: masks and templates (ACxxxxxxxx, {password},
# <password>, $TOKEN) and the stock words of example URLs (https://user:pass@host).
_EXAMPLE = re.compile(r"x{5,}|\*{3}|[{<$]", re.IGNORECASE)
_EXAMPLE_WORDS = frozenset("pass password passwd pwd secret token changeme".split())


def token_spans(text: str) -> Iterator[tuple[int, int]]:
    loaded = detectors()
    for pattern, gate in loaded.patterns:
        if gate and gate not in text:
            continue
        for match in pattern.finditer(text):
            start, end = _secret_span(match)
            if (start, end) == match.span() and _inside_word(text, start):
                continue  # ACCA... inside a DNA string, digits inside a longer number
            value = text[start:end]
            if _EXAMPLE.search(value) or len(value) <= 3 or value.lower() in _EXAMPLE_WORDS:
                continue
            if pattern in loaded.jwt_patterns and not loaded.jwt_is_valid(value):
                continue
            yield _widen(text, start, end)
    for pattern, needs_evidence in _EXTRA_PATTERNS:
        for match in pattern.finditer(text):
            if _inside_word(text, match.start(), "_-"):
                continue  # task-..., chf_...
            start, end = _secret_span(match)
            value = text[start:end]
            if _EXAMPLE.search(value) or (needs_evidence and not long_and_digit_rich(value)):
                continue
            yield _widen(text, start, end)
    for pattern in _BASIC_CREDENTIALS:
        for match in pattern.finditer(text):
            if _is_user_and_password(match[1]):
                yield match.span(1)


def _is_user_and_password(value: str) -> bool:
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        text = decoded.decode("utf-8")
    except ValueError:
        return False
    user, colon, password = text.partition(":")
    return bool(colon and user and password and text.isprintable())


def _inside_word(text: str, start: int, also: str = "") -> bool:
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] in also)


def _secret_span(match: re.Match[str]) -> tuple[int, int]:
    """The part of a hit that is the secret. A pattern whose group ends the match captures
    the secret after some context (``://user:(pass)@``, ``aws...key = "(...)"``); a group
    elsewhere is only a prefix (``(ghp|gho)_...``), and then the whole match is the secret."""
    best: tuple[int, int] | None = None
    for index in range(1, (match.re.groups or 0) + 1):
        start, end = match.span(index)
        if start < 0 or end <= start or end < match.end() - 1:
            continue
        if best is None or end - start > best[1] - best[0]:
            best = (start, end)
    return best or match.span()


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and _TOKEN_CHAR.match(text, start - 1):
        start -= 1
    while end < len(text) and _TOKEN_CHAR.match(text, end):
        end += 1
    return start, end


def long_and_digit_rich(value: str) -> bool:
    """Evidence enough under a weak name: 16+ characters with 2+ digits (UUIDs, hex, base64
    tokens). Random 16-character base62 strings have fewer than 2 digits 1 time in 4."""
    return len(value) >= 16 and sum(char.isdigit() for char in value) >= 2
