"""What a Python script needs from PyPI: the requirements its lock is resolved from.

Windmill's rules, so that a script gets the same dependencies in both products:

- Every ``import`` of the module counts, nested ones included (in a function, a ``try``
  block): ``import x.y`` and ``from x.y import z`` need the distribution of ``x``, named by
  :mod:`gristmill_python.mapping`. The standard library, ``__future__``, relative imports
  (``from . import x``) and Windmill's script imports (``f.…``, ``u.…``) need nothing.
- ``# pin: SPEC`` (one or more) on an import line replaces what that import infers:
  ``import pandas  # pin: pandas==2.2.2``, ``import cv2  # pin: opencv-python-headless``.
  ``# repin: SPEC`` does the same and also wins over every other requirement of that
  distribution in the script.
- ``# extra_requirements:`` followed by comment lines, one requirement each, adds to what
  imports infer; a requirement naming an imported distribution replaces the bare name.
- A complete list replaces inference: a PEP 723 block (``# /// script`` ... ``# ///`` whose
  TOML has ``dependencies = [...]``) or Windmill's ``# requirements:`` block.

A block of requirements runs over the comment lines that follow its header, up to the first
line that is not a comment or is an empty comment (``#``). Each line holds one PEP 508
requirement (``#requests==2.32.3`` or ``# pandas>=2``), optionally followed by `` # text``.
"""

from __future__ import annotations

import functools
import re
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from gristmill import ScriptError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from tree_sitter import Node, Query, QueryCursor

from gristmill_python.grammar import LANGUAGE, parse
from gristmill_python.mapping import distribution_for

__all__ = ["lock_inputs"]

# The standard library of any supported Python: this interpreter's, plus modules a newer
# Python removed (a script written for 3.11 that imports ``cgi`` must not pull a PyPI
# package of that name when the server runs 3.13).
_REMOVED_FROM_STDLIB: Final = frozenset(
    {
        "aifc", "asynchat", "asyncore", "audioop", "cgi", "cgitb", "chunk", "crypt",
        "distutils", "imghdr", "imp", "lib2to3", "mailcap", "msilib", "nis", "nntplib",
        "ossaudiodev", "pipes", "smtpd", "sndhdr", "spwd", "sunau", "telnetlib", "uu",
        "xdrlib",
    }
)  # fmt: skip
_STDLIB: Final = frozenset(sys.stdlib_module_names) | _REMOVED_FROM_STDLIB
# Windmill's imports of other scripts of the workspace (``from f.folder.script import x``).
_SCRIPT_ROOTS: Final = frozenset({"f", "u"})

_IMPORTS: Final = Query(LANGUAGE, "[(import_statement) (import_from_statement)] @import")
_COMMENTS: Final = Query(LANGUAGE, "(comment) @comment")

_BLOCK_HEADER: Final = re.compile(r"#\s?(extra_requirements|requirements):(.*)")
_PIN: Final = re.compile(r"#\s*(re)?pin:([^#]*)")
# PEP 723's reference expression for a metadata block.
_PEP723: Final = re.compile(
    r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$"
)
_PEP723_OPEN: Final = re.compile(r"(?m)^# /// script[ \t]*$")
_TOML_POSITION: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass(frozen=True)
class _Requirement:
    name: str  # canonical distribution name
    text: str  # normalized PEP 508 text


def lock_inputs(source: str) -> str | None:
    """The sorted requirements of ``source``, one per line; ``None`` when it needs none.

    Raises :class:`ScriptError` (with the line) for a malformed annotation.
    """
    # Most scripts have no annotation and import nothing beyond the standard library: this
    # runs before every job whose lock is not stored yet, so the common case stays cheap.
    if "import" not in source and "requirements:" not in source and "/// script" not in source:
        return None
    # One line ending: tree-sitter's rows and PEP 723's expression both count "\n" only.
    return _lock_inputs(source.removeprefix("\ufeff").replace("\r\n", "\n"))


