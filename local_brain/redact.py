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

import base64
import bisect
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from re import Pattern

MARKER = "[secret withheld by local-brain]"


@dataclass(frozen=True)
class RedactResult:
    """The text with every secret found replaced by ``MARKER``, and how many were found."""

    text: str
    count: int


# -- token formats --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Detectors:
    patterns: tuple[tuple[Pattern[str], str], ...]  # with a literal every hit contains
    jwt_patterns: frozenset[Pattern[str]]
    jwt_is_valid: Callable[[str], bool]
    strong_keyword: Pattern[str]


@functools.cache
def _detectors() -> _Detectors:
    """detect-secrets' patterns, loaded on first use: importing it costs ~70 ms (it pulls
    in ``requests``), which ``local-brain tools`` and ``--help`` need not pay.

    Left out: ArtifactoryDetector (its "AP[0-9A-F]..." pattern matches identifiers such as
    APDUCommand), the IBM/Cloudant/SoftLayer keyword detectors (the keyword rule below
    covers them), IPPublicDetector (not a secret), the high-entropy detectors (see the
    module docstring) and PrivateKeyDetector (it finds the BEGIN line only; the key block
    rule below withholds the whole block).
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
# (``_long_and_digit_rich``) than its prefix. A hit must start at a word boundary. (Patterns
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


def _token_spans(text: str) -> Iterator[tuple[int, int]]:
    detectors = _detectors()
    for pattern, gate in detectors.patterns:
        if gate and gate not in text:
            continue
        for match in pattern.finditer(text):
            start, end = _secret_span(match)
            if (start, end) == match.span() and _inside_word(text, start):
                continue  # ACCA... inside a DNA string, digits inside a longer number
            value = text[start:end]
            if _EXAMPLE.search(value) or len(value) <= 3 or value.lower() in _EXAMPLE_WORDS:
                continue
            if pattern in detectors.jwt_patterns and not detectors.jwt_is_valid(value):
                continue
            yield _widen(text, start, end)
    for pattern, needs_evidence in _EXTRA_PATTERNS:
        for match in pattern.finditer(text):
            if _inside_word(text, match.start(), "_-"):
                continue  # task-..., chf_...
            start, end = _secret_span(match)
            value = text[start:end]
            if _EXAMPLE.search(value) or (needs_evidence and not _long_and_digit_rich(value)):
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


# -- assignments to secret-sounding names ---------------------------------------------------

# detect-secrets' KeywordDetector names (password, secret, api_key, private_key, ...) and,
# as weaker evidence, names holding "token" or "credential" or ending in "_key" (STRIPE_KEY,
# but also sort_key, ChangeToken): a value under a weak name must be long and digit-rich.
_WEAK_KEYWORD = re.compile(r"token|credential|[_-]key\Z", re.IGNORECASE)
# A cheap first pass (on lower-cased text, without IGNORECASE, which is 4x slower): the
# words every keyword contains. A hit is then checked on its whole name.
_KEYWORD_CORE = re.compile(r"key|pass|pwd|secret|token|contras|credential")
_KEYWORD_CORE_ANY_CASE = re.compile(_KEYWORD_CORE.pattern, re.IGNORECASE)
_NAME_CHAR = re.compile(r"[\w.-]")
_NAME_REST = re.compile(r"[\w.-]*")
# What follows a secret-sounding name in an assignment: a closing quote or bracket, the
# operator (perhaps after a type annotation: `password: str = "..."`), then a quoted value
# or a bare token (never across a line end).
_ASSIGNMENT = re.compile(
    r"""['"`\]]{0,2}[ \t]*
        (?P<op>:[ \t]*[A-Za-z_][\w.\[\]|, ]{0,40}?[ \t]*=(?!=)|:=|=>|===?|!==?|=|:)[ \t]*
        (?:[rbuf]{0,2}(?P<quote>['"`])(?P<quoted>[^'"`\r\n]{1,500})(?P=quote)
          |(?P<bare>[^\s'"`,;&*?=()\[\]{}<>]{1,500}=*))""",
    re.VERBOSE,
)
# Values that are not secrets: templates and references (${X}, {{x}}, %(x)s, <token>, $X,
# {x}), masks (***, xxxxx), URLs (a basic-auth password in one is found above), regular
# expressions and calls (brackets in pairs), URNs.
_NOT_A_VALUE = re.compile(
    r"\$\{|\{\{|%\(|%s|<[A-Za-z_]|\*{3}|^\$|\{[A-Za-z_]|x{5,}|://|^urn:|\(.*\)|\[.*\]|\{.*\}",
    re.IGNORECASE,
)
# A value that is itself a name or path holding a keyword ("x-api-key", api_key_456,
# "/oauth/token", _encryption_key_sha256) names a variable, header or endpoint.
_NAME_OR_PATH = re.compile(r"[A-Za-z_./][\w./-]*\Z")
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\Z")
# snake_case or CONSTANT_CASE words (crypto_sign_curve25519_BYTES), unlike sk_live_4eC39Hq...
_WORD = r"(?:[a-z]+|[A-Z]+|[A-Z][a-z]+)\d*"
_SNAKE_NAME = re.compile(rf"_?{_WORD}(?:_{_WORD})+\Z")
# A bare value followed by one of these is code: f(x=y, ...), {"k": v}, value[0].
_CODE_AFTER = frozenset(",;)]}([")


def _keyword_spans(text: str) -> Iterator[tuple[int, int]]:
    lowered = text.lower()
    if len(lowered) == len(text):
        hits = _KEYWORD_CORE.finditer(lowered)
    else:  # lower() changed some offsets (e.g. "İ"): search case-insensitively instead
        hits = _KEYWORD_CORE_ANY_CASE.finditer(text)
    strong_keyword = _detectors().strong_keyword
    name_end = 0
    for hit in hits:
        if hit.start() < name_end:
            continue  # another keyword in a name already looked at: secret_key
        name_start = hit.start()
        while name_start > 0 and _NAME_CHAR.match(text, name_start - 1):
            name_start -= 1
        rest = _NAME_REST.match(text, hit.end())
        name_end = rest.end() if rest else hit.end()
        strong = strong_keyword.search(text, name_start, name_end) is not None
        if not strong and _WEAK_KEYWORD.search(text, name_start, name_end) is None:
            continue
        match = _ASSIGNMENT.match(text, name_end)
        if match is None:
            continue
        if match["quoted"] is not None:
            span = match.span("quoted")
        elif _is_bare_value(text, match):
            span = match.span("bare")
        else:
            continue
        value = text[span[0] : span[1]]
        if _looks_secret(value, strong) and (strong or _long_and_digit_rich(value)):
            yield span


def _is_bare_value(text: str, match: re.Match[str]) -> bool:
    """False for code that only looks like an assignment: comparisons, settings.API_KEY,
    make_token(...), f(token=token_value, ...), SECRET = OTHER_CONSTANT, and a colon
    without a space after it (YAML needs one), as in arn:aws:secretsmanager:..."""
    after = text[match.end() : match.end() + 1]
    return not (
        match["op"] in ("==", "===", "!=", "!==")
        or (match["op"] == ":" and match.start("bare") == match.end("op"))  # arn:aws:secrets:x
        or _DOTTED_NAME.match(match["bare"])
        or _SNAKE_NAME.match(match["bare"])
        or (after and after in _CODE_AFTER)
    )


def _looks_secret(value: str, strong: bool = False) -> bool:
    """A value worth withholding. Under a strong name (password, secret, ...) a short or
    letter-only word is enough (``password=hunter2``), unless it reads as a name: an
    identifier or path holding a keyword, or a plain lower-case word (``password = "text"``
    is a setting's type more often than a password)."""
    if len(value) < (6 if strong else 8) or any(char.isspace() for char in value):
        return False
    if _NOT_A_VALUE.search(value):
        return False
    if _NAME_OR_PATH.match(value) and _KEYWORD_CORE_ANY_CASE.search(value):
        return False
    letters = sum(char.isalpha() for char in value)
    digits = sum(char.isdigit() for char in value)
    if strong and letters >= 1:
        return digits >= 1 or not (value.isalpha() and value.islower()) or len(value) >= 12
    return letters >= 2 and digits >= 1


def _long_and_digit_rich(value: str) -> bool:
    """Evidence enough under a weak name: 16+ characters with 2+ digits (UUIDs, hex, base64
    tokens). Random 16-character base62 strings have fewer than 2 digits 1 time in 4."""
    return len(value) >= 16 and sum(char.isdigit() for char in value) >= 2


# -- private key blocks ---------------------------------------------------------------------

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


def _key_spans(text: str) -> Iterator[tuple[tuple[int, int], bool]]:
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
    key_spans: list[tuple[int, int]] = []
    blocks = 0
    for span, first in _key_spans(text):
        key_spans.append(span)
        blocks += first
    others = {
        span
        for span in (*_token_spans(text), *_keyword_spans(text))
        if not any(start <= span[0] and span[1] <= end for start, end in key_spans)
    }
    return [*key_spans, *others], blocks + len(others)


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
