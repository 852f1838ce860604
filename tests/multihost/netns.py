"""Hosts made of Linux network namespaces, joined by veth pairs and a bridge.

The bridge lives in a namespace of its own, so nothing is added to the test
runner's network; deleting the namespaces removes every link.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

SUBNET = "10.77.0"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def why_no_namespaces() -> str | None:
    """None if this runner may build namespaces, else exactly why not."""
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    probe = f"dtprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as e:
        return (f"'ip netns add' failed ({e.stderr.strip() or e.returncode}): the runner "
                f"lacks the privilege for network namespaces (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
    ip("netns", "del", probe, check=False)
    return None


class Network:
    """``add(name, octet)`` makes a host at 10.77.0.OCTET; ``cut``/``heal`` its link."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"dtbr{self.tag}"
        self.hosts: dict[str, tuple[str, str]] = {}  # name -> (namespace, bridge-side link)
        ip("netns", "add", self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")

    def add(self, name: str, octet: int) -> str:
        namespace, link = f"dt{self.tag}{name}", f"v{name}"
        ip("netns", "add", namespace)
        self.hosts[name] = (namespace, link)
        ip("-n", self.bridge, "link", "add", link, "type", "veth", "peer", "name", "eth0",
           "netns", namespace)
        ip("-n", self.bridge, "link", "set", link, "master", "br0", "up")
        address = f"{SUBNET}.{octet}"
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        return address

    def namespace(self, name: str) -> str:
        return self.hosts[name][0]

    def cut(self, name: str) -> None:
        ip("-n", self.bridge, "link", "set", self.hosts[name][1], "down")

    def heal(self, name: str) -> None:
        ip("-n", self.bridge, "link", "set", self.hosts[name][1], "up")

    def pids(self, name: str) -> list[int]:
        """Every process running in a host's namespace."""
        out = ip("netns", "pids", self.namespace(name), check=False).stdout
        return [int(p) for p in out.split()]

    def close(self) -> None:
        for namespace, _ in self.hosts.values():
            ip("netns", "del", namespace, check=False)
        ip("netns", "del", self.bridge, check=False)
