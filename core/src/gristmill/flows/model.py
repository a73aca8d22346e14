"""Windmill's OpenFlow format as Pydantic models, and reading and writing flow files.

A flow exported from Windmill must come back out unchanged, so every model keeps the fields
it does not know (``extra="allow"``) and a dump with ``by_alias=True, exclude_unset=True``
(what :func:`flow_to_dict` does) writes only what was read. Module types Gristmill does not
run (``aiagent`` and whatever Windmill adds next) parse into :class:`UnsupportedModule`, kept
whole, so that :func:`gristmill.flows.checks.check_flow` can name them instead of the parser
failing on them.

Files: :func:`load_flow` takes JSON or YAML text (or an already parsed mapping);
:func:`load_flow_dir` reads a Windmill CLI flow folder (``flow.yaml`` whose inline scripts
are ``!inline <file>`` references to files beside it); :func:`dump_flow` writes JSON or YAML
back (a folder is written by ``gristmill.sync.format.flow_files``, with the CLI's file
names).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from gristmill.errors import BadInput

__all__ = [
    "INLINE_PREFIX",
    "BranchAll",
    "BranchAllBranch",
    "BranchOne",
    "BranchOneBranch",
    "ConstantDelay",
    "ExponentialDelay",
    "FlowModule",
    "FlowModuleValue",
    "FlowValue",
    "ForloopFlow",
    "Identity",
    "InputTransform",
    "JavascriptTransform",
    "Mock",
    "ModulePath",
    "OpenFlow",
    "PathFlow",
    "PathScript",
    "RawScript",
    "ResumeForm",
    "Retry",
    "RetryIf",
    "SkipIf",
    "StaticTransform",
    "StopAfterIf",
    "Suspend",
    "UnsupportedModule",
    "WhileloopFlow",
    "describe_path",
    "dump_flow",
    "flow_to_dict",
    "inline_scripts",
    "iter_modules",
    "load_flow",
    "load_flow_dir",
    "module_at",
    "parse_flow",
]

#: How the Windmill CLI writes a field whose text lives in another file: ``!inline a.py``.
INLINE_PREFIX = "!inline "

#: The file names the Windmill CLI gives a flow folder's definition, in the order tried.
FLOW_FILES = ("flow.yaml", "flow.yml", "flow.json")

# Numbers Windmill declares as ``number``: a JSON ``60`` must come back as ``60``, not ``60.0``.
Number = int | float


class _Model(BaseModel):
    """Keeps unknown fields (newer Windmill versions add some) and reads aliases or names."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# Input transforms


class StaticTransform(_Model):
    """A fixed value. Windmill allows ``value`` to be absent (the UI drops ``undefined``):
    it then means ``null``."""

    type: Literal["static"]
    value: Any = None


class JavascriptTransform(_Model):
    """A JavaScript expression evaluated when the step starts."""

    type: Literal["javascript"]
    expr: str


# Newer Windmill clients also write ``"ai"`` transforms (filled in by a model at run time):
# Gristmill refuses those at parse time, with the tag named (see ``_problem``).
InputTransform = Annotated[StaticTransform | JavascriptTransform, Field(discriminator="type")]


# ---------------------------------------------------------------------------------------------
# Module options


class StopAfterIf(_Model):
    """Stop the flow (or the loop) after this step when ``expr`` is true."""

    expr: str
    skip_if_stopped: bool | None = None
    error_message: str | None = None


class SkipIf(_Model):
    expr: str


class RetryIf(_Model):
    expr: str


class ConstantDelay(_Model):
    attempts: int = 0
    seconds: int = 0


class ExponentialDelay(_Model):
    """Delay ``multiplier * seconds ** attempt`` (Windmill's formula)."""

    attempts: int = 0
    multiplier: int = 1
    seconds: int = 0
    random_factor: int | None = None


class Retry(_Model):
    """Constant attempts run first, then exponential ones; ``retry_if`` gates both."""

    constant: ConstantDelay | None = None
    exponential: ExponentialDelay | None = None
    retry_if: RetryIf | None = None


