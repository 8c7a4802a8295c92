"""Fixtures: scripted detectors, so CLI and pipeline tests run without weights; a migrated database and a
recording queue for the service tests (each folder defines its own `settings`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import FACE_BOX, RecordingQueue
from tests.s3_server import S3Server, seaweedfs
from veil.core.database.connection import create_db_engine, migrate
from veil.core.settings import Settings
from veil.engine.detections import Detections
from veil.engine.detectors import quantized
from veil.engine.detectors.base import DetectorConfig
from veil.engine.detectors.fake import FakeDetector


@pytest.fixture
def scripted_detectors(monkeypatch: pytest.MonkeyPatch) -> Callable[[Detections], None]:
    """Makes every detector the CLI or API loads return the given boxes on every frame."""

    def install(boxes: Detections) -> None:
        def load(name: str, config: DetectorConfig) -> FakeDetector:
            return FakeDetector(boxes[boxes.label == name])

        monkeypatch.setattr("veil.engine.anonymizer.load_detector", load)

    return install


@pytest.fixture
def one_face(scripted_detectors: Callable[[Detections], None]) -> Detections:
    boxes = Detections.from_boxes([FACE_BOX], [0.9], "face")
    scripted_detectors(boxes)
    return boxes


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    migrate(settings.database_url)
    return sessionmaker(create_db_engine(settings.database_url), expire_on_commit=False)


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def small_int8_recipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped INT8 recipes on one small calibration frame: the same build in seconds, not minutes."""
    monkeypatch.setattr(quantized, "PLATE_TEXT_RECIPE", replace(quantized.PLATE_TEXT_RECIPE, frames=1))
    small_face = replace(quantized.CENTERFACE_RECIPE, frames=1, size_wh=(320, 192))
    monkeypatch.setattr(quantized, "CENTERFACE_RECIPE", small_face)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) for the whole run, started when a test first needs it (about 3 s)."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
