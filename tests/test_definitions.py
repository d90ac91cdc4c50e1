"""tree-sitter definition extraction, list_definitions and the enclosing-definition lookup."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from local_brain.tools.definitions import (
    enclosing_definitions,
    extract_definitions,
    file_definitions,
    language_for,
    language_for_source,
)
from local_brain.tools.search import LIST_DEFINITIONS
from local_brain.workspace import Workspace

PYTHON = '''\
import os


class Router(Base):
    """Routes."""

    def route(self, request):
        def inner(x):
            return x

        return inner(request)

    @staticmethod
    async def make(
        a: int,
        b: str = "x",
    ) -> "Router":
        pass


def main():
    return 0
'''

JAVASCRIPT = """\
class Router extends Base {
  route(req) { return 1; }
  handler = (x) => x;
}
function main(a, b) {}
const helper = async (x) => {
  return x;
};
Router.prototype.legacy = function (y) {};
"""

TYPESCRIPT = """\
export interface Shape {
  area(): number;
}
type Id = string | number;
enum Color { Red, Green }
export abstract class Base<T> implements Shape {
  constructor(private x: number) {}
  abstract area(): number;
  public name(): string { return "b"; }
}
export function make<T>(a: T, b?: number): T { return a; }
"""

TSX = """\
export function App(props: Props) {
  return <div>{props.title}</div>;
}
class Panel extends React.Component {
  render() { return <b/>; }
}
"""

GO = """\
package main

type Router struct {
\troutes map[string]int
}

type Handler interface {
\tServe(w Writer) error
}

func (r *Router) Route(path string, n int) (int, error) {
\treturn 0, nil
}

func main() {}
"""

RUST = """\
pub struct Router {
    x: i32,
}

pub trait Handle {
    fn serve(&self) -> i32;
}

impl Router {
    pub fn new(x: i32) -> Self {
        Router { x }
    }
}

impl Handle for Router {
    fn serve(&self) -> i32 { 1 }
}

enum Kind { A, B }

fn main() {}
"""

JAVA = """\
package demo;

public class Router {
    private int x;

    public Router(int x) {
        this.x = x;
    }

    public String route(String path, int n) {
        return path;
    }

    interface Callback { void call(int a); }
}

enum Color { RED; void paint() {} }
"""

C = """\
#include <stdio.h>

struct point {
    int x;
    int y;
};

typedef struct { int a; } pair_t;

static int add(int a, int b) {
    return a + b;
}

char *dup(const char *s);

int main(void) {
    return 0;
}
"""

CPP = """\
namespace net {

class Router : public Base {
 public:
  Router(int x);
  int route(const std::string& path) const { return 0; }
};

int Router::count(int n) {
  return n;
}

}  // namespace net

int main() { return 0; }
"""

RUBY = """\
module Net
  class Router < Base
    def initialize(x)
      @x = x
    end

    def route path, n = 1
    end

    def self.make
    end
  end
end

