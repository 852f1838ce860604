"""What a production host runs, decided from its ``dtriad.toml`` (pure: no I/O).

One TOML file per host holds the whole cluster (the same keys as a local
cluster's ``cluster.json``) plus a ``[host]`` table saying which parts run on
this host::

    replicas = 2
    password = "..."              # clients' AUTH on the RESP ports, nothing else
    secret = "..."                # admin methods and ring pushes
    http_auth = "token"           # the HTTP data methods need data_token
    data_token = "..."            # (as 'Authorization: Bearer ...')
    backend_password = "..."      # the backends' internal ACL user ("dtriad")
    sentinel_password = "..."     # Redis Sentinel's, and its ACL user on the backends
    sentinels = ["10.0.0.15:26379"]
    [[nodes]]
    name = "n1"
    redis = "10.0.0.11:6379"
    http = "http://10.0.0.11:8080"
    resp = "10.0.0.11:6380"       # optional: the RESP front end
    [host]
    node = "n1"                   # this host runs n1's backend and DTServer
    sentinel = "10.0.0.15:26379"  # and/or a Redis Sentinel on this address
    dtsentinel = true             # and/or the DTSentinel

:func:`units` turns that into systemd units; every unit starts a ``dtriad
host ...`` command, the same start path the multi-host tests use.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from pathlib import PurePosixPath

from dtriad.config import DEFAULT_DATA_DIR, ClusterConfig, HostSection
from dtriad.exceptions import ConfigurationError

CONFIG_PATH = PurePosixPath("/etc/dtriad/dtriad.toml")
DATA_DIR = PurePosixPath(DEFAULT_DATA_DIR)
USER = "dtriad"
UNIT_DIR = PurePosixPath("/etc/systemd/system")
# Debian's own units for its packages: they would serve without a password.
DISTRO_UNITS = ("redis-server.service", "redis-sentinel.service")


@dataclass(frozen=True)
class Roles(HostSection):
    """The ``[host]`` table (:class:`~dtriad.config.HostSection`): what runs here,
    checked against the rest of the file."""

    @classmethod
    def of(cls, config: ClusterConfig) -> Roles:
        host = config.host
        if host is None:
            raise ConfigurationError(
                "[host] runs nothing: give node = NAME, sentinel = ADDRESS or dtsentinel = true")
        roles = cls(**{f.name: getattr(host, f.name) for f in fields(HostSection)})
        if roles.node is not None:
            config.node(roles.node)  # raises with the names it knows
        if roles.sentinel is not None and roles.sentinel not in config.sentinels:
            raise ConfigurationError(
                f"[host] sentinel {roles.sentinel} is not in 'sentinels' "
                f"{list(config.sentinels)}")
        if roles.dtsentinel and not config.sentinels:
            raise ConfigurationError("the DTSentinel needs 'sentinels' to listen to")
        if not roles.node and not roles.sentinel and not roles.dtsentinel:
            raise ConfigurationError(
                "[host] runs nothing: give node = NAME, sentinel = ADDRESS or dtsentinel = true")
        return roles

    def services(self) -> list[str]:
        """The ``dtriad host`` commands this host runs, in start order."""
        out = []
        if self.node:
            out += ["backend", "server"]
        if self.sentinel:
            out += ["sentinel", "register"]
        if self.dtsentinel:
            out += ["dtsentinel"]
        return out


DESCRIPTIONS = {
    "backend": "dtriad: the node's Redis backend",
    "server": "dtriad: the DTServer (HTTP RPC, and RESP if configured)",
    "sentinel": "dtriad: Redis Sentinel watching the backends",
    "register": "dtriad: register every backend with this Sentinel",
    "dtsentinel": "dtriad: the DTSentinel (membership and migrations)",
}
AFTER = {"server": ["backend"], "register": ["sentinel"], "dtsentinel": ["register"]}


def unit_name(service: str) -> str:
    return f"dtriad-{service}.service"


def unit(service: str, dtriad: str, config_path: str = str(CONFIG_PATH),
         data_dir: str = str(DATA_DIR), services: list[str] | None = None) -> str:
    """One systemd unit: ``dtriad host SERVICE --config FILE`` as the dtriad user.
    It depends on the units of ``AFTER`` this host runs (``services``; all if None):
    a DTSentinel on a node host, a standby one, has no ``register`` unit there."""
    needs = [s for s in AFTER.get(service, []) if services is None or s in services]
    after = " ".join(["network-online.target", *map(unit_name, needs)])
    command = shlex.join([dtriad, "host", service, "--config", config_path])
    lines = ["[Unit]", f"Description={DESCRIPTIONS[service]}", f"After={after}",
             "Wants=network-online.target"]
    if needs:
        lines.append("Requires=" + " ".join(map(unit_name, needs)))
    lines += ["", "[Service]"]
    if service == "register":  # runs once per boot; retried until every backend is in
        lines += ["Type=oneshot", "RemainAfterExit=yes"]
    else:
        lines += ["Type=exec"]
    lines += [f"User={USER}", f"Group={USER}", f"ExecStart={command}",
              "Restart=on-failure", "RestartSec=3"]
    if data_dir == str(DATA_DIR):
        lines += ["StateDirectory=dtriad", "StateDirectoryMode=0700"]
    lines += ["UMask=0077", "LimitNOFILE=65536", "NoNewPrivileges=yes", "ProtectSystem=full",
              "ProtectHome=yes", "PrivateTmp=yes", "", "[Install]",
              "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def units(roles: Roles, dtriad: str, config_path: str = str(CONFIG_PATH)) -> dict[str, str]:
    """``unit file name -> text`` for every service of this host."""
    services = roles.services()
    return {unit_name(s): unit(s, dtriad, config_path, roles.data_dir, services)
            for s in services}

