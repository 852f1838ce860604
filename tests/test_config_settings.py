"""Typed settings: defaults, every refusal (unknown keys at every level, with
the typo's likely meaning; wrong types and ranges), consistency levels as
enums, and the local cluster's PIDs kept apart in pids.json."""

import json
import os
import stat

import pytest
import tomli_w

from dtriad.config import (
    READ_QUORUMS,
    WRITE_QUORUMS,
    ClusterConfig,
    HostSection,
    NodeSpec,
    ReadQuorum,
    WriteQuorum,
    check_level,
    required_copies,
)
from dtriad.exceptions import ConfigurationError
from dtriad.ops import cluster as local

NODES = [{"name": f"n{i}", "redis": f"127.0.0.1:{7000 + i}",
          "http": f"http://127.0.0.1:{8000 + i}"} for i in range(1, 4)]
BASE = {"replicas": 1, "nodes": NODES}


def load(tmp_path, data: dict, name: str = "cluster.json") -> ClusterConfig:
    path = tmp_path / name
    if name.endswith(".toml"):
        path.write_bytes(tomli_w.dumps(data).encode())
    else:
        path.write_text(json.dumps(data))
    return ClusterConfig.load(path)


def refused(data: dict) -> str:
    with pytest.raises(ConfigurationError) as e:
        ClusterConfig.from_dict(data, source="cluster.json")
    return str(e.value)


# ------------------------------------------------------------------ defaults
def test_every_setting_has_a_typed_default():
    config = ClusterConfig.from_dict(BASE)
    assert config.sentinels == ()
    assert config.migration_batch == 1000 and config.migration_max_keys_per_s is None
    assert config.lost_after_ms == 10_000 and config.down_after_ms == 1000
    assert config.dtsentinels == 1 and config.workers == 2 and config.server == "granian"
    assert config.host is None and config.path is None and config.directory is None
    assert config.write_quorum is WriteQuorum.ALL and config.read_quorum is ReadQuorum.ONE
    node = config.nodes[0]
    assert node.resp is None and node.persist is True


def test_a_local_cluster_file_of_before_reads_unchanged(tmp_path):
    """What 'dtriad up' wrote before settings were typed, PIDs included: the
    PIDs are ignored here (ops.cluster reads them until pids.json exists)."""
    old = {**BASE, "password": "pw", "secret": "s", "username": None,
           "write_quorum": "quorum", "read_quorum": "one", "max_value_bytes": 1 << 20,
           "backend_timeout": 1.0, "epoch": 0, "sentinels": ["127.0.0.1:26379"],
           "sentinel_pids": [11], "dtsentinel_pid": 12, "dtsentinel_pids": [12, 13],
           "dtsentinels": 2, "down_after_ms": 500, "workers": 1, "server": "wsgiref",
           "nodes": [{**n, "pids": {"redis": 20 + i, "server": 30 + i}, "persist": False,
                      "resp": f"127.0.0.1:{9000 + i}"} for i, n in enumerate(NODES)]}
    config = load(tmp_path, old)
    assert config.sentinels == ("127.0.0.1:26379",) and config.dtsentinels == 2
    assert config.down_after_ms == 500 and config.workers == 1 and config.server == "wsgiref"
    assert [n.resp for n in config.nodes] == ["127.0.0.1:9000", "127.0.0.1:9001",
                                              "127.0.0.1:9002"]
    assert not any(n.persist for n in config.nodes)
    assert config.write_quorum == "quorum"
    written = json.dumps(config.to_dict())
    assert "pid" not in written  # configuration only from now on
    # ... and the PIDs are still found, to stop those processes
    pids = local.Pids.load(tmp_path)
    assert pids.node("n2") == local.NodePids(21, 31)
    assert pids.sentinels == [11] and pids.dtsentinels == [12, 13] and pids.dtsentinel == 12


def test_the_dtsentinel_settings_read_from_a_file(tmp_path):
    config = load(tmp_path, {**BASE, "migration_batch": 50, "migration_max_keys_per_s": 5000,
                             "lost_after_ms": 2500})
    assert config.migration_batch == 50 and config.lost_after_ms == 2500
    assert config.migration_max_keys_per_s == 5000.0
    assert isinstance(config.migration_max_keys_per_s, float)
    assert ClusterConfig.from_dict({**BASE, "migration_max_keys_per_s": 0}
                                   ).migration_max_keys_per_s is None  # 0: no throttle


def test_a_host_file_gives_a_typed_host_section(tmp_path):
    config = load(tmp_path, {**BASE, "sentinels": ["10.0.0.1:26379"],
                             "host": {"node": "n1", "sentinel": "10.0.0.1:26379",
                                      "workers": 4}}, "h.toml")
    assert config.host == HostSection(node="n1", sentinel="10.0.0.1:26379", workers=4)
    assert config.host.data_dir == "/var/lib/dtriad" and config.host.down_after_ms == 5000
    assert config.to_dict()["host"]["workers"] == 4


