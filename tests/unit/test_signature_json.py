"""The JSON form of signatures (Windmill's parser form) and type inference from defaults."""

from __future__ import annotations

from typing import Any

import pytest
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
    infer_typ_from_value,
    signature_from_json,
    signature_to_json,
    typ_from_json,
    typ_to_json,
)

# Every kind of type, with the JSON Windmill's parsers write for it.
TYPES: list[tuple[Typ, Any]] = [
    (INT, "int"),
    (FLOAT, "float"),
    (BOOL, "bool"),
    (BYTES, "bytes"),
    (DATETIME, "datetime"),
    (DATE, "date"),
    (EMAIL, "email"),
    (SQL, "sql"),
    (Scalar("yaml"), "yaml"),
    (ANY, "unknown"),
    (STR, {"str": None}),
    (StrType(("a", "b")), {"str": ["a", "b"]}),
    (StrType(()), {"str": []}),
    (ListType(INT), {"list": "int"}),
    (ListType(ListType(STR)), {"list": {"list": {"str": None}}}),
    (ResourceType("postgresql"), {"resource": "postgresql"}),
    (ObjectType(), {"object": {"name": None, "props": None}}),
    (ObjectType("Point", None), {"object": {"name": "Point", "props": None}}),
    (
        ObjectType(None, (Prop("x", INT), Prop("tags", ListType(STR)))),
        {
            "object": {
                "name": None,
                "props": [
                    {"key": "x", "typ": "int"},
                    {"key": "tags", "typ": {"list": {"str": None}}},
                ],
            }
        },
    ),
    (ObjectType("Empty", ()), {"object": {"name": "Empty", "props": []}}),
    (
        OneOfType((("A", (Prop("a", INT),)), ("B", ()))),
        {
            "oneof": [
                {"label": "A", "properties": [{"key": "a", "typ": "int"}]},
                {"label": "B", "properties": []},
            ]
        },
    ),
    (DynSelectType("pick"), {"dynselect": "pick"}),
    (DynSelectType("pick_many", multi=True), {"dynmultiselect": "pick_many"}),
]


@pytest.mark.parametrize(("typ", "json_form"), TYPES, ids=[repr(t[1]) for t in TYPES])
def test_typ_json_round_trip(typ: Typ, json_form: Any) -> None:
    """typ_to_json writes Windmill's form and typ_from_json reads it back to an equal type."""
    assert typ_to_json(typ) == json_form
    assert typ_from_json(json_form) == typ


def test_typ_from_json_plain_str_string() -> None:
    """The bare string "str" reads as an unrestricted string."""
    assert typ_from_json("str") == STR


def test_typ_from_json_older_object_form() -> None:
    """Windmill's older ``{"object": [props]}`` form reads as an unnamed object with props."""
    value = {"object": [{"key": "port", "typ": "int"}, {"key": "host", "typ": {"str": None}}]}
    assert typ_from_json(value) == ObjectType(None, (Prop("port", INT), Prop("host", STR)))


def test_typ_from_json_older_empty_object_form() -> None:
    """An empty older-form object has known (empty) props, not unknown ones."""
    assert typ_from_json({"object": []}) == ObjectType(None, ())


def test_oneof_variant_without_properties_reads_as_empty() -> None:
    """A oneOf variant whose properties are null reads as an empty tuple of props."""
    assert typ_from_json({"oneof": [{"label": "X", "properties": None}]}) == OneOfType((("X", ()),))


@pytest.mark.parametrize("bad", [{"nope": 1}, {"list": "int", "str": None}, 3, None, []])
def test_typ_from_json_rejects_other_values(bad: Any) -> None:
    """Anything that is not a type's JSON form raises ValueError quoting it."""
    with pytest.raises(ValueError, match="not a signature type"):
        typ_from_json(bad)


def test_typ_to_json_rejects_non_types() -> None:
    """Serializing something that is not a signature type raises TypeError."""
    with pytest.raises(TypeError, match="not a signature type"):
        typ_to_json("int")  # type: ignore[arg-type]


def _signature() -> Signature:
    return Signature(
        args=(
            Arg("name", STR, default="world", has_default=True, otyp="str"),
            Arg("count", INT, description="How many"),
            Arg("maybe", ANY, default=None, has_default=True),
            Arg(
                "cfg",
                ObjectType(None, (Prop("port", INT),)),
                default={"port": 5432},
                has_default=True,
            ),
            Arg("db", ResourceType("postgresql")),
            Arg("when", DATETIME, default="<function call>", has_default=True),
        ),
        star_args=True,
        star_kwargs=True,
        has_preprocessor=True,
    )


def test_signature_json_round_trip() -> None:
    """signature_from_json(signature_to_json(sig)) equals sig, flags and args included."""
    sig = _signature()
    as_json = signature_to_json(sig)
    assert signature_from_json(as_json) == sig


def test_signature_to_json_shape() -> None:
    """The JSON form lists args in order with every field spelled out."""
    as_json = signature_to_json(_signature())
    assert as_json["star_args"] is True
    assert as_json["star_kwargs"] is True
    assert as_json["has_preprocessor"] is True
    assert [a["name"] for a in as_json["args"]] == ["name", "count", "maybe", "cfg", "db", "when"]
    assert as_json["args"][0] == {
        "name": "name",
        "typ": {"str": None},
        "default": "world",
        "has_default": True,
        "otyp": "str",
        "description": None,
    }
    assert as_json["args"][1]["has_default"] is False
    assert as_json["args"][1]["description"] == "How many"
    # An explicit None default is kept apart from "no default".
    assert as_json["args"][2]["default"] is None
    assert as_json["args"][2]["has_default"] is True


def test_signature_from_json_fills_missing_optional_keys() -> None:
    """Only name and typ are needed per arg; flags default to false."""
    sig = signature_from_json({"args": [{"name": "x", "typ": "int"}]})
    assert sig == Signature(args=(Arg("x", INT),))
    assert sig.star_args is False and sig.star_kwargs is False and sig.has_preprocessor is False


def test_empty_signature_round_trip() -> None:
    """A main without parameters survives the round trip."""
    assert signature_from_json(signature_to_json(Signature())) == Signature()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, BOOL),
        (False, BOOL),
        (0, INT),
        (-7, INT),
        (1.5, FLOAT),
        (0.0, FLOAT),
        ("hi", STR),
        ("", STR),
        (None, ANY),
        ([], ListType(ANY)),
        ([1, 2], ListType(INT)),
        ([[True]], ListType(ListType(BOOL))),
        ({}, ObjectType(None, ())),
        (
            {"a": 1, "b": "x", "c": {"d": 2.5}},
            ObjectType(
                None,
                (
                    Prop("a", INT),
                    Prop("b", STR),
                    Prop("c", ObjectType(None, (Prop("d", FLOAT),))),
                ),
            ),
        ),
    ],
)
def test_infer_typ_from_value(value: Any, expected: Typ) -> None:
    """A default's JSON value implies its type (bool before int; an empty list says nothing of its items)."""
    assert infer_typ_from_value(value) == expected
