"""PostgreSQL's lexical structure, as far as a script needs it: where its statements end,
where its ``$n`` parameters and ``--`` comments are.

Statements end at a ``;`` outside quotes, comments and dollar quotes, and, as psql does,
outside parentheses and outside the ``BEGIN ... END`` body of a ``CREATE FUNCTION`` or
``CREATE PROCEDURE`` written in SQL-standard form (``BEGIN ATOMIC``). Quoted text is skipped
with PostgreSQL's rules: ``'...'`` with ``''`` (and ``\\'`` in ``E'...'``), ``"..."`` with
``""``, ``$tag$ ... $tag$``, ``--`` to the end of the line, and nested ``/* ... */``.

The only errors found here are text that never ends (a quote, a dollar quote, a comment),
which PostgreSQL always refuses. Everything else is left to the server, which reports it
with its position when the job runs: no grammar checks PostgreSQL's whole syntax as well
as PostgreSQL does (tree-sitter-sql refuses a quarter of ordinary PostgreSQL statements:
``ON CONFLICT``, ``AT TIME ZONE``, ``DO`` blocks, ``ARRAY[...]::int[]``...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from gristmill import ScriptError

__all__ = ["Comment", "Lexed", "Param", "Statement", "lex", "line_column", "read_type_name"]

_IDENT_START: Final = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
_IDENT: Final = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
_NUMBER: Final = re.compile(r"[0-9][0-9A-Za-z_.]*")
_DOLLAR_TAG: Final = re.compile(
    r"\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$"
)
_PARAM: Final = re.compile(r"\$([0-9]+)")
_SPACE: Final = re.compile(r"\s*")
# A type name after `::` or `AS`: words (a multi-word type takes several), a schema prefix,
# a modifier in parentheses, array brackets.
_TYPE_WORD: Final = re.compile(r'"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*')
_MULTI_WORD_TYPES: Final = (
    ("double", "precision"),
    ("character", "varying"),
    ("char", "varying"),
    ("bit", "varying"),
    ("national", "character", "varying"),
    ("national", "character"),
)
_TIME_ZONE: Final = re.compile(r"\s+(with|without)\s+time\s+zone\b", re.IGNORECASE)
_MODIFIER: Final = re.compile(r"\s*\([^()]*\)")
_ARRAY_SUFFIX: Final = re.compile(r"\s*\[\s*[0-9]*\s*\]")
_TYPE_ALIASES: Final = {
    "character varying": "varchar",
    "char varying": "varchar",
    "national character varying": "varchar",
    "national character": "char",
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time with time zone": "timetz",
    "time without time zone": "time",
}
# Statements whose body may hold `;` between BEGIN and END (psql's rule).
_ROUTINE_HEADS: Final = (
    ("create", "function"),
    ("create", "procedure"),
    ("create", "or", "replace", "function"),
    ("create", "or", "replace", "procedure"),
)


@dataclass(frozen=True)
class Param:
    """One ``$n`` in the code: its number, where it is, and the type it is cast to."""

    index: int
    start: int
    end: int
    cast: str | None


@dataclass
class Statement:
    """One statement: ``source[start:end]``, its ``;`` included."""

    start: int
    end: int = -1
    params: list[Param] = field(default_factory=list)
    #: Whether anything but blanks and comments is in it.
    has_code: bool = False


@dataclass(frozen=True)
class Comment:
    """A ``--`` comment: where it starts and its text (``--`` included)."""

    start: int
    text: str


@dataclass(frozen=True)
class Lexed:
    source: str
    statements: list[Statement]
    comments: list[Comment]


def line_column(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of ``offset``."""
    line_start = source.rfind("\n", 0, offset) + 1
    return source.count("\n", 0, offset) + 1, offset - line_start + 1


def _error(source: str, offset: int, message: str) -> ScriptError:
    line, column = line_column(source, offset)
    return ScriptError(message, line=line, column=column)


