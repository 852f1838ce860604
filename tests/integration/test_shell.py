"""``dtriad cli`` against a real local cluster, and redis-cli against a plain redis-server.

The same commands go to both: piped on standard input and one at a time on
the command line, in redis-cli's default output when piped (raw) and in its
terminal output (``--no-raw``), and the bytes on standard output must be
equal. Exit statuses differ on purpose: redis-cli 6.2 and 7.0 exit 0 after an
error reply, ``dtriad cli`` exits 1. The interactive prompt is driven through
a pseudo-terminal (pexpect).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest

from dtriad.membership.check import check
from dtriad.ops.procs import free_port
from tests.conftest import quiet_cluster, reference_redis_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
MAX_VALUE = 4096


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from quiet_cluster(tmp_path_factory, "shell", MAX_VALUE)


def http_port(config) -> int:
    return config.nodes[0].http_port


def dtriad_cli(config, *args, stdin: bytes | None = None, secret: bool = True):
    """``dtriad cli -p PORT``; the admin commands' secret from $DTRIAD_SECRET."""
    env = {k: v for k, v in os.environ.items() if k != "DTRIAD_SECRET"}
    if secret:
        env["DTRIAD_SECRET"] = config.secret
    return subprocess.run([sys.executable, "-m", "dtriad", "cli", "-p", str(http_port(config)),
                           *args], input=stdin, capture_output=True, timeout=60, env=env)


def redis_cli(port: int, password: str, *args, stdin: bytes | None = None):
    return subprocess.run([reference_redis_cli(), "-p", str(port), "-a", password,
                           "--no-auth-warning", *args], input=stdin, capture_output=True,
                          timeout=60)


def script(p: str) -> str:
    """Every kind of reply redis-cli prints, quoting and escapes, and errors."""
    return "\n".join([
        f'set {p}:greeting "hello world"', f"get {p}:greeting", f"get {p}:none",
        f"set {p}:q 'it''s'", f"set {p}:q 'it\\'s'", f"get {p}:q",
        f'set {p}:esc "tab\\there\\nnew \\"quoted\\" \\x41\\\\"', f"get {p}:esc",
        f"set {p}:utf héllo", f"get {p}:utf", f"strlen {p}:utf",
        f"incr {p}:n", f"incrby {p}:n 41", f"incrbyfloat {p}:f 1.5", f"incr {p}:greeting",
        f"rpush {p}:l a b c d e f g h i j k", f"lrange {p}:l 0 -1", f"lrange {p}:none 0 -1",
        f"lpop {p}:l 2", f"lpop {p}:none 2", f"lindex {p}:l 99", f"lpush {p}:l",
        f"hset {p}:h f1 v1 f2 v2", f"hgetall {p}:h", f"hmget {p}:h f1 nope f2",
        f"sadd {p}:s 3 1 2", f"smembers {p}:s", f"zadd {p}:z 1 a 2.5 b", f"zscore {p}:z b",
        f"zrange {p}:z 0 -1 withscores", f"mset {p}:a 1 {p}:b 2", f"mget {p}:a {p}:b {p}:c",
        f"mset {p}:a 1 {p}:b", f"exists {p}:a {p}:b {p}:c", f"del {p}:a {p}:b",
        f"type {p}:l", f"set {p}:x 1 ex notanumber", f"expire {p}:n 100", f"persist {p}:n",
        f"ttl {p}:n", "get", f"foo {p} bar", "", "   ", f'set {p}:bad "unbalanced',
        "ping", "ping hello", "echo 'a b'", f"GET {p}:greeting",
    ]) + "\n"


@pytest.mark.parametrize("mode", [[], ["--no-raw"]], ids=["piped-raw", "no-raw"])
def test_piped_commands_print_exactly_what_redis_cli_prints(cluster, plain, mode):
    prefix = f"pipe{len(mode)}"
    ours = dtriad_cli(cluster, *mode, stdin=script(prefix).encode())
    theirs = redis_cli(plain, cluster.password, *mode, stdin=script(prefix).encode())
    assert theirs.returncode == 0 and theirs.stderr == b""
    assert ours.stdout == theirs.stdout
    assert ours.returncode == 1  # the script has error replies
    assert ours.stderr.decode() == (  # a wrong arity also gives the usage, on stderr
        "usage: LPUSH key element [element ...]\nusage: MSET key value [key value ...]\n"
        "usage: GET key\n")
    assert check(cluster).clean


ONE_SHOT = [
    ["set", "one:k", "hello world"], ["get", "one:k"], ["get", "one:none"], ["incr", "one:n"],
    ["rpush", "one:l", "a", "b"], ["lrange", "one:l", "0", "-1"],
    ["lrange", "one:none", "0", "-1"], ["incr", "one:l"], ["hset", "one:h", "f", "1"],
    ["hgetall", "one:h"], ["type", "one:l"], ["get"], ["nosuch", "x"], ["dbsize"],
    ["del", "one:k", "one:n"], ["ping"],
]


