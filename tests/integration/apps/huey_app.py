"""A RedisHuey (not immediate) on the RESP port in ``DTRIAD_HUEY_URL``, read
at import, as the consumer process imports this module."""

import os

from huey import RedisHuey

huey = RedisHuey("dtriad-apps", url=os.environ.get("DTRIAD_HUEY_URL", "redis://127.0.0.1:1/0"),
                 immediate=False)


@huey.task()
def add(x, y):
    return x + y
