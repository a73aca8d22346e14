"""Schedule cron expressions (gristmill.triggers.cron): croner's syntax as Windmill accepts it,
the errors a bad expression or timezone gives, and fire times across timezones and DST."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from gristmill.errors import BadInput
from gristmill.triggers.cron import Cron, CronError, load_timezone, parse_cron

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
UTC_ZONE = ZoneInfo("UTC")


def at(*parts: int, tz: ZoneInfo = UTC_ZONE) -> datetime:
    return datetime(*parts, tzinfo=tz)  # type: ignore[misc]


def fires(expr: str, start: datetime, n: int, tz: ZoneInfo = UTC_ZONE) -> list[str]:
    """The next n fire times as local ISO strings, easy to read in an assertion."""
    return [t.isoformat() for t in parse_cron(expr).upcoming(start, tz, n)]


# -- fields and syntax --------------------------------------------------------------------


def test_six_fields_put_seconds_first() -> None:
    assert fires("15 30 * * * *", at(2024, 1, 1), 2) == [
        "2024-01-01T00:30:15+00:00",
        "2024-01-01T01:30:15+00:00",
    ]


def test_five_fields_fire_at_second_zero() -> None:
    assert fires("30 * * * *", at(2024, 1, 1), 2) == [
        "2024-01-01T00:30:00+00:00",
        "2024-01-01T01:30:00+00:00",
    ]


def test_next_after_is_strictly_after_and_ignores_microseconds() -> None:
    cron = parse_cron("0 * * * * *")
    assert cron.next_after(at(2024, 1, 1, 0, 1), UTC_ZONE) == at(2024, 1, 1, 0, 2)
    assert cron.next_after(at(2024, 1, 1, 0, 0, 59, 999999), UTC_ZONE) == at(2024, 1, 1, 0, 1)


def test_lists_ranges_and_steps() -> None:
    assert fires("*/20 * * * * *", at(2024, 1, 1), 3) == [
        "2024-01-01T00:00:20+00:00",
        "2024-01-01T00:00:40+00:00",
        "2024-01-01T00:01:00+00:00",
    ]
    assert fires("0 1-10/4 * * * *", at(2024, 1, 1), 3) == [
        "2024-01-01T00:01:00+00:00",
        "2024-01-01T00:05:00+00:00",
        "2024-01-01T00:09:00+00:00",
    ]
    assert fires("0 0 5,17 * * *", at(2024, 1, 1), 3) == [
        "2024-01-01T05:00:00+00:00",
        "2024-01-01T17:00:00+00:00",
        "2024-01-02T05:00:00+00:00",
    ]
    # a/n: from a to the field's end.
    assert fires("0 50/5 0 * * *", at(2024, 1, 1), 3) == [
        "2024-01-01T00:50:00+00:00",
        "2024-01-01T00:55:00+00:00",
        "2024-01-02T00:50:00+00:00",
    ]


def test_month_and_weekday_names_any_case() -> None:
    # 2024-01-01 is a Monday.
    assert fires("0 0 9 * mar,Jun *", at(2024, 1, 1), 2) == [
        "2024-03-01T09:00:00+00:00",
        "2024-03-02T09:00:00+00:00",
    ]
    assert fires("0 0 9 * * MON-WED", at(2024, 1, 3, 12), 3) == [
        "2024-01-08T09:00:00+00:00",
        "2024-01-09T09:00:00+00:00",
        "2024-01-10T09:00:00+00:00",
    ]


def test_weekday_seven_is_sunday_and_question_mark_is_any() -> None:
    assert fires("0 0 0 ? * 7", at(2024, 1, 1), 1) == ["2024-01-07T00:00:00+00:00"]
    assert fires("0 0 0 ? * 0", at(2024, 1, 1), 1) == ["2024-01-07T00:00:00+00:00"]


def test_last_day_of_month() -> None:
    assert fires("0 0 0 L * *", at(2024, 1, 15), 3) == [
        "2024-01-31T00:00:00+00:00",
        "2024-02-29T00:00:00+00:00",  # a leap year
        "2024-03-31T00:00:00+00:00",
    ]


def test_last_weekday_of_month() -> None:
    # 2024-03-31 is a Sunday, 2024-08-31 a Saturday: the last weekday is the Friday.
    assert fires("0 0 0 LW MAR,AUG *", at(2024, 1, 1), 2) == [
        "2024-03-29T00:00:00+00:00",
        "2024-08-30T00:00:00+00:00",
    ]


def test_nearest_weekday() -> None:
    # 2024-06-15 is a Saturday -> Friday 14th; 2024-09-15 a Sunday -> Monday 16th;
    # 2024-06-01 a Saturday -> Monday 3rd (1W never leaves the month).
    assert fires("0 0 0 15W JUN,SEP *", at(2024, 1, 1), 2) == [
        "2024-06-14T00:00:00+00:00",
        "2024-09-16T00:00:00+00:00",
    ]
    assert fires("0 0 0 1W JUN *", at(2024, 1, 1), 1) == ["2024-06-03T00:00:00+00:00"]


def test_last_weekday_of_kind_in_month() -> None:
    expected = ["2024-01-26T00:00:00+00:00", "2024-02-23T00:00:00+00:00"]
    assert fires("0 0 0 * * 5L", at(2024, 1, 1), 2) == expected
    assert fires("0 0 0 * * FRI#L", at(2024, 1, 1), 2) == expected


def test_nth_weekday_of_month() -> None:
    assert fires("0 0 0 * * MON#2", at(2024, 1, 1), 3) == [
        "2024-01-08T00:00:00+00:00",
        "2024-02-12T00:00:00+00:00",
        "2024-03-11T00:00:00+00:00",
    ]
    # #5 only in months that have a fifth Monday.
    assert fires("0 0 0 * * 1#5", at(2024, 1, 1), 2) == [
        "2024-01-29T00:00:00+00:00",
        "2024-04-29T00:00:00+00:00",
    ]


def test_day_of_month_and_week_are_ored_by_default() -> None:
    # The 13th OR any Friday (POSIX, croner's default); 2024-09-06 is a Friday.
    assert fires("0 0 0 13 * FRI", at(2024, 9, 1), 3) == [
        "2024-09-06T00:00:00+00:00",
        "2024-09-13T00:00:00+00:00",
        "2024-09-20T00:00:00+00:00",
    ]


def test_day_of_month_and_week_anded_on_request() -> None:
    cron = parse_cron("0 0 0 13 * FRI", dom_and_dow=True)
    assert [t.isoformat() for t in cron.upcoming(at(2024, 1, 1), UTC_ZONE, 2)] == [
        "2024-09-13T00:00:00+00:00",
        "2024-12-13T00:00:00+00:00",
    ]


def test_nicknames() -> None:
    assert fires("@daily", at(2024, 1, 1, 5), 1) == ["2024-01-02T00:00:00+00:00"]
    assert fires("@hourly", at(2024, 1, 1, 5, 1), 1) == ["2024-01-01T06:00:00+00:00"]
    assert fires("@weekly", at(2024, 1, 1), 1) == ["2024-01-07T00:00:00+00:00"]


def test_cron_keeps_its_text() -> None:
    cron = parse_cron("0 0 12 * * *")
    assert isinstance(cron, Cron)
    assert str(cron) == "0 0 12 * * *"


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 61 * * * *", 'cron "0 61 * * * *": minute 61 is out of range 0-59'),
        ("60 * * * * *", "second 60 is out of range 0-59"),
        ("0 0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 32 * *", "day of month 32 is out of range 1-31"),
        ("0 0 0 0 * *", "day of month 0 is out of range 1-31"),
        ("0 0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 0 * * 8", "day of week 8 is out of range 0-7"),
        ("* * *", "expected 5 or 6 fields"),
        ("0 0 0 0 * * * 2024", "got 8"),
        ("0 0 0 * FOO *", 'month "FOO": "FOO" is not a number or a name'),
        ("0 0 0 * * FOO", 'day of week "FOO": "FOO" is not a number or a name'),
        ("0 x * * * *", 'minute "x": "x" is not a number'),
        ("*/0 * * * *", 'minute "*/0": the step must be a number above 0'),
        ("5-1 * * * *", 'minute "5-1": the range starts after it ends'),
        ("0 0 0 * * MON#6", '"#6" must be #1 to #5 or #L'),
        ("0 0 0 1,,2 * *", "has an empty list item"),
        ("0 0 0 * * L", 'day of week "L"'),
    ],
)
def test_invalid_expressions_name_field_and_value(expr: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        parse_cron(expr)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f'cron "{expr}"')
    assert isinstance(raised.value, BadInput)  # the API answers 400


def test_unknown_timezone_is_named() -> None:
    assert load_timezone("Europe/Paris") == PARIS
    with pytest.raises(CronError, match='unknown timezone "Mars/Olympus"'):
        load_timezone("Mars/Olympus")
    with pytest.raises(CronError, match=r'unknown timezone "\.\./etc"'):
        load_timezone("../etc")


def test_naive_datetime_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_cron("* * * * *").next_after(datetime(2024, 1, 1), UTC_ZONE)


def test_never_firing_expression_fails_fast() -> None:
    began = time.perf_counter()
    with pytest.raises(CronError, match='cron "0 0 0 30 FEB \\*" has no fire time in the 8'):
        parse_cron("0 0 0 30 FEB *").next_after(at(2024, 1, 1), UTC_ZONE)
    # The 1st to 7th is never a second Monday.
    with pytest.raises(CronError, match="no fire time"):
        parse_cron("0 0 0 1-7 * MON#2", dom_and_dow=True).next_after(at(2024, 1, 1), UTC_ZONE)
    assert time.perf_counter() - began < 0.5


def test_rare_expression_found_years_ahead() -> None:
    # Feb 29th on a Thursday: 2024, then 2052 is beyond the window, so use a Monday: 2044.
    cron = parse_cron("0 0 12 29 FEB MON", dom_and_dow=True)
    assert cron.next_after(at(2040, 3, 1), UTC_ZONE) == at(2044, 2, 29, 12)


# -- timezones and DST ----------------------------------------------------------------------


def test_fire_times_are_wall_clock_in_the_timezone() -> None:
    cron = parse_cron("0 0 9 * * *")
    fire = cron.next_after(at(2024, 1, 1, 12), PARIS)
    assert fire == datetime(2024, 1, 2, 9, tzinfo=PARIS)
    assert fire.astimezone(UTC) == datetime(2024, 1, 2, 8, tzinfo=UTC)  # CET is UTC+1
    summer = cron.next_after(at(2024, 7, 1, 12), PARIS)
    assert summer.astimezone(UTC) == datetime(2024, 7, 2, 7, tzinfo=UTC)  # CEST is UTC+2


def test_spring_forward_moves_a_missing_time_by_the_gap() -> None:
    # 2024-03-10 in New York: 02:00 -> 03:00, so 02:30 does not exist and fires at 03:30.
    assert fires("0 30 2 * * *", at(2024, 3, 9, 12), 3, NEW_YORK) == [
        "2024-03-10T03:30:00-04:00",
        "2024-03-11T02:30:00-04:00",
        "2024-03-12T02:30:00-04:00",
    ]


def test_spring_forward_keeps_fire_times_in_order_and_distinct() -> None:
    # 02:00 and 02:45 are moved to 03:00 and 03:45, which fire anyway: once each, in order.
    assert fires("0 0,45 2,3 * * *", at(2024, 3, 10, 5), 3, NEW_YORK) == [
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T03:45:00-04:00",
        "2024-03-11T02:00:00-04:00",
    ]


def test_fall_back_fires_a_repeated_time_once() -> None:
    # 2024-11-03 in New York: 02:00 EDT -> 01:00 EST, so 01:30 happens twice; it fires once,
    # at its first occurrence (EDT).
    assert fires("0 30 1 * * *", at(2024, 11, 2, 12), 2, NEW_YORK) == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-04T01:30:00-05:00",
    ]
    # From inside the second 01:xx hour, the next fire is after it.
    second_pass = datetime(2024, 11, 3, 1, 10, tzinfo=NEW_YORK, fold=1)
    assert parse_cron("0 30 1 * * *").next_after(second_pass, NEW_YORK) == datetime(
        2024, 11, 4, 1, 30, tzinfo=NEW_YORK
    )


def test_upcoming_chains_next_after() -> None:
    cron = parse_cron("*/10 * * * * *")
    start = at(2024, 5, 1, 8, 0, 5)
    times = cron.upcoming(start, UTC_ZONE, 4)
    assert times == [at(2024, 5, 1, 8, 0, s) for s in (10, 20, 30, 40)]
    assert cron.upcoming(start, UTC_ZONE, 0) == []


def test_fall_back_frequent_schedule_skips_the_repeated_hour() -> None:
    # The documented consequence of "fires once": after the first 01:50 (EDT) comes 02:00 EST,
    # not the second 01:00.
    assert fires("*/10 * * * *", at(2024, 11, 3, 5, 45), 3, NEW_YORK) == [
        "2024-11-03T01:50:00-04:00",
        "2024-11-03T02:00:00-05:00",
        "2024-11-03T02:10:00-05:00",
    ]
