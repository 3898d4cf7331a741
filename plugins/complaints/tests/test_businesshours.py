"""Business-hours arithmetic: worked examples and hypothesis properties."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from crmkit_complaints.businesshours import Calendar
from hypothesis import given, settings
from hypothesis import strategies as st

from crmkit.plugin import ConfigError

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
SPLIT = {
    "timezone": "Europe/Berlin",
    "week": {
        d: [["09:00", "12:00"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
    }
    | {"sat": [["10:00", "14:00"]]},
    "holidays": ["2026-12-25", "2026-12-26", "2026-03-30"],
}
# a night shift around the DST change at 02:00/03:00
NIGHT = {
    "timezone": "America/New_York",
    "week": {d: [["00:00", "04:00"], ["22:00", "24:00"]] for d in ("sat", "sun", "mon")},
}
CALENDARS = [
    Calendar.from_dict(SPLIT),
    Calendar.from_dict(NIGHT),
    Calendar.always(),
    Calendar.from_dict({"timezone": "Asia/Kolkata", "week": {"wed": [["08:30", "17:15"]]}}),
]


def b(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)


def test_split_shift_and_weekend() -> None:
    cal = CALENDARS[0]
    # Friday 17:00 + 3h: 1h Friday, then Saturday 10:00-12:00
    assert cal.add(b(2026, 11, 20, 17, 0), dt.timedelta(hours=3)) == b(2026, 11, 21, 12, 0)
    # Saturday 13:00 + 3h: 1h Saturday, Sunday off, Monday 09:00-11:00
    assert cal.add(b(2026, 11, 21, 13, 0), dt.timedelta(hours=3)) == b(2026, 11, 23, 11, 0)
    # lunch break is skipped
    assert cal.add(b(2026, 11, 23, 11, 0), dt.timedelta(hours=2)) == b(2026, 11, 23, 14, 0)
    assert cal.duration(b(2026, 11, 23, 8, 0), b(2026, 11, 23, 20, 0)) == dt.timedelta(hours=8)


def test_holidays_are_skipped() -> None:
    cal = CALENDARS[0]
    # Thursday 24 Dec 17:00 + 2h: 1h Thu, Fri 25 and Sat 26 holidays, Mon 28 09:00-10:00
    assert cal.add(b(2026, 12, 24, 17, 0), dt.timedelta(hours=2)) == b(2026, 12, 28, 10, 0)


def test_dst_spring_forward_day_keeps_eight_hours() -> None:
    cal = CALENDARS[0]
    # 29 March 2026 is a Sunday (clocks change); Monday 30 is a holiday here; Tuesday 31:
    start = b(2026, 3, 27, 17, 0)  # Friday
    end = cal.add(start, dt.timedelta(hours=6))  # 1h Fri, 4h Sat, 1h Tue
    assert end == b(2026, 3, 31, 10, 0)
    assert end.astimezone(BERLIN).utcoffset() == dt.timedelta(hours=2)
    assert end == dt.datetime(2026, 3, 31, 8, 0, tzinfo=dt.UTC)
    # a night shift crossing the 2am gap in New York counts the real hours
    ny = zoneinfo.ZoneInfo("America/New_York")
    night = CALENDARS[1]
    sunday = dt.datetime(2026, 3, 8, 0, 0, tzinfo=ny)
    assert night.duration(sunday, dt.datetime(2026, 3, 8, 12, 0, tzinfo=ny)) == dt.timedelta(
        hours=3
    )


def test_invalid_calendars_are_refused() -> None:
    for bad, fragment in [
        ({"timezone": "Mars/Base"}, "time zone"),
        ({"week": {"mon": [["10:00", "09:00"]]}}, "ends before"),
        ({"week": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}}, "overlaps"),
        ({"week": {"funday": [["09:00", "12:00"]]}}, "unknown days"),
        ({"week": {}}, "no working interval"),
        ({"week": {"mon": [["9am", "12:00"]]}}, "not a time"),
        ({"week": {"mon": [["09:00", "12:00"]]}, "holidays": ["xmas"]}, "not a date"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            Calendar.from_dict(bad)


moments = st.datetimes(
    min_value=dt.datetime(2025, 1, 1),
    max_value=dt.datetime(2028, 12, 31),
    timezones=st.sampled_from([dt.UTC, BERLIN, zoneinfo.ZoneInfo("America/New_York")]),
)
durations = st.integers(min_value=0, max_value=200 * 3600 * 10**6).map(
    lambda us: dt.timedelta(microseconds=us)
)
calendars = st.sampled_from(CALENDARS)


@settings(max_examples=150, deadline=None)
@given(cal=calendars, start=moments, d=durations)
def test_add_then_duration_roundtrips(cal: Calendar, start: dt.datetime, d: dt.timedelta) -> None:
    end = cal.add(start, d)
    assert end >= start
    assert cal.duration(start, end) == d
    if d > dt.timedelta(0):
        # inside a working interval (its end included): a moment just before is working time
        assert cal.is_working(end - dt.timedelta(microseconds=1))
        # earliest: a microsecond earlier has not accrued d
        assert cal.duration(start, end - dt.timedelta(microseconds=1)) < d


@settings(max_examples=100, deadline=None)
@given(cal=calendars, start=moments, d1=durations, d2=durations)
def test_monotonic_and_additive(
    cal: Calendar, start: dt.datetime, d1: dt.timedelta, d2: dt.timedelta
) -> None:
    lo, hi = sorted((d1, d2))
    assert cal.add(start, lo) <= cal.add(start, hi)
    mid = cal.add(start, d1)
    assert cal.add(mid, d2) == cal.add(start, d1 + d2) or d2 == dt.timedelta(0)


@settings(max_examples=100, deadline=None)
@given(cal=calendars, a=moments, m=moments, c=moments)
def test_duration_splits_at_any_point(
    cal: Calendar, a: dt.datetime, m: dt.datetime, c: dt.datetime
) -> None:
    a, m, c = sorted((a, m, c))
    assert cal.duration(a, c) == cal.duration(a, m) + cal.duration(m, c)
    assert cal.duration(a, c) <= c.astimezone(dt.UTC) - a.astimezone(dt.UTC)


ALL_DAY = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
FAST = Calendar.from_dict({"timezone": "Europe/Berlin", "week": ALL_DAY})
# the same working time, but a holiday long ago forces the day-by-day walk
SLOW = Calendar.from_dict(
    {"timezone": "Europe/Berlin", "week": ALL_DAY, "holidays": ["1990-01-01"]}
)


def test_round_the_clock_is_wall_time_across_dst() -> None:
    assert FAST.round_the_clock and not SLOW.round_the_clock
    assert not Calendar.from_dict(SPLIT).round_the_clock
    # 28 -> 29 March 2026 in Berlin: 23 real hours between the two noons
    assert FAST.duration(b(2026, 3, 28, 12), b(2026, 3, 29, 12)) == dt.timedelta(hours=23)
    assert SLOW.duration(b(2026, 3, 28, 12), b(2026, 3, 29, 12)) == dt.timedelta(hours=23)


@settings(max_examples=100, deadline=None)
@given(start=moments, d=durations, end=moments)
def test_round_the_clock_fast_path_agrees_with_the_walk(
    start: dt.datetime, d: dt.timedelta, end: dt.datetime
) -> None:
    assert FAST.add(start, d) == SLOW.add(start, d)
    assert FAST.duration(start, end) == SLOW.duration(start, end)


@settings(max_examples=100, deadline=None)
@given(cal=calendars, start=moments, ds=st.lists(durations, max_size=5))
def test_add_many_is_add_for_each(cal: Calendar, start: dt.datetime, ds: list) -> None:
    assert cal.add_many(start, ds) == [cal.add(start, d) for d in ds]
