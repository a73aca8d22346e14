"""Signature -> JSON schema (Windmill's table) and validation of job arguments."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.runtimes.schema import (
    JSON_SCHEMA_DIALECT,
    ArgumentError,
    empty_schema,
    property_for_typ,
    signature_to_schema,
    validate_args,
)
from gristmill.runtimes.signature import (
    ANY,
    BOOL,
    BYTES,
    DATE,
    DATETIME,
    EMAIL,
    FLOAT,
    INT,
    SQL,
    STR,
    Arg,
    DynSelectType,
    ListType,
    ObjectType,
    OneOfType,
    Prop,
    ResourceType,
    Scalar,
    Signature,
    StrType,
    Typ,
)

# --------------------------------------------------------------------------- property_for_typ

PROPERTIES: list[tuple[Typ, dict[str, Any]]] = [
    (INT, {"type": "integer"}),
    (FLOAT, {"type": "number"}),
    (BOOL, {"type": "boolean"}),
    (STR, {"type": "string", "originalType": "string"}),
    (StrType(("a", "b")), {"type": "string", "enum": ["a", "b"], "originalType": "enum"}),
    (BYTES, {"type": "string", "contentEncoding": "base64", "originalType": "bytes"}),
    (DATETIME, {"type": "string", "format": "date-time"}),
    (DATE, {"type": "string", "format": "date"}),
    (EMAIL, {"type": "string", "format": "email"}),
    (SQL, {"type": "string", "format": "sql"}),
    (Scalar("yaml"), {"type": "string", "format": "yaml"}),
    (ResourceType("postgresql"), {"type": "object", "format": "resource-postgresql"}),
    (ObjectType(), {"type": "object"}),
    (ObjectType("Cfg", None), {"type": "object", "format": "resource-Cfg"}),
    (
        ObjectType(None, (Prop("port", INT), Prop("host", STR))),
        {
            "type": "object",
            "properties": {
                "port": {"type": "integer", "description": ""},
                "host": {"type": "string", "originalType": "string", "description": ""},
            },
        },
    ),
    (
        ObjectType("Cfg", (Prop("on", BOOL),)),
        {
            "type": "object",
            "format": "resource-Cfg",
            "properties": {"on": {"type": "boolean", "description": ""}},
        },
    ),
    (
        OneOfType((("Circle", (Prop("r", FLOAT),)), ("Empty", ()))),
        {
            "type": "object",
            "oneOf": [
                {
                    "type": "object",
                    "title": "Circle",
                    "properties": {"r": {"type": "number", "description": ""}},
                },
                {"type": "object", "title": "Empty", "properties": {}},
            ],
        },
    ),
    (DynSelectType("pick"), {"type": "object", "format": "dynselect-pick"}),
    (DynSelectType("many", multi=True), {"type": "object", "format": "dynmultiselect-many"}),
    (ANY, {}),
    (
        ListType(INT),
        {"type": "array", "items": {"type": "number"}, "originalType": "number[]"},
    ),
    (
        ListType(FLOAT),
        {"type": "array", "items": {"type": "number"}, "originalType": "number[]"},
    ),
    (
        ListType(BOOL),
        {"type": "array", "items": {"type": "boolean"}, "originalType": "boolean[]"},
    ),
    (
        ListType(BYTES),
        {
            "type": "array",
            "items": {"type": "string", "contentEncoding": "base64"},
            "originalType": "bytes[]",
        },
    ),
    (
        ListType(STR),
        {"type": "array", "items": {"type": "string"}, "originalType": "string[]"},
    ),
    (
        ListType(StrType(("x", "y"))),
        {
            "type": "array",
            "items": {"type": "string", "enum": ["x", "y"]},
            "originalType": "enum[]",
        },
    ),
    (
        ListType(ResourceType("s3")),
        {
            "type": "array",
            "items": {"type": "resource", "resourceType": "s3"},
            "originalType": "resource[]",
        },
    ),
    (
        ListType(ObjectType(None, (Prop("k", STR),))),
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "k": {"type": "string", "originalType": "string", "description": ""}
                },
            },
            "originalType": "record[]",
        },
    ),
    (
        ListType(ObjectType()),
        {"type": "array", "items": {"type": "object"}, "originalType": "object[]"},
    ),
    (ListType(ANY), {"type": "array", "items": {}, "originalType": "object[]"}),
    (
        ListType(ListType(INT)),
        {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}, "originalType": "number[]"},
            "originalType": "object[]",
        },
    ),
]


@pytest.mark.parametrize(
    ("typ", "expected"), PROPERTIES, ids=[f"{i}-{t[0]!r}"[:60] for i, t in enumerate(PROPERTIES)]
)
def test_property_for_typ(typ: Typ, expected: dict[str, Any]) -> None:
    """Each type maps to exactly the property Windmill's table gives it."""
    assert property_for_typ(typ) == expected


