"""The ``dtriad`` command: local cluster control, the demo, and serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from dtriad.config import (
    EVENT_LOOPS,
    HTTP_AUTHS,
    LOG_FORMATS,
    READ_QUORUMS,
    SERVERS,
    WRITE_QUORUMS,
    ClusterConfig,
)
from dtriad.core.metrics import prepare_directory
from dtriad.exceptions import DtriadError
from dtriad.ops import cluster as local
from dtriad.ops.procs import stop_pid
from dtriad.ops.progress import Progress
from dtriad.ops.units import CONFIG_PATH

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
              type=click.Choice(WRITE_QUORUMS),
              help="Copies that must take a write before it is acknowledged "
                   "(the key's master always must).")
@click.option("--read-quorum", default="one", show_default=True,
              type=click.Choice(READ_QUORUMS),
              help="one: the first copy that answers, master first; quorum: the newest "
                   "of a majority of copies, repairing older ones.")
@click.option("--backend-timeout", default=1.0, show_default=True,
              type=click.FloatRange(0.01), help="Seconds to wait for a Redis backend.")
@click.option("--sentinels", default=1, show_default=True, type=click.IntRange(1, 7),
              help="Redis Sentinels (3 gives a quorum of 2).")
@click.option("--down-after-ms", default=1000, show_default=True, type=click.IntRange(100),
              help="How long a backend must be unreachable before Sentinel calls it down.")
@click.option("--dtsentinels", default=1, show_default=True, type=click.IntRange(1, 7),
              help="DTSentinels: one leads (a lease on a majority of backends), the "
                   "others take over if it stops.")
@click.option("--no-persist", is_flag=True, help="Run backends without the append-only file.")
@click.option("--log-format", default="text", show_default=True, type=click.Choice(LOG_FORMATS),
              help="json: one JSON object per line (node, component, epoch) in every log.")
@click.option("--metrics/--no-metrics", default=True, show_default=True,
              help="Prometheus metrics (/metrics) on the request path.")
@click.option("--resp-workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="RESP front-end processes per node, sharing its port (SO_REUSEPORT).")
@click.option("--event-loop", default="auto", show_default=True, type=click.Choice(EVENT_LOOPS),
              help="The RESP front end's event loop; auto: uvloop if installed "
                   "(pip install 'dtriad[fast]').")
@click.option("--http-auth", default="none", show_default=True, type=click.Choice(HTTP_AUTHS),
              help="token: every HTTP data method needs 'Authorization: Bearer "
                   "<data_token>' (data_token from cluster.json).")
@dir_option
def up(nodes, replicas, vnodes, workers, max_value_bytes, write_quorum, read_quorum,
       backend_timeout, sentinels, down_after_ms, dtsentinels, no_persist, log_format,
       metrics, resp_workers, event_loop, http_auth, directory):
    """Start a local cluster on loopback and write DIR/cluster.json."""
    try:
        config = local.up(directory, local.UpOptions(
            nodes=nodes, replicas=replicas, vnodes=vnodes, workers=workers,
            max_value_bytes=max_value_bytes, write_quorum=write_quorum,
            read_quorum=read_quorum, backend_timeout=backend_timeout,
            sentinels=sentinels, down_after_ms=down_after_ms, dtsentinels=dtsentinels,
            persist=not no_persist, log_format=log_format, metrics=metrics,
            resp_workers=resp_workers, event_loop=event_loop, http_auth=http_auth),
            log=click.echo)
    except (DtriadError, RuntimeError, TimeoutError) as e:
        _fail(e)
    click.echo(f"cluster up: {len(config.nodes)} nodes, replicas={config.replicas}, "
               f"vnodes={config.vnodes}; config in {local.cluster_file(directory)}")
    for node in config.nodes:
        resp = f"  resp {node.resp}" if node.resp else ""
        click.echo(f"  {node.name}  redis {node.redis}  http {node.http}{resp}")
    where = "" if str(directory) == local.DEFAULT_DIR else f" --cluster {directory}"
    click.echo(f"try: dtriad cli{where}   (a redis-cli-like shell; 'help' lists the commands)")
    bearer = (" -H 'Authorization: Bearer <data_token from cluster.json>'"
              if config.http_auth == "token" else "")
    click.echo(f"  or: curl{bearer} '{config.nodes[0].http}/set?key=k&value=v'")
    if config.nodes[0].resp:
        host, port = config.nodes[0].resp.rsplit(":", 1)
        click.echo(f"  or: redis-cli -h {host} -p {port} --askpass set k v   "
                   f"(the password is \"password\" in cluster.json)")
    click.echo(f"dashboard: {config.nodes[0].http}/dashboard   (log in with \"viewer_token\" "
               f"from cluster.json; Prometheus: {config.nodes[0].http}/metrics with it as a "
               f"Bearer token)")


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
@click.option("--password", help="The new client password (default: a random one).")
def passwd(directory, password):
    """Give the local cluster a new client password (the RESP ports' AUTH);
    nothing restarts and no backend or Sentinel changes."""
    try:
        taken = local.rotate_password(directory, password)
    except DtriadError as e:
        _fail(e)
    click.echo(f"the new client password is \"password\" in {local.cluster_file(directory)}; "
               f"RESP ports taking it: {', '.join(taken) or 'none running'}")


@main.command()
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(directory, as_json):
    """Show every node's backend and DTServer; exit 1 if any is down."""
    try:
        config, rows = local.status(directory)
    except DtriadError as e:
        _fail(e)
    progress = local.sentinel_progress(directory) or {}
    ring = progress.get("ring") or {}
    migration = ring.get("migration") if ring.get("pending") else None
    if as_json:
        click.echo(json.dumps({"replicas": config.replicas, "vnodes": config.vnodes,
                               "epoch": ring.get("epoch"), "migration": migration,
                               "last_migration": progress.get("last"),
                               "sentinels": list(config.sentinels),
                               "nodes": rows}, indent=2))
    else:
        members = {m["redis"] for m in ring.get("nodes", [])}
        click.echo(f"replicas={config.replicas} vnodes={config.vnodes} "
                   f"epoch={ring.get('epoch', '?')} "
                   f"sentinels={','.join(config.sentinels)}")
        if migration:
            click.echo(f"migrating to epoch {ring.get('pending_epoch')}: "
                       f"{migration.get('keys_moved', 0)} keys copied "
                       f"({migration.get('keys_per_s', 0)} keys/s), transfers "
                       f"{migration.get('transfers_done', 0)}/{migration.get('transfers', '?')}")
        elif progress.get("last"):
            last = progress["last"]
            click.echo(f"last migration: epoch {last.get('epoch')}, "
                       f"{last.get('keys_moved', 0)} keys copied in "
                       f"{last.get('transfers', 0)} transfers")
        for r in rows:
            r["ring"] = "member" if r["redis"] in members else "out"
        click.echo(f"{'node':<6}{'redis':<22}{'backend':<29}{'http':<28}{'server':<8}ring")
        for r in rows:
            click.echo(f"{r['name']:<6}{r['redis']:<22}{r['backend']:<29}{r['http']:<28}"
                       f"{r['server']:<8}{r['ring']}")
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


@node.command("add")
@dir_option
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the node has joined the ring.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
def node_add(directory, wait, timeout):
    """Start a new node; the DTSentinel migrates its arcs to it."""
    try:
        spec = local.add_node(directory, log=click.echo)
        if wait:
            _wait_ring(directory, lambda members: spec.redis in members, timeout,
                       f"{spec.name} to join the ring")
            click.echo(f"{spec.name} joined the ring")
    except (DtriadError, RuntimeError, TimeoutError) as e:
        _fail(e)


@node.command("stop")
@click.argument("name")
@dir_option
def node_stop(name, directory):
    """Stop node NAME's DTServer and backend cleanly; the ring repairs itself."""
    try:
        stopped = local.stop_node(directory, name)
    except DtriadError as e:
        _fail(e)
    click.echo(f"stopped {', '.join(stopped) or 'nothing (not running)'}")


@node.command("forget")
@click.argument("name")
@dir_option
def node_forget(name, directory):
    """Remove dead node NAME from the cluster for good (its backend must be down).

    The DTSentinel repairs only while a majority of the cluster file's backends
    answer; forget dead nodes, one at a time, to keep repairing as the cluster
    shrinks."""
    try:
        done = local.forget_node(directory, name)
    except DtriadError as e:
        _fail(e)
    click.echo(f"forgot {name}: " + "; ".join(done))


@node.command("start")
@click.argument("name")
@dir_option
def node_start(name, directory):
    """Start node NAME again; it rejoins as a fresh (wiped) node."""
    try:
        spec = local.start_node(directory, name)
    except (DtriadError, RuntimeError, TimeoutError) as e:
        _fail(e)
    click.echo(f"started {spec.name}; the DTSentinel will wipe it and let it join again")


def _wait_ring(directory, done, timeout: float, what: str) -> None:
    """Wait for the ring to satisfy ``done``, showing a running migration's progress."""
    from dtriad.ops.procs import wait_until

    show = Progress("migration")

    def check():
        ring = (local.sentinel_progress(directory) or {}).get("ring") or {}
        migration = ring.get("migration") or {}
        if ring.get("pending") and migration.get("phase") == "copying":
            show(f"epoch {migration.get('epoch')}", migration.get("transfers_done", 0),
                 migration.get("transfers", 0),
                 f"{migration.get('keys_moved', 0)} keys, {migration.get('keys_per_s', 0)}/s")
        return (not ring.get("pending")
                and done({m["redis"] for m in ring.get("nodes", [])}))

    try:
        wait_until(check, timeout, what, interval=0.2)
    finally:
        show.close()


@main.command()
@dir_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="A host's dtriad.toml instead of a local cluster's directory.")
@click.option("--repair", is_flag=True,
              help="Overwrite missing and differing copies from the first live copy; "
                   "delete misplaced ones.")
