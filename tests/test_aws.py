"""deploy/aws against moto: no AWS account is reachable from here, so every EC2
call goes to moto's in-process EC2, which checks the request shapes."""

import importlib.util
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from dtriad.config import ClusterConfig
from dtriad.exceptions import ConfigurationError
from dtriad.ops.units import Roles

AWS = Path(__file__).resolve().parent.parent / "deploy" / "aws"
sys.path.insert(0, str(AWS))
import cloud  # noqa: E402

REGION = "eu-west-1"


@pytest.fixture
def ec2(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def options(**kw):
    base = {"name": "demo", "nodes": 4, "region": REGION, "ami": "ami-12c6146b",
            "key_name": None, "client_cidr": "203.0.113.0/24"}
    return cloud.Options(**{**base, **kw})


def user_data_of(ec2, instance_id):
    import base64

    value = ec2.describe_instance_attribute(InstanceId=instance_id,
                                            Attribute="userData")["UserData"]["Value"]
    return base64.b64decode(value).decode()


def heredocs(script):
    return re.findall(r"cat > (\S+) <<'DTRIAD_EOF'\n(.*?)\nDTRIAD_EOF\n", script, re.S)


def test_provision_launches_tagged_hosts_that_install_themselves(ec2, tmp_path):
    ec2.create_key_pair(KeyName="ops")
    out = []
    cluster = cloud.provision(ec2, options(key_name="ops"), out_dir=tmp_path, log=out.append)
    assert [h.name for h in cluster.hosts] == ["n1", "n2", "n3", "n4", "sentinel"]
    instances = {i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"]
                 for i in r["Instances"]}
    assert set(instances) == {h.instance_id for h in cluster.hosts}
    addresses = [h.address for h in cluster.hosts]
    assert len(set(addresses)) == 5
    install_sh = (AWS.parent / "install.sh").read_text().rstrip("\n")
    for host in cluster.hosts:
        instance = instances[host.instance_id]
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["dtriad:cluster"] == "demo" and tags["dtriad:role"] == host.name
        assert instance["PrivateIpAddress"] == host.address and host.public_ip
        assert instance["KeyName"] == "ops" and instance["InstanceType"] == "t3.small"
        assert instance["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2 only
        script = user_data_of(ec2, host.instance_id)
        files = dict(heredocs(script))
        assert files["/root/dtriad/install.sh"] == install_sh
        assert "umask 077" in script  # the file with the secrets is 0600 from the start
        assert script.rstrip().endswith("/root/dtriad/host.toml 'dtriad'")
        assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
        path = tmp_path / f"{host.name}.toml"
        path.write_text(files["/root/dtriad/host.toml"])
        config = ClusterConfig.load(path)
        roles = Roles.of(config)
        assert [n.redis for n in config.nodes] == [f"{a}:6379" for a in addresses[:4]]
        assert config.sentinels == (f"{addresses[4]}:26379",)
        assert config.separate_credentials and config.internal.username == "dtriad"
        assert len({config.password, config.secret, config.data_token,
                    config.backend_password, config.sentinel_password}) == 5
        assert min(map(len, (config.password, config.backend_password))) >= 32
        if host.name == "sentinel":
            assert roles.services() == ["sentinel", "register", "dtsentinel"]
        elif host.name == "n1":  # a standby DTSentinel too
            assert roles.node == "n1" and roles.services() == ["backend", "server", "dtsentinel"]
        else:
            assert roles.node == host.name and roles.services() == ["backend", "server"]
    # The secrets live in the client file (0600) and are never printed.
    client = ClusterConfig.load(cluster.client_file)
    assert stat.S_IMODE(cluster.client_file.stat().st_mode) == 0o600
    assert client.nodes[0].http == f"http://{cluster.hosts[0].public_ip}:8080"
    printed = "\n".join(out)
    for secret in (client.password, client.secret, client.data_token, client.backend_password,
                   client.sentinel_password):
        assert secret not in printed


def test_the_security_group_opens_cluster_ports_to_members_and_http_to_the_cidr(ec2, tmp_path):
    cluster = cloud.provision(ec2, options(), out_dir=tmp_path, log=lambda _: None)
    group = ec2.describe_security_groups(GroupIds=[cluster.security_group])["SecurityGroups"][0]
    opened = set()
    for rule in group["IpPermissions"]:
        for pair in rule.get("UserIdGroupPairs", []):
            opened.add((rule["FromPort"], pair["GroupId"]))
        for cidr in rule.get("IpRanges", []):
            opened.add((rule["FromPort"], cidr["CidrIp"]))
    sg = cluster.security_group
    assert opened == {(6379, sg), (26379, sg), (8080, sg), (8080, "203.0.113.0/24"),
                      (6380, "203.0.113.0/24")}  # no key pair: no SSH


def test_a_second_provision_is_refused_and_teardown_removes_everything(ec2, tmp_path):
    cluster = cloud.provision(ec2, options(), out_dir=tmp_path, log=lambda _: None)
    with pytest.raises(ConfigurationError, match="already has instances"):
        cloud.provision(ec2, options(), out_dir=tmp_path, log=lambda _: None)
    other = cloud.provision(ec2, options(name="other", nodes=1, replicas=0),
                            out_dir=tmp_path, log=lambda _: None)

    planned = cloud.teardown(ec2, "demo", dry_run=True, log=lambda _: None)
    assert sorted(planned["instances"]) == sorted(h.instance_id for h in cluster.hosts)
    assert ec2.describe_security_groups(GroupIds=[cluster.security_group])  # still there

    cloud.teardown(ec2, "demo", log=lambda _: None)
    states = {i["InstanceId"]: i["State"]["Name"]
              for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert all(states[h.instance_id] == "terminated" for h in cluster.hosts)
    assert all(states[h.instance_id] == "running" for h in other.hosts)  # not ours to touch
    groups = {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert cluster.security_group not in groups and other.security_group in groups
    assert cloud.teardown(ec2, "demo", log=lambda _: None) == {"instances": [],
                                                                "security_groups": []}


def test_the_newest_debian_image_is_found(ec2):
    owner = ec2.describe_images(Owners=["self"])["Images"]  # moto's account owns none yet
    assert owner == []
    ids = []
    for day in ("20240102", "20240301", "20240717"):
        instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
        ids.append(ec2.create_image(InstanceId=instance["Instances"][0]["InstanceId"],
                                    Name=f"debian-12-amd64-{day}-1")["ImageId"])
    account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
    assert cloud.debian_ami(ec2, owner=account) == ids[2]
    with pytest.raises(ConfigurationError, match="pass --ami"):
        cloud.debian_ami(ec2, owner=account, pattern="debian-99-*")


def aws_cli():
    """deploy/aws/__main__.py's click group, loaded as 'python deploy/aws' runs it."""
    spec = importlib.util.spec_from_file_location("dtriad_aws_cli", AWS / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_without_credentials_the_cli_says_so(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = CliRunner().invoke(aws_cli(), ["teardown", "--name", "x", "--region", REGION])
    assert result.exit_code == 1
    assert "AWS refused: Unable to locate credentials" in result.output


def test_dry_run_prints_the_whole_plan_without_calling_aws(monkeypatch):
    import boto3 as module

    monkeypatch.setattr(module, "client", lambda *a, **k: pytest.fail("AWS was called"))
    aws = aws_cli()

    result = CliRunner().invoke(aws, ["provision", "--name", "demo", "--nodes", "4",
                                      "--key-name", "ops", "--client-cidr", "203.0.113.0/24",
                                      "--dry-run"])
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in ("security group dtriad-demo", "tcp 6379  from members of the group",
                     "tcp 8080  from 203.0.113.0/24", "tcp 22    from 203.0.113.0/24",
                     "5 instances, t3.small", "IMDSv2 only", "key pair ops",
                     "n4        Redis backend", "sentinel  Redis Sentinel",
                     "password, secret, data_token, backend_password, sentinel_password: "
                     "<generated-at-provision>",
                     "python deploy/aws teardown --name demo",
                     'sentinel  sentinel = "10.0.0.14:26379", dtsentinel = true'):
        assert expected in text, expected


@pytest.mark.parametrize("kw, message", [
    ({"name": "bad name"}, "--name must be"), ({"replicas": 4}, "needs more than 4 nodes"),
    ({"client_cidr": "10.0.0.300/8"}, "--client-cidr"),
])
def test_bad_options_are_refused_with_the_reason(kw, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        options(**kw)


@given(prefix=st.integers(20, 28), used=st.sets(st.integers(0, 255), max_size=40),
       count=st.integers(1, 8))
def test_picked_addresses_are_free_distinct_and_not_reserved(prefix, used, count):
    cidr = f"10.1.0.0/{prefix}"
    taken = {f"10.1.0.{u}" for u in used}
    try:
        picked = cloud.pick_addresses(cidr, taken, count)
    except ConfigurationError:
        return  # the subnet really is too small: checked below
    assert len(set(picked)) == count and not set(picked) & taken
    import ipaddress

    network = ipaddress.ip_network(cidr)
    for a in map(ipaddress.ip_address, picked):
        assert a in network and int(a) - int(network.network_address) >= 4
        assert a != network.broadcast_address


def test_a_full_subnet_is_refused():
    with pytest.raises(ConfigurationError, match="has only 3 free addresses"):
        cloud.pick_addresses("10.1.0.0/29", set(), 4)  # 8 - 4 reserved - broadcast = 3


def test_install_sh_is_executable_and_valid_sh():
    script = AWS.parent / "install.sh"
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
