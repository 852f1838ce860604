"""The DT CLI shell's I/O half: HTTP RPC to a DTServer, and the terminal.

:class:`Remote` posts to one DTServer of a list and fails over to the next
when one cannot be reached. :class:`Shell` runs command lines through
:mod:`dtriad.ops.shell_rules`'s rules and writes what redis-cli would print.
:func:`repl` is the interactive prompt (prompt_toolkit: history, completion,
hints).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import NewConnectionError

from dtriad.core.commands import Kind
from dtriad.exceptions import error_line
from dtriad.frontends.resp import split_args
from dtriad.ops import shell_rules as shell
from dtriad.ops.shell_rules import Action, Error, ParsedLine, Refused

CHECK_TIMEOUT_S = 600.0  # the invariant check reads every key of every backend


class Unreachable(Exception):
    """No DTServer of the list answered."""


class Remote:
    """HTTP RPC to the DTServers at ``urls``, the first that answers.

    A request that never reached a DTServer (connection refused, connect
    timeout) goes to the next one. One that reached it and got no answer is
    retried elsewhere only if it is a read: a write may have been applied.
    """

    def __init__(self, urls: list[str], timeout: float = 30.0,
                 on_failover: Callable[[str, str, str], None] | None = None,
                 session: requests.Session | None = None, secret: str | None = None):
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.current = 0
        self.connected = True
        self.on_failover = on_failover or (lambda *_: None)
        self.session = session or requests.Session()
        if secret:  # admin commands (ring, keydist, check, stats) need it; it opens data too
            from dtriad.config import admin_headers

            self.session.headers.update(admin_headers(secret))

    @property
    def url(self) -> str:
        return self.urls[self.current]

    @property
    def address(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}"

    def post(self, method: str, data: list[tuple[str, str]], idempotent: bool,
             timeout: float | None = None) -> Any:
        """The JSON answer of ``method``; an error answer comes back as :class:`Error`."""
        failures = []
        for _ in range(len(self.urls)):
            url = self.url
            try:
                reply = self.session.post(f"{url}/{method}", data=data,
                                          timeout=(min(self.timeout, 3.0),
                                                   timeout or self.timeout))
            except requests.RequestException as e:
                sent = not _never_sent(e)
                if sent and not idempotent:
                    raise Unreachable(
                        f"the DTServer at {self.address} took the request but did not answer "
                        f"({_reason(e)}); the write may or may not have been applied: read "
                        f"the key before trying again") from e
                failures.append(f"{self.address}: {_reason(e)}")
                if len(self.urls) > 1:
                    before = self.address
                    self.current = (self.current + 1) % len(self.urls)
                    self.on_failover(before, self.address, _reason(e))
                continue
            self.connected = True
            return _answer(reply, self.address)
        self.connected = False
        tried = "; ".join(failures)
        raise Unreachable(f"Could not connect to a DTServer ({tried}). Is the cluster up? "
                          f"Try 'dtriad status', or give another one with -h HOST -p PORT")


def _never_sent(error: requests.RequestException) -> bool:
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def _reason(error: requests.RequestException) -> str:
    if isinstance(error, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(error, requests.ReadTimeout):
        return "no answer in time"
    text = str(error)
    for known in ("Connection refused", "Name or service not known",
                  "Connection reset by peer", "Remote end closed connection"):
        if known in text:
            return known
    return type(error).__name__


def _answer(reply: requests.Response, address: str) -> Any:
    try:
        body = reply.json()
    except ValueError:
        return Error(f"ERR {address} answered HTTP {reply.status_code} without JSON: "
                     f"is it a DTServer?")
    if reply.status_code >= 400:
        if isinstance(body, dict) and "error" in body:
            return Error(error_line(str(body.get("code", "ERR")), str(body["error"])))
        return Error(f"ERR {address} answered HTTP {reply.status_code}")
    return body


class Shell:
    """Runs command lines and prints what redis-cli would: ``mode`` is
    ``tty`` (quoted), ``raw`` (bare) or ``json``."""

    def __init__(self, remote: Remote, mode: str, out: BinaryIO, err: TextIO,
                 read_quorum: str | None = None, write_quorum: str | None = None):
        self.remote = remote
        self.mode = mode
        self.out = out
        self.err = err
        self.levels = [(k, v) for k, v in (("read_quorum", read_quorum),
                                           ("write_quorum", write_quorum)) if v]

    def line(self, text: str) -> bool | None:
        """Run one typed line. True if it succeeded, False on an error, None
        for ``quit``. Blank lines do nothing."""
        args = split_args(text)
        if args is None:
            self._write("Invalid argument(s)\n")
            return False
        if not args:
            return True
        return self.args(args)

    def args(self, args: list[bytes]) -> bool | None:
        """Run one command given as its arguments."""
        try:
            argv = [a.decode("utf-8") for a in args]
        except UnicodeDecodeError:
            return self._error("ERR an argument is not valid UTF-8: the HTTP API carries "
                               "text; send binary values to the RESP port (redis-cli)")
        return self.run(argv)

    def run(self, argv: list[str]) -> bool | None:
        try:
            parsed = shell.parse_line(argv)
        except Refused as refused:
            ok = self._error(refused.line)
            if refused.usage:
                self.err.write(refused.usage + "\n")
                self.err.flush()
            return ok
        if parsed.action is Action.QUIT:
            return None
        if parsed.action is Action.CLEAR:
            self._write("\x1b[H\x1b[2J")
            return True
        if parsed.action is Action.HELP:
            self._write(shell.help_text(argv[1:], _version()))
            return True
        try:
            reply = self._call(parsed)
        except Unreachable as e:
            self.err.write(f"{e}\n")
            self.err.flush()
            return False
        self._print(reply, parsed.method.name if parsed.action is Action.ADMIN else None)
        return not isinstance(reply, Error)

    def _call(self, parsed: ParsedLine) -> Any:
        if parsed.action is Action.ADMIN:
            method = parsed.method.name
            return self.remote.post(method, [], idempotent=True,
                                    timeout=CHECK_TIMEOUT_S if method == "check" else None)
        data = [("arg", a) for a in parsed.argv] + self.levels
        return shell.typed(self.remote.post("command", data,
                                            idempotent=parsed.spec.kind is not Kind.WRITE),
                           parsed)

    def _print(self, reply: Any, admin: str | None = None) -> None:
        """A reply in the session's mode; an admin method's answer (``admin``
        is its name) as its table, when the shell has one for it."""
        formatter = shell.ADMIN_FORMAT.get(admin) if admin else None
        if self.mode == "json":
            self._write(shell.format_json(reply) + "\n")
        elif formatter and not isinstance(reply, Error):
            self._write(formatter(reply) + "\n")
        elif self.mode == "raw":
            self._write(shell.format_raw(reply) + "\n")
        else:
            self._write(shell.format_tty(reply))

    def _error(self, line: str) -> bool:
        self._print(Error(line))
        return False

    def _write(self, text: str) -> None:
        self.out.write(text.encode("utf-8"))
        self.out.flush()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dtriad")
    except PackageNotFoundError:
        return "dev"


def run_lines(sh: Shell, lines) -> bool:
    """Commands piped on standard input, one per line (``redis-cli < file``):
    every line runs; the result is whether all of them succeeded."""
    ok = True
    for text in lines:
        result = sh.line(text.rstrip("\r\n"))
        if result is None:
            break
        ok = ok and result
    return ok


def history_file() -> Path:
    """Where the prompt keeps its history: $DTRIAD_HISTFILE, else ~/.dtriad_history."""
    return Path(os.environ.get("DTRIAD_HISTFILE") or Path.home() / ".dtriad_history")


def repl(sh: Shell) -> None:
    """The interactive prompt: ``host:port>``, history, completion, hints;
    Ctrl-C cancels the line (or a command waiting for its answer), Ctrl-D
    or ``quit`` leaves."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.layout.processors import Processor, Transformation
    from prompt_toolkit.styles import Style

    class Commands(Completer):
        """Command names (and, after ``help``, topics) in the case being typed."""

        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            words = text.split()
            if not words or (len(words) == 1 and not text.endswith(" ")):
                choices, word = shell.command_names(), words[0] if words else ""
            elif words[0].lower() in ("help", "?") and (
                    len(words) == 1 or (len(words) == 2 and not text.endswith(" "))):
                choices = ["@" + g for g in shell.groups()] + shell.command_names()
                word = words[1] if len(words) == 2 else ""
            else:
                return
            upper = word[:1].isupper()
            for choice in choices:
                if choice.lower().startswith(word.lower()):
                    yield Completion(choice.upper() if upper else choice, -len(word))

    class Hints(Processor):
        """The arguments still to type, in grey after the cursor (as redis-cli)."""

        def apply_transformation(self, ti):
            text = ti.document.text
            if ti.document.cursor_position != len(text):
                return Transformation(ti.fragments)
            more = shell.hint(text)
            if not more:
                return Transformation(ti.fragments)
            return Transformation(ti.fragments + [("class:hint", more)])

    path = history_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        history = FileHistory(str(path))
    except OSError as e:
        sh.err.write(f"history is not kept: {path}: {e.strerror}\n")
        history = InMemoryHistory()
    session = PromptSession(history=history, completer=Commands(),
                            complete_while_typing=False, input_processors=[Hints()],
                            style=Style.from_dict({"hint": "#808080"}))
    try:
        sh.remote.post("command", [("arg", "PING")], idempotent=True)
    except Unreachable as e:
        sh.err.write(f"{e}\n")
    while True:
        prompt = f"{sh.remote.address}> " if sh.remote.connected else "not connected> "
        try:
            text = session.prompt(prompt)
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        try:
            if sh.line(text) is None:
                break
        except KeyboardInterrupt:
            sh.err.write("(interrupted: the command may still run on the DTServer)\n")