def check(directory, config_path, repair):
    """Verify both invariants on the live cluster; exit 1 on any problem."""
    from dtriad.membership.check import check as run_check

    try:
        config = ClusterConfig.load(config_path or local.cluster_file(directory))
        show = Progress("check")
        try:
            report = run_check(config, repair=repair, progress=show)
        finally:
            show.close()
    except DtriadError as e:
        _fail(e)
    names = {n.redis: n.name for n in config.nodes}
    for line in report.lines(names):
        click.echo(line)
    if not config.separate_credentials:
        click.echo("[WARN] no backend_password: the client password also opens every backend "
                   "and Sentinel (see the README's Security section to separate them)")
    if not report.clean and not (repair and report.repaired and not report.problems):
        sys.exit(1)


@main.command("cli", context_settings={"ignore_unknown_options": True,
                                       "allow_interspersed_args": False})
@click.option("-h", "host", help="A DTServer's host (default 127.0.0.1 when -p is given).")
@click.option("-p", "port", type=click.IntRange(1, 65535), help="A DTServer's HTTP port.")
@click.option("--cluster", "cluster_dir", type=click.Path(),
              help=f"A local cluster's directory (default: {local.DEFAULT_DIR}) or a host's "
                   f"dtriad.toml; its DTServers are tried in turn, and its secret "
                   f"unlocks the admin commands, its data_token the data ones (with "
                   f"-h/-p: $DTRIAD_SECRET or $DTRIAD_DATA_TOKEN).")
