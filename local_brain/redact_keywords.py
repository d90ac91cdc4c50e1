"""Secrets by their place: values assigned to a secret-sounding name.

See ``redact.py`` for the rules; a name from detect-secrets' KeywordDetector list is strong
evidence, a weaker name (``*token*``, ``*_key``) needs a long, digit-rich value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from local_brain.redact_tokens import detectors, long_and_digit_rich

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


def keyword_spans(text: str) -> Iterator[tuple[int, int]]:
    lowered = text.lower()
    if len(lowered) == len(text):
        hits = _KEYWORD_CORE.finditer(lowered)
    else:  # lower() changed some offsets (e.g. "İ"): search case-insensitively instead
        hits = _KEYWORD_CORE_ANY_CASE.finditer(text)
    strong_keyword = detectors().strong_keyword
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
        if _looks_secret(value, strong) and (strong or long_and_digit_rich(value)):
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
