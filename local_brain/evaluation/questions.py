"""Questions about the repository whose answers are known without asking a model: they come
only from what the tools see (``listing.iter_source_files``: nothing ignored, sensitive or
hard-linked; the definitions behind ``list_definitions``; ``search_code``'s engines; the git
runner behind ``git_log``). The kinds take turns; each shuffles its sorted candidates with a
``Random`` seeded from (seed, kind), so a seed always gives the same set."""

import ast
import configparser
import json
import random
import re
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import NamedTuple, TypeVar

import yaml

from local_brain.errors import ToolError
from local_brain.fsguard import read_regular
from local_brain.redact import holds_secret
from local_brain.tools import definitions as engine
from local_brain.tools.contents import is_binary_file
from local_brain.tools.git.args import pathspecs
from local_brain.tools.git.parse import CONTROL
from local_brain.tools.git.runner import Repo, open_repo
from local_brain.tools.listing import iter_source_files
from local_brain.tools.ripgrep import DeadlinePassed, find_rg
from local_brain.tools.search_engines import SearchQuery, search_python, search_rg
from local_brain.workspace import Workspace, printable

KINDS = ("definition", "last_commit", "count", "config_value", "returns")
MAX_SOURCE_FILES = 400  # definitions come from the first source files in path order
MAX_CONFIG_FILES = 40
MAX_FILE_BYTES = 512 * 1024
MAX_CONFIG_BYTES = 32 * 1024  # bigger config files (lock files, data) are not parsed
PARSE_SECONDS = engine.ENCLOSING_PARSE_SECONDS  # per file
SCAN_SECONDS = 5.0  # the definition scan stops (with a note) past this
SEARCH_SECONDS = 10.0  # all count searches together
MAX_TRIES = 40  # candidates a git- or search-backed kind tries at most
MAX_COUNT = 20
MAX_HISTORY = 5000  # commit subjects read to tell whether a subject is unique
CONFIG_SUFFIXES = frozenset({".toml", ".yaml", ".yml", ".json", ".ini", ".cfg"})
_SIMPLE = (  # the expressions a "simple" returned expression is made of
    ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.List, ast.Set, ast.BinOp, ast.UnaryOp,
    ast.BoolOp, ast.Compare, ast.Subscript, ast.Slice, ast.Call,
)  # fmt: skip
_T = TypeVar("_T")
_NAME = re.compile(r"(?:[A-Za-z_]\w*\.)*(?!__)[A-Za-z_]\w{3,}\Z")  # last part: 4+, no __
_KEY = re.compile(r"[A-Za-z_][\w-]*\Z")
_SECRET_KEY = re.compile(r"pass|secret|token|key|auth|credential|private|cookie", re.I)


@dataclass(frozen=True)
class Question:
    kind: str  # "definition" | "last_commit" | "count" | "config_value" | "returns"
    text: str  # the question as asked to the model
    expected: tuple[str, ...]  # any one of these in the answer makes it correct
    partial: tuple[str, ...]  # any one of these makes it partly correct
    source: str  # where the expected answer came from, for humans


@dataclass(frozen=True)
class QuestionSet:
    questions: list[Question]
    notes: list[str]


def generate_questions(workspace: Workspace, count: int, seed: int) -> QuestionSet:
    """Up to ``count`` questions, the kinds in turn; fewer, with notes saying why, when the
    repository offers too few candidates (no history, few files). Never raises for that."""
    maker = _Maker(workspace, seed)
    active = {kind: getattr(maker, kind)() for kind in KINDS}
    questions: list[Question] = []
    try:
        while len(questions) < count and active:
            for kind in list(active):
                if len(questions) >= count:
                    break
                try:
                    question = next(active[kind])
                except (StopIteration, ToolError, OSError) as done:  # returns why it is done
                    del active[kind]
                    why = done.value if isinstance(done, StopIteration) else f"failed ({done})"
                    if all(q.kind != kind for q in questions):
                        maker.notes.append(f"no {kind} questions: {why}")
                    continue
                if not any(fact in question.text for fact in question.expected):
                    questions.append(question)  # (a question never gives its answer away)
    finally:
        for generator in active.values():
            generator.close()  # closes a git repository still open
    if len(questions) < count:
        maker.notes.insert(0, f"only {len(questions)} of {count} questions: too few candidates")
    return QuestionSet(questions, maker.notes)


