"""A production host: start its parts, register its backends, install its units.

Every ``dtriad host ...`` command reads one ``dtriad.toml`` (see
:mod:`dtriad.ops.units`). ``backend`` and ``sentinel`` replace themselves with
``redis-server`` (exec), so systemd watches and signals Redis itself.
"""

from __future__ import annotations

import filecmp
import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dtriad.config import ClusterConfig, parse_address
from dtriad.exceptions import ConfigurationError
from dtriad.ops.procs import (
    backend_auth,
    redis_config,
    redis_server_binary,
    sentinel_config,
    write_private,
)
from dtriad.ops.units import CONFIG_PATH, DISTRO_UNITS, UNIT_DIR, USER, Roles, units


def load(config_path: str | os.PathLike) -> tuple[ClusterConfig, Roles]:
    config = ClusterConfig.load(config_path)
    return config, Roles.of(config)


def _data_dir(roles: Roles, part: str) -> Path:
    directory = Path(roles.data_dir) / part
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def backend_command(config_path: str | os.PathLike) -> list[str]:
    """Write the backend's redis.conf (0600) and return the command that runs it."""
    config, roles = load(config_path)
    if not roles.node:
        raise ConfigurationError(f"{config_path}: [host] has no node, so no backend runs here")
    node = config.node(roles.node)
    directory = _data_dir(roles, "redis")
    conf = directory / "redis.conf"
    write_private(conf, redis_config(node.redis_port, directory, persist=True,
                                     host=node.redis_host, logfile="", **backend_auth(config)))
    return [redis_server_binary(), str(conf)]


def sentinel_command(config_path: str | os.PathLike) -> list[str]:
    """Write the Sentinel's first file (0600; kept once Sentinel has rewritten
    it with what it learnt) and return the command that runs it."""
    config, roles = load(config_path)
    if not roles.sentinel:
        raise ConfigurationError(f"{config_path}: [host] has no sentinel address")
    host, port = parse_address(roles.sentinel)
    directory = _data_dir(roles, "sentinel")
    conf = directory / "sentinel.conf"
    if not conf.exists():
        write_private(conf, sentinel_config(port, directory, config.sentinel_secret, host,
                                             logfile=""))
    return [redis_server_binary(), str(conf), "--sentinel"]


def register(config_path: str | os.PathLike, timeout: float = 600.0,
             sleep: Callable[[float], None] = time.sleep,
             log: Callable[[str], None] = print) -> None:
    """Have this host's Sentinel monitor every backend of the file (idempotent).
    A backend that does not answer yet is retried until ``timeout``."""
    from dtriad.membership.registration import register as monitor

    config, roles = load(config_path)
    if not roles.sentinel:
        raise ConfigurationError(f"{config_path}: [host] has no sentinel address")
    waiting = list(config.nodes)
    deadline = time.monotonic() + timeout
    while waiting:
        node = waiting[0]
        try:
            monitor([roles.sentinel], node.name, node.redis, config.sentinel_secret,
                    down_after_ms=roles.down_after_ms, timeout=15.0,
                    auth=config.sentinel_login)
        except Exception as e:  # noqa: BLE001 - anything: retried until the deadline
            if time.monotonic() > deadline:
                raise ConfigurationError(
                    f"could not register {node.name} ({node.redis}) with the Sentinel at "
                    f"{roles.sentinel}: {e}") from e
            log(f"{node.name} ({node.redis}) not registered yet ({e}); retrying")
            sleep(2.0)
            continue
        log(f"{roles.sentinel} monitors {node.name} at {node.redis}")
        waiting.pop(0)


def state_file(roles: Roles) -> str:
    """Where the DTServer's workers and RESP front end share the pushed ring."""
    return str(_data_dir(roles, "server") / "ring.json")


# ------------------------------------------------------------------ install
@dataclass
class InstallReport:
    """What an install changed; a second run with the same file changes nothing."""

    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)


def _put(path: Path, source: Path | None, text: str | None, mode: int,
         report: InstallReport) -> bool:
    """Write ``path`` only if its content or mode differs."""
    if path.exists() and (path.stat().st_mode & 0o777) == mode and (
            filecmp.cmp(path, source, shallow=False) if source is not None
            else path.read_text() == text):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(source.read_text() if source is not None else text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    report.changed.append(str(path))
    return True


def install(config_path: str | os.PathLike, root: str | os.PathLike = "/",
            dtriad: str | None = None, systemctl: bool = True,
            run: Callable[[list[str]], None] | None = None) -> InstallReport:
    """Install this host's configuration and systemd units under ``root``;
    with ``systemctl``, enable and start them, restarting only what changed.
    ``run`` executes a command (injected by tests)."""
    config, roles = load(config_path)  # refuse a bad file before touching anything
    run = run or (lambda argv: subprocess.run(argv, check=True))
    root = Path(root)
    report = InstallReport()
    beside = Path(sys.executable).parent / "dtriad"  # this install's own script
    dtriad = dtriad or (str(beside) if beside.exists() else shutil.which("dtriad")
                        or "/opt/dtriad/bin/dtriad")
    etc_config = root / CONFIG_PATH.relative_to("/")
    config_changed = _put(etc_config, Path(config_path), None, 0o600, report)
    if systemctl:
        try:
            account = pwd.getpwnam(USER)
        except KeyError:
            run(["useradd", "--system", "--home-dir", roles.data_dir, "--no-create-home",
                 "--shell", "/usr/sbin/nologin", USER])
            account = pwd.getpwnam(USER)
        os.chown(etc_config, account.pw_uid, account.pw_gid)
        os.chown(etc_config.parent, account.pw_uid, account.pw_gid)
    unit_dir = root / UNIT_DIR.relative_to("/")
    wanted = units(roles, dtriad, str(CONFIG_PATH))
    changed_units = [name for name, text in wanted.items()
                     if _put(unit_dir / name, None, text, 0o644, report)]
    stale = [p for p in sorted(unit_dir.glob("dtriad-*.service")) if p.name not in wanted]
    for path in stale:
        if systemctl:
            run(["systemctl", "disable", "--now", path.name])
        path.unlink()
        report.removed.append(str(path))
    if not systemctl:
        return report
    # Debian starts its own Redis and Sentinel, without a password; ours replace them.
    report.commands.append(["systemctl", "mask", "--now", *DISTRO_UNITS])
    if changed_units or stale:
        report.commands.append(["systemctl", "daemon-reload"])
    names = list(wanted)
    report.commands.append(["systemctl", "enable", *names])
    restart = names if config_changed else changed_units
    if restart:
        report.commands.append(["systemctl", "restart", *restart])
    report.commands.append(["systemctl", "start", *names])
    for argv in report.commands:
        run(argv)
    return report

