"""dtriad on EC2: plan, provision and tear down a cluster (boto3).

Layout (the paper's): N node hosts, each a Redis backend and a DTServer, and
one more host running Redis Sentinel and the DTSentinel. Every host gets its
``dtriad.toml`` and ``deploy/install.sh`` through user-data, so it installs
itself at first boot; the Sentinel host's ``dtriad-register`` unit registers
every backend with Sentinel once they answer.

The plan (:func:`make_plan`, :func:`host_files`, :func:`ingress_rules`) is
pure; :func:`provision` and :func:`teardown` are the only AWS calls.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from dtriad.config import ClusterConfig
from dtriad.exceptions import ConfigurationError
from dtriad.ops.units import CONFIG_PATH, Roles

TAG = "dtriad:cluster"
DEBIAN_OWNER = "136693071363"  # Debian's official AMIs (wiki.debian.org/Cloud/AmazonEC2Image)
DEBIAN_NAME = "debian-12-amd64-*"
INSTALL_SH = Path(__file__).resolve().parent.parent / "install.sh"
PORTS = {"redis": 6379, "http": 8080, "resp": 6380, "sentinel": 26379, "ssh": 22}
REDACTED = "<generated-at-provision>"
# Generated at provision, each opening its own part (the README's "Security"):
# the RESP port, the admin methods, the HTTP data methods, the backends, Sentinel.
CREDENTIALS = ("password", "secret", "data_token", "backend_password", "sentinel_password")


def new_credentials() -> dict[str, str]:
    return {name: secrets.token_urlsafe(32) for name in CREDENTIALS}


def redacted_credentials() -> dict[str, str]:
    """Stand-ins for the plan's example files (distinct, as real ones must be)."""
    return {name: f"<{name}:{REDACTED[1:]}" for name in CREDENTIALS}


@dataclass(frozen=True)
class Options:
    name: str
    nodes: int = 3
    replicas: int = 2
    vnodes: int = 1
    region: str = "us-east-1"
    instance_type: str = "t3.small"
    ami: str | None = None  # None: the newest Debian 12 AMI, looked up at provision
    key_name: str | None = None
    client_cidr: str = "127.0.0.1/32"
    subnet: str | None = None  # None: the default VPC's first subnet
    package: str = "dtriad"
    public_ip: bool = True
    write_quorum: str = "all"

    def __post_init__(self):
        if not self.name or not all(c.isalnum() or c == "-" for c in self.name):
            raise ConfigurationError(f"--name must be letters, digits and '-', got {self.name!r}")
        if self.nodes < 1:
            raise ConfigurationError("--nodes must be at least 1")
        if self.replicas >= self.nodes:
            raise ConfigurationError(f"--replicas {self.replicas} needs more than "
                                     f"{self.replicas} nodes (each key has r+1 copies)")
        try:
            ipaddress.ip_network(self.client_cidr)
        except ValueError as e:
            raise ConfigurationError(f"--client-cidr: {e}") from e


@dataclass
class Host:
    name: str  # n1..nN, or "sentinel"
    address: str  # private IPv4
    instance_id: str | None = None
    public_ip: str | None = None


@dataclass
class Cluster:
    """What provision made (and prints)."""

    security_group: str
    hosts: list[Host] = field(default_factory=list)
    client_file: Path | None = None


# -------------------------------------------------------------- pure planning
def pick_addresses(cidr: str, used: set[str], count: int) -> list[str]:
    """``count`` free host addresses of a subnet, lowest first; AWS keeps the
    first four and the last one of every subnet for itself."""
    network = ipaddress.ip_network(cidr)
    reserved = {network.network_address + i for i in range(4)} | {network.broadcast_address}
    free = (str(a) for a in network.hosts() if a not in reserved and str(a) not in used)
    picked = [a for a, _ in zip(free, range(count), strict=False)]
    if len(picked) < count:
        raise ConfigurationError(f"subnet {cidr} has only {len(picked)} free addresses, "
                                 f"{count} needed")
    return picked


