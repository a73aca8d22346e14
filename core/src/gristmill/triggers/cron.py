"""Windmill's schedule cron expressions, and their fire times in a timezone.

Windmill parses schedules with the ``croner`` crate (``with_seconds_optional``), so the syntax
here is croner's:

- six fields ``sec min hour dom month dow``, or five (``min hour dom month dow``, seconds 0);
- in each field ``*``, ``?`` (the same as ``*``), numbers, lists ``a,b``, ranges ``a-b``,
  steps ``*/n``, ``a-b/n``, ``a/n`` (from ``a`` to the field's end);
- month names ``JAN``-``DEC`` and weekday names ``SUN``-``SAT`` (any case); weekdays 0-7,
  0 and 7 both Sunday;
- day of month: ``L`` (last day), ``LW`` (last weekday, Monday to Friday), ``15W`` (the
  weekday nearest the 15th, staying inside the month);
- day of week: ``5L`` or ``FRI#L`` (the last Friday of the month), ``MON#2`` (the second
  Monday);
- the nicknames ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight``,
  ``@hourly``.

Day of month and day of week: when both are restricted (neither is ``*`` nor ``?``), a day
matches if EITHER matches (POSIX/Vixie cron, croner's default); ``dom_and_dow=True`` asks
for both (croner's ``with_dom_and_dow``).

Fire times are searched field by field in local wall-clock time, then placed in the timezone:

- a wall time that does not exist (the hour skipped when clocks go forward) is moved forward
  by the length of the gap (02:30 -> 03:30), PEP 495's ``fold=0`` reading; it fires there
  unless another fire time comes first, and fire times always come out in order;
- a wall time that happens twice (the hour repeated when clocks go back) fires once, at its
  first occurrence.

A search looks at most :data:`SEARCH_YEARS` years ahead; an expression with no fire time in
that window (``0 0 0 30 FEB *``) raises :class:`CronError`. Pure: no clock reads, no I/O.
"""

from __future__ import annotations

import bisect
import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gristmill.errors import BadInput

__all__ = ["SEARCH_YEARS", "Cron", "CronError", "load_timezone", "parse_cron"]

#: How far ahead a search for the next fire time looks before it gives up. Leap days need
#: four years; eight leave room for ``FEB 29`` combined with a weekday and stay fast.
SEARCH_YEARS = 8

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_NICKNAMES = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

_NUMBER = re.compile(r"^\d+$")


class CronError(BadInput):
    """An invalid cron expression or timezone, or one that never fires (400 at save time)."""


@dataclass(frozen=True, slots=True)
class _Field:
    """Where a field's value comes from, for error messages: the expression and the field."""

    expr: str
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    #: The number of the first name (months count from 1, weekdays from 0).
    names_base: int = 0

    def fail(self, message: str) -> CronError:
        return CronError(f'cron "{self.expr}": {message}')

    def number(self, text: str, part: str) -> int:
        """One value of the field: a number or a name, inside the field's range."""
        upper = text.upper()
        if upper in self.names:
            return self.names.index(upper) + self.names_base
        if not _NUMBER.match(text):
            kind = "a number or a name" if self.names else "a number"
            raise self.fail(f'{self.name} "{part}": "{text}" is not {kind}')
        value = int(text)
        if not self.low <= value <= self.high:
            raise self.fail(f"{self.name} {value} is out of range {self.low}-{self.high}")
        return value

    def values(self, part: str) -> set[int]:
        """The values of one comma-separated part: ``*``, ``n``, ``a-b``, with ``/step``."""
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not _NUMBER.match(step_text) or int(step_text) == 0:
                raise self.fail(f'{self.name} "{part}": the step must be a number above 0')
            step = int(step_text)
        if body in ("*", "?"):
            start, end = self.low, self.high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = self.number(first, part), self.number(last, part)
            if start > end:
                raise self.fail(f'{self.name} "{part}": the range starts after it ends')
        else:
            start = self.number(body, part)
            # ``a/n`` runs from a to the field's end; a bare ``a`` is just a.
            end = self.high if slash else start
        return set(range(start, end + 1, step))

    def parse(self, text: str) -> tuple[int, ...]:
        found: set[int] = set()
        for part in text.split(","):
            if not part:
                raise self.fail(f'{self.name} "{text}" has an empty list item')
            found |= self.values(part)
        return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class _DaysOfMonth:
    any: bool
    days: frozenset[int]
    last: bool  # L
    last_weekday: bool  # LW
    nearest_weekday: frozenset[int]  # 15W

    def matches(self, day: date, month_length: int) -> bool:
        if day.day in self.days:
            return True
        if self.last and day.day == month_length:
            return True
        weekday = day.weekday()  # Monday 0 .. Sunday 6
        if weekday >= 5:
            return False  # the W forms only ever pick a weekday
        if self.last_weekday and _last_weekday(day.year, day.month, month_length) == day.day:
            return True
        return any(
            _nearest_weekday(day.year, day.month, target, month_length) == day.day
            for target in self.nearest_weekday
        )