@click.option("--raw", "mode", flag_value="raw",
              help="Print bare values (the default when output is not a terminal).")
@click.option("--no-raw", "mode", flag_value="tty",
              help="Print as on a terminal (quoted strings, (integer), (nil)) even when piped.")
@click.option("--json", "mode", flag_value="json", help="Print each reply as JSON.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait for a DTServer's answer.")
@click.option("--read-quorum", type=click.Choice(READ_QUORUMS),
              help="Override the cluster's read level for these commands.")
@click.option("--write-quorum", type=click.Choice(WRITE_QUORUMS),
              help="Override the cluster's write level for these commands.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def cli_shell(host, port, cluster_dir, mode, timeout, read_quorum, write_quorum, command):
    """A redis-cli-like shell over a DTServer's HTTP RPC.

    \b
    dtriad cli                      prompt (history, tab completion, 'help')
    dtriad cli set greeting hello   one command; exit status 1 on an error
    dtriad cli < commands.txt       one command per line
    dtriad cli ring | keydist | check | health | stats   the admin commands
    """
    from dtriad.ops import shell as console

    try:
        urls, secret = console.endpoints(host, port, cluster_dir)
    except DtriadError as e:
        _fail(e)
    sys.exit(console.main(urls, list(command), mode, timeout, read_quorum, write_quorum,
                          secret))


@main.command("dtsentinel")
@click.option("--cluster", "cluster_path", required=True, type=click.Path(exists=True),
              help="cluster.json (or its directory).")
@click.option("--state", "state_path", required=True, type=click.Path(dir_okay=False),
              help="Where progress is persisted (to resume after a crash).")
@click.option("--metrics", "metrics_address", metavar="HOST:PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics.")
def dtsentinel(cluster_path, state_path, metrics_address):
    """Run the DTSentinel in the foreground (dtriad up starts one)."""
    from dtriad.membership.dtsentinel import main as run

    path = Path(cluster_path)
    try:
        run(str(path / local.CLUSTER_FILE if path.is_dir() else path), state_path,
            metrics_address)
    except DtriadError as e:
        _fail(e)


@main.command()
@click.option("--cluster", "cluster_path", required=True, type=click.Path(exists=True),
              help="cluster.json (or its directory).")
@click.option("--node", "node_name",
              help="Serve on this node's HTTP address (and its RESP address, if it has one).")
@click.option("--host", help="Address to bind (default: the node's).")
@click.option("--port", type=int, help="Port to bind (default: the node's).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--server", default="granian", show_default=True,
              type=click.Choice(SERVERS),
              help="wsgiref is the original system's single-threaded setup.")
@click.option("--state-file", type=click.Path(dir_okay=False),
              help="File the workers share the pushed ring through "
                   "(default with --node: DIR/NODE/ring.json).")
def serve(cluster_path, node_name, host, port, workers, server, state_file):
    """Run one DTServer in the foreground: HTTP, and RESP when the node has a
    "resp" address (a child process sharing the pushed ring through the state file)."""
    from dtriad.frontends.httpd import serve as run

    resp = None
    scratch = None
    try:
        config = ClusterConfig.load(cluster_path)
        path = _cluster_path(cluster_path)
        if node_name:
            spec = config.node(node_name)
            host, port = host or spec.http_host, port or spec.http_port
            state_file = state_file or _state_file(path, node_name)
        if config.metrics:  # before any worker starts: they add their values up there
            if node_name:
                prepare_directory(path.parent / node_name / "metrics")
            else:
                scratch = tempfile.mkdtemp(prefix="dtriad-metrics-")
                prepare_directory(scratch)
        if node_name and spec.resp:  # resp_workers processes sharing the port
            resp = [subprocess.Popen([sys.executable, "-m", "dtriad", "resp", "--cluster",
                                      str(path), "--node", node_name,
                                      "--state-file", state_file])
                    for _ in range(config.resp_workers)]
        if not host or not port:
            raise click.UsageError("give --node, or both --host and --port")
        run(str(path), host, port, workers=workers, server=server, state_file=state_file)
    except DtriadError as e:
        _fail(e)
    finally:
        for proc in resp or ():
            stop_pid(proc.pid, timeout=5)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@main.command("resp")
@click.option("--cluster", "cluster_path", required=True, type=click.Path(exists=True),
              help="cluster.json (or its directory).")
@click.option("--node", "node_name", help="Serve on this node's RESP address.")
@click.option("--host", help="Address to bind (default: the node's).")
@click.option("--port", type=int, help="Port to bind (default: the node's).")
@click.option("--state-file", type=click.Path(dir_okay=False),
              help="File the DTServer's HTTP workers save the pushed ring to "
                   "(default with --node: DIR/NODE/ring.json).")
def resp_command(cluster_path, node_name, host, port, state_file):
    """Run a DTServer's RESP front end in the foreground (redis-cli, redis-py ...)."""
    from dtriad.config import parse_address
    from dtriad.frontends.respd import serve as run

    try:
        config = ClusterConfig.load(cluster_path)
        path = _cluster_path(cluster_path)
        if node_name:
            address = config.node(node_name).resp
            if not address:
                raise click.UsageError(f"{node_name} has no 'resp' address in {path}")
            node_host, node_port = parse_address(address)
            host, port = host or node_host, port or node_port
            state_file = state_file or _state_file(path, node_name)
        if not host or not port:
            raise click.UsageError("give --node, or both --host and --port")
        run(str(path), host, port, state_file=state_file)
    except DtriadError as e:
        _fail(e)


def _state_file(cluster_path: Path, node_name: str) -> str:
    """Where a node's HTTP workers and RESP front end share the pushed ring."""
    return str(cluster_path.parent / node_name / "ring.json")


def _cluster_path(cluster_path: str) -> Path:
    path = Path(cluster_path)
    return path / local.CLUSTER_FILE if path.is_dir() else path


@main.group()
def host():
    """A production host's parts, each read from one dtriad.toml (what the
    systemd units that 'dtriad host install' writes run)."""


config_option = click.option(
    "--config", "config_path", default=str(CONFIG_PATH), show_default=True,
    type=click.Path(dir_okay=False), help="The host's dtriad.toml.")


def _exec(make_argv) -> None:
    try:
        argv = make_argv()
    except DtriadError as e:
        _fail(e)
    os.execv(argv[0], argv)  # systemd then watches and signals redis-server itself


@host.command("backend")
@config_option
def host_backend(config_path):
    """Run this host's Redis backend in the foreground (as [host] node)."""
    from dtriad.ops.host import backend_command

    _exec(lambda: backend_command(config_path))


@host.command("sentinel")
@config_option
def host_sentinel(config_path):
    """Run this host's Redis Sentinel in the foreground (on [host] sentinel)."""
    from dtriad.ops.host import sentinel_command

    _exec(lambda: sentinel_command(config_path))


@host.command("register")
@config_option
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(1),
              help="Seconds to keep retrying backends that do not answer yet.")
