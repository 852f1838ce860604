"""``dtriad up --http-auth token`` on a real cluster: data methods need the
data_token (or the secret), health stays open, the admin methods keep the
secret, the shell sends the token; and POSTs trickling their bodies no longer
hold the DTServer (one granian worker here, the hardest case)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from dtriad.config import ClusterConfig
from dtriad.ops import cluster as local

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    directory = tmp_path_factory.mktemp("guarded")
    run = subprocess.run([sys.executable, "-m", "dtriad", "up", "--nodes", "2", "--replicas",
                          "1", "--workers", "1", "--no-persist", "--http-auth", "token",
                          "--dir", str(directory)], capture_output=True, text=True,
                         timeout=180)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        config = ClusterConfig.load(directory)
        assert "Authorization: Bearer <data_token" in run.stdout
        assert config.data_token not in run.stdout + run.stderr
        yield config
    finally:
        local.down(directory)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_up_writes_a_token_and_turns_auth_on(guarded):
    assert guarded.http_auth == "token" and len(guarded.data_token) >= 16
    assert guarded.data_token not in (guarded.secret, guarded.viewer_token)


def test_data_methods_need_the_token_and_the_secret_opens_them(guarded):
    url = guarded.nodes[0].http
    for headers in ({}, bearer("not-the-data-token-0000")):
        reply = requests.post(f"{url}/set", data={"key": "k", "value": "v"},
                              headers=headers, timeout=5)
        assert reply.status_code == 401 and reply.json()["code"] == "NOAUTH", reply.text
        assert requests.get(f"{url}/get?key=k", headers=headers, timeout=5).status_code == 401
    reply = requests.post(f"{url}/set", data={"key": "k", "value": "v"},
                          headers=guarded.data_headers(), timeout=5)
    assert (reply.status_code, reply.json()) == (200, "OK")
    reply = requests.get(f"{url}/get?key=k", headers=bearer(guarded.secret), timeout=5)
    assert (reply.status_code, reply.json()) == (200, "v")
    # The other DTServer reads the same copy with the same token.
    reply = requests.get(f"{guarded.nodes[1].http}/get?key=k",
                         headers=guarded.data_headers(), timeout=5)
    assert reply.json() == "v"


def test_health_is_open_and_admin_methods_keep_the_secret(guarded):
    url = guarded.nodes[0].http
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    assert requests.get(f"{url}/ring", headers=guarded.data_headers(),
                        timeout=5).status_code == 401
    assert requests.get(f"{url}/ring", headers=guarded.admin_headers(),
                        timeout=5).status_code == 200


def test_the_shell_sends_the_token(guarded, tmp_path):
    def cli(*args, env=None):
        return subprocess.run([sys.executable, "-m", "dtriad", "cli", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    done = cli("--cluster", str(guarded.directory), "set", "shell-key", "hello")
    assert (done.returncode, done.stdout.strip()) == (0, "OK"), done.stderr
    # A file with the data_token but no secret: the token opens the data methods.
    client = ClusterConfig(nodes=guarded.nodes, replicas=guarded.replicas,
                           http_auth="token", data_token=guarded.data_token)
    client.save(tmp_path / "client.json")
    done = cli("--cluster", str(tmp_path / "client.json"), "get", "shell-key")
    assert (done.returncode, done.stdout.strip()) == (0, "hello"), done.stderr
    port = str(guarded.nodes[0].http_port)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DTRIAD_SECRET", "DTRIAD_DATA_TOKEN")}
    done = cli("-p", port, "get", "shell-key", env=env)
    assert done.returncode == 1 and "NOAUTH" in done.stdout + done.stderr
    done = cli("-p", port, "get", "shell-key", env={**env, "DTRIAD_DATA_TOKEN":
                                                      guarded.data_token})
    assert (done.returncode, done.stdout.strip()) == (0, "hello"), done.stderr


def trickle(node, token: str, replies: list, stop: threading.Event) -> None:
    """A POST whose 100-byte body comes one byte a second."""
    with socket.create_connection((node.http_host, node.http_port), timeout=30) as s:
        s.sendall(b"POST /set HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"Content-Type: application/x-www-form-urlencoded\r\n"
                  b"Content-Length: 100\r\n\r\n" % token.encode())
        s.settimeout(1.0)
        for byte in b"key=slow&value=" + b"x" * 85:
            try:
                s.sendall(bytes([byte]))
                head = s.recv(4096)
                if head:
                    replies.append(head)
                    return
            except TimeoutError:
                pass
            except OSError:
                return
            if stop.is_set():
                return


def test_trickling_bodies_do_not_hold_the_dtserver(guarded):
    node = guarded.nodes[0]
    replies: list[bytes] = []
    stop = threading.Event()
    slow = [threading.Thread(target=trickle, args=(node, guarded.data_token, replies, stop),
                             daemon=True) for _ in range(3)]
    for thread in slow:
        thread.start()
    time.sleep(0.5)  # every slow POST has reached the DTServer
    try:
        started = time.monotonic()
        reply = requests.get(f"{node.http}/get?key=k", headers=guarded.data_headers(),
                             timeout=10)
        assert reply.status_code == 200 and time.monotonic() - started < 10
        for thread in slow:
            thread.join(15)
        assert len(replies) == 3, replies
        for head in replies:
            assert head.startswith(b"HTTP/1.1 408"), head
            assert b'"code": "TIMEOUT"' in head and b"did not arrive within" in head
    finally:
        stop.set()