def top(a, *rest)
end
"""

EXPECTED: dict[str, tuple[str, str, list[tuple[int, str]]]] = {
    "python": (
        "app.py",
        PYTHON,
        [
            (4, "class Router(Base)"),
            (7, "method Router.route(self, request)"),
            (8, "function Router.route.inner(x)"),
            (14, 'method Router.make(a: int, b: str = "x")'),
            (21, "function main()"),
        ],
    ),
    "javascript": (
        "app.js",
        JAVASCRIPT,
        [
            (1, "class Router"),
            (2, "method Router.route(req)"),
            (3, "method Router.handler(x)"),
            (5, "function main(a, b)"),
            (6, "function helper(x)"),
            (9, "method Router.legacy(y)"),
        ],
    ),
    "typescript": (
        "app.ts",
        TYPESCRIPT,
        [
            (1, "interface Shape"),
            (2, "method Shape.area()"),
            (4, "type Id"),
            (5, "enum Color"),
            (6, "class Base"),
            (7, "method Base.constructor(private x: number)"),
            (8, "method Base.area()"),
            (9, "method Base.name()"),
            (11, "function make(a: T, b?: number)"),
        ],
    ),
    "tsx": (
        "App.tsx",
        TSX,
        [
            (1, "function App(props: Props)"),
            (4, "class Panel"),
            (5, "method Panel.render()"),
        ],
    ),
    "go": (
        "main.go",
        GO,
        [
            (3, "struct Router"),
            (7, "interface Handler"),
            (8, "method Handler.Serve(w Writer)"),
            (11, "method Router.Route(path string, n int)"),
            (15, "function main()"),
        ],
    ),
    "rust": (
        "lib.rs",
        RUST,
        [
            (1, "struct Router"),
            (5, "trait Handle"),
            (6, "method Handle.serve(&self)"),
            (9, "impl Router"),
            (10, "method Router.new(x: i32)"),
            (15, "impl Handle for Router"),
            (16, "method Router.serve(&self)"),
            (19, "enum Kind"),
            (21, "function main()"),
        ],
    ),
    "java": (
        "Router.java",
        JAVA,
        [
            (3, "class Router"),
            (6, "constructor Router.Router(int x)"),
            (10, "method Router.route(String path, int n)"),
            (14, "interface Router.Callback"),
            (14, "method Router.Callback.call(int a)"),
            (17, "enum Color"),
            (17, "method Color.paint()"),
        ],
    ),
    "c": (
        "point.c",
        C,
        [
            (3, "struct point"),
            (8, "struct pair_t"),
            (10, "function add(int a, int b)"),
            (14, "prototype dup(const char *s)"),
            (16, "function main(void)"),
        ],
    ),
    "cpp": (
        "router.cpp",
        CPP,
        [
            (1, "namespace net"),
            (3, "class Router"),
            (5, "method Router.Router(int x)"),
            (6, "method Router.route(const std::string& path)"),
            (9, "method Router.count(int n)"),
            (15, "function main()"),
        ],
    ),
    "ruby": (
        "router.rb",
        RUBY,
        [
            (1, "module Net"),
            (2, "class Net.Router"),
            (3, "method Net.Router.initialize(x)"),
            (7, "method Net.Router.route(path, n = 1)"),
            (10, "method Net.Router.make()"),
            (15, "function top(a, *rest)"),
        ],
    ),
}


@pytest.mark.parametrize("language", sorted(EXPECTED))
def test_definitions_per_language(language: str) -> None:
    name, source, expected = EXPECTED[language]
    assert language_for(name) == language
    found = [(d.line, d.label()) for d in extract_definitions(source.encode(), language)]
    assert found == expected


@pytest.mark.parametrize("language", sorted(EXPECTED))
def test_list_definitions_tool_output(make_repo, language: str) -> None:
    name, source, expected = EXPECTED[language]
    root = make_repo({f"src/{name}": source})
    out = LIST_DEFINITIONS.run(Workspace(root), f"src/{name}")
    lines = out.splitlines()
    label = "definition" if len(expected) == 1 else "definitions"
    assert lines[0] == f"src/{name}: {len(expected)} {label} ({language})"
    assert lines[1:] == [f"{line}: {text}" for line, text in expected]


def test_methods_are_qualified_with_their_class() -> None:
    definitions = extract_definitions(PYTHON.encode(), "python")
    methods = [d for d in definitions if d.kind == "method"]
    assert [d.name for d in methods] == ["Router.route", "Router.make"]
    route = methods[0]
    assert (route.line, route.end_line) == (7, 11)
    assert route.scope == "Router.route"


def test_enclosing_definitions_innermost_and_cached(tmp_path: Path) -> None:
    path = tmp_path / "app.py"
    path.write_text(PYTHON)
    cache: dict = {}
    found = enclosing_definitions(path, [1, 5, 9, 11, 16, 22], cache)
    assert found[1] is None  # module level
    assert found[5] is not None and found[5].label() == "class Router(Base)"
    assert found[9] is not None and found[9].name == "Router.route.inner"
    assert found[11] is not None and found[11].name == "Router.route"
    assert found[16] is not None and found[16].name == "Router.make"
    assert found[22] is not None and found[22].name == "main"
    assert path in cache
    # A second call is answered from the cache, even after the file changes on disk.
    path.write_text("x = 1\n")
    again = enclosing_definitions(path, [9], cache)
    assert again[9] is not None and again[9].name == "Router.route.inner"
    assert enclosing_definitions(path, [1]) == {1: None}


def test_enclosing_definitions_for_unsupported_or_binary_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("def f():\n    pass\n")
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"def f():\n\x00\x01    pass\n")
    assert enclosing_definitions(text, [2]) == {2: None}
    assert enclosing_definitions(binary, [2]) == {2: None}


def test_unknown_language_names_supported_extensions(make_repo) -> None:
    root = make_repo({"notes.txt": "hello\n"})
    out = LIST_DEFINITIONS.run(Workspace(root), "notes.txt")
    assert out.startswith("Error: notes.txt: no definition parser for this file type")
    for extension in (".py", ".ts", ".tsx", ".go", ".rs", ".java", ".c", ".cpp", ".rb"):
        assert f" {extension}" in out


def test_binary_missing_and_refused_paths(make_repo) -> None:
    root = make_repo({"blob.py": b"\x00\x01\x02", ".env": "X=1\n"})
    ws = Workspace(root)
    assert LIST_DEFINITIONS.run(ws, "blob.py") == "Error: blob.py is a binary file"
    assert LIST_DEFINITIONS.run(ws, "missing.py").startswith("Error: not found: missing.py")
    assert LIST_DEFINITIONS.run(ws, "../x.py").startswith("Error: path refused")
    assert LIST_DEFINITIONS.run(ws, ".env").startswith("Error: path refused")


def test_huge_files_are_parsed_only_up_to_the_cap(make_repo, tmp_path: Path) -> None:
    path = tmp_path / "big.py"
    path.write_text("def first():\n    pass\n" + "x = 1\n" * 200 + "def late():\n    pass\n")
    capped = file_definitions(path, max_bytes=100)
    assert capped is not None and capped.truncated
    assert [d.name for d in capped.definitions] == ["first"]
    full = file_definitions(path)
    assert full is not None and not full.truncated
    assert [d.name for d in full.definitions] == ["first", "late"]

    root = make_repo({"huge.py": "def f():\n    pass\n" + 'DATA = "' + "a" * 2_400_000 + '"\n'})
    out = LIST_DEFINITIONS.run(Workspace(root), "huge.py")
    assert out.splitlines()[0] == "huge.py: 1 definition (python)"
    assert out.splitlines()[1] == "(file is 2,400,028 bytes; only the first 2 MB were parsed)"


def test_pathological_input_stops_at_the_time_budget(tmp_path: Path) -> None:
    # Thousands of comment lines after an indented block make tree-sitter-python quadratic
    # (minutes for this file); the parse must give up at its budget and say so.
    path = tmp_path / "slow.py"
    path.write_text("def first():\n    pass\n" + "# note\n" * 40_000 + "def last():\n    pass\n")
    started = time.monotonic()
    parsed = file_definitions(path, time_budget=0.3)
    assert time.monotonic() - started < 5
    assert parsed is not None and parsed.timed_out
    assert parsed.stopped_at_line is not None and parsed.stopped_at_line < 40_000
    assert "last" not in [d.name for d in parsed.definitions]
    fast = tmp_path / "fast.py"
    fast.write_text("def only():\n    pass\n")
    quick = file_definitions(fast, time_budget=0.3)
    assert quick is not None and not quick.timed_out and quick.stopped_at_line is None


def test_directory_listing_groups_by_file_and_skips_ignored_and_sensitive(make_repo) -> None:
    root = make_repo(
        {
            "src/a.py": "class A:\n    def run(self):\n        pass\n",
            "src/b.go": "package b\n\nfunc Hello() {}\n",
            "src/notes.md": "# not code\n",
            "src/gen/out.py": "def generated():\n    pass\n",
            "src/.env.py": "def leak():\n    pass\n",
            ".gitignore": "src/gen/\n",
        }
    )
    out = LIST_DEFINITIONS.run(Workspace(root), "src")
    assert out.splitlines() == [
        "src: 3 definitions in 2 files",
        "src/a.py",
        "  1: class A",
        "  2: method A.run(self)",
        "src/b.go",
        "  3: function Hello()",
    ]


def test_c_header_that_looks_like_cpp_is_parsed_as_cpp(tmp_path: Path) -> None:
    header = tmp_path / "router.h"
    header.write_text("class Router {\n public:\n  void route();\n};\n")
    plain = tmp_path / "util.h"
    plain.write_text("int add(int a, int b);\n")
    assert language_for_source(header, header.read_bytes()) == "cpp"
    assert language_for_source(plain, plain.read_bytes()) == "c"
    parsed = file_definitions(header)
    assert parsed is not None
    assert [d.label() for d in parsed.definitions] == ["class Router", "method Router.route()"]
    assert [d.label() for d in file_definitions(plain).definitions] == [  # type: ignore[union-attr]
        "prototype add(int a, int b)"
    ]


def test_directory_listing_is_capped(make_repo) -> None:
    files = {
        f"pkg/m{n:02d}.py": "".join(f"def f{i}():\n    pass\n" for i in range(10))
        for n in range(45)
    }
    root = make_repo(files)
    out = LIST_DEFINITIONS.run(Workspace(root), "pkg")
    lines = out.splitlines()
    shown = [line for line in lines if line.startswith("  ")]
    assert len(shown) == Workspace(root).max_list_entries  # 300 rows: 30 files of 10
    assert lines[0] == "pkg: 300 definitions in 30 files"
    assert lines[-1] == (
        "… 15 more source files not shown; call list_definitions on a file or subdirectory"
    )


# A header with C++ syntax but none of the words that mark C++ text: the C grammar finds a
# syntax error, the C++ grammar none, so the C++ reading is used.
CPP_HEADER_WITHOUT_HINTS = """\
#pragma once
struct Shape {
  virtual ~Shape() = default;
  virtual double area() const = 0;
};
int& counter();
"""

# A C header that mentions "class" (the C++ hint) and uses a C++ keyword as a name: the C++
# grammar finds a syntax error, the C grammar none, so the C reading is used.
C_HEADER_WITH_A_HINT = """\
/* Helpers for a class of lists. */
struct node {
  struct node *next;
};
static inline int bump(int new) {
  return new + 1;
}
"""


def test_h_header_falls_back_to_the_grammar_that_reads_it(make_repo, tmp_path: Path) -> None:
    shape = tmp_path / "shape.h"
    shape.write_text(CPP_HEADER_WITHOUT_HINTS)
    nodes = tmp_path / "nodes.h"
    nodes.write_text(C_HEADER_WITH_A_HINT)
    assert language_for_source(shape, shape.read_bytes()) == "c"  # the first guess
    assert language_for_source(nodes, nodes.read_bytes()) == "cpp"

    parsed = file_definitions(shape)
    assert parsed is not None and parsed.language == "cpp"
    assert [d.label() for d in parsed.definitions] == [
        "struct Shape",
        "method Shape.~Shape()",
        "method Shape.area()",
        "prototype counter()",
    ]
    parsed = file_definitions(nodes)
    assert parsed is not None and parsed.language == "c"
    assert [d.label() for d in parsed.definitions] == ["struct node", "function bump(int new)"]

    found = enclosing_definitions(shape, [4])[4]
    assert found is not None and found.label() == "struct Shape"
    found = enclosing_definitions(nodes, [6])[6]
    assert found is not None and found.label() == "function bump(int new)"

    root = make_repo({"include/shape.h": CPP_HEADER_WITHOUT_HINTS})
    out = LIST_DEFINITIONS.run(Workspace(root), "include/shape.h")
    assert out.splitlines()[0] == "include/shape.h: 4 definitions (cpp)"


def test_one_language_table_for_file_info_and_the_parsers(make_repo) -> None:
    from local_brain.tools import all_tools
    from local_brain.tools.languages import BY_NAME, BY_SUFFIX, GRAMMARS, language_name

    # Every grammar a row names exists, and every suffix a parser reads has a name.
    for language in [*BY_SUFFIX.values(), *BY_NAME.values()]:
        assert language.grammar is None or language.grammar in GRAMMARS
        assert language.alternative is None or language.alternative in GRAMMARS
    for suffix in (".py", ".pyw", ".mts", ".hh", ".ipp", ".gemspec"):
        assert language_for(f"x{suffix}") is not None
        assert language_name(f"x{suffix}") != "unknown"
    assert language_for("x.h") == "c" and language_name("x.h") == "C/C++ header"
    assert language_for("Rakefile") == "ruby" and language_name("rakefile") == "Ruby"
    assert language_for("Makefile") is None and language_name("makefile") == "Makefile"
    assert language_name("CMakeLists.txt") == "CMake" and language_name("notes.txt") == "Text"
    assert language_name("x.unknown-suffix") == "unknown"

    root = make_repo({"inc/router.hh": "class Router {};\n", "Guardfile": "guard :x\n"})
    file_info = all_tools()["file_info"]
    assert "language: C++ header" in file_info.run(Workspace(root), "inc/router.hh")
    assert "language: Ruby" in file_info.run(Workspace(root), "Guardfile")
