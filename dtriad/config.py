"""Typed, validated cluster configuration (``cluster.json`` or a host's ``dtriad.toml``).

Every setting is a field of :class:`ClusterConfig`, :class:`NodeSpec` or
:class:`HostSection` (the ``[host]`` table), checked when the object is made.
A key the file has but no field takes is refused, naming the key, where it
was and what is accepted: a typo never silently leaves a default in force.

Runtime state (the PIDs of a local cluster's processes) is not configuration:
it lives in ``DIR/pids.json`` (see :mod:`dtriad.ops.cluster`). The PID keys
older versions wrote into ``cluster.json`` are still read (and ignored) here.
"""

from __future__ import annotations

import difflib
import enum
import json
import os
import re
import tomllib
from dataclasses import KW_ONLY, dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from dtriad.exceptions import ConfigurationError
from dtriad.placement.ring import Ring
from dtriad.placement.ringstate import MAX_MEMBERS, MAX_VNODES


class ReadQuorum(enum.StrEnum):
    """How many copies a read consults."""

    ONE = "one"        # the first copy that answers, master first
    QUORUM = "quorum"  # the newest of a majority, older copies repaired


class WriteQuorum(enum.StrEnum):
    """How many copies must take a write before it is acknowledged."""

    ALL = "all"
    QUORUM = "quorum"
    ONE = "one"


WRITE_QUORUMS = tuple(level.value for level in WriteQuorum)  # ("all", "quorum", "one")
READ_QUORUMS = tuple(level.value for level in ReadQuorum)    # ("one", "quorum")
DEFAULT_MAX_VALUE_BYTES = 1 << 20
SERVERS = ("granian", "wsgiref")
LOG_FORMATS = ("text", "json")
EVENT_LOOPS = ("auto", "asyncio", "uvloop")  # auto: uvloop when installed ('dtriad[fast]')
HTTP_AUTHS = ("none", "token")  # "token": the HTTP data methods need data_token
DEFAULT_DATA_DIR = "/var/lib/dtriad"
# Runtime keys older versions wrote into cluster.json; now in DIR/pids.json.
LEGACY_CLUSTER_KEYS = ("sentinel_pids", "dtsentinel_pid", "dtsentinel_pids")
LEGACY_NODE_KEYS = ("pids",)


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``, with a clear error."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"expected an address like 127.0.0.1:6379, got {address!r}")
    return host, int(port)


def check_level(name: str, level: str) -> ReadQuorum | WriteQuorum:
    """Validate a consistency level (``write_quorum`` or ``read_quorum``);
    the matching enum member."""
    kind = WriteQuorum if name == "write_quorum" else ReadQuorum
    try:
        return kind(level)
    except ValueError:
        allowed = ", ".join(kind)
        raise ConfigurationError(f"{name} must be one of {allowed}, got {level!r}") from None


def required_copies(total: int, level: str) -> int:
    """Copies needed out of ``total`` at ``level`` (all, quorum or one; a
    :class:`WriteQuorum`/:class:`ReadQuorum` member or its string)."""
    if level == "one":
        return min(1, total)
    if level == "quorum":
        return total // 2 + 1
    return total


SENTINEL_USER = "dtriad-sentinel"  # Sentinel's own ACL user on every backend
INTERNAL_USER = "dtriad"           # the backend_user when none is given
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


@dataclass(frozen=True)
class Login:
    """A user name and password for a Redis connection (``None``: none)."""

    username: str | None
    password: str | None

    def kwargs(self) -> dict:
        """``username=`` and ``password=`` for redis-py and :class:`DTClient`."""
        return {"username": self.username, "password": self.password}


def admin_headers(secret: str | None) -> dict[str, str]:
    """The header a DTServer's admin methods need: the cluster secret as a Bearer token."""
    return {"Authorization": f"Bearer {secret}"} if secret else {}


