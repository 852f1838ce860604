"""A Celery app whose broker and result backend are RESP ports of a dtriad
cluster (``DTRIAD_CELERY_BROKER``, ``DTRIAD_CELERY_BACKEND``); the producer
in the test process points ``app.conf`` at other nodes."""

import os

from celery import Celery

app = Celery("dtriad_apps",
             broker=os.environ.get("DTRIAD_CELERY_BROKER", "redis://127.0.0.1:1/0"),
             backend=os.environ.get("DTRIAD_CELERY_BACKEND", "redis://127.0.0.1:1/0"))
app.conf.update(task_default_queue=os.environ.get("DTRIAD_CELERY_QUEUE", "dtriad-apps"),
                broker_connection_retry_on_startup=True, result_expires=600,
                worker_hijack_root_logger=False)


@app.task
def add(x, y):
    return x + y


@app.task
def total(values):
    return sum(values)


@app.task
def fail(message):
    raise ValueError(message)
