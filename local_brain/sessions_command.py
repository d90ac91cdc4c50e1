"""`local-brain sessions`: the conversations about this repository, listed or cleared.

Click and output only; the store is ``conversations.ConversationStore``. Light on imports
(no litellm, no smolagents).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from local_brain.commands import choose_root, json_option, root_option
from local_brain.conversations import ConversationStore, conversation_summary
from local_brain.errors import UsageError

QUESTION_PREVIEW = 60


def _store(root: Path | None) -> ConversationStore:
    return ConversationStore(choose_root(root))


@click.group(name="sessions", invoke_without_command=True)
@root_option
@json_option
@click.pass_context
def sessions_command(ctx: click.Context, root: Path | None, as_json: bool) -> None:
    """List the conversations about this repository (follow-ups with --continue or
    --session NAME); `sessions clear [ID]` removes one or all of them."""
    ctx.ensure_object(dict)
    ctx.obj["root"] = root
    if ctx.invoked_subcommand is not None:
        return
    store = _store(root)
    now = time.time()
    listed = store.list()
    if as_json:
        document = {
            "root": store.root,
            "conversations": [conversation_summary(each, now) for each in listed],
        }
        click.echo(json.dumps(document, ensure_ascii=False, indent=2))
        return
    if not listed:
        click.echo(f"No conversations about {store.root}.")
        return
    width = max(len(each.id) for each in listed)
    for each in listed:
        turns = f"{len(each.turns)} turn{'' if len(each.turns) == 1 else 's'}"
        question = " ".join(each.last_question.split())
        if len(question) > QUESTION_PREVIEW:
            question = question[: QUESTION_PREVIEW - 1] + "…"
        click.echo(f"{each.id:<{width}}  {turns:>8}  {age(now - each.updated):>8}  {question}")


@sessions_command.command(name="clear")
@click.argument("conversation_id", metavar="[ID]", required=False)
@root_option
@click.pass_context
def sessions_clear(ctx: click.Context, conversation_id: str | None, root: Path | None) -> None:
    """Remove the conversation ID, or every conversation about this repository."""
    store = _store(root or (ctx.obj or {}).get("root"))
    if conversation_id is None:
        count = store.clear()
        click.echo(f"Removed {count} conversation{'' if count == 1 else 's'}.")
        return
    if not store.remove(conversation_id):
        raise UsageError(
            f"no conversation {conversation_id!r} about this repository",
            hint="see `local-brain sessions`",
        )
    click.echo(f"Removed conversation {conversation_id}.")


def age(seconds: float) -> str:
    """How long ago, in its largest unit: '40s ago', '5m ago', '3h ago', '2d ago'."""
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"
