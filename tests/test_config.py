import json
import stat

import pytest

from dtriad.config import ClusterConfig, NodeSpec, parse_address
from dtriad.exceptions import CommandError, ConfigurationError

from .conftest import make_nodes


def test_round_trip_keeps_every_setting(tmp_path):
    config = ClusterConfig(nodes=make_nodes(3), replicas=1, password="p", secret="s",
                           sentinels=("127.0.0.1:26379",))
    path = tmp_path / "cluster.json"
    config.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert config.path == path and config.directory == tmp_path
    data = json.loads(path.read_text())
    data["nodes"][0]["resp"] = "127.0.0.1:7000"
    path.write_text(json.dumps(data))
    loaded = ClusterConfig.load(tmp_path)
    assert loaded.path == path and loaded.directory == tmp_path
    assert loaded.sentinels == ("127.0.0.1:26379",)
    assert loaded.nodes[0].resp == "127.0.0.1:7000" and loaded.nodes[1].resp is None
    assert loaded.to_dict()["nodes"][0]["resp"] == "127.0.0.1:7000"
    assert loaded != config  # n1 has a RESP address now
    assert ClusterConfig.from_dict(loaded.to_dict()) == loaded
    assert "path" not in loaded.to_dict()


@pytest.mark.parametrize("change,words", [
    ({"replicas": -1}, "replicas"),
    ({"vnodes": 0}, "vnodes"),
    ({"write_quorum": "most"}, "write_quorum must be one of all, quorum, one"),
    ({"max_value_bytes": 0}, "max_value_bytes"),
    ({"nodes": ()}, "at least one node"),
    ({"resp_workers": 0}, "resp_workers must be an integer >= 1"),
    ({"resp_workers": 65}, "resp_workers must be at most 64"),
    ({"event_loop": "trio"}, "event_loop must be one of auto, asyncio, uvloop"),
])
def test_invalid_configuration_is_refused(change, words):
    options = {"nodes": make_nodes(2), "replicas": 1} | change
    with pytest.raises(ConfigurationError, match=words):
        ClusterConfig(**options)


def test_bad_addresses_and_files(tmp_path):
    with pytest.raises(ConfigurationError, match="host:port|like 127.0.0.1:6379"):
        parse_address("localhost")
    with pytest.raises(ConfigurationError, match="http must look like"):
        NodeSpec("n1", "127.0.0.1:1", "127.0.0.1:2")
    with pytest.raises(ConfigurationError, match="dtriad up"):
        ClusterConfig.load(tmp_path)
    (tmp_path / "cluster.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        ClusterConfig.load(tmp_path)
    (tmp_path / "cluster.json").write_text('{"replicas": 1}')
    with pytest.raises(ConfigurationError, match="missing"):
        ClusterConfig.load(tmp_path)


def test_required_copies():
    nodes = make_nodes(3)
    assert ClusterConfig(nodes=nodes, replicas=2).required_copies(3) == 3
    assert ClusterConfig(nodes=nodes, replicas=2, write_quorum="quorum").required_copies(3) == 2
    assert ClusterConfig(nodes=nodes, replicas=2, write_quorum="one").required_copies(3) == 1


@pytest.mark.parametrize("text,code", [
    ("WRONGTYPE Operation against a key holding the wrong kind of value", "WRONGTYPE"),
    ("value is not an integer or out of range", "ERR"),
    ("ERR syntax error", "ERR"),
])
def test_redis_errors_keep_their_code(text, code):
    error = CommandError.from_redis(Exception(text))
    assert error.code == code and error.message.startswith(code)


def test_backend_errors_are_worded_as_redis_6_2_words_them():
    """dtriad serves Redis 6.2's replies whichever Redis the backends run."""
    from dtriad.exceptions import CommandError

    seven = CommandError.from_redis(Exception("ERR invalid expire time in 'psetex' command"))
    assert str(seven) == "ERR invalid expire time in psetex"
    same = CommandError.from_redis(Exception("WRONGTYPE Operation against a key holding the "
                                             "wrong kind of value"))
    assert same.code == "WRONGTYPE" and str(same).startswith("WRONGTYPE Operation")