class _Def(NamedTuple):  # fields in sort order: by path, then line
    path: str
    line: int
    kind: str
    name: str  # qualified: Router.route
    end_line: int
    language: str


class _Maker:  # one generator of questions per kind; each returns why it has no more
    def __init__(self, ws: Workspace, seed: int) -> None:
        self.ws, self.seed = ws, seed
        self.notes: list[str] = []
        try:  # the files the tools list, in path order
            self.files = [f for f in iter_source_files(ws, ws.root) if printable(f) == f]
        except ToolError as error:
            self.files, self.notes = [], [f"the repository's files could not be listed ({error})"]
        self.defs = self._scan_definitions()

    def _shuffled(self, kind: str, items: list[_T]) -> list[_T]:
        return random.Random(f"{self.seed}:{kind}").sample(sorted(items), len(items))  # type: ignore[type-var]

    def _scan_definitions(self) -> list[_Def]:  # uniquely named, 4+ characters, no dunder
        sources = [f for f in self.files if engine.language_for(f) is not None]
        if len(sources) > MAX_SOURCE_FILES:
            self.notes.append(f"definitions come from the first {MAX_SOURCE_FILES} files only")
        found: list[_Def] = []
        deadline = time.monotonic() + SCAN_SECONDS
        for relative in sources[:MAX_SOURCE_FILES]:
            if time.monotonic() > deadline:
                self.notes.append(f"the definition scan stopped after {SCAN_SECONDS:.0f}s")
                break
            absolute = self.ws.root / relative
            try:
                if is_binary_file(absolute):
                    continue
                parsed = engine.file_definitions(absolute, MAX_FILE_BYTES, PARSE_SECONDS)
            except (engine.GrammarUnavailable, OSError, ValueError, RecursionError):
                continue  # NotRegularFileError is an OSError
            for d in parsed.definitions if parsed is not None else ():
                found.append(_Def(relative, d.line, d.kind, d.name, d.end_line, parsed.language))
        names = Counter(d.name for d in found)
        return [d for d in found if names[d.name] == 1 and _NAME.match(d.name)]

    def definition(self) -> Generator[Question, None, str]:
        for d in self._shuffled("definition", self.defs):
            text = f"In which file and at which line is the {d.kind} `{d.name}` defined? Answer with path:line."
            where = f"{d.path}:{d.line}"
            yield Question("definition", text, (where,), (d.path,), f"list_definitions {d.path}")
        return "no uniquely named function or class in the source files"

    def last_commit(self) -> Generator[Question, None, str]:
        try:
            repo = open_repo(self.ws)
        except (ToolError, OSError) as error:
            return f"no git history ({error})"
        with repo:
            if repo.head is None:
                return "the repository has no commits"
            history = ["log", "-z", "--no-color", f"--max-count={MAX_HISTORY}", "--format=%s"]
            subjects = Counter(_git_records(repo, history))
            log = ["log", "--no-color", "--no-show-signature", "--no-mailmap", "-z"]
            log += ["--encoding=UTF-8", "--format=%h %s", "--max-count=1", "--end-of-options"]
            paths = sorted(set(_git_records(repo, ["ls-files", "-z", "--", "."])) & set(self.files))
            for path in self._shuffled("last_commit", paths)[:MAX_TRIES]:
                specs, _ = pathspecs(self.ws, path)  # git_log's path handling (jail, literal)
                record = next(iter(_git_records(repo, [*log, "--", *specs])), "")
                sha, _, subject = CONTROL.sub(" ", record).partition(" ")
                if not re.fullmatch(r"[0-9a-f]{7,64}", sha) or holds_secret(subject):
                    continue
                expected = (sha, subject) if subjects[subject] == 1 and len(subject) > 7 else (sha,)
                text = f"Which commit last changed `{path}`? Answer with its short commit id and its subject line."
                yield Question("last_commit", text, expected, (), f"git_log path={path}")
        return "no tracked file the tools can see"

    def count(self) -> Generator[Question, None, str]:
        tokens = sorted({d.name.rsplit(".", 1)[-1] for d in self.defs})
        search = partial(search_rg, rg) if (rg := find_rg(self.ws.root)) else search_python
        deadline = time.monotonic() + SEARCH_SECONDS
        for token in self._shuffled("count", tokens)[:MAX_TRIES]:
            query = SearchQuery(re.escape(token), None, False, 1)
            try:
                result = search(self.ws, self.ws.root, query, deadline)
            except DeadlinePassed:
                return "the searches ran out of time"
            except (ToolError, OSError):
                continue
            files = len(result.file_counts)  # search_code's "N matches in F files"
            if not result.at_least and not result.unreadable and 1 <= files <= MAX_COUNT:
                text = f"How many files in the repository contain the string `{token}` (case-sensitive)? Answer with a number."
                yield Question("count", text, (str(files),), (), f"search_code pattern={token}")
        return f"no identifier found in 1 to {MAX_COUNT} files"

    def config_value(self) -> Generator[Question, None, str]:
        configs = [f for f in self.files if PurePosixPath(f).suffix.lower() in CONFIG_SUFFIXES]
        rows: list[tuple[str, str, str]] = []
        for path in configs[:MAX_CONFIG_FILES]:
            text = _read_text(self.ws, path, MAX_CONFIG_BYTES)
            if text is None or holds_secret(text):
                continue  # the tools show such a file redacted: keep out of it altogether
            for key, value in _scalars(_load(path, text)):
                if value in text and not _SECRET_KEY.search(key):
                    rows.append((path, key, value))
        for path, key, value in self._shuffled("config_value", rows):
            text = f"What is the value of `{key}` in `{path}`? Answer with the value only."
            yield Question("config_value", text, (value,), (), f"read_file {path}")
        return "no short scalar value in a config file (.toml, .yaml, .json, .ini, .cfg)"

    def returns(self) -> Generator[Question, None, str]:
        short = [d for d in self.defs if d.language == "python" and d.end_line - d.line <= 12]
        parsed: dict[str, tuple[str, ast.Module] | None] = {}
        for d in self._shuffled("returns", [d for d in short if d.kind in ("function", "method")]):
            if d.path not in parsed:
                text = _read_text(self.ws, d.path)
                try:
                    parsed[d.path] = (text, ast.parse(text)) if text is not None else None
                except (SyntaxError, ValueError, RecursionError, MemoryError):
                    parsed[d.path] = None
            source, name = parsed[d.path], d.name.rsplit(".", 1)[-1]
            found = _returned(*source, d.line, name) if source else None
            if found is not None:
                text = f"What does the {d.kind} `{d.name}` in `{d.path}` return? Answer with the returned expression as written in the code."
                yield Question("returns", text, (found,), (), f"read_file {d.path} line {d.line}")
        return "no short Python function that returns a simple expression"


