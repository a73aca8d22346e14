"""What a Go script needs beyond the standard library, and the lock that pins it.

A script asks for modules in three ways, all read here:

* its imports: a path whose first element holds a dot (``github.com/google/uuid``) is a
  module's package, as in Go's own rule (the standard library's paths have no dot);
* ``//require <module> <version>`` comment lines (Windmill's), which pin a version;
* ``//replace <module> [<version>] => <absolute directory> | <module> <version>`` lines (a
  Gristmill extension): go.mod's ``replace``, for modules that live on the worker's disk or
  come from another path.

:func:`lock_inputs` turns them into go.mod lines (the requires and replaces) followed by the
imported packages as comments: deterministic text, which keys the core's resolution cache.
The lock itself is Windmill's: ``go.mod + "//go.sum\\n" + go.sum``, as ``go mod tidy`` wrote
them (:func:`join_lock`, :func:`split_lock`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Final

from gristmill import ScriptError
from tree_sitter import Node, Query, QueryCursor

from gristmill_go.signature import LANGUAGE, parse_tree
from gristmill_go.syntax import text

__all__ = [
    "GO_SUM_SPLITTER",
    "LockFiles",
    "Requirements",
    "go_mod",
    "join_lock",
    "local_fingerprint",
    "local_replacements",
    "lock_inputs",
    "read_requirements",
    "split_lock",
    "with_module",
]

#: Between go.mod and go.sum in a lock (Windmill's ``GO_REQ_SPLITTER``).
GO_SUM_SPLITTER: Final = "//go.sum\n"

_IMPORT_COMMENT: Final = "// import "
_MODULE_LINE: Final = re.compile(r"^module[ \t]+.*$", re.MULTILINE)
# One token of a go.mod line: a quoted string, or a run of other characters.
_GO_MOD_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|\S+')
_DIRECTIVE: Final = re.compile(r"//(require|replace)(?:\s+(.*?))?\s*$")
# A module path as go.mod writes it unquoted: Go's own check (module.CheckPath) has the last
# word when the lock runs; this one catches what would break the go.mod line itself.
_MODULE_PATH: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~+\-]*(?:/[A-Za-z0-9._~+\-]+)*")
# Semantic versions as go.mod requires them (pseudo-versions and +incompatible included).
_VERSION: Final = re.compile(
    r"v(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-[0-9A-Za-z.\-]+)?(?:\+[0-9A-Za-z.\-]+)?"
)
_REQUIRE_USAGE: Final = (
    "write `//require <module> <version>`, such as `//require github.com/google/uuid v1.6.0`"
)
_REPLACE_USAGE: Final = (
    "write `//replace <module> => <absolute directory>` or `//replace <module> => <module> "
    "<version>`, such as `//replace example.com/greet => /srv/go/greet`"
)
# A top-level declaration other than an import, as gofmt writes it (at the start of a line).
_FIRST_DECLARATION: Final = re.compile(r"^(?:func|type|var|const)\b", re.MULTILINE)
# Built once: compiling a query costs far more than running it.
_COMMENTS: Final = Query(LANGUAGE, "(comment) @comment")
_IMPORT_PATHS: Final = Query(LANGUAGE, "(import_spec path: (_) @path)")
# Local replacements are fingerprinted by walking them; these never change a build.
_SKIPPED_DIRS: Final = frozenset({".git", ".hg", ".svn", "testdata", "node_modules"})


@dataclass(frozen=True)
class Requirements:
    """What a script asks for: each a go.mod line or an import path, sorted."""

    #: ``require`` lines without the keyword: ``example.com/greet v1.2.0``.
    requires: tuple[str, ...] = ()
    #: ``replace`` lines without the keyword: ``example.com/greet => /srv/go/greet``.
    replaces: tuple[str, ...] = ()
    #: Imported packages outside the standard library.
    imports: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.requires or self.replaces or self.imports)


@dataclass(frozen=True)
class LockFiles:
    go_mod: str
    go_sum: str


def read_requirements(source: str) -> Requirements:
    """The modules ``source`` asks for; :class:`ScriptError` (with the line) for a
    ``//require`` or ``//replace`` line that cannot be read."""
    root, _ = parse_tree(_header(source))
    imports = sorted({path for path in _import_paths(root) if _is_module_import(path)})
    requires: dict[str, tuple[str, int]] = {}
    replaces: dict[str, tuple[str, int]] = {}
    for node in _nodes(root, _COMMENTS):
        match = _DIRECTIVE.fullmatch(text(node))
        if match is None:
            continue
        kind, rest = match.group(1), match.group(2) or ""
        line = node.start_point.row + 1
        if kind == "require":
            module, version = _parse_require(rest, line)
            _add(requires, module, f"{module} {version}", line, "//require")
        else:
            old, replacement = _parse_replace(rest, line)
            _add(replaces, old, f"{old} => {replacement}", line, "//replace")
    return Requirements(
        requires=tuple(sorted(v for v, _ in requires.values())),
        replaces=tuple(sorted(v for v, _ in replaces.values())),
        imports=tuple(imports),
    )


