"""RQ jobs: imported by reference (``tests.integration.apps.jobs.add``) in
the ``rq worker`` subprocess."""


def add(a, b):
    return a + b


def fail(message):
    raise ValueError(message)