def host_register(config_path, timeout):
    """Have this host's Sentinel monitor every backend of the file (idempotent)."""
    from dtriad.ops.host import register

    try:
        register(config_path, timeout=timeout, log=click.echo)
    except DtriadError as e:
        _fail(e)


@host.command("server")
@config_option
@click.pass_context
def host_server(ctx, config_path):
    """Run this host's DTServer in the foreground (and its RESP front end)."""
    from dtriad.ops.host import load, state_file

    try:
        _, roles = load(config_path)
        if not roles.node:
            raise click.UsageError(f"{config_path}: [host] has no node")
    except DtriadError as e:
        _fail(e)
    ctx.invoke(serve, cluster_path=config_path, node_name=roles.node, workers=roles.workers,
               state_file=state_file(roles))


@host.command("dtsentinel")
@config_option
@click.pass_context
def host_dtsentinel(ctx, config_path):
    """Run the DTSentinel in the foreground (its progress in the data directory)."""
    from dtriad.ops.host import load

    try:
        _, roles = load(config_path)
    except DtriadError as e:
        _fail(e)
    state = Path(roles.data_dir) / "dtsentinel"
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    ctx.invoke(dtsentinel, cluster_path=config_path, state_path=str(state / "progress.json"),
               metrics_address=roles.metrics)