def _header(source: str) -> str:
    """The part of ``source`` that can hold what :func:`read_requirements` looks for: all of
    it when it has a directive, else what comes before the first declaration (Go puts every
    import before). Parsing a long script costs milliseconds, and the API asks at each save."""
    if "//require" in source or "//replace" in source:
        return source
    match = _FIRST_DECLARATION.search(source)
    if match is None or "/*" in source[: match.start()]:
        return source  # a declaration-like line inside a comment: read everything
    return source[: match.start()]


def lock_inputs(source: str) -> str | None:
    """The lock's inputs as text (see the module's doc); ``None`` when ``source`` needs the
    standard library only."""
    wanted = read_requirements(source)
    if not wanted:
        return None
    lines = [f"require {r}" for r in wanted.requires]
    lines += [f"replace {r}" for r in wanted.replaces]
    lines += [_IMPORT_COMMENT + path for path in wanted.imports]
    return "".join(line + "\n" for line in lines)


def go_mod(module: str, go_version: str, inputs: str) -> str:
    """The go.mod the lock starts from: ``inputs``' requires and replaces. The imports need
    no line: ``go mod tidy`` reads them from the script itself."""
    directives = [
        line
        for line in inputs.splitlines()
        if line.startswith("require ") or line.startswith("replace ")
    ]
    body = "".join(line + "\n" for line in directives)
    return f"module {module}\n\ngo {go_version}\n" + (f"\n{body}" if body else "")


def with_module(go_mod_text: str, module: str) -> str:
    """``go_mod_text`` declaring ``module``: a lock Windmill made says ``module mymod``, and
    the job's program imports the script as ``script/inner``. The module's own path changes
    nothing of what it requires."""
    return _MODULE_LINE.sub(f"module {module}", go_mod_text, count=1)


def join_lock(files: LockFiles) -> str:
    go_mod_text = files.go_mod if files.go_mod.endswith("\n") else files.go_mod + "\n"
    return go_mod_text + GO_SUM_SPLITTER + files.go_sum


def split_lock(lock: str) -> LockFiles:
    """A lock's go.mod and go.sum. A lock without go.sum (nothing downloaded) is all go.mod.
    go.sum lines never hold the splitter, so the last one is the one."""
    go_mod_text, splitter, go_sum = lock.rpartition(GO_SUM_SPLITTER)
    if not splitter:
        return LockFiles(lock, "")
    return LockFiles(go_mod_text, go_sum)


def local_replacements(go_mod_text: str) -> list[str]:
    """The directories go.mod replaces modules with (absolute paths, as the lock holds)."""
    dirs: list[str] = []
    in_block = False
    for raw in go_mod_text.splitlines():
        tokens = _GO_MOD_TOKEN.findall(raw)
        tokens = tokens[: next((i for i, t in enumerate(tokens) if t.startswith("//")), None)]
        if in_block:
            if tokens == [")"]:
                in_block = False
                continue
        elif tokens[:2] == ["replace", "("]:
            in_block = True
            continue
        elif tokens[:1] == ["replace"]:
            tokens = tokens[1:]
        else:
            continue
        if "=>" in tokens:
            target = tokens[tokens.index("=>") + 1 :]
            if len(target) == 1 and _unquote(target[0]).startswith("/"):
                dirs.append(_unquote(target[0]))
    return dirs


