"""Conversations: the earlier questions and answers a follow-up question is asked after.

One JSON file per conversation under ``$XDG_STATE_HOME/local-brain/conversations/`` (else
``~/.local/state/...``), never inside the repository. A conversation belongs to one
repository root: its file name starts with a digest of the resolved root and the file
records the root itself, so a conversation of another repository is never found (nor
listed, nor cleared). Files are written atomically, readable by the owner only, and
bounded: the newest ``MAX_TURNS`` turns within ``MAX_CHARS`` characters, conversations
untouched for ``MAX_AGE_S`` dropped, at most ``MAX_CONVERSATIONS`` kept per repository.

Nothing outside the store is read or written through it: only regular files are read (no
symlink followed, no FIFO or device opened), at most ``MAX_FILE_BYTES`` of them, and a
file counts only when the id it records is a valid name and the one its file name carries.
Secrets are withheld (``redact``) from what is stored and again from what is replayed to
the model, so a planted file cannot bring one back. A turn is added under a lock, to the
turns stored at that moment, so two runs continuing one conversation both keep theirs.

``earlier_turns_block`` turns the stored turns into the text put before a follow-up
question, compacted to a token budget (the newest turns kept, older answers shortened).
Standard library only: ``local-brain sessions`` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from local_brain.errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: writes stay atomic, only not merged
    fcntl = None  # type: ignore[assignment]

MAX_TURNS = 20
MAX_CHARS = 60_000  # all the turns of one conversation together
MAX_QUESTION_CHARS = 8_000  # a question with piped context is stored cut to this
MAX_ANSWER_CHARS = 12_000
MAX_AGE_S = 30 * 24 * 3600
MAX_CONVERSATIONS = 100  # per repository; the least recently used go first
OLDER_ANSWER_CHARS = 600  # an older turn's answer, as sent to the model
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
FORMAT = 1
MAX_FILE_BYTES = 1024 * 1024  # a stored conversation is well under this (MAX_CHARS chars)
CUT_MARK = " […]"


@dataclass(frozen=True)
class Turn:
    """One question and the answer it got."""

    question: str
    answer: str
    at: float  # when it was answered (time.time())


@dataclass
class Conversation:
    """The turns of one conversation about one repository root."""

    id: str
    root: str
    created: float
    updated: float
    turns: list[Turn] = field(default_factory=list)

    @property
    def last_question(self) -> str:
        return self.turns[-1].question if self.turns else ""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where conversations are kept: $XDG_STATE_HOME/local-brain/conversations, else
    ~/.local/state/local-brain/conversations (a relative XDG_STATE_HOME is ignored, as
    the XDG spec says)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME", "")
    if not base or not os.path.isabs(base):
        base = str(Path(environ.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "local-brain" / "conversations"


def check_name(name: str) -> str:
    """A user-chosen conversation name: letters, digits, '.', '_' and '-', 1 to 64."""
    if not NAME_PATTERN.fullmatch(name) or set(name) == {"."}:
        raise UsageError(
            f"--session {name!r}: not a valid conversation name",
            hint="use up to 64 letters, digits, '.', '_' or '-'",
        )
    return name


def new_id() -> str:
    """A short random conversation id (8 hex digits)."""
    return secrets.token_hex(4)


class ConversationStore:
    """The conversations of one repository root."""

    def __init__(
        self,
        root: Path,
        directory: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = str(Path(root).resolve())
        self.directory = directory if directory is not None else state_dir()
        self._clock = clock
        self._prefix = hashlib.sha256(self.root.encode("utf-8")).hexdigest()[:16] + "-"

    # -- reading --------------------------------------------------------------------------

    def get(self, conversation_id: str) -> Conversation | None:
        """The conversation of this repository with that id or name (None: there is none,
        it belongs to another repository, or it is too old)."""
        if not NAME_PATTERN.fullmatch(conversation_id):
            return None
        found = self._read(self._path(conversation_id))
        if found is None or found.id != conversation_id or self._expired(found):
            return None
        return found

    def latest(self) -> Conversation | None:
        """The most recently continued conversation of this repository."""
        listed = self.list()
        return listed[0] if listed else None

    def list(self) -> list[Conversation]:
        """This repository's conversations, the most recent first; too old ones removed."""
        found = []
        for path in self._files():
            conversation = self._read(path)
            if conversation is None:
                continue
            if self._expired(conversation):
                _unlink(path)
                continue
            found.append(conversation)
        return sorted(found, key=lambda each: each.updated, reverse=True)

    # -- writing --------------------------------------------------------------------------

    def start(self, name: str | None = None) -> Conversation:
        """A new, empty conversation (not written until a turn is added)."""
        now = self._clock()
        return Conversation(id=name or new_id(), root=self.root, created=now, updated=now)

    def add_turn(self, conversation: Conversation, question: str, answer: str) -> Conversation:
        """Append a turn (its secrets withheld) to the turns stored now, keep the
        conversation within its bounds and write it."""
        if conversation.root != self.root:
            raise UsageError("that conversation belongs to another repository")
        self._check_outside_repository()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = self._clock()
        turn = Turn(_cut(_withheld(question), MAX_QUESTION_CHARS),
                    _cut(_withheld(answer), MAX_ANSWER_CHARS), now)  # fmt: skip
        with self._locked():
            stored = self._read(self._path(conversation.id))
            if stored is not None:  # another run may have added a turn since this one read
                conversation.turns, conversation.created = stored.turns, stored.created
            conversation.turns = bounded([*conversation.turns, turn])
            conversation.updated = now
            self._write(conversation)
        self._prune(keep=conversation.id)
        return conversation

    def remove(self, conversation_id: str) -> bool:
        """Delete one conversation of this repository; False when there is none."""
        if self.get(conversation_id) is None:
            return False
        _unlink(self._path(conversation_id))
        return True

    def clear(self) -> int:
        """Delete every conversation of this repository; how many there were."""
        count = 0
        for path in self._files():
            if self._read(path) is not None:  # only this repository's
                _unlink(path)
                count += 1
        return count

    # -- files ----------------------------------------------------------------------------

    def _path(self, conversation_id: str) -> Path:
        if not NAME_PATTERN.fullmatch(conversation_id) or set(conversation_id) == {"."}:
            raise UsageError(f"not a valid conversation name: {conversation_id[:80]!r}")
        return self.directory / f"{self._prefix}{conversation_id}.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The store's lock, held while a conversation is read and written back."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(self.directory / ".lock", flags, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _files(self) -> list[Path]:
        try:
            return sorted(self.directory.glob(f"{self._prefix}*.json"))
        except OSError:
            return []

    def _expired(self, conversation: Conversation) -> bool:
        return self._clock() - conversation.updated > MAX_AGE_S

    def _read(self, path: Path) -> Conversation | None:
        try:
            data = json.loads(_read_regular_file(path, MAX_FILE_BYTES))
            conversation = Conversation(
                id=str(data["id"]),
                root=str(data["root"]),
                created=float(data["created"]),
                updated=float(data["updated"]),
                turns=[
                    Turn(str(t["question"]), str(t["answer"]), float(t["at"]))
                    for t in data["turns"]
                ],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing, or not ours to understand: as if absent
        if conversation.root != self.root or not NAME_PATTERN.fullmatch(conversation.id):
            return None
        if path.name != f"{self._prefix}{conversation.id}.json":
            return None  # a forged id: the file is not the one that name leads to
        return conversation

    def _write(self, conversation: Conversation) -> None:
        document = {"format": FORMAT, **asdict(conversation)}
        # mkstemp creates the file with mode 0600; os.replace makes the write atomic.
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream, ensure_ascii=False)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self._path(conversation.id))
        except BaseException:
            _unlink(Path(temporary))
            raise

    def _check_outside_repository(self) -> None:
        directory = self.directory.resolve()
        if directory == Path(self.root) or Path(self.root) in directory.parents:
            raise UsageError(
                f"the conversation store {self.directory} is inside the repository",
                hint="set XDG_STATE_HOME to a directory outside the repository",
            )

    def _prune(self, keep: str) -> None:
        """Drop too old conversations, and the least recent beyond MAX_CONVERSATIONS."""
        listed = self.list()  # removes the expired ones
        for extra in [c for c in listed if c.id != keep][MAX_CONVERSATIONS - 1 :]:
            _unlink(self._path(extra.id))