# ------------------------------------------------------------------ unknown keys
def test_a_typo_at_the_top_is_refused_with_what_it_likely_meant():
    message = refused({**BASE, "migration_bacth": 500})
    assert message.startswith("unknown setting 'migration_bacth' in cluster.json; "
                              "did you mean 'migration_batch'? accepted: ")
    for key in ("migration_batch", "nodes", "replicas", "sentinels", "host", "write_quorum"):
        assert key in message.split("accepted: ")[1]


def test_an_unknown_key_in_a_node_names_the_node():
    nodes = [NODES[0], {**NODES[1], "rsp": "127.0.0.1:9000"}, NODES[2]]
    message = refused({**BASE, "nodes": nodes})
    assert "unknown setting 'rsp' in node 'n2' of cluster.json" in message
    assert "did you mean 'resp'?" in message
    assert message.endswith("accepted: http, name, persist, redis, resp")


def test_an_unknown_key_in_the_host_table_is_refused():
    message = refused({**BASE, "host": {"node": "n1", "colour": "red"}})
    assert "unknown setting 'colour' in [host] of cluster.json" in message
    assert "did you mean" not in message  # nothing close to it
    assert ("accepted: data_dir, down_after_ms, dtsentinel, metrics, node, sentinel, "
            "workers") in message


def test_several_unknown_keys_are_all_named():
    message = refused({**BASE, "dtsentinel": 2, "colour": "red"})
    assert "unknown settings 'dtsentinel', 'colour' in cluster.json" in message
    assert "did you mean 'dtsentinels' for 'dtsentinel'?" in message


def test_unknown_keys_name_the_file_they_are_in(tmp_path):
    with pytest.raises(ConfigurationError) as e:
        load(tmp_path, {**BASE, "replica": 2}, "h.toml")
    assert f"in {tmp_path / 'h.toml'}; did you mean 'replicas'?" in str(e.value)
    with pytest.raises(ConfigurationError) as e:
        load(tmp_path, {**BASE, "nodes": [{**NODES[0], "persists": False}]})
    assert f"in node 'n1' of {tmp_path / 'cluster.json'}; did you mean 'persist'?" in str(
        e.value)


# ------------------------------------------------------------------ bad values
@pytest.mark.parametrize("change, words", [
    ({"sentinels": "127.0.0.1:26379"}, "sentinels must be a list of addresses"),
    ({"sentinels": ["localhost"]}, "each of sentinels must be an address like"),
    ({"sentinels": ["127.0.0.1:1", "127.0.0.1:1"]}, "sentinels must be distinct"),
    ({"migration_batch": 0}, "migration_batch must be an integer >= 1"),
    ({"migration_batch": "1000"}, "migration_batch must be an integer >= 1, got '1000'"),
    ({"migration_max_keys_per_s": -5}, "migration_max_keys_per_s must be a number > 0"),
    ({"migration_max_keys_per_s": "fast"}, "leave it out for no throttle"),
    ({"lost_after_ms": 0}, "lost_after_ms must be an integer >= 1"),
    ({"down_after_ms": 2.5}, "down_after_ms must be an integer >= 1"),
    ({"dtsentinels": 0}, "dtsentinels must be an integer >= 1"),
    ({"workers": True}, "workers must be an integer >= 1"),
    ({"server": "gunicorn"}, "server must be one of granian, wsgiref"),
    ({"replicas": "two"}, "replicas must be an integer in [0, 1024]"),
    ({"vnodes": 2048}, "vnodes must be at most 1024"),  # its ring would not load back
    ({"backend_timeout": "1"}, "backend_timeout must be a number > 0 seconds"),
    ({"password": 1234}, "password must be a string"),
    ({"epoch": -1}, "epoch must be an integer >= 0"),
    ({"read_quorum": "all"}, "read_quorum must be one of one, quorum, got 'all'"),
    ({"nodes": "n1"}, "nodes must be a list of tables"),
    ({"nodes": ["n1"]}, "a node of cluster.json must be a table"),
    ({"nodes": [{"name": "n1", "redis": "127.0.0.1:1"}]},
     "missing 'http' in node 'n1' of cluster.json"),
    ({"nodes": [{**NODES[0], "resp": "nowhere"}]}, "node n1: resp must be an address like"),
    ({"nodes": [{**NODES[0], "redis": 6379}]}, "node n1: redis must be an address like"),
    ({"nodes": [{**NODES[0], "persist": "no"}]}, "node n1: persist must be true or false"),
    ({"host": "n1"}, "[host] of cluster.json must be a table"),
    ({"host": {"workers": 0}}, "[host] workers must be >= 1"),
    ({"host": {"node": 1}}, "[host] node must be a string"),
    ({"host": {"data_dir": ""}}, "[host] data_dir must be a directory path"),
    ({"host": {"down_after_ms": "5s"}}, "[host] down_after_ms must be an integer >= 1"),
])
def test_a_bad_value_is_refused_with_the_reason(change, words):
    assert words in refused({**BASE, **change})


