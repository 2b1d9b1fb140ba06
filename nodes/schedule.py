"""Schedule trigger: starts an active flow on a cron expression or every N seconds, minutes, hours or days.

The server's scheduler (`flowboard/triggers/schedule.py`) fires it; each fire is claimed in the database, so it runs
once however many servers share the database and however often they restart. The run's item::

    {"fired_at": "2025-01-06T09:00:00.012+01:00", "scheduled_for": "2025-01-06T09:00:00+01:00",
     "timezone": "Europe/Berlin", "missed": 0}

`missed` is 0 for a run on time; for the one catch-up run after downtime (`missed: run_once`) it is how many
scheduled times passed while no server ran the flow (the run stands for all of them; `scheduled_for` is the latest).

This module also holds the rules (`rule_for(config, timezone)`): when a schedule fires, as epoch seconds.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowboard.sdk import Category, Context, Inputs, Item, NodeType, Outputs

CRON_FIELDS = ("minute", "hour", "day", "month", "weekday")
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_FIELD_HELP = {"minute": "0-59", "hour": "0-23", "day": "1-31", "month": "1-12 or jan-dec",
               "weekday": "0-6 (0 is Sunday) or sun-sat"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def check_cron(expression: str) -> str:
    """The expression, tidied, or ValueError with words a person can act on."""
    from croniter import croniter

    text = " ".join(expression.split())
    if text.lower() in CRON_MACROS:
        return text.lower()
    parts = text.split(" ") if text else []
    if len(parts) != 5:
        raise ValueError(f"`{text}` needs 5 fields: minute hour day month weekday (it has {len(parts)}), "
                         "e.g. */5 * * * * for every 5 minutes")
    for index, (name, part) in enumerate(zip(CRON_FIELDS, parts, strict=True)):
        alone = ["*"] * 5
        alone[index] = part
        try:
            croniter(" ".join(alone))
        except (ValueError, KeyError):
            raise ValueError(f"the {name} field `{part}` is not valid: use {_FIELD_HELP[name]}, `*`, lists (1,2), "
                             "ranges (1-5) and steps (*/2)") from None
    try:
        croniter(text).get_next(float, start_time=datetime(2024, 1, 1))
    except (ValueError, KeyError) as exc:
        raise ValueError(f"`{text}` never fires ({exc})") from None
    return text


def check_timezone(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'") from None
    return value


class CronSchedule(_Strict):
    type: Literal["cron"] = Field(description="A cron expression: minute hour day month weekday.")
    expression: str = Field(description="Five fields, e.g. 0 9 * * 1-5 (9:00 on weekdays) or */15 * * * * "
                            "(every 15 minutes); @daily and @hourly work too.", min_length=1, max_length=200)

    @field_validator("expression")
    @classmethod
    def _valid(cls, value: str) -> str:
        return check_cron(value)


class IntervalSchedule(_Strict):
    type: Literal["interval"] = Field(description="Every N seconds, minutes, hours or days.")
    every: int = Field(1, ge=1, le=100_000, description="How many units between runs.")
    unit: Literal["seconds", "minutes", "hours", "days"] = Field(
        "minutes", description="seconds and minutes count from 00:00 UTC (every 15 minutes: :00, :15, :30, :45); "
        "hours and days follow the clock of the timezone (every 6 hours: 00:00, 06:00, 12:00, 18:00; every day: at "
        "midnight).", json_schema_extra={"widget": "select"})


Schedule = Annotated[CronSchedule | IntervalSchedule, Field(discriminator="type")]


class ScheduleConfig(_Strict):
    schedule: Schedule = Field(default_factory=lambda: IntervalSchedule(type="interval", every=1, unit="hours"),
                               description="When to run: a cron expression or an interval.",
                               json_schema_extra={"widget": "union"})
    timezone: str | None = Field(None, description="IANA timezone of the schedule, e.g. Europe/Berlin; empty: the "
                                 "flow's timezone (its settings).")
    missed: Literal["skip", "run_once"] = Field(
        "skip", description="After the server was down: skip the times that passed, or run once for all of them.",
        json_schema_extra={"widget": "select"})

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return check_timezone(value)


# -- rules: when a schedule fires -----------------------------------------------------------------------------------


class Rule(Protocol):
    def next_after(self, t: float) -> int:
        """The first fire time strictly after `t` (epoch seconds)."""

    def last_at_or_before(self, t: float) -> int | None:
        """The latest fire time at or before `t`."""


class EverySeconds:
    """A fixed grid of instants: multiples of `step` seconds since 1970-01-01 00:00 UTC."""

    def __init__(self, step: int):
        self.step = step

    def next_after(self, t: float) -> int:
        return (math.floor(t / self.step) + 1) * self.step

    def last_at_or_before(self, t: float) -> int | None:
        return math.floor(t / self.step) * self.step


_ANCHOR = datetime(2000, 1, 1)  # naive: local midnight in the schedule's timezone


class WallClock:
    """Local clock times `step` seconds apart, counted from local midnight 2000-01-01 (hours and days). A time the
    clock skips (spring forward) fires at the first instant after it; a time it repeats (fall back), once."""

    def __init__(self, step: int, tz: ZoneInfo):
        self.step = step
        self.tz = tz

    def _instant(self, k: int) -> int:
        return int((_ANCHOR + timedelta(seconds=k * self.step)).replace(tzinfo=self.tz).timestamp())

    def _k(self, t: float) -> int:
        local = datetime.fromtimestamp(t, self.tz).replace(tzinfo=None)
        return math.floor((local - _ANCHOR).total_seconds() / self.step)

    def next_after(self, t: float) -> int:
        k = self._k(t)
        while self._instant(k) <= t:
            k += 1
        return self._instant(k)

    def last_at_or_before(self, t: float) -> int | None:
        k = self._k(t) + 1
        while self._instant(k) > t:
            k -= 1
        return self._instant(k)


class Cron:
    def __init__(self, expression: str, tz: ZoneInfo):
        self.expression = expression
        self.tz = tz

    def next_after(self, t: float) -> int:
        from croniter import croniter

        start = datetime.fromtimestamp(math.floor(t), self.tz)
        nxt = int(croniter(self.expression, start).get_next(datetime).timestamp())
        return nxt if nxt > t else self.next_after(nxt)

    def last_at_or_before(self, t: float) -> int | None:
        from croniter import croniter

        try:
            return int(croniter(self.expression, datetime.fromtimestamp(math.floor(t) + 1, self.tz))
                       .get_prev(datetime).timestamp())
        except (ValueError, KeyError):  # croniter gives up when nothing matched for many years
            return None


def rule_for(config: ScheduleConfig, timezone: str) -> Rule:
    tz = ZoneInfo(config.timezone or timezone)
    schedule = config.schedule
    if isinstance(schedule, CronSchedule):
        return Cron(schedule.expression, tz)
    step = schedule.every * UNIT_SECONDS[schedule.unit]
    return EverySeconds(step) if schedule.unit in ("seconds", "minutes") else WallClock(step, tz)


def count_between(rule: Rule, after: float, until: float, cap: int = 10_000) -> int:
    """How many fire times lie in (after, until], counting up to `cap`."""
    count, t = 0, after
    while count < cap:
        t = rule.next_after(t)
        if t > until:
            break
        count += 1
    return count


def fire_item(scheduled_for: float, fired_at: float, timezone: str, missed: int = 0) -> Item:
    tz = ZoneInfo(timezone)
    return {"fired_at": datetime.fromtimestamp(fired_at, tz).isoformat(timespec="milliseconds"),
            "scheduled_for": datetime.fromtimestamp(scheduled_for, tz).isoformat(),
            "timezone": timezone, "missed": missed}


class ScheduleTrigger(NodeType):
    """Starts the flow on a schedule while the flow is active: a cron expression (`0 9 * * 1-5`: 9:00 on weekdays)
    or an interval (every N seconds, minutes, hours or days), in the schedule's timezone (default: the flow's).

    Each scheduled time runs the flow once, also with several servers on one database. After the server was down,
    `missed` decides: `skip` the times that passed, or `run_once` (one run for all of them; its `missed` field says
    how many). The item: `{"fired_at", "scheduled_for", "timezone", "missed"}` (times in ISO 8601 with the offset).
    Run by hand, it starts with an item for the current time."""

    type = "trigger.schedule"
    title = "Schedule"
    category = Category.trigger
    icon = "schedule"
    description = "Start the flow on a cron schedule or every N minutes, while the flow is active."
    inputs = ()
    Config = ScheduleConfig
    passes_input = True  # its `run` hands on the items it is given: the engine makes such a step itself

    async def run(self, ctx: Context, config: ScheduleConfig, inputs: Inputs) -> Outputs:
        given = inputs.get("main") or []
        if given:
            return list(given)
        import time

        now = time.time()
        return [fire_item(now, now, config.timezone or "UTC")]