def test_unknown_type_has_no_type_key() -> None:
    """A parameter of unknown type accepts any value: its property has no "type"."""
    assert "type" not in property_for_typ(ANY)


def test_property_for_typ_rejects_non_types() -> None:
    """Something that is not a signature type raises TypeError."""
    with pytest.raises(TypeError):
        property_for_typ("int")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ signature_to_schema


def test_empty_schema() -> None:
    """A script without parameters has an object schema with nothing required."""
    assert empty_schema() == {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {},
        "required": [],
    }
    assert JSON_SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"


def _sig() -> Signature:
    return Signature(
        args=(
            Arg("zeta", STR, description="Last letter"),
            Arg("alpha", INT, default=3, has_default=True),
            Arg("mid", ANY, default=None, has_default=True),
            Arg("flag", BOOL),
        )
    )


def test_signature_to_schema_basic_shape() -> None:
    """$schema, properties in signature order, required = args without a default."""
    schema = signature_to_schema(_sig())
    assert schema["$schema"] == JSON_SCHEMA_DIALECT
    assert schema["type"] == "object"
    assert list(schema["properties"]) == ["zeta", "alpha", "mid", "flag"]
    assert schema["required"] == ["zeta", "flag"]
    assert "additionalProperties" not in schema
    assert "order" not in schema


def test_signature_to_schema_defaults_and_descriptions() -> None:
    """Default is the arg's default, or null without one; description defaults to ""."""
    props = signature_to_schema(_sig())["properties"]
    assert props["zeta"] == {
        "type": "string",
        "originalType": "string",
        "description": "Last letter",
        "default": None,
    }
    assert props["alpha"] == {"type": "integer", "description": "", "default": 3}
    assert props["mid"] == {"description": "", "default": None}
    assert props["flag"]["default"] is None


def test_signature_to_schema_star_kwargs_allows_additional_properties() -> None:
    """A main taking **kwargs accepts arguments the schema does not name."""
    sig = Signature(args=(Arg("a", INT),), star_kwargs=True)
    assert signature_to_schema(sig)["additionalProperties"] is True
    assert "additionalProperties" not in signature_to_schema(Signature(star_args=True))


def test_signature_to_schema_keeps_user_edits() -> None:
    """Keys a user edited in the previous schema survive re-inference of the same parameter."""
    previous = {
        "properties": {
            "alpha": {
                "type": "integer",
                "description": "edited description",
                "min": 1,
                "max": 10,
                "title": "Alpha",
                "placeholder": "3",
                "password": True,
                "customErrorMessage": "1 to 10",
                "showExpr": "fields.flag",
                "currency": "EUR",
                "currencyLocale": "fr-FR",
                "order": ["x"],
                "dateFormat": "dd/MM",
                "required": True,
                "multiselect": ["a"],
                # Not a user edit: re-inferred from the new signature.
                "default": 99,
                "format": "stale",
            },
            "zeta": {"pattern": "^[a-z]+$", "description": "ignored: the code has one"},
            "gone": {"description": "a parameter that no longer exists"},
        }
    }
    schema = signature_to_schema(_sig(), previous)
    alpha = schema["properties"]["alpha"]
    assert alpha == {
        "type": "integer",
        "description": "edited description",
        "min": 1,
        "max": 10,
        "title": "Alpha",
        "placeholder": "3",
        "password": True,
        "customErrorMessage": "1 to 10",
        "showExpr": "fields.flag",
        "currency": "EUR",
        "currencyLocale": "fr-FR",
        "order": ["x"],
        "dateFormat": "dd/MM",
        "required": True,
        "multiselect": ["a"],
        "default": 3,
    }
    zeta = schema["properties"]["zeta"]
    assert zeta["pattern"] == "^[a-z]+$"
    # A description written in the code (docstring) wins over the stored one.
    assert zeta["description"] == "Last letter"
    assert "gone" not in schema["properties"]