def lex(source: str) -> Lexed:
    """Split ``source`` into statements; raise :class:`ScriptError` for unterminated text."""
    return _Lexer(source).run()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.statements: list[Statement] = []
        self.comments: list[Comment] = []
        self.current = Statement(0)
        self.parens = 0
        self.begin_depth = 0
        self.words: list[str] = []
        # The last two tokens, lowercased, to see `CAST ( $1 AS type )`.
        self.previous: list[str] = []

    def run(self) -> Lexed:
        src = self.src
        n = len(src)
        i = 0
        while i < n:
            c = src[i]
            if c == "-" and src.startswith("--", i):
                end = src.find("\n", i)
                end = n if end < 0 else end
                self.comments.append(Comment(i, src[i:end]))
                i = end
            elif c == "/" and src.startswith("/*", i):
                i = self._block_comment(i)
            elif c == "'":
                i = self._string(i)
            elif c == '"':
                i = self._quoted_identifier(i)
            elif c == "$":
                i = self._dollar(i)
            elif c.isspace():
                i += 1
            elif _IDENT_START.match(c):
                match = _IDENT.match(src, i)
                assert match is not None
                self._word(match.group(0).lower())
                i = match.end()
            elif c.isdigit():
                match = _NUMBER.match(src, i)
                assert match is not None
                self._token(match.group(0))
                i = match.end()
            else:
                self._punctuation(c, i)
                i += 1
        self._end_statement(n)
        return Lexed(src, [s for s in self.statements if s.has_code], self.comments)

    # -- tokens ---------------------------------------------------------------------------

    def _token(self, text: str) -> None:
        self.current.has_code = True
        self.previous = [*self.previous[-1:], text]

    def _word(self, word: str) -> None:
        self._token(word)
        if len(self.words) < 4:
            self.words.append(word)
        if self.parens == 0 and any(
            tuple(self.words[: len(head)]) == head for head in _ROUTINE_HEADS
        ):
            if word == "begin":
                self.begin_depth += 1
            elif word == "case" and self.begin_depth >= 1:
                # CASE also ends with END; it only matters inside a BEGIN block.
                self.begin_depth += 1
            elif word == "end" and self.begin_depth > 0:
                self.begin_depth -= 1

    def _punctuation(self, c: str, i: int) -> None:
        if c == ";" and self.parens == 0 and self.begin_depth == 0:
            self._end_statement(i + 1)
            return
        if c == "(":
            self.parens += 1
        elif c == ")":
            self.parens = max(0, self.parens - 1)
        self._token(c)

    def _end_statement(self, end: int) -> None:
        self.current.end = end
        self.statements.append(self.current)
        self.current = Statement(end)
        self.parens = 0
        self.begin_depth = 0
        self.words = []
        self.previous = []

    # -- quoted text ----------------------------------------------------------------------

    def _block_comment(self, i: int) -> int:
        # PostgreSQL's block comments nest.
        depth = 0
        j = i
        while True:
            opening = self.src.find("/*", j)
            closing = self.src.find("*/", j)
            if closing < 0:
                raise _error(self.src, i, "unterminated /* comment: add */ where the comment ends")
            if 0 <= opening < closing:
                depth += 1
                j = opening + 2
            else:
                depth -= 1
                j = closing + 2
                if depth == 0:
                    return j

    def _string(self, i: int) -> int:
        src = self.src
        # E'...' (or e'...') strings take backslash escapes, \' included.
        escapes = i > 0 and src[i - 1] in "eE" and (i < 2 or not _is_ident_char(src[i - 2]))
        j = i + 1
        n = len(src)
        while j < n:
            c = src[j]
            if c == "\\" and escapes:
                j += 2
                continue
            if c == "'":
                if src.startswith("''", j):
                    j += 2
                    continue
                self._token("'")
                return j + 1
            j += 1
        start = i - 1 if escapes else i
        raise _error(
            src,
            start,
            "unterminated quoted string: the ' here is never closed (write '' for a quote "
            "inside a string)",
        )

    def _quoted_identifier(self, i: int) -> int:
        j = i + 1
        while True:
            j = self.src.find('"', j)
            if j < 0:
                raise _error(
                    self.src, i, 'unterminated quoted identifier: the " here is never closed'
                )
            if self.src.startswith('""', j):
                j += 2
                continue
            self._token(self.src[i : j + 1])
            return j + 1

    def _dollar(self, i: int) -> int:
        src = self.src
        if i > 0 and _is_ident_char(src[i - 1]):
            # `$` inside a name (PostgreSQL allows it after the first character).
            self._token("$")
            return i + 1
        tag = _DOLLAR_TAG.match(src, i)
        if tag is not None:
            close = src.find(tag.group(0), tag.end())
            if close < 0:
                raise _error(
                    src,
                    i,
                    f"unterminated dollar-quoted string: {tag.group(0)} here is never "
                    f"closed by another {tag.group(0)}",
                )
            self._token(tag.group(0))
            return close + len(tag.group(0))
        param = _PARAM.match(src, i)
        if param is None:
            self._token("$")
            return i + 1
        cast = self._cast_after(param.end())
        self.current.params.append(Param(int(param.group(1)), i, param.end(), cast))
        self._token("$")
        return param.end()

    def _cast_after(self, j: int) -> str | None:
        """The type of ``$n::type``, or of ``CAST($n AS type)``."""
        src = self.src
        after = _SPACE.match(src, j)
        j = after.end() if after else j
        if src.startswith("::", j):
            return read_type_name(src, j + 2)
        if self.previous == ["cast", "("]:
            word = _IDENT.match(src, j)
            if word is not None and word.group(0).lower() == "as":
                return read_type_name(src, word.end())
        return None


