"""Prometheus metrics of a Flowboard database, read when scraped (so every server and worker on it agrees):

    flowboard_runs{status="succeeded"}        runs by status (an indexed GROUP BY)
    flowboard_queue_depth                     runs waiting for a worker (Procrastinate jobs to do), else queued runs
    flowboard_step_seconds{quantile="0.5"}    step duration over the steps of the latest runs (0.5, 0.9, 0.99)
    flowboard_runs_in_process                 runs going in this process's engine

Read with `prometheus_client` (text format 0.0.4); `/metrics` on the server, `flowboard worker --metrics-port`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .store.store import unpack_steps
from .store.tables import runs_t, steps_t

if TYPE_CHECKING:
    from .services import Flowboard

RECENT_RUNS = 200  # the step-duration quantiles are taken over the steps of this many latest runs
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Collector:
    def __init__(self, fb: Flowboard):
        self.fb = fb

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        engine = self.fb.store.engine
        with engine.connect() as conn:
            rows = conn.execute(sa.select(runs_t.c.status, sa.func.count()).group_by(runs_t.c.status)).all()
            by_status: dict[str, int] = {str(status): int(count) for status, count in rows}
            depth = _queue_depth(conn, by_status)
            latest = sa.select(runs_t.c.id).order_by(runs_t.c.id.desc()).limit(RECENT_RUNS).subquery()
            durations = [float(d) for (d,) in conn.execute(
                sa.select(steps_t.c.finished - steps_t.c.started).where(steps_t.c.run_id.in_(sa.select(latest.c.id))))]
            for (packed,) in conn.execute(sa.select(runs_t.c.steps).where(  # steps packed in their run row
                    runs_t.c.id.in_(sa.select(latest.c.id)), runs_t.c.steps.is_not(None))):
                durations += [float(s["finished"] - s["started"]) for s in unpack_steps("", packed)]
            durations.sort()
        runs = GaugeMetricFamily("flowboard_runs", "Runs recorded, by status.", labels=["status"])
        for status in ("queued", "running", "waiting", "succeeded", "failed", "cancelled", "crashed"):
            runs.add_metric([status], by_status.get(status, 0))
        yield runs
        yield GaugeMetricFamily("flowboard_queue_depth", "Runs waiting for a worker (or queued here) to start them.",
                                value=depth)
        steps = GaugeMetricFamily("flowboard_step_seconds", f"Step duration in seconds, over the steps of the "
                                  f"latest {RECENT_RUNS} runs.", labels=["quantile"])
        for q in ("0.5", "0.9", "0.99"):
            steps.add_metric([q], _quantile(durations, float(q)))
        yield steps
        yield GaugeMetricFamily("flowboard_runs_in_process", "Runs going in this process.",
                                value=len(self.fb.engine.active_runs))


def _queue_depth(conn: sa.Connection, by_status: dict[str, int]) -> int:
    if conn.dialect.name == "postgresql" and conn.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar():
        return int(conn.execute(sa.text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'")).scalar()
                   or 0)
    return by_status.get("queued", 0)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def render(fb: Flowboard) -> bytes:
    """The metrics in Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(fb))
    return bytes(generate_latest(registry))