@dataclass(frozen=True, slots=True)
class _DaysOfWeek:
    any: bool
    #: Cron weekdays: 0 Sunday .. 6 Saturday.
    weekdays: frozenset[int]
    #: (weekday, n): the nth such weekday of the month, n in 1..5.
    nth: frozenset[tuple[int, int]]
    #: The last such weekday of the month.
    last: frozenset[int]

    def matches(self, day: date, month_length: int) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python's Monday 0 -> cron's Sunday 0
        if weekday in self.weekdays:
            return True
        if (weekday, (day.day - 1) // 7 + 1) in self.nth:
            return True
        return weekday in self.last and day.day + 7 > month_length


def _last_weekday(year: int, month: int, month_length: int) -> int:
    weekday = date(year, month, month_length).weekday()
    return month_length - max(0, weekday - 4)


def _nearest_weekday(year: int, month: int, target: int, month_length: int) -> int | None:
    """The weekday nearest the ``target`` day without leaving the month (Quartz's ``W``)."""
    if target > month_length:
        return None  # 31W in a 30-day month: no such day, no fire time that month
    weekday = date(year, month, target).weekday()
    if weekday == 5:  # Saturday: Friday before, or Monday after when the 1st is a Saturday
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: Monday after, or Friday before when it is the month's end
        return target + 1 if target < month_length else target - 2
    return target


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed schedule expression; :func:`parse_cron` builds it."""

    expr: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days_of_month: _DaysOfMonth
    days_of_week: _DaysOfWeek
    dom_and_dow: bool = False

    def __str__(self) -> str:
        return self.expr

    def next_after(self, dt: datetime, tz: ZoneInfo) -> datetime:
        """The first fire time strictly after ``dt``, as an aware datetime in ``tz``.

        Raises :class:`CronError` when there is none within :data:`SEARCH_YEARS` years.
        """
        if dt.tzinfo is None or dt.utcoffset() is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall time, fold ignored,
        # which would take the first 01:30 for later than the second 01:10.
        after = dt.astimezone(UTC)
        local = dt.astimezone(tz).replace(tzinfo=None, fold=0, microsecond=0)
        limit = date(local.year + SEARCH_YEARS, local.month, 1)
        start = local + timedelta(seconds=1)
        best: datetime | None = None
        while True:
            wall = self._next_wall(start, limit)
            if wall is None or (best is not None and wall > best.replace(tzinfo=None)):
                break
            # fold=0: an ambiguous wall time is its first occurrence; a skipped one is read
            # with the offset before the gap, which lands it that much later (02:30 -> 03:30).
            # Through UTC: astimezone() to the datetime's own zone would return it unchanged.
            fire_utc = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
            fire = fire_utc.astimezone(tz)
            if fire_utc > after and (best is None or fire_utc < best.astimezone(UTC)):
                best = fire
                if fire.replace(tzinfo=None) == wall:
                    break  # a wall time that exists: nothing later in wall time fires earlier
            # Else either the first occurrence of a repeated hour already passed, or this wall
            # time was skipped and moved: a later wall time (just after the gap) may come
            # first. Both last at most the length of a transition.
            start = wall + timedelta(seconds=1)
        if best is None:
            raise CronError(
                f'cron "{self.expr}" has no fire time in the {SEARCH_YEARS} years after '
                f"{dt.isoformat()}"
            )
        return best

    def upcoming(self, start: datetime, tz: ZoneInfo, n: int) -> list[datetime]:
        """The next ``n`` fire times after ``start`` (a schedule's preview)."""
        times: list[datetime] = []
        current = start
        for _ in range(n):
            current = self.next_after(current, tz)
            times.append(current)
        return times

    def _day_matches(self, day: date) -> bool:
        dom, dow = self.days_of_month, self.days_of_week
        month_length = calendar.monthrange(day.year, day.month)[1]
        if dom.any and dow.any:
            return True
        if dom.any:
            return dow.matches(day, month_length)
        if dow.any:
            return dom.matches(day, month_length)
        if self.dom_and_dow:
            return dom.matches(day, month_length) and dow.matches(day, month_length)
        return dom.matches(day, month_length) or dow.matches(day, month_length)

    def _first_time(self, after: time) -> time | None:
        """The first time of day matching the time fields at or after ``after``."""
        h = bisect.bisect_left(self.hours, after.hour)
        for hour in self.hours[h:]:
            same_hour = hour == after.hour
            m = bisect.bisect_left(self.minutes, after.minute) if same_hour else 0
            for minute in self.minutes[m:]:
                lowest = after.second if same_hour and minute == after.minute else 0
                s = bisect.bisect_left(self.seconds, lowest)
                if s < len(self.seconds):
                    return time(hour, minute, self.seconds[s])
        return None

    def _next_wall(self, start: datetime, limit: date) -> datetime | None:
        """The first matching wall-clock time at or after ``start``, before ``limit``."""
        day = start.date()
        earliest = start.time()
        while day < limit:
            if day.month not in self.months:
                # Jump to the first of the next month rather than walking its days.
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
                earliest = time(0)
                continue
            if self._day_matches(day):
                found = self._first_time(earliest)
                if found is not None:
                    return datetime.combine(day, found)
            day += timedelta(days=1)
            earliest = time(0)
        return None


def _parse_days_of_month(expr: str, text: str) -> _DaysOfMonth:
    field = _Field(expr, "day of month", 1, 31)
    if text in ("*", "?"):
        return _DaysOfMonth(True, frozenset(), False, False, frozenset())
    days: set[int] = set()
    nearest: set[int] = set()
    last = last_weekday = False
    for part in text.upper().split(","):
        if part == "L":
            last = True
        elif part == "LW":
            last_weekday = True
        elif part.endswith("W"):
            nearest.add(field.number(part[:-1], part))
        elif not part:
            raise field.fail(f'day of month "{text}" has an empty list item')
        else:
            days |= field.values(part)
    return _DaysOfMonth(False, frozenset(days), last, last_weekday, frozenset(nearest))


def _parse_days_of_week(expr: str, text: str) -> _DaysOfWeek:
    field = _Field(expr, "day of week", 0, 7, _WEEKDAYS, 0)
    if text in ("*", "?"):
        return _DaysOfWeek(True, frozenset(), frozenset(), frozenset())
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for part in text.split(","):
        if not part:
            raise field.fail(f'day of week "{text}" has an empty list item')
        upper = part.upper()
        if "#" in upper:
            day_text, _, which = upper.partition("#")
            weekday = field.number(day_text, part) % 7
            if which == "L":
                last.add(weekday)
            elif _NUMBER.match(which) and 1 <= int(which) <= 5:
                nth.add((weekday, int(which)))
            else:
                raise field.fail(f'day of week "{part}": "#{which}" must be #1 to #5 or #L')
        elif upper.endswith("L") and len(upper) > 1:
            last.add(field.number(part[:-1], part) % 7)
        else:
            weekdays |= {value % 7 for value in field.values(part)}  # 7 is Sunday too
    return _DaysOfWeek(False, frozenset(weekdays), frozenset(nth), frozenset(last))


def parse_cron(expr: str, *, dom_and_dow: bool = False) -> Cron:
    """Parse a schedule expression (5 or 6 fields, seconds first when there are 6).

    Raises :class:`CronError` naming the field and value at fault.
    """
    text = expr.strip()
    fields = _NICKNAMES.get(text.lower(), text).split()
    if len(fields) == 5:
        fields.insert(0, "0")  # croner's optional seconds: a 5-field expression fires at :00
    if len(fields) != 6:
        raise CronError(
            f'cron "{expr}": expected 5 or 6 fields (sec min hour day-of-month month '
            f"day-of-week, seconds optional), got {len(fields)}"
        )
    second, minute, hour, dom, month, dow = fields
    return Cron(
        expr=expr,
        seconds=_Field(expr, "second", 0, 59).parse(second),
        minutes=_Field(expr, "minute", 0, 59).parse(minute),
        hours=_Field(expr, "hour", 0, 23).parse(hour),
        months=frozenset(_Field(expr, "month", 1, 12, _MONTHS, 1).parse(month)),
        days_of_month=_parse_days_of_month(expr, dom),
        days_of_week=_parse_days_of_week(expr, dow),
        dom_and_dow=dom_and_dow,
    )


def load_timezone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; :class:`CronError` naming it when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        # ValueError: a name that is not a valid key at all ("../etc", "").
        raise CronError(f'unknown timezone "{name}"') from error