def _fold(word: str) -> str:
    """PostgreSQL folds unquoted names to lowercase; a quoted name keeps its case."""
    return word if word.startswith('"') else word.lower()


def _is_ident_char(c: str) -> bool:
    return c.isalnum() or c in "_$" or c >= "\u0080"


def read_type_name(src: str, j: int = 0) -> str | None:
    """The type name at ``j`` (blanks first allowed): lowercase, aliases resolved, modifiers
    dropped (``varchar(20)`` is ``varchar``), ``[]`` kept."""
    space = _SPACE.match(src, j)
    j = space.end() if space else j
    first = _TYPE_WORD.match(src, j)
    if first is None:
        return None
    words = [_fold(first.group(0))]
    j = first.end()
    # A schema-qualified name: `pg_catalog.int4`, `public."Mood"`.
    while src.startswith(".", j):
        nxt = _TYPE_WORD.match(src, j + 1)
        if nxt is None:
            break
        words[-1] += "." + _fold(nxt.group(0))
        j = nxt.end()
    lowered = words[0].lower()
    for multi in _MULTI_WORD_TYPES:
        if lowered != multi[0]:
            continue
        k = j
        rest = []
        for expected in multi[1:]:
            gap = _SPACE.match(src, k)
            word = _TYPE_WORD.match(src, gap.end() if gap else k)
            if word is None or word.group(0).lower() != expected:
                break
            rest.append(expected)
            k = word.end()
        else:
            words.extend(rest)
            j = k
            break
    modifier = _MODIFIER.match(src, j)
    if modifier is not None:
        j = modifier.end()
    if lowered in ("timestamp", "time") and len(words) == 1:
        zone = _TIME_ZONE.match(src, j)
        if zone is not None:
            words.extend([zone.group(1).lower(), "time", "zone"])
            j = zone.end()
    brackets = ""
    while (suffix := _ARRAY_SUFFIX.match(src, j)) is not None:
        brackets += "[]"
        j = suffix.end()
    name = " ".join(words)
    return _TYPE_ALIASES.get(name, name) + brackets