@host.command("install")
@config_option
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False),
              help="Install under this directory instead (to inspect the files).")
@click.option("--no-systemctl", is_flag=True,
              help="Only write the files: no user, no systemctl.")
def host_install(config_path, root, no_systemctl):
    """Install the config (0600) and this host's systemd units; enable and start
    them, restarting only what changed. Running it twice changes nothing."""
    from dtriad.ops.host import install

    try:
        report = install(config_path, root=root, systemctl=not no_systemctl)
    except (DtriadError, OSError, subprocess.CalledProcessError) as e:
        _fail(e)
    for path in report.changed:
        click.echo(f"wrote {path}")
    for path in report.removed:
        click.echo(f"removed {path}")
    if not report.changed and not report.removed:
        click.echo("nothing changed")


@main.command()
@click.option("--nodes", default=5, show_default=True, type=click.IntRange(2, 16))
@click.option("--replicas", default=2, show_default=True, type=click.IntRange(1))
@click.option("--keys", default=8, show_default=True, type=click.IntRange(1, 1000))
def demo(nodes, replicas, keys):
    """Start a cluster, write keys, kill a backend, read every key back, stop."""
    from dtriad.ops.demo import run

    try:
        run(nodes=nodes, replicas=replicas, keys=keys, echo=click.echo)
    except (DtriadError, RuntimeError, TimeoutError) as e:
        _fail(e)