def test_one_shot_commands_print_what_redis_cli_prints_and_fail_on_errors(cluster, plain):
    for command in ONE_SHOT:
        for mode in ([], ["--no-raw"]):
            ours = dtriad_cli(cluster, *mode, *command)
            theirs = redis_cli(plain, cluster.password, *mode, *command)
            assert ours.stdout == theirs.stdout, (command, mode)
            failed = ours.stdout.startswith(b"(error)") or (
                not mode and ours.stdout[:4] in (b"ERR ", b"WRON"))
            assert ours.returncode == (1 if failed else 0), (command, mode, ours)


def test_json_output(cluster):
    done = dtriad_cli(cluster, "--json", "rpush", "json:l", "a", "b")
    assert (done.returncode, json.loads(done.stdout)) == (0, 2)
    done = dtriad_cli(cluster, "--json", "lrange", "json:l", "0", "-1")
    assert json.loads(done.stdout) == ["a", "b"]
    done = dtriad_cli(cluster, "--json", "get", "json:l")
    assert done.returncode == 1 and json.loads(done.stdout)["code"] == "WRONGTYPE"
    done = dtriad_cli(cluster, "--json", "ring")
    ring = json.loads(done.stdout)
    assert [n["name"] for n in ring["nodes"]] == ["n1", "n2", "n3"]
    assert all(n["arcs"] == {"master": 1, "backup": 2} for n in ring["nodes"])


