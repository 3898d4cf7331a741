"""Business-hours arithmetic on a working calendar.

A :class:`Calendar` has a time zone (``zoneinfo``), for each weekday a list of
working intervals in local wall time (several per day: split shifts, lunch
breaks), and holidays (local dates without work). Working intervals are turned
into absolute UTC intervals day by day, so DST changes are handled by the
time zone database: a 09:00-17:00 day is 8 real hours on an ordinary day and
still 8 on the day clocks change at 02:00; an interval that spans the change
counts the real elapsed time.

Two operations, exact to the microsecond (``timedelta`` arithmetic):

* :meth:`Calendar.duration(a, b)` — working time between two moments;
* :meth:`Calendar.add(start, d)` — the earliest moment where ``d`` of working
  time has passed since ``start``. ``duration(start, add(start, d)) == d``,
  and for ``d > 0`` the result lies inside a working interval (its end
  included).
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from crmkit.plugin import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZERO = dt.timedelta(0)
#: add() gives up after this many days without enough working time
MAX_SEARCH_DAYS = 3 * 366


def _parse_time(text: str, where: str) -> dt.timedelta:
    """'HH:MM' as an offset from midnight; '24:00' is the end of the day."""
    try:
        hours, minutes = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a time; write HH:MM, e.g. 09:00") from None
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ConfigError(f"{where}: {text!r} is not a time of day between 00:00 and 24:00")
    return dt.timedelta(hours=hours, minutes=minutes)


def _parse_timezone(value: Any, where: str) -> str:
    tz = str(value)
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}.timezone: {tz!r} is not a known time zone; use an IANA name "
            "such as Europe/Berlin"
        ) from None
    return tz


Interval = tuple[dt.timedelta, dt.timedelta]


def _parse_week(week_data: Any, where: str) -> tuple[tuple[Interval, ...], ...]:
    """The ``week`` table as seven days (Monday first) of ordered, disjoint intervals."""
    if not isinstance(week_data, Mapping):
        raise ConfigError(f"{where}.week must map weekday names (mon..sun) to intervals")
    if bad := set(week_data) - set(WEEKDAYS):
        raise ConfigError(f"{where}.week: unknown days {sorted(bad)}; use {', '.join(WEEKDAYS)}")
    week = tuple(_parse_day(week_data.get(day, []), f"{where}.week.{day}") for day in WEEKDAYS)
    if not any(week):
        raise ConfigError(f"{where}.week has no working interval on any day; add at least one")
    return week


def _parse_day(pairs: Any, where: str) -> tuple[Interval, ...]:
    """One day's ``[["09:00", "12:00"], ...]``: each interval in order, without overlap."""
    intervals: list[Interval] = []
    for i, pair in enumerate(pairs):
        here = f"{where}[{i}]"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ConfigError(f'{here}: give an interval as ["09:00", "12:00"]')
        start, end = _parse_time(pair[0], here), _parse_time(pair[1], here)
        if end <= start:
            raise ConfigError(f"{here}: {pair[0]}-{pair[1]} ends before it starts")
        if intervals and start < intervals[-1][1]:
            raise ConfigError(
                f"{here}: {pair[0]}-{pair[1]} overlaps or precedes the previous "
                "interval; list intervals in order without overlap"
            )
        intervals.append((start, end))
    return tuple(intervals)


def _parse_holidays(texts: Any, where: str) -> frozenset[dt.date]:
    holidays = set()
    for text in texts:
        try:
            holidays.add(dt.date.fromisoformat(str(text)))
        except ValueError:
            raise ConfigError(
                f"{where}.holidays: {text!r} is not a date; write YYYY-MM-DD"
            ) from None
    return frozenset(holidays)


ALL_DAY = ((ZERO, dt.timedelta(hours=24)),)