def cluster_dict(options: Options, addresses: list[str], credentials: dict[str, str],
                 public: dict[str, str] | None = None) -> dict:
    """The cluster part of every host's dtriad.toml (nodes, then the Sentinel host).
    ``credentials``: :data:`CREDENTIALS` by name; the HTTP data methods need
    ``data_token`` (``http_auth = "token"``).
    ``public`` (private -> public address) is where clients outside the VPC reach
    the DTServers; the Redis address, the node's place on the ring, stays private."""
    *node_ips, sentinel_ip = addresses
    reach = public or {}
    return {
        "replicas": options.replicas, "vnodes": options.vnodes,
        "write_quorum": options.write_quorum, "read_quorum": "one",
        **credentials, "http_auth": "token",
        "sentinels": [f"{sentinel_ip}:{PORTS['sentinel']}"],
        "nodes": [{"name": f"n{i}", "redis": f"{ip}:{PORTS['redis']}",
                   "http": f"http://{reach.get(ip, ip)}:{PORTS['http']}",
                   "resp": f"{reach.get(ip, ip)}:{PORTS['resp']}"}
                  for i, ip in enumerate(node_ips, 1)],
    }


def host_files(options: Options, addresses: list[str],
               credentials: dict[str, str]) -> dict[str, str]:
    """``host name -> dtriad.toml``; each is validated as ``dtriad host`` will read it."""
    cluster = cluster_dict(options, addresses, credentials)
    files = {}
    for i in range(1, options.nodes + 1):
        files[f"n{i}"] = {**cluster, "host": {"node": f"n{i}"}}
    # a second DTSentinel, on the first node's host: it stands by, and leads if
    # the Sentinel host's stops (one leads at a time: dtriad/membership/leader.py)
    files["n1"]["host"]["dtsentinel"] = True
    files["sentinel"] = {**cluster, "host": {"sentinel": cluster["sentinels"][0],
                                             "dtsentinel": True}}
    for data in files.values():
        Roles.of(ClusterConfig.from_dict(data))
    return {name: tomli_w.dumps(data) for name, data in files.items()}


def user_data(config_toml: str, package: str, install_sh: str) -> str:
    """The first-boot script: the host's file (0600) and install.sh, then run it."""
    for text in (config_toml, install_sh):
        if "\nDTRIAD_EOF\n" in text:
            raise ConfigurationError("a file contains the here-document end marker")
    quoted = "'" + package.replace("'", "'\"'\"'") + "'"
    return (
        "#!/bin/sh\n"
        "# dtriad host, written by deploy/aws provision\n"
        "set -eu\numask 077\nmkdir -p /root/dtriad\n"
        "cat > /root/dtriad/install.sh <<'DTRIAD_EOF'\n" + install_sh.rstrip("\n")
        + "\nDTRIAD_EOF\n"
        "cat > /root/dtriad/host.toml <<'DTRIAD_EOF'\n" + config_toml.rstrip("\n")
        + "\nDTRIAD_EOF\n"
        f"sh /root/dtriad/install.sh /root/dtriad/host.toml {quoted}\n"
    )


def ingress_rules(group_id: str, client_cidr: str, ssh: bool) -> list[dict]:
    """Cluster ports open to the group's own members only; the client ports
    (HTTP, RESP) to ``client_cidr``; SSH to ``client_cidr`` if a key pair is given."""
    def own(port: int, what: str) -> dict:
        return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "UserIdGroupPairs": [{"GroupId": group_id,
                                      "Description": f"{what}, cluster members only"}]}

    def clients(port: int, what: str) -> dict:
        return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                "IpRanges": [{"CidrIp": client_cidr, "Description": what}]}

    rules = [own(PORTS["redis"], "Redis backends"), own(PORTS["sentinel"], "Redis Sentinel"),
             own(PORTS["http"], "DTServer RPC (ring pushes, checks)"),
             clients(PORTS["http"], "DTServer HTTP RPC"),
             clients(PORTS["resp"], "DTServer RESP (redis-cli, redis-py)")]
    if ssh:
        rules.append(clients(PORTS["ssh"], "SSH"))
    return rules


def tags(options: Options, role: str | None = None) -> list[dict]:
    out = [{"Key": TAG, "Value": options.name},
           {"Key": "Name", "Value": f"dtriad-{options.name}" + (f"-{role}" if role else "")}]
    return out + ([{"Key": "dtriad:role", "Value": role}] if role else [])