def test_signature_to_schema_keeps_order_of_previous() -> None:
    """A previous top-level ``order`` is kept, minus vanished names, plus new ones at the end."""
    previous = {"order": ["flag", "gone", "alpha"], "properties": {}}
    schema = signature_to_schema(_sig(), previous)
    assert schema["order"] == ["flag", "alpha", "zeta", "mid"]


def test_signature_to_schema_previous_without_properties() -> None:
    """A previous schema with null properties is accepted and changes nothing."""
    assert signature_to_schema(_sig(), {"properties": None}) == signature_to_schema(_sig())


# ------------------------------------------------------------------------------ validate_args


def _schema(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


@pytest.mark.parametrize("args", [[1], "x", None, 3])
def test_validate_args_requires_an_object(args: Any) -> None:
    """Arguments that are not a JSON object are rejected with no field."""
    with pytest.raises(ArgumentError, match="must be a JSON object") as info:
        validate_args(_schema(), args)
    assert info.value.field is None


def test_validate_args_without_schema_accepts_any_object() -> None:
    """No stored schema: any object is returned unchanged."""
    args = {"anything": [1, 2]}
    assert validate_args(None, args) is args
    assert validate_args({}, args) is args


def test_validate_args_returns_equal_args_with_integral_floats_as_ints() -> None:
    """Valid arguments come back equal; 5.0 given for an integer comes back as 5."""
    schema = _schema(n={"type": "integer"}, x={"type": "number"}, s={"type": "string"})
    assert validate_args(schema, {"n": 3, "x": 1.5, "s": "a"}) == {"n": 3, "x": 1.5, "s": "a"}
    out = validate_args(schema, {"n": 5.0, "x": 2.0, "s": "b"})
    assert out == {"n": 5, "x": 2.0, "s": "b"}
    assert type(out["n"]) is int and type(out["x"]) is float


def test_missing_required_argument_names_the_field() -> None:
    """A required argument that is absent is reported by name."""
    schema = {
        "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
        "required": ["a", "b"],
    }
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"a": 1})
    assert info.value.field == "b"
    assert str(info.value) == "argument 'b': missing required argument"


def test_unknown_argument_names_it_and_lists_known_ones() -> None:
    """A misspelled argument is an error naming it and listing the script's parameters."""
    schema = {"properties": {"name": {"type": "string"}, "count": {"type": "integer"}}}
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"nmae": "x"})
    assert info.value.field == "nmae"
    assert "unknown argument" in str(info.value)
    assert "name, count" in str(info.value)


def test_unknown_argument_with_no_parameters_says_none() -> None:
    """When the script takes nothing the known list reads "none"."""
    with pytest.raises(ArgumentError, match="takes: none"):
        validate_args({"type": "object", "properties": {}}, {"x": 1})


def test_unknown_argument_allowed_by_additional_properties_or_flag() -> None:
    """additionalProperties: true (or allow_extra) lets unknown arguments through."""
    schema = {"properties": {"a": {"type": "integer"}}, "additionalProperties": True}
    assert validate_args(schema, {"a": 1, "extra": "x"}) == {"a": 1, "extra": "x"}
    strict = {"properties": {"a": {"type": "integer"}}}
    assert validate_args(strict, {"a": 1, "extra": "x"}, allow_extra=True) == {
        "a": 1,
        "extra": "x",
    }


@pytest.mark.parametrize("good", [0, -3, 5.0, 2**70])
def test_integer_accepts_integral_numbers(good: Any) -> None:
    """An integer parameter takes ints and integral floats such as 5.0."""
    validate_args(_schema(n={"type": "integer"}), {"n": good})


