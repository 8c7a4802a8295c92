"""What a worker process keeps between tasks: settings, database sessions, storage, the queue, and loaded
models, so a worker does not reload weights for every task."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from veil.core.database.connection import create_db_engine
from veil.core.queue import TaskQueue
from veil.core.settings import Settings
from veil.core.storage import Storage, open_storage
from veil.engine.anonymizer import Anonymizer
from veil.engine.detectors.base import DetectorConfig
from veil.worker.options import EngineRequest

__all__ = ["ModelCache", "WorkerContext"]

# Threshold is a free number in the API, so the cache is bounded; a few sets of weights fit in memory.
_MAX_CACHED_MODELS = 4


class ModelCache:
    """Loaded detectors per (detector names, threshold), the least recently used dropped beyond a few."""

    def __init__(self, max_entries: int = _MAX_CACHED_MODELS) -> None:
        self._loaded: OrderedDict[tuple[tuple[str, ...], float | None], Anonymizer] = OrderedDict()
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def anonymizer(self, request: EngineRequest) -> Anonymizer:
        """An anonymizer with the request's options over cached detectors, loading them on first use.

        Raises:
            ModelError: a detector is unknown or its weights cannot be loaded.
        """
        key = (request.detectors, request.threshold)
        with self._lock:
            base = self._loaded.pop(key, None)
            if base is None:
                base = Anonymizer.load(request.detectors, DetectorConfig(threshold=request.threshold))
            self._loaded[key] = base
            while len(self._loaded) > self._max_entries:
                self._loaded.popitem(last=False)
        return Anonymizer(base.detectors, request.options, base.video_detectors)


@dataclass
class WorkerContext:
    """Everything the task functions use, made once per worker process.

    Attributes:
        beat_interval_s: how often a running task refreshes its heartbeat and progress, and looks for
            a cancellation.
    """

    settings: Settings
    sessions: sessionmaker[Session]
    storage: Storage
    queue: TaskQueue
    models: ModelCache = field(default_factory=ModelCache)
    beat_interval_s: float = 1.0

    @classmethod
    def create(cls, settings: Settings, queue: TaskQueue) -> WorkerContext:
        """Opens the database; call it in the process that runs the tasks, after any fork."""
        sessions = sessionmaker(create_db_engine(settings.database_url), expire_on_commit=False)
        return cls(settings, sessions, open_storage(settings), queue)