def test_missing_keys_are_named():
    assert "missing 'nodes'" in refused({"replicas": 1})
    assert "missing 'replicas'" in refused({"nodes": NODES})
    assert "must be a JSON object" in refused([])


def test_settings_are_checked_when_made_in_code_too():
    nodes = tuple(NodeSpec(**n) for n in NODES)
    with pytest.raises(ConfigurationError, match="workers must be an integer >= 1"):
        ClusterConfig(nodes=nodes, replicas=1, workers=0)
    with pytest.raises(ConfigurationError, match="node n1: resp must be an address"):
        NodeSpec("n1", "127.0.0.1:1", "http://127.0.0.1:2", resp="1.2.3.4")
    with pytest.raises(ConfigurationError, match=r"\[host\] workers"):
        HostSection(workers=-1)
    with pytest.raises(ConfigurationError, match=r"\[host\] metrics"):
        HostSection(dtsentinel=True, metrics="9107")
    with pytest.raises(ConfigurationError, match="log_format must be one of text, json"):
        ClusterConfig(nodes=nodes, replicas=1, log_format="xml")
    with pytest.raises(ConfigurationError, match="viewer_token must be a string of at least"):
        ClusterConfig(nodes=nodes, replicas=1, viewer_token="short")
    with pytest.raises(ConfigurationError, match="metrics must be"):
        ClusterConfig(nodes=nodes, replicas=1, metrics="yes")


# ------------------------------------------------------------------ consistency levels
def test_consistency_levels_are_str_enums():
    assert READ_QUORUMS == ("one", "quorum") and WRITE_QUORUMS == ("all", "quorum", "one")
    assert [str(level) for level in ReadQuorum] == list(READ_QUORUMS)
    assert [str(level) for level in WriteQuorum] == list(WRITE_QUORUMS)
    config = ClusterConfig.from_dict({**BASE, "write_quorum": "quorum",
                                      "read_quorum": "quorum"})
    assert config.write_quorum is WriteQuorum.QUORUM and config.write_quorum == "quorum"
    assert config.read_quorum is ReadQuorum.QUORUM
    assert json.dumps({"level": config.write_quorum}) == '{"level": "quorum"}'
    assert config.to_dict()["write_quorum"] == "quorum"
    assert check_level("write_quorum", "one") is WriteQuorum.ONE
    with pytest.raises(ConfigurationError, match="write_quorum must be one of all, quorum, one"):
        check_level("write_quorum", "most")


@pytest.mark.parametrize("level, copies", [("all", 3), ("quorum", 2), ("one", 1)])
def test_required_copies_take_an_enum_or_its_string(level, copies):
    assert required_copies(3, level) == required_copies(3, WriteQuorum(level)) == copies
    assert ClusterConfig.from_dict({**BASE, "write_quorum": level}).required_copies(3) == copies
    assert required_copies(3, ReadQuorum.QUORUM) == 2


# ------------------------------------------------------------------ pids.json
def test_pids_live_in_their_own_file_written_atomically(tmp_path):
    pids = local.Pids()
    pids.node("n1").redis = 101
    pids.node("n1").server = 102
    pids.sentinels = [103]
    pids.dtsentinels = [104, None, 106]
    pids.save(tmp_path)
    path = tmp_path / local.PIDS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == [local.PIDS_FILE]  # no temporary file left
    again = local.Pids.load(tmp_path)
    assert again == pids and again.dtsentinel == 104
    assert again.every() == [101, 102, 103, 104, 106]
    assert dict(again.node("n1").items()) == {"redis": 101, "server": 102}
    assert local.Pids.load(tmp_path / "none") == local.Pids()  # nothing ran there


@pytest.mark.parametrize("text, words", [
    ("{not json", "is not valid JSON"),
    ('{"nodes": {"n1": {"redis": "123"}}}', "a PID must be a positive integer"),
    ('{"nodes": {}, "sentinels": 5}', "sentinels must be a list of PIDs"),
    ("[]", "must hold a JSON object"),
])
def test_a_damaged_pids_file_is_refused(tmp_path, text, words):
    (tmp_path / local.PIDS_FILE).write_text(text)
    with pytest.raises(ConfigurationError, match=words):
        local.Pids.load(tmp_path)
