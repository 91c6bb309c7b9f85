"""The officers' dashboard, as pure functions: percentiles, and the stages a request went
through, read from its status events (the audit chain's ``from_status``/``to_status``).

A *stage* is the time a request spends in one status: from the event that moved it into
the status to the next event that moved it out (an event that keeps the status, such as a
rejected sample, does not end the stage). A stage still running has no end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks (as
    NumPy's default): p50 of ``[1, 2, 3, 4]`` is 2.5; ``None`` without values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class StatusEvent:
    """One event of a request's chain that names the status it led to."""

    request_id: str
    at: datetime
    to_status: str


@dataclass(frozen=True)
class Stage:
    request_id: str
    status: str
    started: datetime
    ended: datetime | None  # None: still running

    def seconds(self, now: datetime) -> float:
        return ((self.ended or now) - self.started).total_seconds()


def stages_of(events: Iterable[StatusEvent]) -> list[Stage]:
    """Every stage of every request, from its status events in chain order (events of
    several requests may be interleaved; each request's own order is kept)."""
    open_: dict[str, tuple[str, datetime]] = {}
    stages: list[Stage] = []
    for event in events:
        current = open_.get(event.request_id)
        if current is not None and current[0] == event.to_status:
            continue  # the status stays: the stage goes on
        if current is not None:
            stages.append(Stage(event.request_id, current[0], current[1], event.at))
        open_[event.request_id] = (event.to_status, event.at)
    stages.extend(
        Stage(request_id, status, started, None) for request_id, (status, started) in open_.items()
    )
    return stages


@dataclass(frozen=True)
class LeadTime:
    status: str
    count: int
    p50: float | None
    p90: float | None


def lead_times(stages: Iterable[Stage], start: datetime, end: datetime) -> list[LeadTime]:
    """p50 and p90 (seconds) of the stages that ended within ``[start, end)``, per status,
    in the order the statuses first appear."""
    spans: dict[str, list[float]] = {}
    for stage in stages:
        if stage.ended is not None and start <= stage.ended < end:
            spans.setdefault(stage.status, []).append(stage.seconds(stage.ended))
    return [
        LeadTime(status, len(values), percentile(values, 50), percentile(values, 90))
        for status, values in spans.items()
    ]


@dataclass(frozen=True)
class Overdue:
    status: str
    target_seconds: float
    #: Stages that ended within the range after running past their target.
    finished_late: int
    #: Stages running now for longer than their target.
    running_late: int


def overdue(
    stages: Iterable[Stage],
    targets: Mapping[str, float],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Overdue]:
    """Per status with a target: the stages finished late within ``[start, end)`` and the
    stages running late now."""
    finished = dict.fromkeys(targets, 0)
    running = dict.fromkeys(targets, 0)
    for stage in stages:
        target = targets.get(stage.status)
        if target is None:
            continue
        if stage.ended is None:
            if stage.seconds(now) > target:
                running[stage.status] += 1
        elif start <= stage.ended < end and stage.seconds(now) > target:
            finished[stage.status] += 1
    return [
        Overdue(status, targets[status], finished[status], running[status]) for status in targets
    ]


@dataclass(frozen=True)
class Bar:
    """One bar of a horizontal bar chart, in the chart's own units (0–100 wide)."""

    label: str
    value: float
    shown: str
    width: float
    y: int


def bars(items: Sequence[tuple[str, float, str]], *, height: int = 24, gap: int = 8) -> list[Bar]:
    """Bars for ``(label, value, shown)`` items scaled to the largest value (a value of 0
    gets no width)."""
    largest = max((value for _, value, _ in items), default=0) or 1
    return [
        Bar(label, value, shown, round(100 * value / largest, 2), index * (height + gap))
        for index, (label, value, shown) in enumerate(items)
    ]
