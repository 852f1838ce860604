"""The ``dtriad`` command: local cluster control, the demo, and serving."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import cluster as local
from .config import ClusterConfig
from .exceptions import DtriadError

dir_option = click.option(
    "--dir", "directory", default=local.DEFAULT_DIR, show_default=True,
    type=click.Path(file_okay=False), help="Directory holding the cluster's files.")


def _fail(error: Exception) -> None:
    raise click.ClickException(str(error)) from error


@click.group()
@click.version_option(package_name="dtriad")
def main():
    """Diminished Triad: a replicated consistent-hash ring over Redis."""


@main.command()
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 64),
              help="Number of nodes (Redis backend + DTServer).")
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(0),
              help="Backups per key (r); each key has r+1 copies.")
@click.option("--vnodes", default=1, show_default=True, type=click.IntRange(1, 1024),
              help="Tokens per node on the ring.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="HTTP worker processes per DTServer.")
@click.option("--max-value-bytes", default=1 << 20, show_default=True,
              type=click.IntRange(1), help="Largest key or value accepted.")
@click.option("--write-quorum", default="all", show_default=True,
              type=click.Choice(["all", "quorum", "one"]),
              help="Copies that must take a write before it is acknowledged.")
@click.option("--no-persist", is_flag=True, help="Run backends without the append-only file.")
@dir_option
def up(nodes, replicas, vnodes, workers, max_value_bytes, write_quorum, no_persist, directory):
    """Start a local cluster on loopback and write DIR/cluster.json."""
    try:
        config = local.up(directory, local.UpOptions(
            nodes=nodes, replicas=replicas, vnodes=vnodes, workers=workers,
            max_value_bytes=max_value_bytes, write_quorum=write_quorum,
            persist=not no_persist), log=click.echo)
    except (DtriadError, RuntimeError, TimeoutError) as e:
        _fail(e)
    click.echo(f"cluster up: {len(config.nodes)} nodes, replicas={config.replicas}, "
               f"vnodes={config.vnodes}; config in {local.cluster_file(directory)}")
    for node in config.nodes:
        click.echo(f"  {node.name}  redis {node.redis}  http {node.http}")
    click.echo(f"try: curl '{config.nodes[0].http}/set?key=k&value=v'")


@main.command()
@dir_option
def down(directory):
    """Stop every process of the local cluster (its data stays in DIR)."""
    try:
        stopped = local.down(directory)
    except DtriadError as e:
        _fail(e)
    click.echo(f"stopped {len(stopped)} processes" if stopped else "nothing was running")


@main.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(directory, as_json):
    """Show every node's backend and DTServer; exit 1 if any is down."""
    try:
        config, rows = local.status(directory)
    except DtriadError as e:
        _fail(e)
    if as_json:
        click.echo(json.dumps({"replicas": config.replicas, "vnodes": config.vnodes,
                               "nodes": rows}, indent=2))
    else:
        click.echo(f"replicas={config.replicas} vnodes={config.vnodes} epoch={config.epoch}")
        click.echo(f"{'node':<6}{'redis':<22}{'backend':<24}{'http':<28}server")
        for r in rows:
            click.echo(f"{r['name']:<6}{r['redis']:<22}{r['backend']:<24}{r['http']:<28}"
                       f"{r['server']}")
    if any(r["backend"] != "up" or r["server"] != "up" for r in rows):
        sys.exit(1)


@main.group()
def node():
    """Act on one node of the local cluster."""


@node.command("kill")
@click.argument("name")
@dir_option
def node_kill(name, directory):
    """SIGKILL the Redis backend of node NAME (simulates a crash)."""
    try:
        pid = local.kill_node(directory, name)
    except DtriadError as e:
        _fail(e)
    click.echo(f"killed the backend of {name} (pid {pid})")


@main.command()
@click.option("--cluster", "cluster_path", required=True, type=click.Path(exists=True),
              help="cluster.json (or its directory).")
@click.option("--node", "node_name", help="Serve on this node's HTTP address.")
@click.option("--host", help="Address to bind (default: the node's).")
@click.option("--port", type=int, help="Port to bind (default: the node's).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--server", default="granian", show_default=True,
              type=click.Choice(["granian", "wsgiref"]),
              help="wsgiref is the original system's single-threaded setup.")
def serve(cluster_path, node_name, host, port, workers, server):
    """Run one DTServer in the foreground."""
    from .httpd import serve as run

    try:
        config = ClusterConfig.load(cluster_path)
        if node_name:
            spec = config.node(node_name)
            host, port = host or spec.http_host, port or spec.http_port
        if not host or not port:
            raise click.UsageError("give --node, or both --host and --port")
        path = Path(cluster_path)
        run(str(path / local.CLUSTER_FILE if path.is_dir() else path), host, port,
            workers=workers, server=server)
    except DtriadError as e:
        _fail(e)


@main.command()
@click.option("--nodes", default=5, show_default=True, type=click.IntRange(2, 16))
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(1))
@click.option("--keys", default=8, show_default=True, type=click.IntRange(1, 1000))
def demo(nodes, replicas, keys):
    """Start a cluster, write keys, kill a backend, read every key back, stop."""
    from .demo import run

    try:
        run(nodes=nodes, replicas=replicas, keys=keys, echo=click.echo)
    except (DtriadError, RuntimeError, TimeoutError) as e:
        _fail(e)
