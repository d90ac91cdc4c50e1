"""Definition extraction with tree-sitter: classes, functions and methods, with line numbers.

Two entry points serve the tools:

* ``file_definitions(path)`` lists what a file defines (``list_definitions``, ``outline.py``);
* ``enclosing_definitions(path, lines)`` names the innermost definition around each line
  (the ``[in ...]`` notes of ``search_code``), parsing the file once.

Each part has one reason to change:

* ``languages.py`` (next to this package): which files a grammar parses, shared with
  ``file_info``;
* ``queries/<name>.scm``: which syntax nodes are definitions, per language (data);
* ``engine.py``: loading grammars and queries, parsing within byte and time caps;
* ``naming.py``: how a node becomes ``kind name(signature)``, per node type;
* ``extract.py``: nesting the named nodes into qualified definitions, the entry points.
"""

from __future__ import annotations

from local_brain.tools.definitions.engine import (
    ENCLOSING_PARSE_SECONDS,
    MAX_PARSE_BYTES,
    PARSE_SECONDS,
    GrammarUnavailable,
    compiled,
    read_source,
)
from local_brain.tools.definitions.extract import (
    Definition,
    FileDefinitions,
    ParsedFile,
    enclosing_definitions,
    extract_definitions,
    file_definitions,
    innermost,
)
from local_brain.tools.languages import GRAMMARS
from local_brain.tools.languages import grammar_for as language_for
from local_brain.tools.languages import grammar_for_source as language_for_source
from local_brain.tools.languages import parsed_suffixes as supported_extensions

__all__ = [
    "ENCLOSING_PARSE_SECONDS",
    "GRAMMARS",
    "MAX_PARSE_BYTES",
    "PARSE_SECONDS",
    "Definition",
    "FileDefinitions",
    "GrammarUnavailable",
    "ParsedFile",
    "compiled",
    "enclosing_definitions",
    "extract_definitions",
    "file_definitions",
    "innermost",
    "language_for",
    "language_for_source",
    "read_source",
    "supported_extensions",
]