class ResumeForm(_Model):
    # ``schema`` would shadow a BaseModel attribute: the alias keeps the JSON name.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class Suspend(_Model):
    """Wait for ``required_events`` approvals after the step (approval steps)."""

    required_events: int | None = None
    timeout: int | None = None
    resume_form: ResumeForm | None = None
    user_auth_required: bool | None = None
    user_groups_required: InputTransform | None = None
    self_approval_disabled: bool | None = None
    hide_cancel: bool | None = None
    continue_on_disapprove_timeout: bool | None = None


class Mock(_Model):
    """A pinned result: when enabled the step is not run and ``return_value`` is its result."""

    enabled: bool | None = None
    return_value: Any = None


# ---------------------------------------------------------------------------------------------
# Module values (discriminated by ``type``)

# Windmill's spec requires ``input_transforms`` on script-like modules, but its backend reads
# a missing one as ``{}`` (serde default, "to be made required once migration is over"):
# ``None`` here keeps "absent" absent on the way back out; the engine reads ``or {}``.
Transforms = dict[str, InputTransform] | None


class RawScript(_Model):
    """An inline script."""

    type: Literal["rawscript"]
    content: str
    language: str
    input_transforms: Transforms = None
    path: str | None = None
    # A string, or (the CLI's newer format) a list of lines.
    lock: str | list[str] | None = None
    tag: str | None = None
    concurrent_limit: Number | None = None
    concurrency_time_window_s: Number | None = None
    custom_concurrency_key: str | None = None
    is_trigger: bool | None = None
    assets: list[dict[str, Any]] | None = None


class PathScript(_Model):
    """A saved script, by path (and optionally a pinned version hash)."""

    type: Literal["script"]
    path: str
    hash: str | None = None
    input_transforms: Transforms = None
    tag_override: str | None = None
    is_trigger: bool | None = None


class PathFlow(_Model):
    """A saved flow run as a sub-flow."""

    type: Literal["flow"]
    path: str
    input_transforms: Transforms = None


class ForloopFlow(_Model):
    type: Literal["forloopflow"]
    modules: list[FlowModule]
    iterator: InputTransform
    # Windmill's backend defaults it to true when absent.
    skip_failures: bool = True
    parallel: bool | None = None
    parallelism: InputTransform | None = None


class WhileloopFlow(_Model):
    """Runs its modules until a module's ``stop_after_if`` is true."""

    type: Literal["whileloopflow"]
    modules: list[FlowModule]
    skip_failures: bool = True
    parallel: bool | None = None
    parallelism: InputTransform | None = None


class BranchOneBranch(_Model):
    expr: str
    modules: list[FlowModule]
    summary: str | None = None


class BranchOne(_Model):
    """The first branch whose ``expr`` is true runs, else ``default``."""

    type: Literal["branchone"]
    branches: list[BranchOneBranch]
    default: list[FlowModule] = Field(default_factory=list)


class BranchAllBranch(_Model):
    modules: list[FlowModule]
    summary: str | None = None
    # Windmill's backend defaults it to true: a failed branch does not fail the step.
    skip_failure: bool = True


class BranchAll(_Model):
    """Every branch runs; the result is the list of branch results."""

    type: Literal["branchall"]
    branches: list[BranchAllBranch]
    parallel: bool | None = None


class Identity(_Model):
    """Passes the previous result through."""

    type: Literal["identity"]
    flow: bool | None = None


class UnsupportedModule(_Model):
    """A module type Gristmill does not run (``aiagent``, or one Windmill adds later): kept
    as read so that export gives it back, and refused by the checks."""

    type: str


_KNOWN_TYPES = frozenset(
    {
        "rawscript",
        "script",
        "flow",
        "forloopflow",
        "whileloopflow",
        "branchone",
        "branchall",
        "identity",
    }
)


def _module_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if not isinstance(kind, str):
        return None
    # An unknown type parses as a kept, unsupported module rather than failing the parse.
    return kind if kind in _KNOWN_TYPES and not isinstance(value, UnsupportedModule) else "other"


FlowModuleValue = Annotated[
    Annotated[RawScript, Tag("rawscript")]
    | Annotated[PathScript, Tag("script")]
    | Annotated[PathFlow, Tag("flow")]
    | Annotated[ForloopFlow, Tag("forloopflow")]
    | Annotated[WhileloopFlow, Tag("whileloopflow")]
    | Annotated[BranchOne, Tag("branchone")]
    | Annotated[BranchAll, Tag("branchall")]
    | Annotated[Identity, Tag("identity")]
    | Annotated[UnsupportedModule, Tag("other")],
    Discriminator(_module_tag),
]