# Scripts repeat: the same one runs job after job. ScriptError is not cached (it is raised).
@functools.lru_cache(maxsize=256)
def _lock_inputs(source: str) -> str | None:
    lines = source.split("\n")
    data = source.encode("utf-8", "replace")
    tree = parse(data)
    # Only blocks need to know which lines are real comments.
    comment_rows = _comment_rows(tree.root_node) if "requirements:" in source else frozenset()

    complete = _pep723_dependencies(source)
    requirements_block = _block(lines, comment_rows, "requirements")
    if requirements_block is not None:
        if complete is not None:
            raise ScriptError(
                "the script has both a PEP 723 block and a '# requirements:' block; "
                "keep one of them",
                line=requirements_block[0],
            )
        complete = requirements_block[1]
    if complete is not None:
        return _render(complete)

    inferred: list[_Requirement] = []
    explicit: list[_Requirement] = []
    repinned: list[_Requirement] = []
    for node in _import_nodes(tree.root_node):
        pins, repins = _pins(lines, node)
        if pins or repins:
            explicit.extend(pins)
            repinned.extend(repins)
            continue
        for module in _imported_modules(node):
            name = _required_distribution(module)
            if name is not None:
                inferred.append(_parse_requirement(name, node.start_point.row + 1))
    extra = _block(lines, comment_rows, "extra_requirements")
    if extra is not None:
        explicit.extend(extra[1])

    # A stated requirement replaces the bare name an import infers, and a repin replaces
    # every other requirement of its distribution.
    repinned_names = {r.name for r in repinned}
    explicit = [r for r in explicit if r.name not in repinned_names]
    stated_names = repinned_names | {r.name for r in explicit}
    inferred = [r for r in inferred if r.name not in stated_names]
    return _render([*repinned, *explicit, *inferred])


def _render(requirements: Iterable[_Requirement]) -> str | None:
    unique = sorted({(r.name, r.text) for r in requirements})
    if not unique:
        return None
    return "".join(text + "\n" for _, text in unique)


def _parse_requirement(text: str, line: int) -> _Requirement:
    text = text.strip()
    if text.startswith("-"):
        raise ScriptError(
            f"'{text}': pip options are not accepted in requirements; the worker's "
            "PIP_INDEX_URL / PIP_EXTRA_INDEX_URL choose the package index",
            line=line,
        )
    try:
        return _normalized(text)
    except InvalidRequirement as exc:
        # packaging's message is one line of explanation, then the text and a caret.
        reason = str(exc).splitlines()[0] if str(exc) else "not a PEP 508 requirement"
        raise ScriptError(f"invalid requirement '{text}': {reason}", line=line) from None


# Parsing a requirement costs more than parsing a script with tree-sitter; the same few
# names come back in script after script.
@functools.lru_cache(maxsize=1024)
def _normalized(text: str) -> _Requirement:
    parsed = Requirement(text)
    return _Requirement(canonicalize_name(parsed.name), str(parsed))


def _comment_rows(root: Node) -> frozenset[int]:
    """Rows (0-based) that start with a comment: a docstring line is not an annotation."""
    rows: set[int] = set()
    for node in QueryCursor(_COMMENTS).captures(root).get("comment", ()):
        if node.start_point.column == 0:
            rows.add(node.start_point.row)
    return frozenset(rows)


def _block(
    lines: list[str], comment_rows: frozenset[int], kind: str
) -> tuple[int, list[_Requirement]] | None:
    """The ``# requirements:`` (or ``# extra_requirements:``) block: its 1-based header line
    and its requirements, or ``None`` when the script has no such block."""
    for row in sorted(comment_rows):
        header = _BLOCK_HEADER.fullmatch(lines[row].rstrip())
        if header is None or header.group(1) != kind:
            continue
        if header.group(2).strip():
            raise ScriptError(
                f"'# {kind}:' takes no text on its own line: write each requirement on a "
                "comment line of its own below it ('# requests==2.32.3')",
                line=row + 1,
            )
        requirements: list[_Requirement] = []
        for below in range(row + 1, len(lines)):
            if below not in comment_rows:
                break
            text = _without_comment(lines[below].strip()[1:])
            if not text:
                break
            requirements.append(_parse_requirement(text, below + 1))
        return row + 1, requirements
    return None


