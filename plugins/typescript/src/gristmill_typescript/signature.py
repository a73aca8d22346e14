"""The signature of a TypeScript script's ``main``, read with tree-sitter.

The rules follow Windmill's TypeScript parser (shared by its Bun and Deno runtimes) so that a
script gets the same form in both products: ``main`` is the function the script exports with
``export function main(...)`` or ``export async function main(...)``; each parameter's
annotation gives its type (:mod:`gristmill_typescript.types`), its default the form's default
(:mod:`gristmill_typescript.defaults`), and a parameter written ``x?: T``, ``T | undefined`` or
``T | null`` is optional. Destructured parameters are named ``anon1``, ``anon2``, ...

Besides the signature, :func:`parse_main` says what the job wrapper must do with each
argument (see :class:`ParamRuntime`): that depends on the source (``bigint`` or not, ``?`` or
``| null``) more finely than the JSON schema does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from gristmill import (
    ANY,
    DATETIME,
    FUNCTION_CALL_DEFAULT,
    Arg,
    ScriptError,
    Signature,
    infer_typ_from_value,
)
from tree_sitter import Node

from gristmill_typescript.defaults import NOT_LITERAL, is_bigint_literal, literal_value
from gristmill_typescript.syntax import check_syntax, first_child, parse, position, text
from gristmill_typescript.types import TypeInfo, read_type

__all__ = ["ParamRuntime", "ParsedMain", "parse_main", "parse_signature"]

#: How the wrapper turns an argument's JSON value into what ``main`` expects.
Conversion = Literal["date", "bigint"]

_FUNCTION_KINDS: Final = ("function_declaration", "generator_function_declaration")
_HOW_TO: Final = "write `export async function main(...) { ... }`"


@dataclass(frozen=True)
class ParamRuntime:
    """What the job wrapper does with one argument of ``main``."""

    name: str
    #: ``date``: an ISO string becomes a ``Date``; ``bigint``: an integer becomes a ``BigInt``.
    conversion: Conversion | None
    #: A null argument means "not given": main gets ``undefined``, so its default applies (the
    #: form sends null for a field left empty). False where the type admits null itself.
    null_is_unset: bool


@dataclass(frozen=True)
class ParsedMain:
    signature: Signature
    params: tuple[ParamRuntime, ...]


def parse_signature(source: str) -> Signature:
    """Read the parameters of the exported ``main`` of a TypeScript script.

    Raises :class:`ScriptError` for a syntax error (with its 1-based line and column) and for a
    script that does not export a function ``main``.
    """
    return parse_main(source).signature


def parse_main(source: str) -> ParsedMain:
    """The signature of ``main`` and what the wrapper must do with each of its arguments."""
    tree, data = parse(source)
    root = tree.root_node
    check_syntax(root, data)
    main, has_preprocessor = _find_main(root)
    if main is None:
        raise _no_main_error(root, data)

    type_parameters = main.child_by_field_name("type_parameters")
    type_params = frozenset(
        text(p.child_by_field_name("name"))
        for p in (type_parameters.named_children if type_parameters is not None else ())
        if p.type == "type_parameter"
    )
    args: list[Arg] = []
    params: list[ParamRuntime] = []
    anonymous = 0
    parameters = main.child_by_field_name("parameters")
    for param in parameters.named_children if parameters is not None else ():
        if param.type not in ("required_parameter", "optional_parameter"):
            continue  # comments
        pattern = param.child_by_field_name("pattern")
        if pattern is None or pattern.type == "this":  # ``this: T`` is no argument
            continue
        if pattern.type == "rest_pattern":
            line, column = position(data, pattern.start_byte)
            raise ScriptError(
                f"main's rest parameter `{text(pattern)}` cannot be filled from a form or an "
                "API call: name each parameter instead",
                line=line,
                column=column,
            )
        if pattern.type == "identifier":
            name = text(pattern)
        else:  # ``{a, b}: T`` or ``[a, b]: T``: Windmill numbers them
            anonymous += 1
            name = f"anon{anonymous}"
        annotation = param.child_by_field_name("type")
        type_node = first_child(annotation)
        info = read_type(type_node, 0, type_params) if type_node is not None else TypeInfo(ANY)
        arg, runtime = _make_param(
            name, info, param.child_by_field_name("value"), param.type == "optional_parameter"
        )
        args.append(arg)
        params.append(runtime)
    signature = Signature(args=tuple(args), has_preprocessor=has_preprocessor)
    return ParsedMain(signature, tuple(params))


def _make_param(
    name: str, info: TypeInfo, value: Node | None, question_mark: bool
) -> tuple[Arg, ParamRuntime]:
    typ = info.typ
    bigint = info.bigint
    if value is None:
        # ``x?: T``, ``T | undefined``, ``T | null``: not required, and null when not given.
        optional = question_mark or info.undefined or info.null
        arg = Arg(name, typ, None, optional)
        null_is_unset = optional and not info.null
    else:
        default = literal_value(value)
        if default is NOT_LITERAL:
            # Known only at run time. The marker is a placeholder, not a string value, so it
            # implies no type (``x = new Date()`` stays "any value" when not annotated).
            default = FUNCTION_CALL_DEFAULT
        elif typ == ANY and default is not None:
            typ = infer_typ_from_value(default)
            bigint = is_bigint_literal(value)
        arg = Arg(name, typ, default, True)
        # With a default, null means "use it" unless null is a value the type asks for.
        null_is_unset = not info.null and default is not None
    conversion: Conversion | None = None
    if typ == DATETIME:
        conversion = "date"
    elif bigint:
        conversion = "bigint"
    return arg, ParamRuntime(name, conversion, null_is_unset)


def _find_main(root: Node) -> tuple[Node | None, bool]:
    """The exported ``main`` declaration (its implementation, after any overload signatures)
    and whether the script exports a ``preprocessor``."""
    main: Node | None = None
    has_preprocessor = False
    for child in root.named_children:
        if child.type != "export_statement" or _is_default_export(child):
            continue
        declaration = child.child_by_field_name("declaration")
        if declaration is None or declaration.type not in _FUNCTION_KINDS:
            continue
        name = text(declaration.child_by_field_name("name"))
        if name == "main":
            main = main or declaration
        elif name == "preprocessor":
            has_preprocessor = True
    return main, has_preprocessor


def _is_default_export(statement: Node) -> bool:
    return any(not c.is_named and c.type == "default" for c in statement.children)


def _no_main_error(root: Node, data: bytes) -> ScriptError:
    """Why the script has no exported ``main``, pointing at the ``main`` it has if any."""
    for child in root.named_children:
        statement = child
        default = False
        if child.type == "export_statement":
            default = _is_default_export(child)
            child = child.child_by_field_name("declaration") or child
        name_node = _declared_main(child)
        if name_node is None:
            continue
        line, column = position(data, name_node.start_byte)
        if default:
            message = f"`main` must be a named export, not the default one: {_HOW_TO}"
        elif child.type in ("lexical_declaration", "variable_declaration"):
            message = (
                "`main` must be a function declaration, as in Windmill, not a variable holding "
                f"a function: {_HOW_TO}"
            )
        elif statement.type == "export_statement":
            message = f"`main` must be a function declaration: {_HOW_TO}"
        else:
            message = f"`main` must be exported where it is declared: {_HOW_TO}"
        return ScriptError(message, line=line, column=column)
    return ScriptError(
        f"a TypeScript script must export a function `main`, but none was found: {_HOW_TO}; "
        "its parameters become the script's form and API arguments"
    )


def _declared_main(node: Node) -> Node | None:
    """The name node of ``main`` when ``node`` declares it at the top level."""
    if node.type in (*_FUNCTION_KINDS, "function_signature"):
        name = node.child_by_field_name("name")
        return name if text(name) == "main" else None
    if node.type in ("lexical_declaration", "variable_declaration"):
        for declarator in node.named_children:
            name = declarator.child_by_field_name("name")
            if declarator.type == "variable_declarator" and text(name) == "main":
                return name
    return None
