"""`local-brain eval` over three scripted models of known quality (see
tests/fakes/scripted_models.py): its table and how long 3 models x 3 roles x 4 questions
take against a quick server."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_brain.evaluation.questions import generate_questions
from local_brain.workspace import Workspace
from tests.fakes.model_server import ModelServer
from tests.fakes.scripted_models import BAD, GOOD, UNUSABLE, responder_for

LOCAL_BRAIN = str(Path(sys.executable).with_name("local-brain"))
FILES = {
    "pyproject.toml": '[project]\nname = "billing"\nversion = "2.7.1"\n',
    "src/billing/invoice.py": "\n\ndef compute_total(items):\n    return sum(items)\n",
    "src/billing/tax.py": "RATE = 7\n\n\ndef tax_rate():\n    return RATE * 2\n",
    "src/billing/models.py": "class InvoiceLine:\n    cents = 0\n",
}
ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
       "GIT_COMMITTER_EMAIL": "b@b"}  # fmt: skip


def evaluation_report(questions: int = 4, seed: int = 1) -> tuple[str, float]:
    """The eval table and its wall time in seconds."""
    with ModelServer() as server, tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp, "repo")
        for name, text in FILES.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        env = {**os.environ, **ENV, "OLLAMA_API_BASE": server.url}
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "Initial import"]):
            subprocess.run(["git", "-C", str(repo), *args], check=True, env=env)
        asked = generate_questions(Workspace(repo), questions, seed).questions
        server.responder = responder_for(asked)
        config = Path(tmp, "config.yaml")
        config.write_text(f"local_brain: {{max_steps: 3, manager: '{GOOD}', worker: '{GOOD}'}}\n")
        started = time.perf_counter()
        completed = subprocess.run(
            [LOCAL_BRAIN, "eval", "--models", f"{UNUSABLE},{BAD},{GOOD}", "--questions",
             str(questions), "--seed", str(seed), "--root", str(repo), "--config", str(config)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    return completed.stdout.strip() or completed.stderr.strip(), seconds