class FlowModule(_Model):
    """One step of a flow."""

    id: str
    value: FlowModuleValue
    summary: str | None = None
    stop_after_if: StopAfterIf | None = None
    stop_after_all_iters_if: StopAfterIf | None = None
    skip_if: SkipIf | None = None
    # Windmill's spec makes both transforms; older flows wrote plain seconds.
    sleep: InputTransform | Number | None = None
    timeout: InputTransform | Number | None = None
    cache_ttl: Number | None = None
    delete_after_use: bool | None = None
    mock: Mock | None = None
    suspend: Suspend | None = None
    priority: Number | None = None
    continue_on_error: bool | None = None
    retry: Retry | None = None


class FlowValue(_Model):
    """The steps of a flow and its flow-wide options."""

    modules: list[FlowModule]
    failure_module: FlowModule | None = None
    preprocessor_module: FlowModule | None = None
    same_worker: bool | None = None
    concurrent_limit: Number | None = None
    concurrency_key: str | None = None
    concurrency_time_window_s: Number | None = None
    debounce_delay_s: Number | None = None
    debounce_key: str | None = None
    skip_expr: str | None = None
    cache_ttl: Number | None = None
    flow_env: dict[str, str] | None = None
    priority: Number | None = None
    early_return: str | None = None
    chat_input_enabled: bool | None = None
    notes: list[dict[str, Any]] | None = None


class OpenFlow(_Model):
    """A whole flow as Windmill exports it: summary, description, value and input schema."""

    # Required by Windmill's spec; an absent one reads as empty rather than refusing a flow.
    summary: str = ""
    description: str | None = None
    value: FlowValue
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


# ---------------------------------------------------------------------------------------------
# Walking the tree

#: Where a module sits in ``OpenFlow.value``, as JSON keys and indexes:
#: ``("modules", 1, "value", "branches", 0, "modules", 2)``.
ModulePath = tuple[str | int, ...]


def iter_modules(flow: OpenFlow | FlowValue) -> Iterator[tuple[FlowModule, ModulePath]]:
    """Every module of the flow with where it sits, depth first in run order: the
    preprocessor, the steps (a loop's or branch's modules right after it; a ``branchone``'s
    branches, then its default), then the failure module.

    A path's prefixes that end at a module index are the modules enclosing it.
    """
    value = flow.value if isinstance(flow, OpenFlow) else flow
    if value.preprocessor_module is not None:
        yield from _walk(value.preprocessor_module, ("preprocessor_module",))
    for index, module in enumerate(value.modules):
        yield from _walk(module, ("modules", index))
    if value.failure_module is not None:
        yield from _walk(value.failure_module, ("failure_module",))


def _walk(module: FlowModule, path: ModulePath) -> Iterator[tuple[FlowModule, ModulePath]]:
    yield module, path
    inner = module.value
    children: list[tuple[list[FlowModule], ModulePath]] = []
    if isinstance(inner, ForloopFlow | WhileloopFlow):
        children.append((inner.modules, (*path, "value", "modules")))
    elif isinstance(inner, BranchOne):
        for b, branch in enumerate(inner.branches):
            children.append((branch.modules, (*path, "value", "branches", b, "modules")))
        children.append((inner.default, (*path, "value", "default")))
    elif isinstance(inner, BranchAll):
        for b, branch in enumerate(inner.branches):
            children.append((branch.modules, (*path, "value", "branches", b, "modules")))
    for modules, base in children:
        for index, child in enumerate(modules):
            yield from _walk(child, (*base, index))


def module_at(flow: OpenFlow, path: ModulePath) -> FlowModule:
    """The module at ``path`` (as :func:`iter_modules` names it)."""
    node: Any = flow.value
    for part in path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    assert isinstance(node, FlowModule)
    return node


