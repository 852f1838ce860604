"""python deploy/aws provision|teardown ...  (needs: pip install 'dtriad[aws]')"""

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cloud import Options, plan_text, provision, teardown  # noqa: E402

from dtriad.exceptions import DtriadError  # noqa: E402


def _ec2(region: str):
    import boto3

    return boto3.client("ec2", region_name=region)


def _aws_errors():
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


@click.group()
def main():
    """dtriad on EC2: N node hosts and a Sentinel host, installed at first boot."""


@main.command("provision")
@click.option("--name", required=True, help="Cluster name; every resource is tagged with it.")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 64))
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(0))
@click.option("--vnodes", default=1, show_default=True, type=click.IntRange(1, 1024))
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--instance-type", default="t3.small", show_default=True)
@click.option("--ami", help="Image id (default: the newest official Debian 12 AMI).")
@click.option("--key-name", help="EC2 key pair for SSH (SSH is opened to --client-cidr).")
@click.option("--client-cidr", required=True,
              help="Who may reach the HTTP and RESP ports, e.g. 203.0.113.0/24.")
@click.option("--subnet", help="Subnet id (default: the default VPC's first subnet).")
@click.option("--package", default="dtriad", show_default=True,
              help="What each host pip-installs: a name, a wheel URL or git+https://...")
@click.option("--public-ip/--no-public-ip", default=True, show_default=True)
@click.option("--write-quorum", default="all", show_default=True,
              type=click.Choice(["all", "quorum", "one"]))
@click.option("--dry-run", is_flag=True, help="Print the plan; call no AWS API.")
def provision_command(dry_run, region, **kwargs):
    """Launch the cluster; print its endpoints; write ./dtriad-NAME.toml (0600)."""
    try:
        options = Options(region=region, **kwargs)
        if dry_run:
            click.echo(plan_text(options))
            return
        cluster = provision(_ec2(region), options, log=click.echo)
    except DtriadError as e:
        raise click.ClickException(str(e)) from e
    except _aws_errors() as e:
        raise click.ClickException(
            f"AWS refused: {e}\nanything already created is tagged; remove it with: "
            f"python deploy/aws teardown --name {kwargs['name']} --region {region}") from e
    click.echo(f"\ncluster {options.name}: security group {cluster.security_group}")
    for host in cluster.hosts:
        where = host.public_ip or host.address
        ports = ("http :8080, resp :6380" if host.name != "sentinel"
                 else "Sentinel :26379 (members only)")
        click.echo(f"  {host.name:<9} {host.instance_id}  {where}  private {host.address}  "
                   f"{ports}")
    click.echo(f"client file (secrets, mode 0600): {cluster.client_file}")
    click.echo("hosts install themselves at first boot (a few minutes); then:")
    click.echo(f"  dtriad cli --cluster {cluster.client_file} ring")
    click.echo(f"  dtriad check --config {cluster.client_file}   (from inside the VPC)")


@main.command("teardown")
@click.option("--name", required=True)
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
def teardown_command(name, region, dry_run):
    """Terminate the cluster's instances and delete its security group (by tag)."""
    try:
        teardown(_ec2(region), name, dry_run=dry_run, log=click.echo)
    except _aws_errors() as e:
        raise click.ClickException(f"AWS refused: {e}") from e


if __name__ == "__main__":
    main()
