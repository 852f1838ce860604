"""Typed, validated cluster configuration (``cluster.json``)."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dtriad.exceptions import ConfigurationError
from dtriad.placement.ring import Ring

WRITE_QUORUMS = ("all", "quorum", "one")
READ_QUORUMS = ("one", "quorum")
DEFAULT_MAX_VALUE_BYTES = 1 << 20


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``, with a clear error."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"expected an address like 127.0.0.1:6379, got {address!r}")
    return host, int(port)


def check_level(name: str, level: str) -> str:
    """Validate a consistency level (``write_quorum`` or ``read_quorum``)."""
    allowed = WRITE_QUORUMS if name == "write_quorum" else READ_QUORUMS
    if level not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, got {level!r}")
    return level


def required_copies(total: int, level: str) -> int:
    """Copies needed out of ``total`` at ``level`` (all, quorum or one)."""
    if level == "one":
        return min(1, total)
    if level == "quorum":
        return total // 2 + 1
    return total


def admin_headers(secret: str | None) -> dict[str, str]:
    """The header a DTServer's admin methods need: the cluster secret as a Bearer token."""
    return {"Authorization": f"Bearer {secret}"} if secret else {}


@dataclass(frozen=True)
class NodeSpec:
    """One node: its Redis backend and its DTServer."""

    name: str
    redis: str
    http: str
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if not self.name:
            raise ConfigurationError("a node needs a name")
        parse_address(self.redis)
        url = urlsplit(self.http)
        if url.scheme not in ("http", "https") or not url.hostname or not url.port:
            raise ConfigurationError(
                f"node {self.name}: http must look like http://127.0.0.1:50001, got {self.http!r}")

    @property
    def redis_host(self) -> str:
        return parse_address(self.redis)[0]

    @property
    def redis_port(self) -> int:
        return parse_address(self.redis)[1]

    @property
    def http_host(self) -> str:
        return urlsplit(self.http).hostname

    @property
    def http_port(self) -> int:
        return urlsplit(self.http).port


@dataclass(frozen=True)
class ClusterConfig:
    """What every DTServer needs to know to serve the ring."""

    nodes: tuple[NodeSpec, ...]
    replicas: int
    vnodes: int = 1
    password: str | None = None
    secret: str | None = None
    username: str | None = None
    write_quorum: str = "all"
    read_quorum: str = "one"
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    backend_timeout: float = 1.0
    epoch: int = 0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if not self.nodes:
            raise ConfigurationError("a cluster needs at least one node")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"node names must be unique, got {names}")
        redis = [n.redis for n in self.nodes]
        if len(set(redis)) != len(redis):
            raise ConfigurationError(f"two nodes share a Redis address: {redis}")
        if not isinstance(self.replicas, int) or self.replicas < 0:
            raise ConfigurationError(f"replicas must be an integer >= 0, got {self.replicas!r}")
        if not isinstance(self.vnodes, int) or self.vnodes < 1:
            raise ConfigurationError(f"vnodes must be an integer >= 1, got {self.vnodes!r}")
        check_level("write_quorum", self.write_quorum)
        check_level("read_quorum", self.read_quorum)
        if not isinstance(self.max_value_bytes, int) or self.max_value_bytes < 1:
            raise ConfigurationError(
                f"max_value_bytes must be a positive integer, got {self.max_value_bytes!r}")
        if self.username is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.username):
            raise ConfigurationError(
                f"username must be letters, digits, '_', '.' or '-', got {self.username!r}")
        for what in ("password", "secret"):
            value = getattr(self, what)
            if value is not None and not re.fullmatch(r"[!-~]+", value):
                raise ConfigurationError(
                    f"{what} must be printable ASCII without spaces "
                    f"(try: python -c 'import secrets; print(secrets.token_urlsafe(24))')")
        if self.username and not self.password:
            raise ConfigurationError("a username needs a password")
        if not self.backend_timeout > 0:
            raise ConfigurationError(
                f"backend_timeout must be > 0 seconds, got {self.backend_timeout!r}")

    def ring(self) -> Ring:
        return Ring([n.redis for n in self.nodes], self.replicas, self.vnodes)

    def node_by_redis(self) -> dict[str, NodeSpec]:
        return {n.redis: n for n in self.nodes}

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise ConfigurationError(
            f"no node named {name!r}; nodes are {', '.join(n.name for n in self.nodes)}")

    def admin_headers(self) -> dict[str, str]:
        """What an HTTP call to a DTServer's admin methods must carry."""
        return admin_headers(self.secret)

    def required_copies(self, total: int, level: str | None = None) -> int:
        """Acknowledgements a write needs out of ``total`` copies."""
        return required_copies(total, level or self.write_quorum)

    @classmethod
    def from_dict(cls, data: dict) -> ClusterConfig:
        if not isinstance(data, dict):
            raise ConfigurationError("cluster configuration must be a JSON object")
        known = {"replicas", "vnodes", "password", "secret", "username", "write_quorum",
                 "read_quorum",
                 "max_value_bytes", "backend_timeout", "epoch"}
        try:
            nodes = tuple(
                NodeSpec(n["name"], n["redis"], n["http"],
                         extra={k: v for k, v in n.items() if k not in ("name", "redis", "http")})
                for n in data["nodes"])
            return cls(nodes=nodes, **{k: data[k] for k in known if k in data},
                       extra={k: v for k, v in data.items() if k not in known | {"nodes"}})
        except (KeyError, TypeError) as e:
            raise ConfigurationError(f"cluster configuration is missing or mistypes {e}") from e

    def to_dict(self) -> dict:
        out = dict(self.extra)
        out.update({
            "replicas": self.replicas, "vnodes": self.vnodes, "password": self.password,
            "secret": self.secret, "username": self.username,
            "write_quorum": self.write_quorum,
            "read_quorum": self.read_quorum,
            "max_value_bytes": self.max_value_bytes, "backend_timeout": self.backend_timeout,
            "epoch": self.epoch,
            "nodes": [{**n.extra, "name": n.name, "redis": n.redis, "http": n.http}
                      for n in self.nodes],
        })
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClusterConfig:
        """``cluster.json`` (a local cluster) or a host's ``dtriad.toml`` (same keys)."""
        path = Path(path)
        if path.is_dir():
            path = path / "cluster.json"
        try:
            text = path.read_text()
        except FileNotFoundError as e:
            raise ConfigurationError(
                f"no cluster file at {path}; start a cluster with 'dtriad up' "
                f"or pass --dir") from e
        except PermissionError as e:
            raise ConfigurationError(
                f"cannot read {path} (it holds secrets, mode 0600): run as its owner") from e
        if path.suffix == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ConfigurationError(f"{path} is not valid TOML: {e}") from e
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigurationError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically, readable by the owner only (it holds secrets)."""
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