def local_fingerprint(directories: list[str]) -> str:
    """What a build from local directories depends on: each file's path, size and
    modification time (a build never reads a file that did not change in one of these)."""
    digest = hashlib.sha256()
    for directory in sorted(directories):
        digest.update(directory.encode() + b"\0")
        for parent, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
            for name in sorted(files):
                path = os.path.join(parent, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _nodes(root: Node, query: Query) -> list[Node]:
    captures = QueryCursor(query).captures(root)
    return sorted((n for nodes in captures.values() for n in nodes), key=lambda n: n.start_byte)


def _import_paths(root: Node) -> list[str]:
    paths = []
    for node in _nodes(root, _IMPORT_PATHS):
        literal = text(node)
        paths.append(literal[1:-1] if len(literal) >= 2 else literal)
    return paths


def _is_module_import(path: str) -> bool:
    return "." in path.split("/", 1)[0]


def _add(seen: dict[str, tuple[str, int]], key: str, line: str, number: int, what: str) -> None:
    previous = seen.get(key)
    if previous is not None and previous[0] != line:
        raise ScriptError(
            f"`{what} {line}` contradicts line {previous[1]} (`{what} {previous[0]}`): "
            f"keep one {what} line for {key}",
            line=number,
            column=1,
        )
    seen.setdefault(key, (line, number))


def _parse_require(rest: str, line: int) -> tuple[str, str]:
    fields = rest.split()
    if len(fields) != 2:
        raise ScriptError(f"malformed //require line: {_REQUIRE_USAGE}", line=line, column=1)
    module, version = fields
    _check_module(module, line, "//require")
    _check_version(version, line, "//require")
    return module, version


def _parse_replace(rest: str, line: int) -> tuple[str, str]:
    left, arrow, right = rest.partition("=>")
    old = left.split()
    right = right.strip()
    if not arrow or len(old) not in (1, 2) or not right:
        raise ScriptError(f"malformed //replace line: {_REPLACE_USAGE}", line=line, column=1)
    _check_module(old[0], line, "//replace")
    if len(old) == 2:
        _check_version(old[1], line, "//replace")
    if right.startswith('"'):
        right = _unquote(right)
    if right.startswith(("./", "../", "~")) or right in (".", ".."):
        raise ScriptError(
            f"//replace with a relative directory ({right}): the lock's go.mod is written in "
            "a job directory, so a local replacement must be an absolute path",
            line=line,
            column=1,
        )
    if right.startswith("/"):
        return " ".join(old), _go_mod_token(os.path.normpath(right))
    new = right.split()
    if len(new) != 2:
        raise ScriptError(f"malformed //replace line: {_REPLACE_USAGE}", line=line, column=1)
    _check_module(new[0], line, "//replace")
    _check_version(new[1], line, "//replace")
    return " ".join(old), " ".join(new)


def _check_module(module: str, line: int, what: str) -> None:
    if not _MODULE_PATH.fullmatch(module) or "." not in module.split("/", 1)[0]:
        raise ScriptError(
            f"{what}: `{module}` is not a module path (such as github.com/google/uuid: the "
            "first element names a host, with a dot)",
            line=line,
            column=1,
        )


def _check_version(version: str, line: int, what: str) -> None:
    if not _VERSION.fullmatch(version):
        raise ScriptError(
            f"{what}: `{version}` is not a module version; a version is a semantic version "
            "with a leading v, such as v1.6.0 or v0.0.0-20240101000000-abcdef123456",
            line=line,
            column=1,
        )


def _go_mod_token(value: str) -> str:
    """``value`` as one go.mod token: quoted when go.mod would otherwise split it (the rule
    of golang.org/x/mod's modfile.MustQuote)."""
    must_quote = (
        any(c in " \t\"'`" or not c.isprintable() for c in value)
        or (len(value) > 1 and any(c in "()[]{}," for c in value))
        or "//" in value
        or "/*" in value
    )
    return json.dumps(value, ensure_ascii=False) if must_quote else value


def _unquote(token: str) -> str:
    if token.startswith("`") and token.endswith("`") and len(token) >= 2:
        return token[1:-1]
    if not token.startswith('"'):
        return token
    try:
        value = json.loads(token)
    except ValueError:
        return token
    return value if isinstance(value, str) else token