def describe_path(path: ModulePath) -> str:
    """``("modules", 1, "value", "modules", 0)`` -> ``modules[1].value.modules[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# ---------------------------------------------------------------------------------------------
# Parsing, loading, dumping


def parse_flow(data: Mapping[str, Any]) -> OpenFlow:
    """Validate parsed JSON as a flow; :class:`BadInput` names the module and field at fault.

    Also takes a bare flow value (``{"modules": [...]}``), as Windmill's ``value`` column
    holds, wrapping it with an empty summary.
    """
    if not isinstance(data, Mapping):
        raise BadInput(f"a flow must be a JSON object, not {_json_kind(data)}")
    raw = dict(data)
    if "value" not in raw and "modules" in raw:
        raw = {"summary": "", "value": raw}
    try:
        return OpenFlow.model_validate(raw)
    except ValidationError as error:
        raise BadInput(_problem(raw, error)) from None


def load_flow(source: str | bytes | Mapping[str, Any], *, base_dir: Path | None = None) -> OpenFlow:
    """A flow from JSON or YAML text, or from a parsed mapping.

    ``!inline <file>`` references (inline scripts and locks the Windmill CLI keeps in separate
    files) are resolved relative to ``base_dir``; without one they are refused.
    """
    data = _parse_text(source) if isinstance(source, str | bytes) else source
    if not isinstance(data, Mapping):
        raise BadInput(f"a flow must be a JSON object, not {_json_kind(data)}")
    data = _resolve_inline(data, base_dir)
    return parse_flow(data)


def load_flow_dir(path: str | Path) -> OpenFlow:
    """A flow folder as the Windmill CLI writes it (``<name>.flow/flow.yaml`` and its inline
    script files), or the path of the flow file itself."""
    path = Path(path)
    if path.is_dir():
        found = next((path / name for name in FLOW_FILES if (path / name).is_file()), None)
        if found is None:
            raise BadInput(f"{path} holds no {', '.join(FLOW_FILES)}")
        path = found
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from None
    return load_flow(text, base_dir=path.parent)


def flow_to_dict(flow: OpenFlow) -> dict[str, Any]:
    """The flow as JSON data, exactly the fields that were read or set."""
    return flow.model_dump(mode="json", by_alias=True, exclude_unset=True)


def dump_flow(flow: OpenFlow, *, fmt: Literal["json", "yaml"] = "json") -> str:
    """The flow as JSON or YAML text, its inline scripts inside (a flow folder with one file
    per inline script, as the Windmill CLI writes it: ``gristmill.sync.format.flow_files``)."""
    data = flow_to_dict(flow)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    yaml = _yaml()
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def inline_scripts(value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every inline script (``rawscript`` value) of raw flow-value JSON, with its module's
    id, depth first: the dicts themselves, so a caller may set their ``lock``."""
    for module in _raw_modules(value):
        inner = module.get("value")
        if isinstance(inner, dict) and inner.get("type") == "rawscript":
            yield str(module.get("id") or ""), inner


def _raw_modules(value: Any) -> Iterator[dict[str, Any]]:
    """Every module dict of raw flow-value JSON (before validation), depth first."""
    if not isinstance(value, dict):
        return
    lists: list[Any] = [value.get("modules"), value.get("default")]
    lists += [b.get("modules") for b in value.get("branches") or [] if isinstance(b, dict)]
    singles = [value.get("preprocessor_module"), value.get("failure_module")]
    for module in singles[:1]:
        if isinstance(module, dict):
            yield module
            yield from _raw_modules(module.get("value"))
    for modules in lists:
        for module in modules if isinstance(modules, list) else []:
            if isinstance(module, dict):
                yield module
                yield from _raw_modules(module.get("value"))
    for module in singles[1:]:
        if isinstance(module, dict):
            yield module
            yield from _raw_modules(module.get("value"))


def _resolve_inline(data: Mapping[str, Any], base_dir: Path | None) -> Mapping[str, Any]:
    value = data.get("value")
    if not isinstance(value, dict):
        return data
    resolved = copy.deepcopy(dict(data))  # the caller's mapping stays as given
    for module in _raw_modules(resolved["value"]):
        inner = module.get("value")
        if not isinstance(inner, dict) or inner.get("type") != "rawscript":
            continue
        for field in ("content", "lock"):
            text = inner.get(field)
            if isinstance(text, list) and text and str(text[0]).startswith(INLINE_PREFIX):
                text = "\n".join(str(line) for line in text)
            if isinstance(text, str) and text.startswith(INLINE_PREFIX):
                label = f'module "{module.get("id", "")}" (rawscript) {field}'
                inner[field] = _read_inline(text[len(INLINE_PREFIX) :].strip(), base_dir, label)
    return resolved


