"""The OpenFlow model: Windmill flow files come back out unchanged, parse errors name the
module and field, YAML and the CLI's ``!inline`` files are read and written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from gristmill.errors import BadInput
from gristmill.flows import (
    BranchAll,
    BranchOne,
    ForloopFlow,
    Identity,
    JavascriptTransform,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    StaticTransform,
    UnsupportedModule,
    WhileloopFlow,
    describe_path,
    dump_flow,
    flow_to_dict,
    iter_modules,
    load_flow,
    load_flow_dir,
    parse_flow,
)
from gristmill.sync.format import flow_files

FLOWS = Path(__file__).parent / "windmill"
JSON_FLOWS = sorted(FLOWS.glob("*.json"))


def _json(name: str) -> dict[str, Any]:
    return json.loads((FLOWS / name).read_text(encoding="utf-8"))


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True)


@pytest.mark.parametrize("path", JSON_FLOWS, ids=lambda p: p.stem)
def test_a_windmill_flow_round_trips_unchanged(path: Path) -> None:
    original = json.loads(path.read_text(encoding="utf-8"))
    flow = load_flow(path.read_text(encoding="utf-8"))
    assert _canonical(flow_to_dict(flow)) == _canonical(original)
    # The text export too, and a second pass changes nothing.
    again = load_flow(dump_flow(flow))
    assert _canonical(flow_to_dict(again)) == _canonical(original)


def test_the_reference_example_reads_from_yaml_and_round_trips() -> None:
    text = (FLOWS / "reference_example.yaml").read_text(encoding="utf-8")
    import yaml

    original = yaml.safe_load(text)
    flow = load_flow(text)
    assert _canonical(flow_to_dict(flow)) == _canonical(original)
    assert _canonical(flow_to_dict(load_flow(dump_flow(flow, fmt="yaml")))) == _canonical(original)
    assert flow.schema_ is not None and flow.schema_["properties"]["n"]["default"] == 3


def test_module_values_parse_into_their_types() -> None:
    flow = load_flow(json.dumps(_json("branches.json")))
    a, b, f = flow.value.modules
    assert isinstance(a.value, PathScript) and a.value.hash == "1a2b3c4d5e6f7a8b"
    assert isinstance(b.value, BranchOne)
    assert b.value.branches[0].expr == "results.a.total > 1000"
    assert isinstance(b.value.branches[0].modules[0].value, RawScript)
    assert isinstance(b.value.branches[1].modules[0].value, Identity)
    assert [m.id for m in b.value.default] == ["e"]
    assert isinstance(f.value, BranchAll) and f.value.parallel is True
    assert [br.skip_failure for br in f.value.branches] == [False, True]
    assert isinstance(f.value.branches[1].modules[0].value, PathFlow)
    transform = a.value.input_transforms and a.value.input_transforms["order_id"]
    assert isinstance(transform, JavascriptTransform) and transform.expr == "flow_input.order_id"


def test_loops_retries_suspend_and_options_parse() -> None:
    loop = load_flow(_json("while_loop.json"))
    a, c = loop.value.modules
    assert isinstance(a.value, WhileloopFlow) and a.value.skip_failures is False
    b = a.value.modules[0]
    assert b.stop_after_if is not None and b.stop_after_if.expr == 'result.status == "ready"'
    assert isinstance(b.sleep, JavascriptTransform)
    assert a.stop_after_all_iters_if is not None and a.stop_after_all_iters_if.skip_if_stopped
    assert isinstance(c.value, ForloopFlow) and isinstance(c.value.iterator, StaticTransform)
    assert c.value.modules[0].mock is not None
    assert c.value.modules[0].mock.return_value == {"ok": 1}

    approval = load_flow(_json("approval.json"))
    suspend = approval.value.modules[0].suspend
    assert suspend is not None and suspend.required_events == 2 and suspend.timeout == 1800
    assert suspend.resume_form is not None and suspend.resume_form.schema_ is not None
    assert suspend.resume_form.schema_["required"] == ["comment"]
    assert isinstance(suspend.user_groups_required, StaticTransform)
    assert suspend.user_groups_required.value == ["finance"]

    retries = load_flow(_json("failure_retries.json"))
    retry = retries.value.modules[0].retry
    assert retry is not None and retry.constant is not None and retry.exponential is not None
    assert (retry.constant.attempts, retry.constant.seconds) == (2, 1)
    assert (retry.exponential.multiplier, retry.exponential.random_factor) == (2, 10)
    assert retry.retry_if is not None and "ValueError" in retry.retry_if.expr
    assert retries.value.modules[0].timeout == 120  # the older plain-seconds form
    assert retries.value.failure_module is not None
    assert retries.value.early_return == "a"


def test_defaults_follow_windmill_when_fields_are_absent() -> None:
    flow = parse_flow(
        {
            "summary": "",
            "value": {
                "modules": [
                    {
                        "id": "a",
                        "value": {
                            "type": "forloopflow",
                            "iterator": {"type": "static", "value": []},
                            "modules": [],
                        },
                    },
                    {
                        "id": "b",
                        "value": {"type": "branchall", "branches": [{"modules": []}]},
                    },
                    {"id": "c", "value": {"type": "script", "path": "f/x"}},
                    {"id": "d", "value": {"type": "identity"}},
                ]
            },
        }
    )
    a, b, c, _ = flow.value.modules
    assert isinstance(a.value, ForloopFlow) and a.value.skip_failures is True
    assert isinstance(b.value, BranchAll) and b.value.branches[0].skip_failure is True
    assert isinstance(c.value, PathScript) and c.value.input_transforms is None
    # ... and the defaults are not written back.
    assert "skip_failures" not in flow_to_dict(flow)["value"]["modules"][0]["value"]


def test_a_static_transform_without_value_round_trips() -> None:
    data = {
        "summary": "s",
        "value": {
            "modules": [
                {
                    "id": "a",
                    "value": {
                        "type": "script",
                        "path": "f/x",
                        "input_transforms": {"x": {"type": "static"}},
                    },
                }
            ]
        },
    }
    flow = parse_flow(data)
    inner = flow.value.modules[0].value
    assert isinstance(inner, PathScript) and inner.input_transforms is not None
    transform = inner.input_transforms["x"]
    assert isinstance(transform, StaticTransform) and transform.value is None
    assert flow_to_dict(flow) == data


def test_unknown_module_types_are_kept_not_refused() -> None:
    flow = load_flow(_json("failure_retries.json"))
    agent = flow.value.modules[1].value
    assert isinstance(agent, UnsupportedModule) and agent.type == "aiagent"
    dumped = flow_to_dict(flow)["value"]["modules"][1]["value"]
    assert dumped["tools"] == [
        {"id": "t", "value": {"tool_type": "flowmodule", "type": "identity"}}
    ]


def test_unknown_fields_are_kept_at_every_level() -> None:
    data = _json("failure_retries.json")
    flow = load_flow(data)
    assert flow.model_extra == {"visible_to_runner_only": False}
    assert flow.value.model_extra == {"ws_error_handler_muted": True}
    assert flow_to_dict(flow)["value"]["notes"][0]["position"] == {"x": 1.5, "y": 2}


def test_numbers_keep_their_json_form() -> None:
    flow = load_flow(_json("while_loop.json"))
    text = dump_flow(flow)
    assert '"cache_ttl": 30,' in text or '"cache_ttl": 30\n' in text
    assert "30.0" not in text


def test_a_bare_flow_value_is_accepted() -> None:
    flow = parse_flow({"modules": [{"id": "a", "value": {"type": "identity"}}]})
    assert flow.summary == "" and [m.id for m in flow.value.modules] == ["a"]


def test_iter_modules_walks_every_module_in_run_order() -> None:
    flow = load_flow(_json("branches.json"))
    walked = [(m.id, describe_path(p)) for m, p in iter_modules(flow)]
    assert walked == [
        ("a", "modules[0]"),
        ("b", "modules[1]"),
        ("c", "modules[1].value.branches[0].modules[0]"),
        ("d", "modules[1].value.branches[1].modules[0]"),
        ("e", "modules[1].value.default[0]"),
        ("f", "modules[2]"),
        ("g", "modules[2].value.branches[0].modules[0]"),
        ("h", "modules[2].value.branches[1].modules[0]"),
    ]
    special = [
        (m.id, describe_path(p)) for m, p in iter_modules(load_flow(_json("failure_retries.json")))
    ]
    assert special[0] == ("preprocessor", "preprocessor_module")
    assert special[-1] == ("failure", "failure_module")
    loops = [m.id for m, _ in iter_modules(load_flow(_json("while_loop.json")))]
    assert loops == ["a", "b", "c", "d"]


def test_iter_modules_paths_point_at_the_module_in_the_json() -> None:
    flow = load_flow(_json("branches.json"))
    data = flow_to_dict(flow)["value"]
    for module, path in iter_modules(flow):
        node: Any = data
        for part in path:
            node = node[part]
        assert node["id"] == module.id


# --- Parse errors name the module and the field -----------------------------------------


def _one_module(value: dict[str, Any], **module: Any) -> dict[str, Any]:
    return {"summary": "", "value": {"modules": [{"id": "a", "value": value, **module}]}}


def test_an_ai_transform_is_refused_with_its_module_and_field() -> None:
    data = _one_module(
        {
            "type": "script",
            "path": "f/x",
            "input_transforms": {"prompt": {"type": "ai", "value": None}},
        }
    )
    with pytest.raises(BadInput) as caught:
        load_flow(data)
    assert str(caught.value) == (
        "module \"a\" (script) input_transforms.prompt: type 'ai' is not supported here "
        "(expected one of 'static', 'javascript')"
    )


def test_a_nested_parse_error_names_the_inner_module() -> None:
    data = _one_module(
        {
            "type": "forloopflow",
            "iterator": {"type": "javascript", "expr": "[1]"},
            "modules": [{"id": "inner", "value": {"type": "rawscript", "language": "bun"}}],
        }
    )
    with pytest.raises(BadInput) as caught:
        load_flow(data)
    assert str(caught.value) == 'module "inner" (rawscript) content: is required'


def test_a_javascript_transform_without_expr_is_refused() -> None:
    data = _one_module(
        {"type": "forloopflow", "iterator": {"type": "javascript"}, "modules": []},
    )
    with pytest.raises(BadInput) as caught:
        load_flow(data)
    assert str(caught.value) == 'module "a" (forloopflow) iterator.expr: is required'


def test_a_module_without_type_or_value_is_refused() -> None:
    with pytest.raises(BadInput) as caught:
        load_flow(_one_module({"path": "f/x"}))
    assert str(caught.value) == 'module "a" value: the "type" field is missing'
    with pytest.raises(BadInput) as caught:
        load_flow({"summary": "", "value": {"modules": [{"value": {"type": "identity"}}]}})
    assert str(caught.value) == 'module "" (identity) id: is required'


def test_flow_level_errors_name_the_flow() -> None:
    with pytest.raises(BadInput) as caught:
        load_flow({"summary": "", "value": {"modules": [], "flow_env": {"A": 1}}})
    assert str(caught.value) == "flow flow_env.A: Input should be a valid string"
    with pytest.raises(BadInput, match="a flow must be a JSON object, not a list"):
        load_flow("[1, 2]")
    with pytest.raises(BadInput, match=r"^flow modules: is required$"):
        load_flow({"summary": "", "value": {}})


def test_text_that_is_neither_json_nor_yaml_is_refused() -> None:
    with pytest.raises(BadInput, match="the flow is neither JSON nor valid YAML"):
        load_flow("summary: [unclosed")
    with pytest.raises(BadInput, match=r"^the flow is not UTF-8 text$"):
        load_flow(b"\xff\xfe")


def test_yaml_values_that_are_not_json_become_json(tmp_path: Path) -> None:
    """A YAML date in a static value is exported as its ISO text (what JSON can hold)."""
    text = (
        "summary: d\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n"
        "        path: f/x\n        input_transforms:\n          day: {type: static, value: 2024-01-31}\n"
    )
    flow = load_flow(text, base_dir=tmp_path)
    inner = flow_to_dict(flow)["value"]["modules"][0]["value"]
    assert inner["input_transforms"]["day"] == {"type": "static", "value": "2024-01-31"}


def test_without_pyyaml_yaml_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # import yaml now raises ImportError
    with pytest.raises(BadInput) as caught:
        load_flow("summary: x\nvalue: {modules: []}\n")
    assert str(caught.value) == (
        "the flow is not valid JSON, and reading YAML needs PyYAML, which is not installed "
        "here: give the flow as JSON"
    )
    assert load_flow('{"summary": "x", "value": {"modules": []}}').summary == "x"


# --- The Windmill CLI's folders and !inline files ---------------------------------------

CLI_FLOW = """\
summary: CLI flow
description: ''
value:
  modules:
    - id: a
      value:
        type: rawscript
        content: '!inline a.inline_script.py'
        language: python3
        lock: '!inline a.inline_script.lock'
        input_transforms:
          x:
            type: javascript
            expr: flow_input.x
    - id: b
      value:
        type: forloopflow
        iterator: {type: javascript, expr: results.a}
        skip_failures: true
        modules:
          - id: c
            value:
              type: rawscript
              content: !inline scripts/c.ts
              language: bun
              input_transforms: {}