@pytest.mark.parametrize("bad", [True, False, 5.5, "5", None, [1]])
def test_integer_rejects_others(bad: Any) -> None:
    """True is not an integer, nor are 5.5, "5" or null for a required argument."""
    with pytest.raises(ArgumentError, match="expected an integer") as info:
        validate_args(_schema(n={"type": "integer"}), {"n": bad})
    assert info.value.field == "n"


@pytest.mark.parametrize("good", [1, 1.5, -0.0])
def test_number_accepts_ints_and_floats(good: Any) -> None:
    """A number parameter takes ints and floats."""
    validate_args(_schema(x={"type": "number"}), {"x": good})


@pytest.mark.parametrize("bad", [True, "1.5", {}])
def test_number_rejects_bool_and_strings(bad: Any) -> None:
    """A boolean is not a number."""
    with pytest.raises(ArgumentError, match="expected a number"):
        validate_args(_schema(x={"type": "number"}), {"x": bad})


@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_boolean_is_strict(bad: Any) -> None:
    """Only true and false are booleans."""
    with pytest.raises(ArgumentError, match="expected a boolean"):
        validate_args(_schema(b={"type": "boolean"}), {"b": bad})


def test_string_rejects_numbers() -> None:
    """A number is not a string; the message describes the value given."""
    with pytest.raises(ArgumentError, match=r"expected a string, got an integer \(12\)"):
        validate_args(_schema(s={"type": "string"}), {"s": 12})


def test_nested_object_error_has_dotted_path() -> None:
    """A bad property of an object argument is reported as ``cfg.port``."""
    schema = _schema(
        cfg={"type": "object", "properties": {"port": {"type": "integer"}, "host": {}}}
    )
    validate_args(schema, {"cfg": {"port": 5432, "host": None}})
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"cfg": {"port": "5432"}})
    assert info.value.field == "cfg.port"
    assert str(info.value).startswith("argument 'cfg.port': expected an integer")


def test_object_rejects_non_objects() -> None:
    """An object parameter takes a JSON object only."""
    with pytest.raises(ArgumentError, match="expected an object"):
        validate_args(_schema(cfg={"type": "object"}), {"cfg": [1]})


def test_list_item_error_has_index_path() -> None:
    """A bad list item is reported as ``xs[2]``."""
    schema = _schema(xs={"type": "array", "items": {"type": "number"}})
    validate_args(schema, {"xs": [1, 2.5, 3]})
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"xs": [1, 2, "three"]})
    assert info.value.field == "xs[2]"
    assert "expected a number" in str(info.value)


def test_array_rejects_non_lists() -> None:
    """An array parameter takes a JSON array only."""
    with pytest.raises(ArgumentError, match="expected an array"):
        validate_args(_schema(xs={"type": "array", "items": {}}), {"xs": "a,b"})


def test_enum_rejects_other_values_and_lists_choices() -> None:
    """A value outside an enum is rejected and the choices are listed."""
    schema = _schema(color={"type": "string", "enum": ["red", "green"]})
    validate_args(schema, {"color": "green"})
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"color": "blue"})
    assert info.value.field == "color"
    assert "'blue' is not one of 'red', 'green'" in str(info.value)


def test_enum_of_list_items() -> None:
    """Each item of an enum list is checked against the enum, with its index."""
    schema = _schema(cs={"type": "array", "items": {"type": "string", "enum": ["a", "b"]}})
    validate_args(schema, {"cs": ["a", "b", "a"]})
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"cs": ["a", "z"]})
    assert info.value.field == "cs[1]"


@pytest.mark.parametrize(
    "good", ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00+02:00", "2024-01-31T12:00:00.123456"]
)
def test_date_time_accepts_iso(good: str) -> None:
    """ISO 8601 date-times, with Z or an offset, are accepted."""
    validate_args(_schema(when={"type": "string", "format": "date-time"}), {"when": good})


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01T00:00:00", "31/01/2024 12:00"])
def test_date_time_rejects_garbage_with_example(bad: str) -> None:
    """A bad date-time names the field and shows an example of the expected form."""
    with pytest.raises(ArgumentError) as info:
        validate_args(_schema(when={"type": "string", "format": "date-time"}), {"when": bad})
    assert info.value.field == "when"
    assert "2024-01-31T12:00:00Z" in str(info.value)
    assert repr(bad) in str(info.value)