def _git_records(repo: Repo, args: list[str]) -> list[str]:  # -z records, a cut one dropped
    try:
        out, cut, _ = repo.run_capped(args)
    except (ToolError, OSError):
        return []
    records = [r.strip("\n") for r in out.decode("utf-8", errors="replace").split("\0") if r]
    return records[:-1] if cut else records


def _read_text(ws: Workspace, path: str, limit: int = MAX_FILE_BYTES) -> str | None:
    try:  # fsguard: regular files only, none over the limit
        data = read_regular(ws.root / path, limit)
        return None if b"\x00" in data else data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _load(path: str, text: str) -> object:
    """The file's mappings with each scalar as written (``3.10``, ``010``, ``0x1F``, not
    ``3.1``, ``8``, ``31``): what a reader of the file sees. Other leaves (lists, dates,
    yes/no, null) become None."""
    suffix = PurePosixPath(path).suffix.lower()
    try:
        if suffix in (".ini", ".cfg"):
            parser = configparser.ConfigParser(interpolation=None, default_section="\0")
            parser.optionxform = str  # type: ignore[assignment,method-assign]
            parser.read_string(text)
            return {name: dict(parser.items(name, raw=True)) for name in parser.sections()}
        if suffix == ".toml":
            import tomllib  # Python 3.11+: on 3.10, TOML files are left out

            return _toml_ints_as_written(tomllib.loads(text, parse_float=str), text)
        if suffix == ".json":
            return json.loads(text, parse_float=str, parse_int=str)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when installed
        return _yaml_as_written(yaml.compose(text, Loader=loader))
    except (ValueError, ImportError, yaml.YAMLError, configparser.Error, RecursionError):
        return None  # TOMLDecodeError and JSONDecodeError are ValueErrors


