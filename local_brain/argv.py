"""How `local-brain ARGS` is dispatched before Click parses it: a question or a subcommand.

``local-brain [OPTIONS] PROMPT`` runs the agent; ``local-brain COMMAND ...`` a subcommand. Two
things a newcomer types are sorted out here, without importing anything heavy:

- options before a subcommand (``local-brain --json doctor``, ``--root DIR tools``) are moved
  after it; those the subcommand does not take are dropped with a notice;
- a lone word one edit (or one transposition) away from a command name (``modles``,
  ``confg show``) is a typo, not a question: :class:`UnknownCommand` says which command was
  probably meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import click

from local_brain.errors import UsageError

_WORD = re.compile(r"[a-z][a-z_-]*")
MIN_TYPO_LENGTH = 3  # shorter words are too close to everything to be called typos


class UnknownCommand(UsageError):
    """A lone word that looks like a mistyped command name."""


@dataclass
class Dispatch:
    """The arguments to hand to the group: the command first, then the rest."""

    args: list[str]
    ignored: list[str] = field(default_factory=list)  # options the subcommand does not take


def dispatch(group: click.Group, default: str, args: list[str]) -> Dispatch:
    """``args`` with the command name first: a subcommand named after leading options of
    the main command (moved behind it), else ``default`` (the question)."""
    leading = _leading_options(group.commands[default], args)
    rest = args[sum(len(option) for option in leading) :]
    if rest and rest[0] in group.commands and rest[0] != default:
        return _move_options(group.commands[rest[0]], rest, leading)
    if rest:
        _refuse_typo(rest[0], [name for name in group.commands if name != default])
    return Dispatch([default, *args])


def only_leading_options(group: click.Group, default: str, args: list[str]) -> bool:
    """Whether ``args`` are whole options of the main command and nothing else (what
    comes next may still be a subcommand)."""
    leading = _leading_options(group.commands[default], args)
    return sum(len(option) for option in leading) == len(args)


def _leading_options(command: click.Command, args: list[str]) -> list[list[str]]:
    """The options of ``command`` at the start of ``args``, each with its value."""
    options = _option_table(command)
    taken: list[list[str]] = []
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] not in ("-", "--"):
        option = options.get(args[index].split("=", 1)[0])
        if option is None:
            break
        width = 1 if option.is_flag or option.count or "=" in args[index] else 2
        if index + width > len(args):
            break
        taken.append(args[index : index + width])
        index += width
    return taken


def _option_table(command: click.Command) -> dict[str, click.Option]:
    return {
        name: param
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


def _move_options(command: click.Command, rest: list[str], leading: list[list[str]]) -> Dispatch:
    """``COMMAND [SUBCOMMAND] <the options it takes> ARGS``."""
    position = 1
    target = command
    while isinstance(target, click.Group) and position < len(rest):
        sub = target.commands.get(rest[position])
        if sub is None:
            break
        target, position = sub, position + 1
    accepted = _option_table(target)
    moved: list[str] = []
    ignored: list[str] = []
    for option in leading:
        name = option[0].split("=", 1)[0]
        if name in accepted:
            moved += option
        else:
            ignored.append(name)
    return Dispatch([*rest[:position], *moved, *rest[position:]], ignored)


def _refuse_typo(word: str, commands: list[str]) -> None:
    if len(word) < MIN_TYPO_LENGTH or not _WORD.fullmatch(word):
        return
    near = [name for name in commands if one_edit_apart(word, name)]
    if near:
        raise UnknownCommand(
            f"no such command {word!r}: did you mean {near[0]!r}?",
            hint=f"see local-brain --help; to ask it as a question: local-brain -- {word}",
        )


def one_edit_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by exactly one insertion, deletion, substitution or
    transposition of two neighbouring characters."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    shorter, longer = sorted((a, b), key=len)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1 :]


def refuse_empty_values(group: click.Group, args: list[str]) -> None:
    """An option given an empty value (``-m "$MODEL"`` with MODEL unset) is a usage error:
    left to Click it would silently mean the default, or the current directory."""
    takes_value = {
        name for command in _all_commands(group) for name, option in
        _option_table(command).items() if not option.is_flag and not option.count
    }  # fmt: skip
    for index, arg in enumerate(args):
        if arg == "--":
            return
        name, equals, value = arg.partition("=")
        empty = (equals and not value) or (not equals and index + 1 < len(args)
                                           and not args[index + 1].strip())  # fmt: skip
        if name in takes_value and name.startswith("-") and empty:
            raise UsageError(
                f"{name} was given an empty value",
                hint=f"give {name} a value, or leave it out for the default",
            )


def _all_commands(command: click.Command) -> list[click.Command]:
    if not isinstance(command, click.Group):
        return [command]
    return [command, *(c for sub in command.commands.values() for c in _all_commands(sub))]