def test_date_accepts_iso_date() -> None:
    """A date parameter takes YYYY-MM-DD."""
    validate_args(_schema(day={"type": "string", "format": "date"}), {"day": "2024-02-29"})


@pytest.mark.parametrize("bad", ["2023-02-29", "tomorrow", "2024-01-31T10:00:00"])
def test_date_rejects_bad_dates_with_example(bad: str) -> None:
    """A bad date names the field and gives the example 2024-01-31."""
    with pytest.raises(ArgumentError) as info:
        validate_args(_schema(day={"type": "string", "format": "date"}), {"day": bad})
    assert info.value.field == "day"
    assert "such as 2024-01-31" in str(info.value)


def test_base64_is_checked() -> None:
    """A bytes parameter takes valid base64 only."""
    schema = _schema(data={"type": "string", "contentEncoding": "base64"})
    validate_args(schema, {"data": "aGVsbG8="})
    with pytest.raises(ArgumentError, match="expected base64-encoded bytes") as info:
        validate_args(schema, {"data": "not base64!"})
    assert info.value.field == "data"


def test_null_allowed_for_optional_arguments_only() -> None:
    """Null passes for an argument with a default; a required one must have a value."""
    schema = {
        "properties": {"opt": {"type": "integer"}, "req": {"type": "integer"}},
        "required": ["req"],
    }
    validate_args(schema, {"opt": None, "req": 1})
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"req": None})
    assert info.value.field == "req"
    assert "got null" in str(info.value)


def test_null_allowed_for_nullable_required_argument() -> None:
    """A required property marked nullable accepts null."""
    schema = {"properties": {"req": {"type": "integer", "nullable": True}}, "required": ["req"]}
    validate_args(schema, {"req": None})


def test_unknown_type_accepts_anything() -> None:
    """A property without a type accepts any JSON value."""
    schema = _schema(x={})
    for value in (1, "s", [1], {"a": 1}, True, 1.5):
        validate_args(schema, {"x": value})


def test_schema_built_from_signature_validates() -> None:
    """A schema from signature_to_schema checks the arguments it describes."""
    sig = Signature(
        args=(
            Arg("n", INT),
            Arg("tags", ListType(STR), default=[], has_default=True),
            Arg("when", DATETIME, default=None, has_default=True),
        )
    )
    schema = signature_to_schema(sig)
    validate_args(schema, {"n": 1, "tags": ["a"], "when": "2024-01-31T00:00:00Z"})
    validate_args(schema, {"n": 1, "when": None})
    with pytest.raises(ArgumentError, match="missing required argument"):
        validate_args(schema, {"tags": []})
    with pytest.raises(ArgumentError) as info:
        validate_args(schema, {"n": 1, "tags": ["a", 2]})
    assert info.value.field == "tags[1]"


def test_lists_of_lists_and_of_dates_take_their_real_items() -> None:
    """Nested lists and lists of dates: the schema says what the items are, so valid
    arguments pass and wrong ones are named."""
    from gristmill.runtimes.signature import DATETIME, INT, ListType

    matrix = property_for_typ(ListType(ListType(INT)))
    assert matrix["items"] == {
        "type": "array",
        "items": {"type": "number"},
        "originalType": "number[]",
    }
    dates = property_for_typ(ListType(DATETIME))
    assert dates["items"] == {"type": "string", "format": "date-time"}
    schema = {"type": "object", "properties": {"m": matrix, "d": dates}, "required": ["m", "d"]}
    assert validate_args(schema, {"m": [[1, 2], [3]], "d": ["2024-01-02T03:04:05Z"]})
    with pytest.raises(ArgumentError, match=r"m\[1\]\[0\]"):
        validate_args(schema, {"m": [[1], ["x"]], "d": []})
    with pytest.raises(ArgumentError, match=r"d\[0\]"):
        validate_args(schema, {"m": [], "d": ["yesterday"]})