def _read_inline(name: str, base_dir: Path | None, label: str) -> str:
    if base_dir is None:
        raise BadInput(
            f"{label}: refers to the file {name!r} (!inline): load the flow from its folder"
        )
    relative = PurePosixPath(name)
    # A flow file may come from elsewhere: it reads only files inside its own folder.
    if not name or relative.is_absolute() or ".." in relative.parts:
        raise BadInput(f"{label}: the !inline file {name!r} must be a path inside the flow folder")
    target = base_dir.joinpath(*relative.parts)
    try:
        return target.read_text(encoding="utf-8")
    except OSError:
        raise BadInput(f"{label}: the !inline file {name!r} is not in {base_dir}") from None


def _parse_text(source: str | bytes) -> Any:
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else source
    except UnicodeDecodeError:
        raise BadInput("the flow is not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError:
        pass  # not JSON: YAML, as the Windmill CLI writes flows
    if not _yaml_available():
        raise BadInput(
            "the flow is not valid JSON, and reading YAML needs PyYAML, which is not "
            "installed here: give the flow as JSON"
        )
    yaml = _yaml()
    try:
        return yaml.load(text, Loader=_inline_loader())  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise BadInput(f"the flow is neither JSON nor valid YAML: {error}") from None


def _yaml_available() -> bool:
    try:
        _yaml()
    except ImportError:
        return False
    return True


def _yaml() -> Any:
    # PyYAML is not a dependency of the core (yet): imported only when YAML is read or written.
    import yaml

    return yaml


def _inline_loader() -> Any:
    yaml = _yaml()

    class InlineLoader(yaml.SafeLoader):
        """Reads an unquoted ``!inline a.py`` (a YAML tag) as the string the CLI means."""

    def construct_inline(loader: Any, node: Any) -> str:
        return INLINE_PREFIX + str(loader.construct_scalar(node))

    InlineLoader.add_constructor("!inline", construct_inline)
    return InlineLoader


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return type(value).__name__


def _problem(raw: dict[str, Any], error: ValidationError) -> str:
    """The first validation error as ``module "a" (rawscript) input_transforms.x: ...``."""
    first = error.errors()[0]
    loc = first["loc"]
    current: Any = raw
    module: dict[str, Any] | None = None
    field: list[str | int] = []
    for part in loc:
        # Two branches, not one `or`: each narrows `current` for the type checker.
        if isinstance(current, dict) and part in current:  # noqa: SIM114
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            continue  # a union tag pydantic adds to the location, not a key of the data
        field.append(part)
        if isinstance(current, dict) and "value" in current and _is_module_key(field):
            module, field = current, []
    if first["type"] == "missing" and loc and isinstance(loc[-1], str):
        field.append(loc[-1])  # the absent field itself: the walk cannot reach it
    where = "flow" if module is None else _module_label(module)
    # A module's fields are shown without the ``value.`` every one of them starts with, and
    # the flow's without ``value.`` too; a bare ``value`` stays.
    if len(field) > 1 and field[0] == "value":
        field = field[1:]
    path = describe_path(tuple(field)) if field else ""
    return f"{where} {path}: {_message(first)}" if path else f"{where}: {_message(first)}"


def _is_module_key(field: list[str | int]) -> bool:
    last = field[-1]
    if last in ("failure_module", "preprocessor_module"):
        return True
    return isinstance(last, int) and len(field) > 1 and field[-2] in ("modules", "default")


def _module_label(module: Mapping[str, Any]) -> str:
    inner = module.get("value")
    kind = inner.get("type") if isinstance(inner, dict) else None
    return f'module "{module.get("id", "")}"' + (f" ({kind})" if isinstance(kind, str) else "")


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "union_tag_invalid":
        expected = ctx.get("expected_tags", "")
        return f"type {ctx.get('tag')!r} is not supported here (expected one of {expected})"
    if kind == "union_tag_not_found":
        return 'the "type" field is missing'
    if kind == "missing":
        return "is required"
    return str(error["msg"])


# The container modules name FlowModule before it exists.
for _model in (ForloopFlow, WhileloopFlow, BranchOneBranch, BranchOne, BranchAllBranch):
    _model.model_rebuild()