def _token(name: str, value) -> None:
    """A credential sent as a Bearer token: printable ASCII, no spaces, 16+ characters."""
    if value is not None and (not isinstance(value, str) or len(value) < 16
                              or not re.fullmatch(r"[!-~]+", value)):
        raise ConfigurationError(
            f"{name} must be a string of at least 16 printable ASCII characters without "
            f"spaces (try: python -c 'import secrets; print(secrets.token_urlsafe(24))')")


# ------------------------------------------------------------------ checks
def _int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _positive_number(name: str, value, unit: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a number > 0{unit}, got {value!r}")


def _address(name: str, value) -> None:
    try:
        if not isinstance(value, str):
            raise ConfigurationError("not a string")
        parse_address(value)
    except ConfigurationError:
        raise ConfigurationError(
            f"{name} must be an address like 127.0.0.1:6379, got {value!r}") from None


def _optional_str(name: str, value) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {value!r}")


def _bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _settings(cls) -> list[str]:
    """The keys a file may give for ``cls``: its init fields but ``path``."""
    return [f.name for f in fields(cls) if f.init and f.name != "path"]


def _refuse_unknown(table: dict, accepted: list[str], where: str) -> None:
    """A ConfigurationError naming every key of ``table`` not in ``accepted``."""
    unknown = [k for k in table if k not in accepted]
    if not unknown:
        return
    guesses = {}
    for key in unknown:
        close = difflib.get_close_matches(str(key), accepted, n=1)
        if close:
            guesses[key] = close[0]
    if len(unknown) == 1:
        message = f"unknown setting {unknown[0]!r} {where}; "
        hint = f"did you mean {guesses[unknown[0]]!r}? " if guesses else ""
    else:
        message = f"unknown settings {', '.join(map(repr, unknown))} {where}; "
        hint = "".join(f"did you mean {guess!r} for {key!r}? "
                       for key, guess in guesses.items())
    raise ConfigurationError(f"{message}{hint}accepted: {', '.join(sorted(accepted))}")


def _table(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{what} must be a table of settings, got {value!r}")
    return value


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class NodeSpec:
    """One node: its Redis backend and its DTServer."""

    name: str
    redis: str
    http: str
    _: KW_ONLY
    resp: str | None = None  # the DTServer's RESP front end, "host:port"
    persist: bool = True     # a local cluster's backend keeps an append-only file

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str) or len(self.name) > 256:
            raise ConfigurationError(f"a node needs a name (a string of at most 256 "
                                     f"characters), got {self.name!r:.300}")
        _address(f"node {self.name}: redis", self.redis)
        url = urlsplit(self.http) if isinstance(self.http, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.hostname or not url.port:
            raise ConfigurationError(
                f"node {self.name}: http must look like http://127.0.0.1:50001, got {self.http!r}")
        if self.resp is not None:
            _address(f"node {self.name}: resp", self.resp)
        _bool(f"node {self.name}: persist", self.persist)

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

    def to_dict(self) -> dict:
        out = {"name": self.name, "redis": self.redis, "http": self.http}
        if self.resp is not None:
            out["resp"] = self.resp
        out["persist"] = self.persist
        return out

    @classmethod
    def from_dict(cls, data, where: str) -> NodeSpec:
        data = dict(_table(data, f"a node {where}"))
        name = data.get("name")
        place = f"in node {name!r} {where}" if name else f"in a node {where}"
        for key in LEGACY_NODE_KEYS:
            data.pop(key, None)
        _refuse_unknown(data, _settings(cls), place)
        missing = [k for k in ("name", "redis", "http") if k not in data]
        if missing:
            raise ConfigurationError(
                f"missing {', '.join(repr(k) for k in missing)} {place}")
        return cls(**data)


@dataclass(frozen=True)
class HostSection:
    """A production host's ``[host]`` table: which parts run on it, and how.
    (:class:`dtriad.ops.units.Roles` checks it against the rest of the file.)"""

    node: str | None = None          # this host runs that node's backend and DTServer
    sentinel: str | None = None      # and/or a Redis Sentinel on this address
    dtsentinel: bool = False         # and/or a DTSentinel
    data_dir: str = DEFAULT_DATA_DIR
    workers: int = 2                 # HTTP workers of the DTServer
    down_after_ms: int = 5000        # this host's Sentinel calls a backend down after it
    metrics: str | None = None       # "host:port": where this host's DTSentinel serves /metrics

    def __post_init__(self):
        _optional_str("[host] node", self.node)
        if self.metrics is not None:
            _address("[host] metrics", self.metrics)
        if self.sentinel is not None:
            _address("[host] sentinel", self.sentinel)
        _bool("[host] dtsentinel", self.dtsentinel)
        if not isinstance(self.data_dir, str) or not self.data_dir:
            raise ConfigurationError(
                f"[host] data_dir must be a directory path, got {self.data_dir!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) \
                or self.workers < 1:
            raise ConfigurationError(f"[host] workers must be >= 1, got {self.workers!r}")
        _int("[host] down_after_ms", self.down_after_ms, 1)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in _settings(type(self))
                if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, data, where: str) -> HostSection:
        data = _table(data, f"[host] {where}")
        _refuse_unknown(data, _settings(cls), f"in [host] {where}")
        return cls(**data)


@dataclass(frozen=True)
class ClusterConfig:
    """What every DTServer, the DTSentinel and ``dtriad`` need to know."""

    nodes: tuple[NodeSpec, ...]
    replicas: int
    vnodes: int = 1
    # What clients log in with on a RESP port (AUTH [username] password); it
    # opens nothing else. ``username``: a second name AUTH accepts besides
    # "default" (and, in a file without backend_password, the backends' user).
    password: str | None = None
    secret: str | None = None
    username: str | None = None
    write_quorum: WriteQuorum = WriteQuorum.ALL
    read_quorum: ReadQuorum = ReadQuorum.ONE
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    backend_timeout: float = 1.0
    epoch: int = 0
    _: KW_ONLY
    # Redis Sentinels watching the backends ("host:port"); the DTSentinel listens to them.
    sentinels: tuple[str, ...] = ()
    # DTSentinel: keys scanned per Lua call while migrating; a throttle in keys/s
    # (None: none); how long no holder of an arc answers before it is lost.
    migration_batch: int = 1000
    migration_max_keys_per_s: float | None = None
    lost_after_ms: int = 10_000
    # A local cluster ('dtriad up'): Sentinel's down-after-milliseconds, DTSentinels
    # started, HTTP workers per DTServer and the HTTP server they run.
    down_after_ms: int = 1000
    dtsentinels: int = 1
    workers: int = 2
    server: str = "granian"
    # Whether clients may FLUSHALL / FLUSHDB (false: refused, like Redis's rename-command).
    flush_allowed: bool = True
    # Observability: a read-only token for /dashboard and /metrics (the secret also
    # opens them); Prometheus metrics on the request path; "text" or "json" logs.
    viewer_token: str | None = None
    metrics: bool = True
    log_format: str = "text"
    # The HTTP API: "token" makes every data method need 'Authorization: Bearer
    # <data_token>' (the secret also opens them); how long a request body may
    # take to arrive (plus a second per MiB declared) before a 408.
    http_auth: str = "none"
    data_token: str | None = None
    body_timeout_s: float = 2.0
    # The RESP port's limits (Redis's are the model): one request's arguments in
    # all (client-query-buffer-limit), clients at once (maxclients), and how long
    # a connection may stay open without AUTH.
    max_request_bytes: int = 64 * 1024 * 1024
    maxclients: int = 10_000
    auth_timeout_s: float = 10.0
    # The RESP front end's processes per node, sharing its port (SO_REUSEPORT;
    # maxclients counts per process), and their event loop.
    resp_workers: int = 1
    event_loop: str = "auto"
    # The internal credentials (docs/architecture.md, "Credentials"): the ACL
    # user DTServers, DTSentinels and MIGRATE use on every backend, and
    # Sentinel's password (its requirepass, and its own ACL user on the
    # backends). Without backend_password (files from before they existed)
    # the client password is also the backends' and Sentinel's.
    backend_user: str | None = None
    backend_password: str | None = None
    sentinel_password: str | None = None
    # A production host's [host] table (dtriad.toml only).
    host: HostSection | None = None
    # Not a setting: the file this configuration was read from or saved to.
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise in place, once
        if isinstance(self.nodes, list):
            set_(self, "nodes", tuple(self.nodes))
        if not isinstance(self.nodes, tuple) or not self.nodes:
            raise ConfigurationError("a cluster needs at least one node")
        if not all(isinstance(n, NodeSpec) for n in self.nodes):
            raise ConfigurationError("nodes must be NodeSpec objects")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"node names must be unique, got {names}")
        redis = [n.redis for n in self.nodes]
        if len(set(redis)) != len(redis):
            raise ConfigurationError(f"two nodes share a Redis address: {redis}")
        # The bounds a ring state read back from the backends must satisfy
        # (placement/ringstate.py), so every cluster's own ring loads again.
        if len(self.nodes) > MAX_MEMBERS:
            raise ConfigurationError(f"a cluster has at most {MAX_MEMBERS} nodes")
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int) \
                or not 0 <= self.replicas <= MAX_MEMBERS:
            raise ConfigurationError(f"replicas must be an integer in [0, {MAX_MEMBERS}], "
                                     f"got {self.replicas!r}")
        _int("vnodes", self.vnodes, 1)
        if self.vnodes > MAX_VNODES:
            raise ConfigurationError(f"vnodes must be at most {MAX_VNODES}, got {self.vnodes}")
        set_(self, "write_quorum", check_level("write_quorum", self.write_quorum))
        set_(self, "read_quorum", check_level("read_quorum", self.read_quorum))
        if isinstance(self.max_value_bytes, bool) or not isinstance(self.max_value_bytes, int) \
                or self.max_value_bytes < 1:
            raise ConfigurationError(
                f"max_value_bytes must be a positive integer, got {self.max_value_bytes!r}")
        self._check_credentials()
        _positive_number("backend_timeout", self.backend_timeout, " seconds")
        _int("epoch", self.epoch, 0)
        self._check_runtime_settings()
        if isinstance(self.host, dict):
            set_(self, "host", HostSection.from_dict(self.host, "of the configuration"))
        if self.host is not None and not isinstance(self.host, HostSection):
            raise ConfigurationError(f"[host] must be a table, got {self.host!r}")
        if self.path is not None:
            set_(self, "path", Path(self.path))

    def _check_credentials(self) -> None:
        secrets_ = ("password", "secret", "backend_password", "sentinel_password")
        for what in (*secrets_, "username", "backend_user"):
            _optional_str(what, getattr(self, what))
        for what in ("username", "backend_user"):
            value = getattr(self, what)
            if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
                raise ConfigurationError(
                    f"{what} must be 1 to 64 letters, digits, '_', '.' or '-', got {value!r}")
        for what in secrets_:
            value = getattr(self, what)
            if value is not None and not re.fullmatch(r"[!-~]+", value):
                raise ConfigurationError(
                    f"{what} must be printable ASCII without spaces (try: {GENERATE})")
        if self.username and not self.password:
            raise ConfigurationError("a username needs a password")
        if self.backend_password is None:
            for what in ("backend_user", "sentinel_password"):
                if getattr(self, what) is not None:
                    raise ConfigurationError(f"{what} needs a backend_password (the internal "
                                             f"user's password on the backends; try: {GENERATE})")
            return
        if not self.password:
            raise ConfigurationError("backend_password needs a client password (\"password\"): "
                                     "without one, any client could use the cluster")
        if self.sentinel_password is None:
            raise ConfigurationError(f"backend_password needs a sentinel_password too (Redis "
                                     f"Sentinel's own password; try: {GENERATE})")
        given = {what: getattr(self, what) for what in secrets_ if getattr(self, what)}
        for what, value in given.items():
            if len(value) < 16 and what != "password":
                raise ConfigurationError(f"{what} must have at least 16 characters "
                                         f"(try: {GENERATE})")
            same = [other for other in given if other != what and given[other] == value]
            if same:
                raise ConfigurationError(
                    f"{what} and {same[0]} must differ: each opens something the other "
                    f"must not (a leaked client password must open no backend, no "
                    f"Sentinel and no admin method)")
        user = self.backend_user or INTERNAL_USER
        if user in (SENTINEL_USER, "default", self.username):
            raise ConfigurationError(f"backend_user must not be {user!r} (give another): "
                                     f"that name belongs to another login")

    @property
    def separate_credentials(self) -> bool:
        """Do the backends and Sentinel have credentials of their own? (False:
        a file from before backend_password, where the client password opens
        them too.)"""
        return self.backend_password is not None

    @property
    def internal(self) -> Login:
        """How DTServers, DTSentinels, MIGRATE and 'dtriad check' log in to a backend."""
        if self.separate_credentials:
            return Login(self.backend_user or INTERNAL_USER, self.backend_password)
        return Login(self.username, self.password)

    @property
    def sentinel_login(self) -> Login:
        """How Redis Sentinel logs in to a backend (its auth-user and auth-pass)."""
        if self.separate_credentials:
            return Login(SENTINEL_USER, self.sentinel_password)
        return Login(self.username, self.password)

    @property
    def sentinel_secret(self) -> str | None:
        """What opens a Redis Sentinel (its requirepass)."""
        return self.sentinel_password if self.separate_credentials else self.password

    def _check_runtime_settings(self) -> None:
        set_ = object.__setattr__
        sentinels = self.sentinels
        if isinstance(sentinels, list):
            sentinels = tuple(sentinels)
            set_(self, "sentinels", sentinels)
        if not isinstance(sentinels, tuple) or not all(isinstance(a, str) for a in sentinels):
            raise ConfigurationError(
                f"sentinels must be a list of addresses like 127.0.0.1:26379, got {sentinels!r}")
        for address in sentinels:
            _address("each of sentinels", address)
        if len(set(sentinels)) != len(sentinels):
            raise ConfigurationError(f"sentinels must be distinct, got {list(sentinels)}")
        _int("migration_batch", self.migration_batch, 1)
        rate = self.migration_max_keys_per_s
        if rate == 0 and not isinstance(rate, bool):
            set_(self, "migration_max_keys_per_s", None)  # 0, as before: no throttle
        elif rate is not None:
            _positive_number("migration_max_keys_per_s", rate,
                             " (leave it out for no throttle)")
            set_(self, "migration_max_keys_per_s", float(rate))
        _int("lost_after_ms", self.lost_after_ms, 1)
        _int("down_after_ms", self.down_after_ms, 1)
        _int("dtsentinels", self.dtsentinels, 1)
        _int("workers", self.workers, 1)
        _bool("flush_allowed", self.flush_allowed)
        _bool("metrics", self.metrics)
        _int("max_request_bytes", self.max_request_bytes, 1)
        if self.max_request_bytes < self.max_value_bytes:
            raise ConfigurationError(
                f"max_request_bytes ({self.max_request_bytes}) must be at least "
                f"max_value_bytes ({self.max_value_bytes}): one value must fit in a request")
        _int("maxclients", self.maxclients, 1)
        _int("resp_workers", self.resp_workers, 1)
        if self.resp_workers > 64:
            raise ConfigurationError(f"resp_workers must be at most 64, got {self.resp_workers}")
        if self.event_loop not in EVENT_LOOPS:
            raise ConfigurationError(f"event_loop must be one of {', '.join(EVENT_LOOPS)}, "
                                     f"got {self.event_loop!r}")
        _positive_number("auth_timeout_s", self.auth_timeout_s, "")
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(f"log_format must be one of {', '.join(LOG_FORMATS)}, "
                                     f"got {self.log_format!r}")
        if self.viewer_token is not None and (not isinstance(self.viewer_token, str)
                                              or len(self.viewer_token) < 16):
            raise ConfigurationError("viewer_token must be a string of at least 16 characters")
        if self.server not in SERVERS:
            raise ConfigurationError(
                f"server must be one of {', '.join(SERVERS)}, got {self.server!r}")
        if self.http_auth not in HTTP_AUTHS:
            raise ConfigurationError(f"http_auth must be one of {', '.join(HTTP_AUTHS)}, "
                                     f"got {self.http_auth!r}")
        _token("data_token", self.data_token)
        if self.http_auth == "token" and self.data_token is None:
            raise ConfigurationError(
                "http_auth = \"token\" needs a data_token (the Bearer token of the HTTP "
                "data methods; try: python -c 'import secrets; "
                "print(secrets.token_urlsafe(24))')")
        _positive_number("body_timeout_s", self.body_timeout_s, " seconds")

    @property
    def directory(self) -> Path | None:
        """The directory of the file this was read from: a local cluster's directory."""
        return self.path.parent if self.path is not None else None

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

    def data_headers(self) -> dict[str, str]:
        """What an HTTP call to a DTServer's data methods carries: the data_token,
        if the file has one (needed when ``http_auth`` is "token")."""
        return admin_headers(self.data_token)

    def required_copies(self, total: int, level: str | None = None) -> int:
        """Acknowledgements a write needs out of ``total`` copies."""
        return required_copies(total, level or self.write_quorum)

    @classmethod
    def accepted(cls) -> list[str]:
        """The top-level keys of a cluster file."""
        return _settings(cls)

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None,
                  path: Path | None = None) -> ClusterConfig:
        """Build from a parsed file; ``source`` names it in errors."""
        where = f"in {source}" if source else "in the cluster configuration"
        if not isinstance(data, dict):
            raise ConfigurationError(f"cluster configuration must be a JSON object ({where})")
        data = {k: v for k, v in data.items() if k not in LEGACY_CLUSTER_KEYS}
        _refuse_unknown(data, cls.accepted(), where)
        for key in ("nodes", "replicas"):
            if key not in data:
                raise ConfigurationError(f"cluster configuration is missing {key!r} ({where})")
        nodes = data.pop("nodes")
        if not isinstance(nodes, list | tuple):
            raise ConfigurationError(f"nodes must be a list of tables {where}, got {nodes!r}")
        of = f"of {source}" if source else "of the cluster configuration"
        data["nodes"] = tuple(NodeSpec.from_dict(n, of) for n in nodes)
        if "host" in data:
            data["host"] = HostSection.from_dict(data["host"], of)
        return cls(**data, path=path)

    def to_dict(self) -> dict:
        out = {
            "replicas": self.replicas, "vnodes": self.vnodes, "password": self.password,
            "secret": self.secret, "username": self.username,
            "write_quorum": self.write_quorum.value,
            "read_quorum": self.read_quorum.value,
            "max_value_bytes": self.max_value_bytes, "backend_timeout": self.backend_timeout,
            "epoch": self.epoch,
            "sentinels": list(self.sentinels),
            "migration_batch": self.migration_batch,
            "lost_after_ms": self.lost_after_ms,
            "down_after_ms": self.down_after_ms, "dtsentinels": self.dtsentinels,
            "workers": self.workers, "server": self.server,
            "flush_allowed": self.flush_allowed,
            "viewer_token": self.viewer_token, "metrics": self.metrics,
            "log_format": self.log_format, "max_request_bytes": self.max_request_bytes,
            "maxclients": self.maxclients, "auth_timeout_s": self.auth_timeout_s,
            "resp_workers": self.resp_workers, "event_loop": self.event_loop,
            "http_auth": self.http_auth, "body_timeout_s": self.body_timeout_s,
        }
        for what in ("data_token", "backend_user", "backend_password", "sentinel_password"):
            if getattr(self, what) is not None:
                out[what] = getattr(self, what)
        if self.migration_max_keys_per_s is not None:
            out["migration_max_keys_per_s"] = self.migration_max_keys_per_s
        if self.host is not None:
            out["host"] = self.host.to_dict()
        out["nodes"] = [n.to_dict() for n in self.nodes]
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
        return cls.from_dict(data, source=str(path), path=path.absolute())

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically, readable by the owner only (it holds secrets)."""
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
        object.__setattr__(self, "path", path.absolute())
