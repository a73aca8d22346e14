"""Decoding Postgres's ``pgoutput`` logical replication messages (protocol version 1).

The Postgres trigger reads its replication slot with SQL
(``pg_logical_slot_peek_binary_changes``), which hands back each message of the built-in
``pgoutput`` plugin as bytes. This module turns those bytes into Python values: transaction
boundaries, the description of a table (sent before its first change in each read), and the
rows inserted, updated and deleted, their columns converted from Postgres's text form to JSON
values by their type. Pure: no I/O, so that it is tested on bytes alone.

The format is Postgres's "Logical Replication Message Formats" (protocol chapter): integers
big-endian, strings NUL-terminated, a tuple as a column count then one tagged value per
column (``n`` null, ``u`` unchanged TOASTed value, ``t`` text).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from typing import Any

from gristmill.errors import GristmillError

__all__ = [
    "Begin",
    "Change",
    "Column",
    "Commit",
    "Decoder",
    "PgOutputError",
    "Relation",
    "format_lsn",
    "parse_lsn",
]


class PgOutputError(GristmillError, ValueError):
    """Bytes that are not a pgoutput message this decoder knows how to read."""


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    #: Part of the table's replica identity (its key, as sent in a delete's old tuple).
    key: bool


@dataclasses.dataclass(frozen=True)
class Relation:
    """A table as pgoutput describes it before sending its changes."""

    oid: int
    schema_name: str
    table_name: str
    columns: tuple[Column, ...]


@dataclasses.dataclass(frozen=True)
class Begin:
    final_lsn: int
    xid: int


@dataclasses.dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclasses.dataclass(frozen=True)
class Change:
    """A row inserted, updated or deleted.

    ``row`` is the new row (insert, update) or what the old one's replica identity gives
    (delete: its key columns by default, every column with ``REPLICA IDENTITY FULL``).
    ``old_row`` is the old row of an update when the table sends it (a changed key, or
    ``REPLICA IDENTITY FULL``). A column whose TOASTed value did not change is absent from
    an update's ``row`` (pgoutput does not send it).
    """

    transaction_type: str  # "insert", "update" or "delete" (Windmill's values)
    relation: Relation
    row: dict[str, Any]
    old_row: dict[str, Any] | None = None


Message = Begin | Commit | Relation | Change | None


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` (Postgres's text form of an LSN) as an integer."""
    high, sep, low = text.partition("/")
    if not sep:
        raise PgOutputError(f"not an LSN: {text!r} (expected two hex numbers as X/Y)")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise PgOutputError(f"not an LSN: {text!r} (expected two hex numbers as X/Y)") from None


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise PgOutputError(
                f"message {self.data[:1]!r} ends after {len(self.data)} bytes, "
                f"{end - len(self.data)} short of what it announces"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> bytes:
        return self._take(1)

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return struct.unpack(">h", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self._take(4))[0]

    def uint32(self) -> int:
        return struct.unpack(">I", self._take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self._take(8))[0]

    def uint64(self) -> int:
        return struct.unpack(">Q", self._take(8))[0]

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise PgOutputError(f"message {self.data[:1]!r} has a string without its end")
        text = self.data[self.pos : end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return text


# Type OIDs of pg_type (fixed in Postgres's catalog) whose text form maps to a JSON value
# other than a string.
_BOOL = 16
_INTEGERS = frozenset({20, 21, 23, 26})  # int8, int2, int4, oid
_FLOATS = frozenset({700, 701})  # float4, float8
_JSON = frozenset({114, 3802})  # json, jsonb


def convert(type_oid: int, text: str) -> Any:
    """A column's text form as the JSON value a script receives: booleans, integers and
    floats as numbers, ``json``/``jsonb`` parsed, everything else (``numeric``, exact, as
    Windmill sends it; dates, uuids, arrays...) the text Postgres prints for it."""
    try:
        if type_oid == _BOOL:
            return text == "t"
        if type_oid in _INTEGERS:
            return int(text)
        if type_oid in _FLOATS:
            value = float(text)
            # NaN and infinities are not JSON: keep Postgres's text for them.
            return value if math.isfinite(value) else text
        if type_oid in _JSON:
            return json.loads(text)
    except (ValueError, OverflowError):
        return text
    return text


class Decoder:
    """Decodes one read of a slot: keeps the tables described so far (pgoutput describes a
    table once per decoding session, before its first change)."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}

    def decode(self, data: bytes) -> Message:
        """One message; ``None`` for those a trigger has no use for (types, origins,
        truncates, logical messages)."""
        if not data:
            raise PgOutputError("empty pgoutput message")
        r = _Reader(data)
        tag = r.byte()
        if tag == b"B":
            final_lsn = r.uint64()
            r.int64()  # commit timestamp
            return Begin(final_lsn=final_lsn, xid=r.uint32())
        if tag == b"C":
            r.int8()  # flags (unused)
            commit_lsn = r.uint64()
            return Commit(commit_lsn=commit_lsn, end_lsn=r.uint64())
        if tag == b"R":
            return self._relation(r)
        if tag == b"I":
            relation = self._known(r.uint32())
            if r.byte() != b"N":
                raise PgOutputError("insert message without its new tuple ('N')")
            return Change("insert", relation, self._tuple(r, relation))
        if tag == b"U":
            relation = self._known(r.uint32())
            old_row = None
            marker = r.byte()
            if marker in (b"K", b"O"):
                old_row = self._tuple(r, relation)
                marker = r.byte()
            if marker != b"N":
                raise PgOutputError(f"update message with {marker!r} where its new tuple was due")
            return Change("update", relation, self._tuple(r, relation), old_row)
        if tag == b"D":
            relation = self._known(r.uint32())
            marker = r.byte()
            if marker not in (b"K", b"O"):
                raise PgOutputError(f"delete message with {marker!r} where its old tuple was due")
            return Change("delete", relation, self._tuple(r, relation))
        if tag in (b"Y", b"O", b"T", b"M"):
            return None
        raise PgOutputError(f"unknown pgoutput message type {tag!r}")

    def _relation(self, r: _Reader) -> Relation:
        oid = r.uint32()
        schema_name = r.string() or "pg_catalog"  # pgoutput sends "" for pg_catalog
        table_name = r.string()
        r.int8()  # replica identity setting
        columns = []
        for _ in range(r.int16()):
            flags = r.int8()
            name = r.string()
            type_oid = r.uint32()
            r.int32()  # type modifier
            columns.append(Column(name=name, type_oid=type_oid, key=bool(flags & 1)))
        relation = Relation(oid, schema_name, table_name, tuple(columns))
        self.relations[oid] = relation
        return relation

    def _known(self, oid: int) -> Relation:
        relation = self.relations.get(oid)
        if relation is None:
            raise PgOutputError(f"a change of table {oid} came before that table's description")
        return relation

    def _tuple(self, r: _Reader, relation: Relation) -> dict[str, Any]:
        count = r.int16()
        if count > len(relation.columns):
            raise PgOutputError(
                f"a row of {relation.schema_name}.{relation.table_name} has {count} columns, "
                f"its description {len(relation.columns)}"
            )
        row: dict[str, Any] = {}
        for column in relation.columns[:count]:
            kind = r.byte()
            if kind == b"n":
                row[column.name] = None
            elif kind == b"u":
                continue  # unchanged TOASTed value: not sent
            elif kind in (b"t", b"b"):
                raw = r._take(r.int32())
                if kind == b"b":  # binary form (only with the "binary" option, not asked)
                    row[column.name] = raw.hex()
                else:
                    row[column.name] = convert(column.type_oid, raw.decode("utf-8", "replace"))
            else:
                raise PgOutputError(f"unknown column value kind {kind!r} in a tuple")
        return row
