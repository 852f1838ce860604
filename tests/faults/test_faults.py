"""The fault-injection suite (``suite.py``) under pytest: every fault kind
once, then a seeded random schedule, against a real 4-node r=1 cluster with
two DTSentinels; no acknowledged operation may be lost, duplicated or left
divergent."""

from __future__ import annotations

import pytest

from .suite import FAULTS, run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]


def test_no_acknowledged_operation_is_lost_under_a_seeded_fault_schedule(tmp_path):
    lines: list[str] = []
    summary = run(tmp_path / "cluster", seed=11, duration=45.0, log=lines.append)
    print("\n".join(lines))
    assert set(summary.faults) == set(FAULTS), summary.faults
    assert summary.acknowledged > 100, "the clients barely wrote: the run proves little"
    assert summary.ok, "\n".join(summary.lines())
