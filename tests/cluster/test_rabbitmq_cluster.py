"""An API process and a worker on PostgreSQL and RabbitMQ (a virtual host made for the run): a task
submitted through the API completes through the worker."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.cluster.conftest import Cluster, cluster_env
from tests.services import private_postgres, private_rabbitmq
from veil.core.queue import VIDEO_QUEUE, TaskQueue, create_celery
from veil.core.settings import Settings

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("rabbitmq-cluster")
    with private_postgres() as database_url, private_rabbitmq() as broker_url:
        cluster = Cluster(directory, cluster_env(directory, database_url, broker_url), database_url)
        try:
            cluster.api()
            cluster.worker("photo")
            yield cluster
        finally:
            cluster.stop_all()


def test_a_task_submitted_through_the_api_completes_through_rabbitmq(cluster: Cluster) -> None:
    (api,) = [process for process in cluster.processes if process.name == "api"]
    key = cluster.new_key("alice")
    task_ids = [cluster.submit_photo(api, key, seed=index) for index in range(2)]

    tasks = cluster.wait_finished(task_ids)

    assert [(task.status, task.attempts) for task in tasks] == [("completed", 1)] * 2
    assert all(cluster.outputs(task_id) == ["p.png.json"] for task_id in task_ids)
    ready = httpx.get(f"{api.url}/readyz").json()
    assert ready["checks"] == {"database": "ok", "broker": "ok", "storage": "ok", "workers": 1}


def test_a_queue_no_worker_takes_holds_its_messages(cluster: Cluster) -> None:
    """A worker on the photo queue leaves a video-queue message where it is: RabbitMQ counts it."""
    celery = create_celery(Settings(broker_url=cluster.env["VEIL_BROKER_URL"]))
    queue = TaskQueue(celery)
    try:
        before = queue.messages_waiting(VIDEO_QUEUE)
        queue.enqueue("task_nosuchtask0000", VIDEO_QUEUE)
        after = queue.messages_waiting(VIDEO_QUEUE)
    finally:
        celery.close()

    assert after == before + 1
