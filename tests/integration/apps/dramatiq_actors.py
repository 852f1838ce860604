"""Dramatiq actors on a RedisBroker and the Redis results backend, both on
the RESP port in ``DTRIAD_DRAMATIQ_URL`` (read at import, as the worker
process imports this module)."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ.get("DTRIAD_DRAMATIQ_URL", "redis://127.0.0.1:1/0")
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=RedisBackend(url=URL)))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def add(x, y):
    return x + y
