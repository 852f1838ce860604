"""Real applications run against a local cluster's RESP ports by
``tests/integration/test_apps.py``: the modules their worker processes import
(``jobs`` for RQ, ``celery_app``, ``dramatiq_actors``, ``huey_app``) and
:class:`Worker`, a worker subprocess stopped by its PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the repository: workers import tests.integration.apps


class Worker:
    """An application's worker as a real subprocess, its output in ``log``.
    It leads its own process group, so :meth:`stop` also ends the children it
    forked (RQ's work horses, Dramatiq's worker processes)."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                   os.environ.get("PYTHONPATH")]))}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if it still runs after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self, tail: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def stop(self, grace: float = 15) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL to its process group."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            self.wait(grace)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the group is ours: pgid == our child's pid
        except ProcessLookupError:
            pass
        self.proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def console_script(name: str) -> str:
    """The console script ``name`` installed beside this Python."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed beside {sys.executable}: "
                                f"pip install -e '.[test]'")
    return str(path)