def bounded(turns: Sequence[Turn]) -> list[Turn]:
    """The newest turns within MAX_TURNS and MAX_CHARS (the newest one always kept)."""
    kept: list[Turn] = []
    total = 0
    for turn in reversed(turns[-MAX_TURNS:]):
        size = len(turn.question) + len(turn.answer)
        if kept and total + size > MAX_CHARS:
            break
        kept.append(turn)
        total += size
    return list(reversed(kept))


def earlier_turns_block(turns: Sequence[Turn], budget_tokens: int) -> str:
    """The earlier turns as text for the model, within ``budget_tokens`` (estimated):
    oldest first; the newest answer whole as far as it fits, older ones cut to
    OLDER_ANSWER_CHARS; the oldest turns left out when nothing more fits. Empty: no turns,
    or not even the newest question fits."""
    from local_brain.window import chars_within, text_tokens

    left = budget_tokens - text_tokens(_HEADER + _skipped_note(len(turns)) + _FOOTER)
    parts: list[str] = []
    for position, stored in enumerate(reversed(turns)):
        number = len(turns) - position
        turn = Turn(_withheld(stored.question), _withheld(stored.answer), stored.at)
        question = f"Question {number}: {turn.question}\n"
        cost = text_tokens(question)
        if cost > left:
            break
        limit = len(turn.answer) if position == 0 else OLDER_ANSWER_CHARS
        room = max(left - cost - text_tokens(f"Answer {number}: {CUT_MARK}\n\n"), 0)
        answer = turn.answer[: min(limit, chars_within(turn.answer, room))]
        if answer != turn.answer:
            answer = answer.rstrip() + CUT_MARK
        text = f"{question}Answer {number}: {answer}\n"
        left -= text_tokens(text) + 1  # and the blank line between turns
        parts.append(text)
    if not parts:
        return ""
    skipped = len(turns) - len(parts)
    note = _skipped_note(skipped) if skipped else ""
    return _HEADER + note + "\n".join(reversed(parts)) + _FOOTER


