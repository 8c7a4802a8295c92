"""Background requests on S3 storage: results, uploaded inputs and restored files are objects in the
bucket, nothing is left on this machine's disk, and a request's input is gone once it ran."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import RecordingQueue
from tests.server.test_requests import anonymized, download, run_requests, started
from tests.server.test_s3_storage import _local_files, _objects, settings, storage, worker
from veil.core.storage import S3Storage
from veil.worker.context import WorkerContext

__all__ = ["settings", "storage", "worker"]  # the S3 fixtures, shared with test_s3_storage


def test_backups_and_exports_live_in_s3(
    client: TestClient,
    worker: WorkerContext,
    storage: S3Storage,
    queue: RecordingQueue,
    alice: dict[str, str],
    one_face: object,
) -> None:
    task_id = anonymized(client, worker, alice)
    backup_rq = started(client.post(f"/v1/tasks/{task_id}/backup/export", headers=alice))
    export_rq = started(
        client.post(
            f"/v1/tasks/{task_id}/dataset/export",
            headers=alice,
            params={"format": "COCO 1.0", "save_images": True},
        )
    )
    run_requests(worker, queue)
    backup = download(
        client, alice, client.get(f"/v1/requests/{backup_rq}", headers=alice).json()["result_url"]
    )
    files = {"file": ("backup.zip", backup, "application/zip")}
    restore_rq = started(client.post("/v1/tasks/backup", headers=alice, files=files))
    assert any(f"{restore_rq}/input/" in name for name in _objects(storage))
    run_requests(worker, queue)

    for rq_id in (backup_rq, export_rq, restore_rq):
        request = client.get(f"/v1/requests/{rq_id}", headers=alice).json()
        assert (request["status"], request["message"]) == ("finished", ""), request
    restored = client.get(f"/v1/tasks/{request['result_id']}", headers=alice).json()
    assert restored["status"] == "completed"
    assert not [name for name in _objects(storage) if "/input/" in name]
    assert _local_files(worker.settings) == []
