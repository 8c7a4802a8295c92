"""`GET /metrics` in the Prometheus text format, computed from the database at each scrape.

The numbers live in the database that every API server and worker shares, so a collector that queries it
when scraped is right for any number of processes, and keeps nothing in memory between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from veil.core.services.stats import processed_totals, task_counts, task_durations, workers_alive

__all__ = ["TaskStatsCollector", "render_metrics"]


class TaskStatsCollector(Collector):
    """Tasks by status, queue depth, run times, processed totals and live workers, read with `session`."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        counts = task_counts(self.session)
        tasks = GaugeMetricFamily("veil_tasks", "Tasks by status.", labels=["status"])
        for status, count in counts.items():
            tasks.add_metric([status], count)
        yield tasks
        yield GaugeMetricFamily("veil_queue_depth", "Tasks waiting for a worker.", value=counts["queued"])
        durations = task_durations(self.session)
        yield HistogramMetricFamily(
            "veil_task_duration_seconds",
            "Run time of finished tasks, from start to finish.",
            buckets=[(str(bound), n) for bound, n in durations.buckets] + [("+Inf", durations.count)],
            sum_value=durations.sum_s,
        )
        totals = processed_totals(self.session)
        yield CounterMetricFamily("veil_files_processed", "Files processed, all keys.", value=totals.files)
        yield CounterMetricFamily("veil_bytes_processed", "Bytes of input processed.", value=totals.bytes)
        yield CounterMetricFamily("veil_frames_processed", "Video frames processed.", value=totals.frames)
        yield GaugeMetricFamily(
            "veil_workers_alive", "Workers seen recently.", value=workers_alive(self.session)
        )


def render_metrics(session: Session) -> bytes:
    """The exposition text. A registry per scrape holds only this collector: no process or global metrics,
    which would describe one process of many."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskStatsCollector(session))
    return generate_latest(registry)