schema:
  type: object
  properties:
    x: {type: integer}
"""


def _cli_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "f" / "demo" / "sync.flow"
    (folder / "scripts").mkdir(parents=True)
    (folder / "flow.yaml").write_text(CLI_FLOW, encoding="utf-8")
    (folder / "a.inline_script.py").write_text("def main(x: int):\n    return [x]\n")
    (folder / "a.inline_script.lock").write_text("# py: 3.11\n")
    (folder / "scripts" / "c.ts").write_text("export function main() { return 1 }\n")
    return folder


def test_load_flow_dir_resolves_inline_files(tmp_path: Path) -> None:
    folder = _cli_folder(tmp_path)
    for where in (folder, folder / "flow.yaml"):
        flow = load_flow_dir(where)
        a = flow.value.modules[0].value
        assert isinstance(a, RawScript)
        assert a.content == "def main(x: int):\n    return [x]\n"
        assert a.lock == "# py: 3.11\n"
        loop = flow.value.modules[1].value
        assert isinstance(loop, ForloopFlow)
        inner = loop.modules[0].value
        # An unquoted `!inline` (a YAML tag) reads as the CLI's reference too.
        assert isinstance(inner, RawScript)
        assert inner.content == "export function main() { return 1 }\n"


def test_inline_references_need_a_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        load_flow(CLI_FLOW)
    assert str(caught.value) == (
        "module \"a\" (rawscript) content: refers to the file 'a.inline_script.py' (!inline): "
        "load the flow from its folder"
    )
    folder = _cli_folder(tmp_path)
    (folder / "scripts" / "c.ts").unlink()
    with pytest.raises(BadInput) as caught:
        load_flow_dir(folder)
    assert str(caught.value) == (
        f"module \"c\" (rawscript) content: the !inline file 'scripts/c.ts' is not in {folder}"
    )


@pytest.mark.parametrize("name", ["../secret.py", "/etc/passwd"])
def test_inline_files_stay_inside_the_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "secret.py").write_text("x")
    folder = tmp_path / "flow"
    folder.mkdir()
    (folder / "flow.json").write_text(
        json.dumps(
            _one_module(
                {
                    "type": "rawscript",
                    "language": "python3",
                    "content": f"!inline {name}",
                    "input_transforms": {},
                }
            )
        )
    )
    with pytest.raises(BadInput) as caught:
        load_flow_dir(folder)
    assert str(caught.value) == (
        f'module "a" (rawscript) content: the !inline file {name!r} must be a path inside the '
        "flow folder"
    )


def test_a_folder_without_a_flow_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"holds no flow\.yaml, flow\.yml, flow\.json"):
        load_flow_dir(tmp_path)


def _write_folder(flow: OpenFlow, out: Path) -> None:
    """The flow's folder as ``gristmill flow pull`` and the sync commands write it."""
    files = flow_files({"path": "f/x/y", **flow_to_dict(flow)})
    out.mkdir()
    for name, content in files.items():
        (out / name.removeprefix("f/x/y.flow/")).write_bytes(content)