def plan_text(options: Options) -> str:
    """What provision will do, without calling AWS (``--dry-run``)."""
    hosts = [f"n{i}" for i in range(1, options.nodes + 1)] + ["sentinel"]
    rules = ingress_rules(f"dtriad-{options.name}", options.client_cidr, bool(options.key_name))
    ami = options.ami or f"newest {DEBIAN_NAME} owned by {DEBIAN_OWNER} (Debian), looked up"
    lines = [
        f"plan for dtriad cluster {options.name!r} in {options.region} (nothing is created "
        f"by --dry-run)",
        f"  1. subnet: {options.subnet or 'the first subnet of the default VPC'}; "
        f"{len(hosts)} free private addresses picked from it",
        f"  2. security group dtriad-{options.name} (tag {TAG}={options.name}), inbound:",
    ]
    for rule in rules:
        source = ("members of the group" if "UserIdGroupPairs" in rule
                  else rule["IpRanges"][0]["CidrIp"])
        what = (rule.get("UserIdGroupPairs") or rule["IpRanges"])[0]["Description"]
        lines.append(f"       tcp {rule['FromPort']:<5} from {source:<22} {what}")
    lines.append(f"  3. {len(hosts)} instances, {options.instance_type}, AMI {ami}, "
                 f"key pair {options.key_name or '(none: no SSH)'}, "
                 f"{'public' if options.public_ip else 'no public'} IPv4, IMDSv2 only, "
                 f"tags {TAG}={options.name}, dtriad:role=<host>:")
    for host in hosts:
        runs = ("Redis backend :6379 (ACL user dtriad), DTServer HTTP :8080 + RESP :6380"
                if host != "sentinel" else
                "Redis Sentinel :26379, registers every backend, DTSentinel")
        lines.append(f"       {host:<9} {runs}")
    lines += [
        f"  4. user-data on each: {CONFIG_PATH.name} (mode 0600) and deploy/install.sh, run "
        f"at first boot: apt redis-server redis-sentinel python3-venv, pip install "
        f"{options.package!r} into /opt/dtriad, systemd units dtriad-*",
        f"  5. cluster: replicas={options.replicas} vnodes={options.vnodes} "
        f"write_quorum={options.write_quorum} http_auth=token; data_token, "
        f"{', '.join(CREDENTIALS)}: "
        f"{REDACTED} (never printed), kept in ./dtriad-{options.name}.toml (0600)",
        "  6. wait until every instance runs, print the endpoints",
        f"  undo: python deploy/aws teardown --name {options.name} --region {options.region}",
        "",
        f"{CONFIG_PATH} on every host (secrets redacted; 10.0.0.x stand for the "
        f"addresses of step 1):",
    ]
    example = [f"10.0.0.{10 + i}" for i in range(len(hosts))]
    files = host_files(options, example, redacted_credentials())  # validated as hosts read them
    shared = tomli_w.dumps(cluster_dict(options, example, redacted_credentials()))
    lines += ["    " + line for line in shared.strip().splitlines()]
    lines.append("    [host]   (one line per host)")
    for host, text in files.items():
        table = tomllib.loads(text)["host"]
        lines.append(f"      {host:<9} " + ", ".join(
            f"{k} = {json.dumps(v)}" for k, v in table.items()))
    return "\n".join(lines)


# ---------------------------------------------------------------- AWS calls
def debian_ami(ec2, owner: str = DEBIAN_OWNER, pattern: str = DEBIAN_NAME) -> str:
    images = ec2.describe_images(Owners=[owner], Filters=[
        {"Name": "name", "Values": [pattern]}, {"Name": "architecture", "Values": ["x86_64"]},
        {"Name": "state", "Values": ["available"]}])["Images"]
    if not images:
        raise ConfigurationError(f"no AMI named {pattern} owned by {owner} in this region; "
                                 f"pass --ami")
    return max(images, key=lambda i: (i["CreationDate"], i["Name"]))["ImageId"]


def _subnet(ec2, subnet_id: str | None) -> dict:
    if subnet_id:
        return ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise ConfigurationError("this region has no default VPC; pass --subnet")
    subnets = ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpcs[0]["VpcId"]]}])["Subnets"]
    return sorted(subnets, key=lambda s: s["AvailabilityZone"])[0]