def _without_comment(text: str) -> str:
    """A requirement line without its trailing `` # comment`` (pip's rule)."""
    return re.split(r"\s#", text, maxsplit=1)[0].strip()


def _pep723_dependencies(source: str) -> list[_Requirement] | None:
    """The ``dependencies`` of the script's PEP 723 block; ``None`` when there is none."""
    blocks = [m for m in _PEP723.finditer(source) if m.group("type") == "script"]
    if not blocks:
        opening = _PEP723_OPEN.search(source)
        if opening is not None:
            raise ScriptError(
                "the '# /// script' block is never closed: end it with a line '# ///'",
                line=_line_of(source, opening.start()),
            )
        return None
    if len(blocks) > 1:
        raise ScriptError(
            "the script has more than one '# /// script' block (PEP 723 allows one)",
            line=_line_of(source, blocks[1].start()),
        )
    block = blocks[0]
    first_line = _line_of(source, block.start())
    content_lines = block.group("content").splitlines(keepends=True)
    toml = "".join(line[2:] if line.startswith("# ") else line[1:] for line in content_lines)
    try:
        metadata = tomllib.loads(toml)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        line, column = first_line, None
        if position is not None:
            message = message[: position.start()]
            line = first_line + int(position.group(1))
            column = int(position.group(2)) + 2  # the "# " every line starts with
        raise ScriptError(
            f"invalid TOML in the '# /// script' block: {message}", line=line, column=column
        ) from None
    if "dependencies" not in metadata:
        return None  # a block for requires-python or tool settings only: infer as usual
    dependencies = metadata["dependencies"]
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise ScriptError(
            "'dependencies' in the '# /// script' block must be a list of strings",
            line=first_line,
        )
    requirements: list[_Requirement] = []
    for dependency in dependencies:
        line = first_line
        for offset, text in enumerate(content_lines, start=1):
            if dependency in text:
                line = first_line + offset
                break
        requirements.append(_parse_requirement(dependency, line))
    return requirements


def _line_of(source: str, offset: int) -> int:
    return source.count("\n", 0, offset) + 1


def _import_nodes(root: Node) -> list[Node]:
    nodes = QueryCursor(_IMPORTS).captures(root).get("import", [])
    return sorted(nodes, key=lambda n: n.start_byte)


def _pins(lines: list[str], node: Node) -> tuple[list[_Requirement], list[_Requirement]]:
    """The ``# pin:`` and ``# repin:`` requirements on the lines of an import statement."""
    pins: list[_Requirement] = []
    repins: list[_Requirement] = []
    for row in range(node.start_point.row, min(node.end_point.row + 1, len(lines))):
        text = lines[row]
        if "pin:" not in text:
            continue
        for match in _PIN.finditer(text):
            spec = match.group(2).strip()
            if not spec:
                raise ScriptError("'# pin:' names no requirement", line=row + 1)
            requirement = _parse_requirement(spec, row + 1)
            (repins if match.group(1) else pins).append(requirement)
    return pins, repins


def _imported_modules(node: Node) -> list[str]:
    """The absolute module paths an import statement reads (none for a relative import).

    ``from a.b import c`` gives ``a.b.c``: ``c`` may be an attribute rather than a module,
    but only namespace packages look that deep (``from google.cloud import storage``).
    """
    if node.type == "import_statement":
        return [_dotted(name) for name in node.children_by_field_name("name")]
    module = node.child_by_field_name("module_name")
    if module is None or module.type != "dotted_name":
        return []  # a relative import: the script's own files
    base = _dotted(module)
    names = [_dotted(name) for name in node.children_by_field_name("name")]
    return [f"{base}.{name}" for name in names if name] or [base]


def _dotted(node: Node) -> str:
    if node.type == "aliased_import":
        inner = node.child_by_field_name("name")
        return _dotted(inner) if inner is not None else ""
    if node.type == "identifier":
        return _text(node)
    return ".".join(_text(part) for part in node.named_children if part.type == "identifier")


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def _required_distribution(module: str) -> str | None:
    root = module.split(".", 1)[0]
    if not root or root in _STDLIB or root in _SCRIPT_ROOTS:
        return None
    return distribution_for(module)