def test_a_written_flow_folder_loads_back(tmp_path: Path) -> None:
    flow = load_flow_dir(_cli_folder(tmp_path))
    out = tmp_path / "out"
    _write_folder(flow, out)
    text = (out / "flow.yaml").read_text()
    assert "content: '!inline a.inline_script.py'" in text
    assert "lock: '!inline a.inline_script.lock'" in text
    assert "content: '!inline c.inline_script.ts'" in text
    assert (out / "a.inline_script.py").read_text() == "def main(x: int):\n    return [x]\n"
    assert (out / "c.inline_script.ts").read_text() == "export function main() { return 1 }\n"
    assert flow_to_dict(load_flow_dir(out)) == flow_to_dict(flow)


def test_writing_a_flow_folder_leaves_the_flow_object_alone(tmp_path: Path) -> None:
    flow = load_flow(_json("approval.json"))
    _write_folder(flow, tmp_path / "out")
    first = flow.value.modules[0].value
    assert isinstance(first, RawScript) and first.content.startswith("import * as wmill")
    assert _canonical(flow_to_dict(load_flow_dir(tmp_path / "out"))) == _canonical(
        _json("approval.json")
    )


def test_the_model_is_an_openflow() -> None:
    flow = load_flow(_json("approval.json"))
    assert isinstance(flow, OpenFlow)
    assert flow.model_dump(by_alias=True, exclude_unset=True)["schema"]["required"] == ["amount"]
