"""The content check: secrets in files with ordinary names never leave a tool.

``local_brain.redact`` on its own (each kind of secret withheld, ordinary text left alone,
speed), then through the tools as the model calls them (``ToolSpec.run``), then end to end
through the installed CLI and the scripted model server.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import time
from pathlib import Path

import pytest

from local_brain.redact import MARKER, RedactResult, redact
from local_brain.tools import all_tools
from local_brain.tools.search import python_search_code
from local_brain.workspace import Workspace
from tests.conftest import git
from tests.fakes.model_server import ModelServer
from tests.test_e2e import code, run_cli

TOOLS = all_tools()

# A fake OpenSSH key: 70-character base64 lines, as ssh-keygen writes them.
_KEY_BYTES = b"".join(hashlib.sha512(bytes([n])).digest() for n in range(6))
KEY_LINES = [
    line
    for encoded in [base64.b64encode(_KEY_BYTES).decode()]
    for line in (encoded[i : i + 70] for i in range(0, len(encoded), 70))
]
PRIVATE_KEY = "\n".join(
    ["-----BEGIN OPENSSH PRIVATE KEY-----", *KEY_LINES, "-----END OPENSSH PRIVATE KEY-----"]
)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB_TOKEN = "ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"
OPENAI_KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f"
CONFIG_PY = f'''"""Deployment settings."""

DEPLOY_KEY = """
{PRIVATE_KEY}
"""
AWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"
GITHUB = "{GITHUB_TOKEN}"
client = OpenAI(api_key="{OPENAI_KEY}")
TIMEOUT_SECONDS = 30
'''
SECRETS = [*KEY_LINES, AWS_SECRET, GITHUB_TOKEN, OPENAI_KEY]


def run(root: Path, name: str, **kwargs: object) -> str:
    return TOOLS[name].run(Workspace(root), **kwargs)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- the redactor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        (f'API_KEY = "{OPENAI_KEY}"', f'API_KEY = "{MARKER}"'),
        (f'AWS_SECRET_ACCESS_KEY = "{AWS_SECRET}"', f'AWS_SECRET_ACCESS_KEY = "{MARKER}"'),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", f"aws_access_key_id = {MARKER}"),
        (f"token: {GITHUB_TOKEN}", f"token: {MARKER}"),
        ('"github.com": "gho_16C7e42F292c6912E7710c838347Ae178B4a"', f'"github.com": "{MARKER}"'),
        ("GITLAB_TOKEN=glpat-xY3zA6bC9dE2fG5hJ8kL", f"GITLAB_TOKEN={MARKER}"),
        ('bot = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"', f'bot = "{MARKER}"'),
        ('stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', f'stripe.api_key = "{MARKER}"'),
        ('hf = "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"', f'hf = "{MARKER}"'),
        ('MAPS = "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"', f'MAPS = "{MARKER}"'),
        ("DATABASE_URL=postgres://app:Tr0ub4dor-3@db:5432/app", f"DATABASE_URL=postgres://app:{MARKER}@db:5432/app"),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
            ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            f"Authorization: Bearer {MARKER}",
        ),
        ('password: str = "correct9horse"', f'password: str = "{MARKER}"'),
        ("SECRET_KEY=django-insecure-4x!b7@k2p9z", f"SECRET_KEY={MARKER}"),
        ("+    db_password = 'hunter22'", f"+    db_password = '{MARKER}'"),
        ('session_token = "3c9d1f0e-8a7b-4c2d-9e6f-5a4b3c2d1e0f"', f'session_token = "{MARKER}"'),
    ],
)  # fmt: skip
def test_each_kind_of_secret_is_withheld_keeping_the_line(line: str, expected: str) -> None:
    result = redact(line)
    assert result == RedactResult(expected, 1)


@pytest.mark.parametrize(
    "text",
    [
        "commit 3f34dd2e9c1a7b4f8d2e6a0c5b9f1e3d7a2c4b6e\nAuthor: Ada <ada@example.test>",
        'sha = "3f34dd2e9c1a7b4f8d2e6a0c5b9f1e3d7a2c4b6e"',
        'data = "SGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgdGVzdCBkYXRhMTIz"',
        '"integrity": "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="',
        'password = request.form.get("password")',
        "def login(password: str) -> bool:",
        "api_key = settings.API_KEY",
        "token = make_token(user, expires=3600)",
        "client = Client(token=token_value, retries=3)",
        "curve_secret_key_len = crypto_sign_curve25519_BYTES",
        'secret_name = "db-password"',
        'API_KEY_HEADER = "x-api-key"',
        'TOKEN_URL = "/oauth2/v1/token"',
        "DB_PASSWORD=${DB_PASSWORD}",
        'password: "{{ vault_db_password }}"',
        "max_tokens: 1500",
        'tokenizer = "bert-base-uncased"',
        'result_key = "PublicIpv4Pools"',
        'uuid = "123e4567-e89b-12d3-a456-426614174000"',
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:MyDatabaseSecret-a1b2c3",
        "if token == expected_token2:",
        "# Account SID (ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx)",
        "see https://user:pass@host/path for the URL form",
        "src/components/dashboard/widgets/charts/internal/LineChartWithTooltip2/",
        "task-0123456789abcdefghijklmnop and madatnlp/sk-kogptv2-kormath-causal",
        f"already withheld: {MARKER}",
    ],
)  # fmt: skip
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == RedactResult(text, 0)


def test_standard_library_source_is_left_alone() -> None:
    import configparser, getpass, hmac, netrc, secrets, smtplib, ssl, urllib.request  # noqa: E401, I001

    for module in (configparser, getpass, hmac, netrc, secrets, smtplib, ssl):
        assert redact(inspect.getsource(module)).count == 0, module.__name__
    # urllib.request's docstring has one literal password, passwd='geheim$parole': withheld.
    request = redact(inspect.getsource(urllib.request))
    assert request.count == 1 and f"passwd='{MARKER}'" in request.text


MORE_FORMATS = [
    ("password=hunter2", "hunter2"),
    ('DB_PASSWORD = "Tr0ub4dor"', "Tr0ub4dor"),
    ('secret: "CorrectHorse"', "CorrectHorse"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ('{"auths": {"ghcr.io": {"auth": "dXNlcjpzM2NyM3Q="}}}', "dXNlcjpzM2NyM3Q="),
    ("//registry/:_authToken=npm_" + "a1B2c3D4e5" * 3 + "a1B2c3", "npm_"),
    ("url = https://hooks.slack.com/services/T00000000/B00000000/XXXXabcdXXXXabcd1234", "T00000000/B"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "secret"), MORE_FORMATS)
def test_more_secret_formats_are_withheld(text: str, secret: str) -> None:
    result = redact(text)
    assert result.count >= 1 and secret not in result.text, result.text


@pytest.mark.parametrize(
    "text",
    [
        'password = "text"',  # a field's type
        "Basic usage of the client",
        'auth_mode: "basic"',
        "password_field = PasswordField()",
    ],
)
def test_password_like_words_that_are_not_secrets(text: str) -> None:
    assert redact(text).count == 0, redact(text).text


def numbered(text: str, first: int = 1) -> str:
    """Lines as read_file shows them."""
    return "\n".join(f"{n:>6}  {line}" for n, line in enumerate(text.splitlines(), first))


def test_private_key_block_is_withheld_whole() -> None:
    text = numbered(f"# deploy key\n{PRIVATE_KEY}\nTIMEOUT = 30")
    result = redact(text)
    assert result.count == 1
    assert_no_secret(result.text)
    lines = result.text.splitlines()
    assert lines[0] == "     1  # deploy key"
    assert lines[1] == f"     2  {MARKER}"
    assert all(line.endswith(MARKER) for line in lines[2 : 2 + len(KEY_LINES)])
    assert lines[-2:] == ["    11  -----END OPENSSH PRIVATE KEY-----", "    12  TIMEOUT = 30"]


def test_key_lines_seen_without_their_begin_line_are_withheld() -> None:
    # read_file(start_line=...) inside the block, search_code matching one line of it.
    middle = numbered("\n".join([*KEY_LINES[2:], "-----END OPENSSH PRIVATE KEY-----"]), 4)
    rows = "\n".join(f"config.py:{n}: {line}" for n, line in enumerate(KEY_LINES, 5))
    for text in (middle, rows):
        result = redact(text)
        assert_no_secret(result.text)
        assert MARKER in result.text


def test_keys_in_json_strings_and_putty_files() -> None:
    pem = (
        "-----BEGIN PRIVATE KEY-----\\n" + "\\n".join(KEY_LINES) + "\\n-----END PRIVATE KEY-----\\n"
    )
    service_account = f'  "private_key": "{pem}",\n  "client_email": "x@p.iam.gserviceaccount.com"'
    putty = "\n".join(
        ["PuTTY-User-Key-File-2: ssh-rsa", "Encryption: none", "Comment: deploy",
         "Public-Lines: 2", *KEY_LINES[:2], "Private-Lines: 3", *KEY_LINES[2:5],
         "Private-MAC: 5f3a9c0e7b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d", "", "after = 1"]
    )  # fmt: skip
    for text in (service_account, putty):
        result = redact(text)
        assert result.count == 1
        assert_no_secret(result.text)
        assert "5f3a9c0e7b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d" not in result.text
    assert redact(service_account).text.splitlines()[1] == service_account.splitlines()[1]
    assert redact(putty).text.splitlines()[-1] == "after = 1"


def test_a_begin_line_in_code_does_not_swallow_what_follows() -> None:
    text = 'PEM_HEADER = "-----BEGIN RSA PRIVATE KEY-----"\n\ndef load(path):\n    return path\n'
    result = redact(text)
    assert result.text.splitlines() == [
        f'PEM_HEADER = "{MARKER}"',
        "",
        "def load(path):",
        "    return path",
    ]


def test_redaction_is_idempotent() -> None:
    once = redact(numbered(CONFIG_PY)).text
    assert redact(once) == RedactResult(once, 0)


def test_milliseconds_for_tool_sized_outputs() -> None:
    import argparse

    source = inspect.getsource(argparse)
    read_output = numbered(source * 4)[:24_000]  # read_file's character cap
    rows = [line.strip() for line in source.splitlines() if line.strip()] * 4
    search_output = "\n".join(f"src/mod{n % 40}.py:{n}: {row}" for n, row in enumerate(rows[:500]))
    redact(read_output)  # loads detect-secrets once
    for text in (read_output, search_output):
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            redact(text)
            timings.append(time.perf_counter() - start)
        assert min(timings) < 0.025, f"{min(timings) * 1000:.1f} ms for {len(text)} characters"


# -- through the tools ----------------------------------------------------------------------


@pytest.fixture
def config_repo(make_repo) -> Path:
    return make_repo(
        {"README.md": "# Service\n", "app.py": "import config\n"},
        commits=[(f"Add deploy settings (token {GITHUB_TOKEN})", {"config.py": CONFIG_PY})],
    )


def test_read_file_withholds_secrets_and_keeps_structure(config_repo: Path) -> None:
    out = run(config_repo, "read_file", path="config.py")
    assert_no_secret(out)
    assert f'AWS_SECRET_ACCESS_KEY = "{MARKER}"' in out
    assert f'client = OpenAI(api_key="{MARKER}")' in out
    assert "TIMEOUT_SECONDS = 30" in out
    assert_no_secret(run(config_repo, "read_file", path="config.py", start_line=6, end_line=9))


def test_search_code_withholds_secrets(config_repo: Path) -> None:
    """Lines holding a secret are neither shown nor counted; the rest of the file is."""
    patterns = ["AWS_SECRET|GITHUB|api_key", "ghp_", "[A-Za-z0-9+/]{60}"]
    for pattern in patterns:
        out = run(config_repo, "search_code", pattern=pattern)
        assert out.startswith("0 matches"), (pattern, out)
        assert_no_secret(out)
    out = run(config_repo, "search_code", pattern="PRIVATE KEY")  # only the END line is no secret
    assert out.startswith("1 match in 1 file") and "END OPENSSH PRIVATE KEY" in out
    out = run(config_repo, "search_code", pattern="TIMEOUT_SECONDS|Deployment")
    assert out.startswith("2 matches in 1 file") and "TIMEOUT_SECONDS = 30" in out


@pytest.mark.parametrize("engine", ["search_code", "python"])
def test_match_counts_are_no_oracle_for_a_withheld_value(make_repo, engine: str) -> None:
    """Guessing a withheld value character by character from '1 match' / '0 matches'."""
    root = make_repo(
        {
            "config.json": '{\n  "password": "hunter2hunter2",\n  "region": "eu-west-1"\n}\n',
            "notes_ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8.txt": "x\n",
        }
    )
    ws = Workspace(root)

    def search(pattern: str) -> str:
        if engine == "python":
            return python_search_code(ws, pattern)
        return TOOLS["search_code"].run(ws, pattern=pattern)

    right, wrong = search('"password": "hunter2h'), search('"password": "hunterX')
    assert right.startswith("0 matches") and wrong.startswith("0 matches")
    if engine == "search_code":
        assert search("region").startswith("1 match in 1 file")
    for guess in ("notes_ghp_A1*", "notes_ghp_B*"):
        assert TOOLS["list_directory"].run(ws, pattern=guess).startswith("./: no entries match")
    assert "notes_ghp" not in TOOLS["list_directory"].run(ws)


def test_git_diff_and_log_withhold_a_committed_secret(config_repo: Path) -> None:
    diff = run(config_repo, "git_diff", ref="HEAD~1")
    assert "config.py" in diff and f'+AWS_SECRET_ACCESS_KEY = "{MARKER}"' in diff
    assert_no_secret(diff)
    log = run(config_repo, "git_log", max_count=5)
    assert f"Add deploy settings (token {MARKER})" in log
    assert_no_secret(log)
    head = git(config_repo, "rev-parse", "HEAD").strip()
    assert head[:7] in log  # commit ids are not mistaken for secrets


def test_list_directory_and_file_info_still_work(config_repo: Path) -> None:
    assert "config.py" in run(config_repo, "list_directory")
    assert "lines:" in run(config_repo, "file_info", path="config.py")


def test_error_messages_are_redacted_too(config_repo: Path) -> None:
    out = run(config_repo, "read_file", path=f"{GITHUB_TOKEN}.txt")
    assert out.startswith("Error: not found:") and GITHUB_TOKEN not in out


SECRET_NAMED = {
    ".vault-token": "hvs.CAESIJ1vaultNEEDLE0\n",
    "auth.json": '{"github-oauth": {"github.com": "NEEDLE1"}}\n',
    "key.ppk": "PuTTY-User-Key-File-3: ssh-ed25519\nNEEDLE2\n",
    ".my.cnf": "[client]\npassword=NEEDLE3\n",
    "x-firebase-adminsdk-abcde-0123456789.json": '{"type": "service_account", "k": "NEEDLE4"}\n',
    ".s3cfg": "[default]\nsecret_key = NEEDLE5\n",
    ".boto": "[Credentials]\naws_secret_access_key = NEEDLE6\n",
    ".terraformrc": 'credentials "app.terraform.io" { token = "NEEDLE7" }\n',
    "htpasswd": "admin:NEEDLE8\n",
    "prod.kubeconfig": "users:\n- user: {token: NEEDLE9}\n",
    ".config/gh/hosts.yml": "github.com:\n    oauth_token: NEEDLE10\n",
    ".cargo/credentials.toml": '[registry]\ntoken = "NEEDLE11"\n',
    ".gem/credentials": "---\n:rubygems_api_key: NEEDLE12\n",
}


def test_secret_named_files_are_refused_unlisted_and_unsearched(make_repo) -> None:
    root = make_repo({"app.py": "x = 1\n", **SECRET_NAMED})
    listing = run(root, "list_directory", pattern="**")
    assert "app.py" in listing
    for name in SECRET_NAMED:
        assert run(root, "read_file", path=name).startswith("Error: path refused:"), name
        assert name.rsplit("/", 1)[-1] not in listing, name
    assert run(root, "search_code", pattern="NEEDLE").startswith("0 matches")


# -- hard links -----------------------------------------------------------------------------


@pytest.fixture
def linked_repo(make_repo) -> Path:
    root = make_repo({"app.py": "x = 1\n", ".env": "LAUNCH_CODE=orange lantern 77\n"})
    os.link(root / ".env", root / "notes.txt")
    return root


def test_hard_link_to_env_is_refused_by_every_reading_tool(linked_repo: Path) -> None:
    for name, kwargs in [("read_file", {}), ("file_info", {}), ("list_definitions", {})]:
        out = run(linked_repo, name, path="notes.txt", **kwargs)
        assert out.startswith("Error: path refused: notes.txt is a hard link"), out
    out = run(linked_repo, "search_code", pattern="lantern", path="notes.txt")
    assert out.startswith("Error: path refused:")


def test_hard_link_is_neither_listed_nor_searched(linked_repo: Path) -> None:
    found = run(linked_repo, "search_code", pattern="lantern")
    assert found.startswith("0 matches") and "LAUNCH_CODE" not in found, found
    assert "notes.txt" not in run(linked_repo, "list_directory")
    assert "notes.txt" not in run(linked_repo, "list_directory", pattern="**")


# -- end to end -----------------------------------------------------------------------------


@pytest.mark.slow
def test_secrets_never_reach_the_model_through_the_cli(
    model_server: ModelServer, config_repo: Path
) -> None:
    os.link(config_repo / "README.md", config_repo / "notes.txt")
    steps = "\n".join(
        [
            'print(read_file("config.py"))',
            'print(search_code(pattern="KEY|GITHUB|[A-Za-z0-9+/]{60}"))',
            'print(git_diff(ref="HEAD~1"))',
            "print(git_log(max_count=3))",
            'print(read_file("notes.txt"))',
        ]
    )
    model_server.script(None, [code(steps), code('final_answer("done")')])

    result = run_cli("-m", "qwen2.5:3b", "--root", str(config_repo), "Where are the keys?",
                     server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "done"
    sent = json.dumps([request.body for request in model_server.requests])
    assert MARKER in sent and "notes.txt is a hard link" in sent
    for secret in SECRETS:
        assert secret not in sent
        assert secret not in result.stdout + result.stderr


@pytest.mark.slow
def test_secrets_in_piped_input_are_withheld(model_server: ModelServer, config_repo: Path) -> None:
    """`git diff | local-brain "review"`: the piped diff is repository content too."""
    diff = (config_repo / "config.py").read_text()
    model_server.script(None, [code('final_answer("reviewed")')])

    result = run_cli("-m", "qwen2.5:3b", "--root", str(config_repo), "Review this",
                     stdin=diff, server=model_server)  # fmt: skip

    assert result.returncode == 0, result.stderr
    sent = json.dumps([request.body for request in model_server.requests])
    assert MARKER in sent and "context from standard input" in sent
    assert "withheld from the model" in result.stderr
    for secret in SECRETS:
        assert secret not in sent


def test_every_withheld_line_matches_the_search_trigger() -> None:
    """Search finds lines worth checking with TRIGGER_PATTERN: it must be a superset."""
    import re

    from local_brain.redact import TRIGGER_PATTERN, secret_line_indexes

    trigger = re.compile(TRIGGER_PATTERN.removeprefix("(?i)"), re.IGNORECASE)
    texts = [CONFIG_PY, *(text for text, _ in MORE_FORMATS)]
    texts += ["password=hunter2", "x = 'sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" + "'"]
    checked = 0
    for line in (line for text in texts for line in text.splitlines()):
        if secret_line_indexes(line):  # search checks each matching line on its own
            checked += 1
            assert trigger.search(line), line
    assert checked >= len(texts)


def test_a_search_too_big_to_check_line_by_line_gives_no_exact_count(
    make_repo, monkeypatch
) -> None:
    """Memory stays bounded: past the cap, rows are still checked, totals are not exact."""
    from local_brain.tools import search_engines

    monkeypatch.setattr(search_engines, "MAX_VERIFIED_MATCHES", 3)
    root = make_repo({"a.txt": "x\nx\nx\npassword=hunter2x\n", "b.txt": "x\nx\n"})
    out = TOOLS["search_code"].run(Workspace(root), pattern="x")
    assert out.startswith("more than 3 matches (showing ")
    assert "hunter2" not in out and "a.txt:4" not in out and "Most matches" not in out
    assert "a.txt:1: x" in out