def with_earlier_turns(task: str, turns: Sequence[Turn], budget_tokens: int) -> str:
    """The task, after the earlier turns that fit the budget."""
    block = earlier_turns_block(turns, budget_tokens) if turns else ""
    return f"{block}{task}" if block else task


_HEADER = (
    "Earlier in this conversation the user asked these questions about this repository "
    "and got these answers (oldest first; the repository may have changed since, check "
    "facts again with the tools):\n\n"
)
_FOOTER = "\n--- end of the earlier conversation ---\n\nThe user's new question:\n"


def _skipped_note(count: int) -> str:
    return f"({count} earlier question(s) left out.)\n\n"


def _withheld(text: str) -> str:
    """The text with its secrets withheld (see ``redact``; imported here, not at the top,
    so that `local-brain sessions` stays light)."""
    from local_brain.redact import redact

    return redact(text).text


def _read_regular_file(path: Path, limit: int) -> str:
    """The text of a regular file of at most ``limit`` bytes, the link itself not followed
    and a FIFO or device never opened for reading (OSError, ValueError otherwise)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as stream:
        status = os.fstat(stream.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_size > limit:
            raise ValueError(f"{path.name}: not a conversation file")
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name}: too large")
    return data.decode("utf-8")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + CUT_MARK


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def conversation_summary(conversation: Conversation, now: float) -> dict[str, Any]:
    """What `local-brain sessions --json` shows for one conversation."""
    return {
        "id": conversation.id,
        "turns": len(conversation.turns),
        "last_question": conversation.last_question,
        "updated": conversation.updated,
        "age_s": round(max(now - conversation.updated, 0.0), 1),
    }


def remember(
    store: ConversationStore,
    conversation: Conversation,
    question: str,
    answer: str,
    warn: Callable[[str], None],
) -> str | None:
    """Add an answered question to its conversation: the conversation's id, or None when it
    could not be saved (``warn`` says why; the answer stands either way)."""
    try:
        return store.add_turn(conversation, question, answer).id
    except (OSError, UsageError) as error:
        warn(f"the conversation was not saved: {error}")
        return None


def history_budget(window_tokens: int, reply_tokens: int) -> int:
    """The tokens the earlier turns may take: a quarter of what the window leaves after
    the reply, so the system prompt and the run's own steps keep the rest."""
    return max(window_tokens - reply_tokens, 0) // 4


def choose(store: ConversationStore, session: str | None, continue_last: bool) -> Conversation:
    """The conversation a terminal run belongs to: ``--continue`` the latest of this
    repository, ``--session NAME`` that one (new if there is none yet), else a new one."""
    if session is not None and continue_last:
        raise UsageError("--continue and --session cannot be used together",
                         hint="--session NAME continues that conversation")  # fmt: skip
    if continue_last:
        latest = store.latest()
        if latest is None:
            raise UsageError(
                "no earlier conversation to continue for this repository",
                hint="ask a question without --continue first",
            )
        return latest
    if session is not None:
        return store.get(check_name(session)) or store.start(session)
    return store.start()
