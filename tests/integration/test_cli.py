"""The `dtriad` command against real processes."""

import json
import os
import subprocess
import sys

import pytest
import requests
from click.testing import CliRunner

from dtriad.config import ClusterConfig
from dtriad.ops import cluster as local
from dtriad.ops.main import main
from dtriad.ops.procs import pid_alive

pytestmark = pytest.mark.integration


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_up_status_kill_down_and_restart_with_data(tmp_path):
    directory = tmp_path / "c"
    result = run("up", "--nodes", 3, "--replicas", 1, "--workers", 1, "--dir", directory)
    assert result.exit_code == 0, result.output
    assert "cluster up: 3 nodes, replicas=1" in result.output
    config = ClusterConfig.load(directory)
    pids = local.Pids.load(directory).every()
    assert len(pids) == 8  # 3 backends, 3 DTServers, Sentinel, DTSentinel
    data = json.loads((directory / "cluster.json").read_text())  # configuration only
    assert not [k for table in [data, *data["nodes"]] for k in table if "pid" in k]
    try:
        http = config.nodes[0].http
        assert requests.get(f"{http}/set", params={"key": "kept", "value": "yes"}).ok

        again = run("up", "--nodes", 3, "--dir", directory)
        assert again.exit_code != 0 and "already running" in again.output

        status = run("status", "--dir", directory)
        assert status.exit_code == 0 and status.output.count(" up") >= 6
        as_json = json.loads(run("status", "--json", "--dir", directory).output)
        assert [n["server"] for n in as_json["nodes"]] == ["up"] * 3

        killed = run("node", "kill", "n2", "--dir", directory)
        assert killed.exit_code == 0 and "killed the backend of n2" in killed.output
        status = run("status", "--dir", directory)
        assert status.exit_code == 1 and "down" in status.output
        assert run("node", "kill", "n9", "--dir", directory).exit_code != 0
        refused = run("node", "forget", "n3", "--dir", directory)
        assert refused.exit_code != 0 and "still answers" in refused.output

        assert "stopped" in run("down", "--dir", directory).output
        assert not any(pid_alive(p) for p in pids)
        assert run("down", "--dir", directory).output.strip() == "nothing was running"

        # The same directory starts the same cluster again, with its data (AOF).
        restarted = run("up", "--dir", directory)
        assert restarted.exit_code == 0 and "restarting the cluster" in restarted.output
        config = ClusterConfig.load(directory)
        pids = local.Pids.load(directory).every()
        assert len(pids) == 8
        assert requests.get(f"{http}/get", params={"key": "kept"}).json() == "yes"
    finally:
        run("down", "--dir", directory)
    assert not any(pid_alive(p) for p in pids)


def test_up_refuses_bad_options(tmp_path):
    result = run("up", "--nodes", 0, "--dir", tmp_path)
    assert result.exit_code == 2 and "--nodes" in result.output
    result = run("status", "--dir", tmp_path / "none")
    assert result.exit_code == 1 and "no cluster file" in result.output


def test_demo_runs_from_start_to_finish():
    result = subprocess.run([sys.executable, "-m", "dtriad", "demo", "--keys", "6"],
                            capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 of 6 keys readable with one backend dead." in result.stdout
    out = result.stdout
    assert "ring epoch 1:" in out and "now reaches all 3 copies: HTTP 200 'OK'" in out
    assert "ring epoch 2:" in out and "copied in 3 transfers (r+1 = 3)" in out
    assert out.count("all copies identical") == 2 and out.rstrip().endswith("done.")


def test_killed_and_stopped_processes_leave_no_zombie(tmp_path):
    directory = tmp_path / "z"
    assert run("up", "--nodes", 2, "--replicas", 1, "--workers", 1, "--no-persist",
               "--dir", directory).exit_code == 0
    pids = local.Pids.load(directory).every()
    assert len(pids) == 6  # 2 backends, 2 DTServers, Sentinel, DTSentinel
    try:
        assert run("node", "kill", "n1", "--dir", directory).exit_code == 0
    finally:
        run("down", "--dir", directory)
    for pid in pids:  # reaped: not even a zombie entry in the process table
        assert not os.path.exists(f"/proc/{pid}"), f"pid {pid} left behind"


def _processes_under(directory) -> list[int]:
    """PIDs whose command line names ``directory`` (a read-only /proc scan)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if str(directory).encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_a_failed_start_leaves_no_process_behind(tmp_path):
    """Restarting a stopped cluster while one DTServer's port is taken fails
    with the reason, and stops every process it had started."""
    import socket

    directory = tmp_path / "f"
    assert run("up", "--nodes", 3, "--replicas", 1, "--workers", 1, "--no-persist",
               "--dir", directory).exit_code == 0
    run("down", "--dir", directory)
    config = ClusterConfig.load(directory)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", config.nodes[1].http_port))
    blocker.listen()
    try:
        result = run("up", "--dir", directory)
    finally:
        blocker.close()
    assert result.exit_code != 0
    assert "Address already in use" in result.output or "n2" in result.output
    pids = local.Pids.load(directory)
    assert pids.every() == []  # every process it had started was stopped, by its PID
    assert _processes_under(directory) == []
