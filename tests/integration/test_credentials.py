"""Least privilege on a real cluster (README, "Security"): the client password
opens the RESP ports and nothing else; the backends, Sentinel and the admin
methods each take their own credential; rotating the client password
restarts nothing."""

from __future__ import annotations

import stat
import subprocess
import sys
import time

import pytest
import redis
import requests

from dtriad.config import SENTINEL_USER, parse_address
from dtriad.ops import cluster as local

from ..conftest import backend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    directory = tmp_path_factory.mktemp("credentials")
    config = local.up(directory, local.UpOptions(nodes=3, replicas=1, persist=False, workers=1,
                                                 down_after_ms=60_000), log=lambda *_: None)
    yield config
    local.down(directory)


def resp(address: str, password: str, **options) -> redis.Redis:
    host, port = parse_address(address)
    return redis.Redis(host=host, port=port, password=password, socket_timeout=10, **options)


def test_the_client_password_opens_the_resp_ports_and_nothing_else(cluster):
    password = cluster.password
    for node in cluster.nodes:
        client = resp(node.resp, password)
        client.set(f"k:{node.name}", node.name)
        assert client.get(f"k:{node.name}") == node.name.encode()
        for user in (None, "default", cluster.internal.username, SENTINEL_USER):
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(host=node.redis_host, port=node.redis_port, username=user,
                            password=password, socket_timeout=5).ping()
        for path in ("ring", "check", "stats"):  # admin methods want the secret
            reply = requests.get(f"{node.http}/{path}", timeout=10,
                                 headers={"Authorization": f"Bearer {password}"})
            assert reply.status_code in (401, 403), (path, reply.status_code)
    for address in cluster.sentinels:
        with pytest.raises(redis.AuthenticationError):
            resp(address, password).sentinel_masters()


def test_each_internal_login_opens_only_its_part(cluster):
    names = {n.name for n in cluster.nodes}
    for address in cluster.sentinels:
        masters = resp(address, cluster.sentinel_secret).sentinel_masters()
        assert set(masters) == names
        assert all("s_down" not in m["flags"] and not m["is_disconnected"]
                   for m in masters.values())
    for node in cluster.nodes:
        internal = backend(cluster, node)
        assert internal.dbsize() >= 0 and internal.execute_command("ACL", "WHOAMI") == b"dtriad"
        # Sentinel's own user: it monitors (its links are there) but reads no data.
        users = {c.get("user") for c in internal.client_list()}
        assert SENTINEL_USER in users, users
        sentinel = redis.Redis(host=node.redis_host, port=node.redis_port,
                               **cluster.sentinel_login.kwargs(), socket_timeout=5)
        assert sentinel.info("server")["redis_version"]
        for command in (("GET", "k"), ("KEYS", "*"), ("FLUSHALL",), ("SELECT", "1"),
                        ("ACL", "LIST"), ("EVAL", "return 1", "0")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                sentinel.execute_command(*command)


def test_credential_files_are_private_and_hold_only_their_part(cluster):
    directory = cluster.directory
    assert stat.S_IMODE((directory / "cluster.json").stat().st_mode) == 0o600
    for node in cluster.nodes:
        conf = directory / node.name / "redis.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert cluster.password not in conf.read_text()
    sentinel_confs = sorted(directory.glob("sentinel*/sentinel.conf"))
    assert len(sentinel_confs) == len(cluster.sentinels)
    for conf in sentinel_confs:  # as Sentinel rewrote it
        text = conf.read_text()
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert cluster.password not in text and cluster.backend_password not in text


def test_rotating_the_client_password_restarts_nothing(cluster):
    directory = cluster.directory
    before = local.Pids.load(directory)
    confs = {n.name: (directory / n.name / "redis.conf").read_bytes() for n in cluster.nodes}
    old = cluster.password
    kept = resp(cluster.nodes[0].resp, old)
    kept.set("rotation", "before")
    done = subprocess.run([sys.executable, "-m", "dtriad", "passwd", "--dir", str(directory)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "RESP ports taking it: n1, n2, n3" in done.stdout
    new = local.ClusterConfig.load(directory).password
    assert new != old and new not in done.stdout
    for node in cluster.nodes:
        with pytest.raises(redis.AuthenticationError):
            resp(node.resp, old).ping()
        assert resp(node.resp, new).get("rotation") == b"before"
    assert kept.set("rotation", "after") and kept.get("rotation") == b"after"
    after = local.Pids.load(directory)
    assert after.to_dict() == before.to_dict()
    assert all(local.pid_alive(pid) for pid in after.every())
    assert confs == {n.name: (directory / n.name / "redis.conf").read_bytes()
                     for n in cluster.nodes}
    bad = subprocess.run([sys.executable, "-m", "dtriad", "passwd", "--dir", str(directory),
                          "--password", cluster.backend_password],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "must differ" in bad.stderr
    assert local.ClusterConfig.load(directory).password == new  # unchanged
    time.sleep(1.5)  # a refused file changes nothing in the running front ends either
    assert resp(cluster.nodes[1].resp, new).ping()
