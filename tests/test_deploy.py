"""A host's dtriad.toml -> roles, systemd units, and an idempotent install."""

import os
import stat

import pytest
import tomli_w

from dtriad.config import ClusterConfig
from dtriad.exceptions import ConfigurationError
from dtriad.ops.host import install
from dtriad.ops.units import Roles, units

BASE = {
    "replicas": 2, "password": "pw-0123456789", "secret": "secret-0123456789",
    "username": "dtriad", "sentinels": ["10.0.0.20:26379"],
    "nodes": [{"name": f"n{i}", "redis": f"10.0.0.1{i}:6379",
               "http": f"http://10.0.0.1{i}:8080"} for i in range(1, 4)],
}


def write(path, host, **extra):
    path.write_bytes(tomli_w.dumps({**BASE, **extra, "host": host}).encode())
    os.chmod(path, 0o600)
    return path


def roles(**host):
    return Roles.of(ClusterConfig.from_dict({**BASE, "host": host}))


def test_roles_say_what_runs_and_in_what_order():
    assert roles(node="n1").services() == ["backend", "server"]
    assert roles(sentinel="10.0.0.20:26379", dtsentinel=True).services() == [
        "sentinel", "register", "dtsentinel"]


def test_a_standby_dtsentinel_on_a_node_host_needs_no_register_unit():
    texts = units(roles(node="n1", dtsentinel=True), "/opt/dtriad/bin/dtriad")
    assert set(texts) == {"dtriad-backend.service", "dtriad-server.service",
                          "dtriad-dtsentinel.service"}
    assert "register" not in texts["dtriad-dtsentinel.service"]
    with_sentinel = units(roles(sentinel="10.0.0.20:26379", dtsentinel=True), "/x/dtriad")
    assert "Requires=dtriad-register.service" in with_sentinel["dtriad-dtsentinel.service"]


@pytest.mark.parametrize("host, message", [
    ({}, "[host] runs nothing"),
    ({"node": "n9"}, "no node named 'n9'"),
    ({"sentinel": "10.0.0.99:26379"}, "is not in 'sentinels'"),
    ({"node": "n1", "colour": "red"}, "unknown setting 'colour' in [host]"),
    ({"node": "n1", "worker": 3}, "did you mean 'workers'?"),
    ({"node": "n1", "dtsentinel": "yes"}, "[host] dtsentinel must be true or false"),
    ({"sentinel": "nowhere"}, "[host] sentinel must be an address like"),
    ({"node": "n1", "workers": 0}, "workers must be >= 1"),
])
def test_a_bad_host_table_is_refused_with_the_reason(host, message):
    with pytest.raises(ConfigurationError) as e:
        roles(**host)
    assert message in str(e.value)


def test_units_run_dtriad_host_as_the_dtriad_user_in_order():
    files = units(roles(node="n1", sentinel="10.0.0.20:26379", dtsentinel=True),
                  "/opt/dtriad/bin/dtriad")
    assert list(files) == [f"dtriad-{s}.service" for s in
                           ("backend", "server", "sentinel", "register", "dtsentinel")]
    server = files["dtriad-server.service"]
    assert ("ExecStart=/opt/dtriad/bin/dtriad host server --config /etc/dtriad/dtriad.toml"
            in server)
    assert "User=dtriad" in server and "Requires=dtriad-backend.service" in server
    assert "Type=oneshot" in files["dtriad-register.service"]
    assert all("secret" not in text and BASE["password"] not in text
               for text in files.values())


def test_install_writes_private_files_and_a_second_run_changes_nothing(tmp_path):
    source = write(tmp_path / "n1.toml", {"node": "n1"})
    root = tmp_path / "root"
    first = install(source, root=root, dtriad="/opt/dtriad/bin/dtriad", systemctl=False)
    config = root / "etc/dtriad/dtriad.toml"
    assert sorted(first.changed) == sorted([
        str(config), str(root / "etc/systemd/system/dtriad-backend.service"),
        str(root / "etc/systemd/system/dtriad-server.service")])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600  # it holds the secrets
    assert config.read_bytes() == source.read_bytes()
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}

    again = install(source, root=root, dtriad="/opt/dtriad/bin/dtriad", systemctl=False)
    assert again.changed == [] and again.removed == []
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before

    # The host becomes the Sentinel host: node units go, sentinel units come.
    write(source, {"sentinel": "10.0.0.20:26379", "dtsentinel": True})
    moved = install(source, root=root, dtriad="/opt/dtriad/bin/dtriad", systemctl=False)
    assert sorted(os.path.basename(p) for p in moved.removed) == [
        "dtriad-backend.service", "dtriad-server.service"]
    assert sorted(p.name for p in (root / "etc/systemd/system").iterdir()) == [
        "dtriad-dtsentinel.service", "dtriad-register.service", "dtriad-sentinel.service"]


def test_install_restarts_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setattr("dtriad.ops.host.pwd.getpwnam",
                        lambda name: type("pw", (), {"pw_uid": os.getuid(),
                                                     "pw_gid": os.getgid()}))
    source = write(tmp_path / "n1.toml", {"node": "n1"})
    root = tmp_path / "root"
    ran = []
    install(source, root=root, dtriad="/usr/bin/dtriad", run=ran.append)
    restarts = [c for c in ran if c[:2] == ["systemctl", "restart"]]
    assert restarts == [["systemctl", "restart", "dtriad-backend.service",
                         "dtriad-server.service"]]
    assert ["systemctl", "mask", "--now", "redis-server.service",
            "redis-sentinel.service"] in ran  # Debian's passwordless Redis never runs
    ran.clear()
    install(source, root=root, dtriad="/usr/bin/dtriad", run=ran.append)
    assert not [c for c in ran if c[1] in ("restart", "daemon-reload")], ran


def test_install_refuses_a_bad_file_before_touching_anything(tmp_path):
    source = tmp_path / "bad.toml"
    source.write_text('replicas = "two"\n')
    with pytest.raises(ConfigurationError):
        install(source, root=tmp_path / "root", systemctl=False)
    assert not (tmp_path / "root").exists()


def test_a_host_file_in_toml_loads_like_cluster_json(tmp_path):
    path = write(tmp_path / "h.toml", {"node": "n2"}, write_quorum="quorum")
    config = ClusterConfig.load(path)
    assert config.username == "dtriad" and config.write_quorum == "quorum"
    assert config.sentinels == ("10.0.0.20:26379",)
    assert config.host.node == "n2" and Roles.of(config).node == "n2"
    bad = tmp_path / "broken.toml"
    bad.write_text("replicas = \n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        ClusterConfig.load(bad)


def test_dtriad_host_install_command_says_what_it_wrote_then_nothing(tmp_path):
    from click.testing import CliRunner

    from dtriad.ops.main import main

    source = write(tmp_path / "s.toml", {"sentinel": "10.0.0.20:26379", "dtsentinel": True})
    args = ["host", "install", "--config", str(source), "--root", str(tmp_path / "r"),
            "--no-systemctl"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("wrote ") == 4  # the file and three units
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and again.output == "nothing changed\n"
    missing = CliRunner().invoke(main, ["host", "backend", "--config", str(source)])
    assert missing.exit_code == 1 and "[host] has no node" in missing.output
