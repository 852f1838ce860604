"""Fixtures of the integration tests that change a cluster's membership."""

from __future__ import annotations

import pytest

from dtriad.config import ClusterConfig
from dtriad.ops import cluster as local


@pytest.fixture
def cluster(tmp_path):
    """A fresh 5-node r=2 cluster per test (tests change its membership)."""
    started = []

    def start(nodes=5, replicas=2, **options) -> ClusterConfig:
        directory = tmp_path / f"cluster{len(started)}"
        options = {"persist": False, "workers": 1, **options}
        config = local.up(directory, local.UpOptions(nodes=nodes, replicas=replicas,
                                                     **options),
                          log=lambda *_: None)
        started.append(directory)
        return config  # config.directory is ``directory``

    yield start
    for directory in started:
        local.down(directory)