_YAML_TEXT_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float"))


def _yaml_as_written(node: object, depth: int = 0) -> object:
    if isinstance(node, yaml.MappingNode) and depth <= 5:  # (an alias may loop: bounded)
        return {
            key.value: _yaml_as_written(value, depth + 1)
            for key, value in node.value
            if isinstance(key, yaml.ScalarNode) and key.tag == "tag:yaml.org,2002:str"
        }
    if isinstance(node, yaml.ScalarNode) and node.tag in _YAML_TEXT_TAGS:
        return node.value  # the text, without quotes: 3.10 stays 3.10
    return None


def _toml_ints_as_written(data: object, text: str, key: str = "", depth: int = 0) -> object:
    """tomllib gives ``0x1F`` and ``1_000`` as 31 and 1000: find each integer's own text
    (``key = <text>`` on a line of its own); one whose text is not found for sure is left
    out."""
    if isinstance(data, dict) and depth <= 5:
        return {k: _toml_ints_as_written(v, text, k, depth + 1) for k, v in data.items()}
    if not isinstance(data, int) or isinstance(data, bool):
        return data
    assignment = rf"(?m)^[ \t]*[\"']?{re.escape(key)}[\"']?[ \t]*=[ \t]*([+-]?\w+)[ \t]*(?:#|$)"
    written = set()
    for candidate in re.findall(assignment, text):
        try:
            if int(candidate, 0) == data:
                written.add(candidate)
        except ValueError:
            continue
    return written.pop() if len(written) == 1 else None


def _scalars(data: object, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    # (dotted key, value as text) for each short string (3 words at most) or number in maps
    if not isinstance(data, dict) or depth > 4:
        return
    for key, value in data.items():
        if not isinstance(key, str) or not _KEY.match(key):
            continue
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            yield from _scalars(value, dotted, depth + 1)
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            shown = str(value)
            if 1 <= len(shown) <= 60 and " ".join(shown.split()) == shown and shown.count(" ") < 3:
                yield dotted, shown


def _returned(text: str, tree: ast.Module, line: int, name: str) -> str | None:
    """What the function ``name`` defined at ``line`` returns when its body (past a docstring)
    is one ``return`` of a literal (not None, True, False) or a small expression; else None."""
    for node in ast.walk(tree):
        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        if not isinstance(node, functions) or node.lineno != line or node.name != name:
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
            return None
        value = body[0].value
        source = ast.get_source_segment(text, value)
        if source is None or "\n" in source or not 2 <= len(source) <= 60:
            return None
        trivial = isinstance(value, ast.Constant) and isinstance(value.value, (bool, type(None)))
        parts = [part for part in ast.walk(value) if isinstance(part, ast.expr)]
        simple = not trivial and all(isinstance(part, _SIMPLE) for part in parts)
        function_text = "\n".join(text.splitlines()[node.lineno - 1 : node.end_lineno])
        return source if simple and not holds_secret(function_text) else None
    return None
