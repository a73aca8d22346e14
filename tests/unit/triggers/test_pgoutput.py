"""Decoding pgoutput messages (protocol version 1), built byte by byte as Postgres sends
them (the integration test reads real ones from a real slot)."""

from __future__ import annotations

import struct

import pytest
from gristmill.triggers.pgoutput import (
    Begin,
    Change,
    Commit,
    Decoder,
    PgOutputError,
    Relation,
    convert,
    format_lsn,
    parse_lsn,
)

INT4, TEXT, BOOL, JSONB, NUMERIC, FLOAT8 = 23, 25, 16, 3802, 1700, 701


def s(text: str) -> bytes:
    return text.encode() + b"\x00"


def relation(oid: int, schema: str, table: str, *columns: tuple[str, int, bool]) -> bytes:
    out = b"R" + struct.pack(">I", oid) + s(schema) + s(table) + b"d"
    out += struct.pack(">h", len(columns))
    for name, type_oid, key in columns:
        out += struct.pack(">b", 1 if key else 0) + s(name) + struct.pack(">Ii", type_oid, -1)
    return out


def tuple_data(*values: str | bytes | None) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value == b"u":
            out += b"u"
        else:
            raw = value.encode() if isinstance(value, str) else value
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


ORDERS = relation(
    16384, "public", "orders", ("id", INT4, True), ("note", TEXT, False), ("paid", BOOL, False)
)


def decoder_with_orders() -> Decoder:
    decoder = Decoder()
    rel = decoder.decode(ORDERS)
    assert rel == Relation(16384, "public", "orders", rel.columns)  # type: ignore[union-attr]
    return decoder


def test_begin_and_commit() -> None:
    d = Decoder()
    begin = b"B" + struct.pack(">QqI", 0x16B374D848, 0, 742)
    assert d.decode(begin) == Begin(final_lsn=0x16B374D848, xid=742)
    commit = b"C" + struct.pack(">bQQq", 0, 0x100, 0x128, 0)
    assert d.decode(commit) == Commit(commit_lsn=0x100, end_lsn=0x128)


def test_relation_describes_columns_and_their_key() -> None:
    rel = Decoder().decode(ORDERS)
    assert isinstance(rel, Relation)
    assert [(c.name, c.type_oid, c.key) for c in rel.columns] == [
        ("id", INT4, True),
        ("note", TEXT, False),
        ("paid", BOOL, False),
    ]


def test_pg_catalog_is_sent_as_an_empty_schema() -> None:
    rel = Decoder().decode(relation(1, "", "t", ("a", TEXT, False)))
    assert isinstance(rel, Relation) and rel.schema_name == "pg_catalog"


def test_insert_with_typed_values_and_null() -> None:
    d = decoder_with_orders()
    change = d.decode(b"I" + struct.pack(">I", 16384) + b"N" + tuple_data("7", None, "t"))
    assert isinstance(change, Change)
    assert change.transaction_type == "insert"
    assert (change.relation.schema_name, change.relation.table_name) == ("public", "orders")
    assert change.row == {"id": 7, "note": None, "paid": True}
    assert change.old_row is None


def test_update_with_old_tuple_and_unchanged_toast() -> None:
    d = decoder_with_orders()
    data = (
        b"U"
        + struct.pack(">I", 16384)
        + b"O"
        + tuple_data("7", "before", "f")
        + b"N"
        + tuple_data("7", b"u", "t")
    )
    change = d.decode(data)
    assert isinstance(change, Change)
    assert change.transaction_type == "update"
    assert change.row == {"id": 7, "paid": True}  # the unchanged TOASTed column is not sent
    assert change.old_row == {"id": 7, "note": "before", "paid": False}


def test_update_without_old_tuple() -> None:
    d = decoder_with_orders()
    change = d.decode(b"U" + struct.pack(">I", 16384) + b"N" + tuple_data("8", "x", "f"))
    assert isinstance(change, Change) and change.row == {"id": 8, "note": "x", "paid": False}


def test_delete_sends_the_key() -> None:
    d = decoder_with_orders()
    change = d.decode(b"D" + struct.pack(">I", 16384) + b"K" + tuple_data("7", None, None))
    assert isinstance(change, Change)
    assert change.transaction_type == "delete"
    assert change.row == {"id": 7, "note": None, "paid": None}


@pytest.mark.parametrize("tag", [b"Y", b"O", b"T", b"M"])
def test_messages_a_trigger_ignores(tag: bytes) -> None:
    assert Decoder().decode(tag + b"\x00\x00\x00\x01") is None


def test_a_change_before_its_table_is_refused() -> None:
    with pytest.raises(PgOutputError, match="before that table's description"):
        Decoder().decode(b"I" + struct.pack(">I", 99) + b"N" + tuple_data("1"))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"Z", "unknown pgoutput message type"),
        (b"B\x00\x00", "short"),
        (b"R" + struct.pack(">I", 1) + b"public", "without its end"),
    ],
)
def test_malformed_messages_say_what_is_wrong(data: bytes, match: str) -> None:
    with pytest.raises(PgOutputError, match=match):
        Decoder().decode(data)


def test_a_row_with_more_columns_than_its_table_is_refused() -> None:
    d = decoder_with_orders()
    with pytest.raises(PgOutputError, match="has 4 columns"):
        d.decode(b"I" + struct.pack(">I", 16384) + b"N" + tuple_data("1", "a", "t", "x"))


@pytest.mark.parametrize(
    ("type_oid", "text", "value"),
    [
        (INT4, "-12", -12),
        (20, "9007199254740993", 9007199254740993),
        (FLOAT8, "1.5", 1.5),
        (FLOAT8, "NaN", "NaN"),
        (FLOAT8, "Infinity", "Infinity"),
        (NUMERIC, "12.50", "12.50"),  # exact, as text (Windmill's too)
        (JSONB, '{"a": [1, true]}', {"a": [1, True]}),
        (BOOL, "f", False),
        (TEXT, "héllo", "héllo"),
        (2950, "0e4a4c5c-0000-4000-8000-000000000000", "0e4a4c5c-0000-4000-8000-000000000000"),
        (INT4, "not a number", "not a number"),
    ],
)
def test_convert(type_oid: int, text: str, value: object) -> None:
    assert convert(type_oid, text) == value


def test_lsn_text_round_trip() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(parse_lsn("0/0")) == "0/0"
    with pytest.raises(PgOutputError, match="not an LSN"):
        parse_lsn("16B374D848")
    with pytest.raises(PgOutputError, match="not an LSN"):
        parse_lsn("x/y")