@attrs.frozen(cache_hash=True)
class Calendar:
    """A working calendar. Build it with :meth:`from_dict` (validated)."""

    timezone: str
    week: tuple[tuple[tuple[dt.timedelta, dt.timedelta], ...], ...]  # 7 days, Monday first
    holidays: frozenset[dt.date] = frozenset()
    #: every day 00:00-24:00 without holidays: working time is wall time (fast path)
    round_the_clock: bool = attrs.field(init=False, eq=False, repr=False)

    @round_the_clock.default
    def _round_the_clock(self) -> bool:
        return not self.holidays and all(day == ALL_DAY for day in self.week)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    @classmethod
    def always(cls) -> Calendar:
        """Round the clock, every day (wall-clock targets)."""
        return cls(timezone="UTC", week=(ALL_DAY,) * 7)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "complaints.calendar") -> Calendar:
        """``{"timezone": "Europe/Berlin", "week": {"mon": [["09:00", "12:00"], ...]},
        "holidays": ["2026-12-25"]}``; raises ConfigError naming the bad key."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a table with timezone, week and holidays")
        unknown = set(data) - {"timezone", "week", "holidays"}
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {sorted(unknown)}; use timezone, week, holidays"
            )
        return cls(
            timezone=_parse_timezone(data.get("timezone", "UTC"), where),
            week=_parse_week(data.get("week", {}), where),
            holidays=_parse_holidays(data.get("holidays", []), where),
        )

    # -- intervals ---------------------------------------------------------
    def day_intervals(self, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The working intervals of local date ``day`` as UTC datetimes, ordered, disjoint."""
        return _day_intervals(self, day)

    def intervals(self, start: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """Working intervals (UTC) that end after ``start``, clipped to begin at ``start``."""
        start = _utc(start)
        day = start.astimezone(self.zone).date() - dt.timedelta(days=1)
        empty_days = 0
        last = start
        while True:
            found = False
            for a, b in self.day_intervals(day):
                found = True
                a = max(a, last)
                if b <= a:
                    continue
                last = b
                yield (a, b)
            empty_days = 0 if found else empty_days + 1
            if empty_days > MAX_SEARCH_DAYS:
                raise ConfigError(
                    f"the SLA calendar has no working time for {MAX_SEARCH_DAYS} days after "
                    f"{day.isoformat()}; check its holidays"
                )
            day += dt.timedelta(days=1)

    # -- arithmetic ----------------------------------------------------------
    def duration(self, a: dt.datetime, b: dt.datetime) -> dt.timedelta:
        """Working time from ``a`` to ``b`` (zero when ``b <= a``)."""
        a, b = _utc(a), _utc(b)
        total = ZERO
        if b <= a:
            return total
        if self.round_the_clock:
            return b - a
        for start, end in self.intervals(a):
            if start >= b:
                break
            total += min(end, b) - start
        return total

    def add(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """The earliest moment at which ``amount`` of working time has passed since ``start``."""
        if amount < ZERO:
            raise ValueError("amount must not be negative")
        start = _utc(start)
        if amount == ZERO or self.round_the_clock:
            return start + amount
        left = amount
        for a, b in self.intervals(start):
            if b - a >= left:
                return a + left
            left -= b - a
        raise AssertionError("unreachable")  # pragma: no cover

    def add_many(self, start: dt.datetime, amounts: list[dt.timedelta]) -> list[dt.datetime]:
        """``[add(start, d) for d in amounts]`` in one walk over the intervals."""
        if any(d < ZERO for d in amounts):
            raise ValueError("amount must not be negative")
        start = _utc(start)
        if self.round_the_clock:
            return [start + d for d in amounts]
        order = sorted(range(len(amounts)), key=amounts.__getitem__)
        out: list[dt.datetime] = [start] * len(amounts)
        pending = [i for i in order if amounts[i] > ZERO]
        if not pending:
            return out
        passed = ZERO  # working time before the current interval
        k = 0
        for a, b in self.intervals(start):
            span = b - a
            while k < len(pending) and amounts[pending[k]] - passed <= span:
                out[pending[k]] = a + (amounts[pending[k]] - passed)
                k += 1
            if k == len(pending):
                return out
            passed += span
        raise AssertionError("unreachable")  # pragma: no cover

    def is_working(self, moment: dt.datetime) -> bool:
        moment = _utc(moment)
        day = moment.astimezone(self.zone).date()
        for d in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1)):
            if any(a <= moment < b for a, b in self.day_intervals(d)):
                return True
        return False


@functools.lru_cache(maxsize=1 << 16)
def _day_intervals(cal: Calendar, day: dt.date) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
    # cached: recomputing due moments for many complaints walks the same days again and again
    if day in cal.holidays:
        return ()
    zone = cal.zone
    midnight = dt.datetime.combine(day, dt.time())
    result: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in cal.week[day.weekday()]:
        a = _to_utc(midnight + start, zone)
        b = _to_utc(midnight + end, zone)
        if result and a < result[-1][1]:  # a DST gap can fold wall times together
            a = result[-1][1]
        if b > a:
            result.append((a, b))
    return tuple(result)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: give a time zone")
    return moment.astimezone(dt.UTC)


def _to_utc(local: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A local wall time in ``zone`` to UTC (the first reading of an ambiguous time)."""
    return local.replace(tzinfo=zone).astimezone(dt.UTC)


def hours(value: float | int) -> dt.timedelta:
    return dt.timedelta(seconds=round(float(value) * 3600))