def endpoints(host: str | None, port: int | None,
              cluster: str | None) -> tuple[list[str], str | None]:
    """The DTServers to try and the Bearer token to send: ``-h/-p`` (from
    ``$DTRIAD_SECRET``, else ``$DTRIAD_DATA_TOKEN``), else every node of the
    cluster file (a local cluster's directory, or a host's ``dtriad.toml``) and
    its secret, else its data_token (the secret opens the data methods too)."""
    from pathlib import Path

    from dtriad.config import ClusterConfig
    from dtriad.exceptions import DtriadError
    from dtriad.ops.cluster import DEFAULT_DIR, cluster_file

    if port is not None or host is not None:
        if cluster is not None:
            raise DtriadError("give either -h/-p or --cluster, not both")
        if port is None:
            raise DtriadError("give the DTServer's HTTP port with -p (dtriad up prints it)")
        return [f"http://{host or '127.0.0.1'}:{port}"], (
            os.environ.get("DTRIAD_SECRET") or os.environ.get("DTRIAD_DATA_TOKEN"))
    path = Path(cluster) if cluster and Path(cluster).is_file() else cluster_file(
        cluster or DEFAULT_DIR)
    if not path.exists():
        raise DtriadError(f"no cluster file at {path}: start a cluster with 'dtriad up', "
                          f"or point at one with --cluster DIR or -h HOST -p PORT")
    config = ClusterConfig.load(str(path))
    return [n.http for n in config.nodes], config.secret or config.data_token


def main(urls: list[str], command: list[str], mode: str | None, timeout: float,
         read_quorum: str | None, write_quorum: str | None, secret: str | None = None) -> int:
    """``dtriad cli``: one command, piped lines, or the prompt. The exit status."""
    stdin_tty, stdout_tty = sys.stdin.isatty(), sys.stdout.isatty()
    interactive = not command and stdin_tty

    def failover(before: str, after: str, why: str) -> None:
        if interactive:
            sys.stderr.write(f"{before} does not answer ({why}); trying {after}\n")

    remote = Remote(urls, timeout=timeout, on_failover=failover, secret=secret)
    sh = Shell(remote, mode or ("tty" if stdout_tty else "raw"), sys.stdout.buffer,
               sys.stderr, read_quorum, write_quorum)
    if command:
        return 0 if sh.args([os.fsencode(a) for a in command]) is not False else 1
    if not interactive:
        return 0 if run_lines(sh, sys.stdin) else 1
    repl(sh)
    return 0