def _used_addresses(ec2, subnet_id: str) -> set[str]:
    used = set()
    pages = ec2.get_paginator("describe_network_interfaces").paginate(
        Filters=[{"Name": "subnet-id", "Values": [subnet_id]}])
    for page in pages:
        for eni in page["NetworkInterfaces"]:
            used |= {a["PrivateIpAddress"] for a in eni.get("PrivateIpAddresses", [])}
    return used


def provision(ec2, options: Options, out_dir: Path = Path("."), wait: bool = True,
              log=print) -> Cluster:
    """Create the security group and the instances; write the client file."""
    existing = ec2.describe_instances(Filters=[
        {"Name": f"tag:{TAG}", "Values": [options.name]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
    ])["Reservations"]
    if existing:
        raise ConfigurationError(f"cluster {options.name!r} already has instances; "
                                 f"tear it down first or choose another --name")
    ami = options.ami or debian_ami(ec2)
    subnet = _subnet(ec2, options.subnet)
    count = options.nodes + 1
    addresses = pick_addresses(subnet["CidrBlock"], _used_addresses(ec2, subnet["SubnetId"]),
                               count)
    credentials = new_credentials()
    files = host_files(options, addresses, credentials)
    group = ec2.create_security_group(
        GroupName=f"dtriad-{options.name}", VpcId=subnet["VpcId"],
        Description=f"dtriad cluster {options.name}",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tags(options)}],
    )["GroupId"]
    log(f"security group {group}")
    ec2.authorize_security_group_ingress(
        GroupId=group, IpPermissions=ingress_rules(group, options.client_cidr,
                                                   bool(options.key_name)))
    cluster = Cluster(group)
    install_sh = INSTALL_SH.read_text()
    for (host, text), address in zip(files.items(), addresses, strict=True):
        launch = {
            "ImageId": ami, "InstanceType": options.instance_type, "MinCount": 1,
            "MaxCount": 1, "UserData": user_data(text, options.package, install_sh),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
            "NetworkInterfaces": [{
                "DeviceIndex": 0, "SubnetId": subnet["SubnetId"], "Groups": [group],
                "PrivateIpAddress": address, "DeleteOnTermination": True,
                "AssociatePublicIpAddress": options.public_ip}],
            "TagSpecifications": [{"ResourceType": kind, "Tags": tags(options, host)}
                                  for kind in ("instance", "volume")],
        }
        if options.key_name:
            launch["KeyName"] = options.key_name
        instance = ec2.run_instances(**launch)["Instances"][0]
        cluster.hosts.append(Host(host, address, instance["InstanceId"]))
        log(f"{host}: {instance['InstanceId']} at {address}")
    ids = [h.instance_id for h in cluster.hosts]
    if wait:
        ec2.get_waiter("instance_running").wait(InstanceIds=ids)
    found = {i["InstanceId"]: i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"]
             for i in r["Instances"]}
    for host in cluster.hosts:
        host.public_ip = found[host.instance_id].get("PublicIpAddress")
    client = cluster_dict(options, addresses, credentials,
                          public={h.address: h.public_ip for h in cluster.hosts if h.public_ip})
    path = out_dir / f"dtriad-{options.name}.toml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the secrets
    with os.fdopen(fd, "w") as f:
        f.write(tomli_w.dumps(client))
    cluster.client_file = path
    return cluster


def teardown(ec2, name: str, wait: bool = True, dry_run: bool = False, log=print) -> dict:
    """Terminate every instance and delete the security group tagged ``name``."""
    reservations = ec2.describe_instances(Filters=[
        {"Name": f"tag:{TAG}", "Values": [name]},
        {"Name": "instance-state-name",
         "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]},
    ])["Reservations"]
    ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    groups = [g["GroupId"] for g in ec2.describe_security_groups(
        Filters=[{"Name": f"tag:{TAG}", "Values": [name]}])["SecurityGroups"]]
    verb = "would remove" if dry_run else "removing"
    log(f"{verb}: instances {', '.join(ids) or '(none)'}; "
        f"security groups {', '.join(groups) or '(none)'}")
    if dry_run:
        return {"instances": ids, "security_groups": groups}
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
        if wait:
            ec2.get_waiter("instance_terminated").wait(InstanceIds=ids)
    for group in groups:
        ec2.delete_security_group(GroupId=group)
    return {"instances": ids, "security_groups": groups}
