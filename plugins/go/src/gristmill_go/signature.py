"""The signature of a Go script's ``main``, read with tree-sitter.

A script is ``package inner`` with a top-level ``func main(...)``, as in Windmill. Go has no
default values, so every parameter is required. Each parameter keeps its Go type as written in
``Arg.otyp`` (``...T`` for a variadic one); :mod:`gristmill_go.typemap` maps it to a form type.

Besides the signature, the wrapper needs the shape of ``main``'s results (nothing, ``T``,
``error`` or ``(T, error)``) and whether its last parameter is variadic: :func:`parse_script`
returns them together.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Literal

import tree_sitter_go
from gristmill import Arg, ListType, ScriptError, Signature
from tree_sitter import Language, Node, Parser

from gristmill_go.syntax import SyntaxChecker, position, text
from gristmill_go.typemap import TypeResolver

__all__ = [
    "LANGUAGE",
    "PACKAGE",
    "ResultShape",
    "Script",
    "parse_script",
    "parse_signature",
    "parse_tree",
]

#: The package a script declares; the wrapper imports it under this name.
PACKAGE: Final = "inner"

# Built once: creating a Language/Parser/Query costs far more than parsing a script.
LANGUAGE: Final = Language(tree_sitter_go.language())
_PARSER: Final = Parser(LANGUAGE)
# A tree-sitter parser is not safe to share between threads; parsing is short, so a lock is
# cheaper than one parser per thread.
_PARSER_LOCK: Final = threading.Lock()
_SYNTAX: Final = SyntaxChecker(LANGUAGE)

_EXAMPLE: Final = "func main(name string, count int) (interface{}, error)"

#: What ``main`` returns: nothing, a value, an error, or a value and an error.
ResultShape = Literal["none", "value", "error", "value_error"]


@dataclass(frozen=True)
class Script:
    """What the runtime needs of a script: its signature and how to call its ``main``."""

    signature: Signature
    results: ResultShape
    #: The last parameter is ``name ...T`` (its argument is a list, spread into the call).
    variadic: bool = False


def parse_signature(source: str) -> Signature:
    """The parameters of ``main``; raises :class:`ScriptError` for a script that is not a Go
    script Gristmill can run (syntax error, wrong package, no ``main``)."""
    return parse_script(source).signature


def parse_tree(source: str) -> tuple[Node, bytes]:
    """The syntax tree of ``source`` (unchecked: it may hold ERROR nodes) and the bytes its
    offsets index."""
    if source.startswith("\ufeff"):  # the Go compiler ignores a leading BOM too
        source = source[1:]
    data = source.encode("utf-8", "replace")
    with _PARSER_LOCK:
        tree = _PARSER.parse(data)
    return tree.root_node, data


def parse_script(source: str) -> Script:
    root, data = parse_tree(source)
    _SYNTAX.check(root, data)
    _check_package(root, data)

    main: Node | None = None
    declared: dict[str, Node] = {}
    imports: dict[str, str] = {}
    for child in root.named_children:
        if child.type == "function_declaration" and main is None:
            if text(child.child_by_field_name("name")) == "main":
                main = child
        elif child.type == "type_declaration":
            for spec in child.named_children:
                if spec.type in ("type_spec", "type_alias"):
                    declared[text(spec.child_by_field_name("name"))] = spec
        elif child.type == "import_declaration":
            imports.update(_imports(child))
    if main is None:
        raise ScriptError(
            f"a Go script must define a top-level `func main(...)`, such as `{_EXAMPLE}`; "
            "none was found"
        )
    type_params = main.child_by_field_name("type_parameters")
    if type_params is not None:
        line, column = position(data, type_params.start_byte)
        raise ScriptError(
            "`main` cannot have type parameters: a job calls it with concrete types; "
            "remove the [...] after `main`",
            line=line,
            column=column,
        )
    resolver = TypeResolver(declared, imports)
    args, variadic = _parameters(main, resolver, data)
    return Script(Signature(args=tuple(args)), _result_shape(main, data), variadic)


def _check_package(root: Node, data: bytes) -> None:
    clause = next((c for c in root.named_children if c.type == "package_clause"), None)
    if clause is None:
        raise ScriptError(
            f"a Go script must start with `package {PACKAGE}`; add that line at the top",
            line=1,
            column=1,
        )
    name_node = next((c for c in clause.named_children if c.type == "package_identifier"), None)
    name = text(name_node)
    if name != PACKAGE:
        line, column = position(data, (name_node or clause).start_byte)
        raise ScriptError(
            f"the script is `package {name}`, but a Go script must be `package {PACKAGE}`: "
            f"Gristmill builds it as a package of its own and calls its main; "
            f"write `package {PACKAGE}`",
            line=line,
            column=column,
        )


def _imports(declaration: Node) -> dict[str, str]:
    """Package name as used in the script -> import path."""
    out: dict[str, str] = {}
    specs: list[Node] = []
    for child in declaration.named_children:
        if child.type == "import_spec":
            specs.append(child)
        elif child.type == "import_spec_list":
            specs.extend(c for c in child.named_children if c.type == "import_spec")
    for spec in specs:
        path = text(spec.child_by_field_name("path")).strip('"`')
        alias = spec.child_by_field_name("name")
        # Without an alias the name is the package's own, by convention the last element.
        name = text(alias) if alias is not None else path.rsplit("/", 1)[-1]
        if name not in ("_", "."):
            out[name] = path
    return out


def _parameters(main: Node, resolver: TypeResolver, data: bytes) -> tuple[list[Arg], bool]:
    params = main.child_by_field_name("parameters")
    args: list[Arg] = []
    variadic = False
    decls = [c for c in params.named_children if c.type != "comment"] if params else []
    for decl in decls:
        type_node = decl.child_by_field_name("type")
        names = decl.children_by_field_name("name")
        if not names:
            line, column = position(data, decl.start_byte)
            raise ScriptError(
                f"parameter `{text(decl)}` of main has no name: each parameter of main is a "
                f"named argument of the script; write it as `name {text(decl)}`",
                line=line,
                column=column,
            )
        variadic = decl.type == "variadic_parameter_declaration"
        otyp = ("..." if variadic else "") + text(type_node)
        typ = resolver.resolve(type_node)
        if variadic:
            typ = ListType(typ)
        for name_node in names:
            name = text(name_node)
            if name == "_":
                line, column = position(data, name_node.start_byte)
                raise ScriptError(
                    "a parameter of main is named `_`: each parameter of main is a named "
                    "argument of the script; give it a name",
                    line=line,
                    column=column,
                )
            args.append(Arg(name, typ, otyp=otyp))
    return args, variadic


def _result_shape(main: Node, data: bytes) -> ResultShape:
    result = main.child_by_field_name("result")
    if result is None:
        return "none"
    if result.type != "parameter_list":
        return "error" if text(result) == "error" else "value"
    types: list[str] = []
    for decl in result.named_children:
        if decl.type != "parameter_declaration":
            continue
        count = max(1, len(decl.children_by_field_name("name")))
        types.extend([text(decl.child_by_field_name("type"))] * count)
    if not types:
        return "none"
    if len(types) == 1:
        return "error" if types[0] == "error" else "value"
    if len(types) == 2 and types[1] == "error":
        return "value_error"
    line, column = position(data, result.start_byte)
    raise ScriptError(
        f"main returns {text(result)}, but it may return only a result and an error "
        f"(`{_EXAMPLE}`), a result alone, an error alone, or nothing",
        line=line,
        column=column,
    )