def test_admin_commands(cluster):
    done = subprocess.run([sys.executable, "-m", "dtriad", "cli", "-p",
                           str(http_port(cluster))],
                          input="".join(f"set admin:{i} v\n" for i in range(30)).encode(),
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == b"OK\n" * 30

    ring = dtriad_cli(cluster, "ring").stdout.decode().splitlines()
    assert ring[0].startswith("epoch ") and "replicas 2" in ring[0]
    assert [line.split()[0] for line in ring[1:]] == ["node", "n1", "n2", "n3"]
    assert all(line.endswith("1/2") for line in ring[2:])

    keydist = dtriad_cli(cluster, "--no-raw", "keydist").stdout.decode().splitlines()
    rows = {line.split()[0]: line.split() for line in keydist[1:4]}
    assert set(rows) == {"n1", "n2", "n3"}
    masters = sum(int(r[1]) for r in rows.values())
    backups = sum(int(r[2]) for r in rows.values())
    keys = int(dtriad_cli(cluster, "dbsize").stdout)
    assert masters == keys and backups == 2 * keys  # r = 2: every key has two backups
    assert keydist[-1] == "█ master  ░ backup"

    verdict = dtriad_cli(cluster, "check")
    assert verdict.returncode == 0
    assert verdict.stdout.decode().splitlines()[-1].startswith(f"[OK] {keys} keys, each on")

    health = dtriad_cli(cluster, "health").stdout.decode()
    assert health.startswith("status ok") and health.count(" up ") == 3
    assert "requests: " in dtriad_cli(cluster, "stats").stdout.decode()
    wrong = dtriad_cli(cluster, "ring", "extra")
    assert wrong.returncode == 1 and wrong.stderr == b"usage: RING\n"
    for command in ("ring", "keydist", "check", "stats"):  # admin: the secret is needed
        refused = dtriad_cli(cluster, command, secret=False)
        assert refused.returncode == 1 and refused.stdout.startswith(b"NOAUTH "), refused
        assert b"needs the cluster secret" in refused.stdout
    assert dtriad_cli(cluster, "health", secret=False).returncode == 0
    shown = dtriad_cli(cluster, "--json", "ring").stdout.decode()
    assert cluster.secret not in shown and cluster.password not in shown


def test_bad_input_is_refused_with_a_reason(cluster):
    big = dtriad_cli(cluster, "set", "bad:big", "x" * (MAX_VALUE + 1))
    assert big.returncode == 1
    assert big.stdout.decode().startswith(f"TOO_LARGE value is {MAX_VALUE + 1} bytes")
    assert dtriad_cli(cluster, "exists", "bad:big").stdout == b"0\n"  # nothing written
    binary = subprocess.run([sys.executable, "-m", "dtriad", "cli", "-p",
                             str(http_port(cluster)), "set", "bad:bin", b"\xff"],
                            capture_output=True, timeout=60)
    assert binary.returncode == 1 and b"not valid UTF-8" in binary.stdout
    unsupported = dtriad_cli(cluster, "migrate", "h", "1", "k", "0", "5")
    assert unsupported.returncode == 1 and b"dtriad does not serve" in unsupported.stdout


def test_a_dtserver_down_fails_over_or_says_where_it_looked(cluster, tmp_path):
    closed = free_port()
    down = subprocess.run([sys.executable, "-m", "dtriad", "cli", "-p", str(closed), "ping"],
                          capture_output=True, timeout=60)
    assert down.returncode == 1 and down.stdout == b""
    assert f"127.0.0.1:{closed}: Connection refused".encode() in down.stderr
    assert b"Is the cluster up?" in down.stderr

    # The cluster file's first DTServer does not answer: the next one does.
    data = json.loads(Path(cluster.directory, "cluster.json").read_text())
    data["nodes"][0]["http"] = f"http://127.0.0.1:{closed}"
    (tmp_path / "cluster.json").write_text(json.dumps(data))
    done = subprocess.run([sys.executable, "-m", "dtriad", "cli", "--cluster", str(tmp_path),
                           "set", "failover:k", "v"], capture_output=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, b"OK\n")

    missing = subprocess.run([sys.executable, "-m", "dtriad", "cli", "--cluster",
                              str(tmp_path / "nope"), "ping"], capture_output=True, timeout=60)
    assert missing.returncode != 0 and b"start a cluster with 'dtriad up'" in missing.stderr


# ----------------------------------------------------------------- interactive
PROMPT = r"127\.0\.0\.1:\d+>"


@contextmanager
def session(tmp_path, port: int):
    """``dtriad cli -p PORT`` on a pseudo-terminal; closed (by its PID) at the end."""
    env = dict(os.environ, DTRIAD_HISTFILE=str(tmp_path / "history"), TERM="xterm",
               PROMPT_TOOLKIT_NO_CPR="1")  # no terminal here answers cursor-position queries
    child = pexpect.spawn(sys.executable, ["-m", "dtriad", "cli", "-p", str(port)], env=env,
                          encoding="utf-8", timeout=30, dimensions=(40, 200))
    try:
        yield child
    finally:
        child.close(force=True)


def test_interactive_prompt(cluster, tmp_path):
    with session(tmp_path, http_port(cluster)) as child:
        child.expect(PROMPT)
        child.sendline('set tty:greeting "hello world"')  # quoting as in redis-cli
        child.expect("OK")
        child.expect(PROMPT)
        child.sendline('GET tty:greeting')  # commands are case-insensitive
        child.expect('"hello world"')
        child.expect(PROMPT)
        child.sendline('set tty:esc "a\\tb"')
        child.expect(PROMPT)
        child.sendline("get tty:esc")
        child.expect(r'"a\\tb"')
        child.expect(PROMPT)
        child.send("lran\t")  # tab completion of a command name
        child.expect("lrange")
        child.sendline(" tty:none 0 -1")
        child.expect(r"\(empty array\)")
        child.expect(PROMPT)
        child.send("set tty:cancelled x")
        child.expect("cancelled x")  # the prompt has the line (and the terminal in raw mode)
        child.sendcontrol("c")  # Ctrl-C drops the line
        child.expect(PROMPT)
        child.sendline("help get")
        child.expect("summary: Get the value of a key")
        child.expect(PROMPT)
        child.sendline("get")
        child.expect(r"\(error\) ERR wrong number of arguments for 'get' command")
        child.expect("usage: GET key")
        child.expect(PROMPT)
        child.send("\x1b[A" * 4)  # history: get, help get, lrange ..., get tty:esc
        child.expect("get tty:esc")
        child.sendline("")
        child.expect(r'"a\\tb"')
        child.expect(PROMPT)
        child.sendline("quit")
        child.expect(pexpect.EOF)
    assert child.exitstatus == 0
    assert dtriad_cli(cluster, "exists", "tty:cancelled").stdout == b"0\n"

    # History survives the session; Ctrl-D leaves.
    history = (tmp_path / "history").read_text()
    assert "set tty:greeting" in history and "help get" in history
    with session(tmp_path, http_port(cluster)) as child:
        child.expect(PROMPT)
        child.send("\x1b[A")
        child.sendline("")  # the last command of the previous session: quit
        child.expect(pexpect.EOF)
    assert child.exitstatus == 0
    with session(tmp_path, http_port(cluster)) as child:
        child.expect(PROMPT)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    assert child.exitstatus == 0


def test_interactive_prompt_without_a_dtserver(cluster, tmp_path):
    closed = free_port()
    with session(tmp_path, closed) as child:
        child.expect("Connection refused")
        child.expect("not connected>")
        child.sendline("get k")
        child.expect("Could not connect to a DTServer")
        child.expect("not connected>")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    assert child.exitstatus == 0
