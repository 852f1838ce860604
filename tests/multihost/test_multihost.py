"""A cluster spread over network namespaces: a host dies, a link is cut."""

import pytest

from dtriad.logs import secrets_of
from dtriad.placement.ring import Ring

pytestmark = [pytest.mark.multihost, pytest.mark.integration, pytest.mark.timeout(300)]


def write(hosts, node, key, value, **levels):
    return hosts.http(node, "set", key=key, value=value, **levels)


def test_a_dead_host_is_repaired_around_and_nothing_acknowledged_is_lost(hosts):
    acked = {}
    for i in range(120):
        answer = write(hosts, f"n{1 + i % 4}", f"k{i}", f"v{i}")
        assert answer["status"] == 200, answer
        acked[f"k{i}"] = f"v{i}"

    killed = hosts.kill_host("h4")
    assert killed  # its backend and DTServer (and workers) were running
    # Keep writing through the surviving DTServers while the ring repairs:
    # some writes are refused (a copy is gone), none that is acknowledged may vanish.
    refused = {}
    i = 0

    def repaired() -> bool:
        nonlocal i
        for _ in range(10):
            key, node = f"during{i}", f"n{1 + i % 3}"
            answer = write(hosts, node, key, f"w{i}")
            if answer["status"] == 200:
                acked[key] = f"w{i}"
            else:
                refused[key] = answer
            i += 1
        ring = hosts.ring("n1")
        return (ring.get("epoch", 0) >= 1 and ring.get("pending_epoch") is None
                and {n["name"]: n["state"] for n in ring["nodes"]}["n4"] == "out")

    hosts.wait(repaired, 90, "the ring to repair around h4")
    for answer in refused.values():  # a clear error, never a hang or a stack trace
        assert answer["status"] in (503, 409) and answer["body"]["code"] in (
            "QUORUM", "BACKEND_DOWN", "UNAVAILABLE", "TRYAGAIN"), answer
    for n in ("n1", "n2", "n3"):
        assert hosts.ring(n)["epoch"] == hosts.ring("n1")["epoch"]
    lost = {}
    for key, value in acked.items():
        for node in ("n1", "n2", "n3"):
            answer = hosts.http(node, "get", key=key)
            if answer.get("body") != value:
                lost[key] = (node, answer)
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {list(lost.items())[:3]}"
    report = hosts.check()
    assert report.returncode == 0, report.stdout + report.stderr
    assert "[OK]" in report.stdout
    # Every process's log (Redis, Sentinel, DTServers, DTSentinel): no secret in it.
    logs = hosts.logs(tail=10**7)
    assert "monitors n4" in logs and "epoch 1" in logs
    for secret in secrets_of(hosts.config):
        assert secret not in logs


@pytest.mark.parametrize("hosts", [60_000], indirect=True)  # no eviction during the cut
def test_a_cut_link_keeps_reads_and_applies_the_write_quorum_then_heals(hosts):
    config = hosts.config
    ring = Ring([n.redis for n in config.nodes], config.replicas, config.vnodes)
    cut = config.node("n2").redis
    for i in range(60):
        assert write(hosts, "n1", f"k{i}", f"v{i}")["status"] == 200

    hosts.network.cut("h2")
    # Reads: every key, including those n2 masters, from a copy that answers.
    for i in range(60):
        answer = hosts.http("n1", "get", key=f"k{i}")
        assert answer == {"status": 200, "body": f"v{i}"}, (f"k{i}", answer)
    # Writes: refused with a clear error when n2's copy is required, taken when
    # the level allows it (n2 a backup at write_quorum=quorum), and never lost.
    outcomes = {}
    expected = {}
    for i in range(60):
        key, owners = f"k{i}", ring.preference_list(f"k{i}")
        for level in ("all", "quorum"):
            answer = write(hosts, "n1", key, f"{level}{i}", write_quorum=level)
            outcomes[key, level] = answer
            if cut not in owners:
                assert answer["status"] == 200, (key, level, answer)
            elif level == "quorum" and owners[0] != cut:
                assert answer["status"] == 200, (key, level, answer)
            else:
                assert answer["status"] == 503 and answer["body"]["code"] == "QUORUM", answer
                assert "of 3 copies" in answer["body"]["error"]
            if answer["status"] == 200:
                expected[key] = f"{level}{i}"
    assert {(k, lvl) for (k, lvl), a in outcomes.items() if a["status"] != 200}
    # The partitioned host's own DTServer cannot be reached at all.
    assert hosts.http("n2", "get", key="k0", timeout=2)["status"] is None

    hosts.network.heal("h2")
    hosts.wait(lambda: hosts.check().returncode == 0, 60,
               "dtriad check to be clean after the heal (repairs)")
    for key, value in expected.items():
        for node in ("n1", "n2", "n3", "n4"):
            answer = hosts.http(node, "get", key=key)
            assert answer["body"] == value, (key, node, answer)
    assert hosts.ring("n2")["epoch"] == 0  # a blip shorter than down-after: no eviction
