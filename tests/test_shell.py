"""The shell's pure half (dtriad.ops.shell_rules) and Remote's failover rules, without processes.

The expected strings are what redis-cli 6.2 prints; the integration tests
compare the real binaries byte for byte."""

import io

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from urllib3.exceptions import MaxRetryError, NewConnectionError

from dtriad.core.commands import METHODS, REDIS, Group
from dtriad.ops import shell_rules as shell
from dtriad.ops.shell import Remote, Shell, Unreachable
from dtriad.ops.shell_rules import Action, Error, Refused, Status


def test_terminal_format_is_redis_clis():
    assert shell.format_tty(Status("OK")) == "OK\n"
    assert shell.format_tty("bar") == '"bar"\n'
    assert shell.format_tty(None) == "(nil)\n"
    assert shell.format_tty(5) == "(integer) 5\n"
    assert shell.format_tty([]) == "(empty array)\n"
    assert shell.format_tty(["a", None, 3]) == '1) "a"\n2) (nil)\n3) (integer) 3\n'
    assert shell.format_tty(Error("WRONGTYPE Operation")) == "(error) WRONGTYPE Operation\n"
    # Ten or more items: the index is right-aligned, nested items indented past it.
    many = [str(i) for i in range(10)]
    assert shell.format_tty(many).splitlines()[0] == ' 1) "0"'
    assert shell.format_tty(many).splitlines()[9] == '10) "9"'
    assert shell.format_tty([["a", "b"], []]) == '1) 1) "a"\n   2) "b"\n2) (empty array)\n'


def test_bulk_strings_are_quoted_with_redis_escapes():
    assert shell.repr_bulk(b'a"b\\c') == '"a\\"b\\\\c"'
    assert shell.repr_bulk(b"\n\r\t\a\b") == '"\\n\\r\\t\\a\\b"'
    assert shell.repr_bulk("é".encode()) == '"\\xc3\\xa9"'  # redis-cli is not locale-aware
    assert shell.repr_bulk(b"\x00\x7f ~") == '"\\x00\\x7f ~"'


def test_raw_format_is_redis_clis():
    assert shell.format_raw(Status("OK")) == "OK"
    assert shell.format_raw(None) == ""
    assert shell.format_raw(["a", None, 2]) == "a\n\n2"
    assert shell.format_raw([]) == ""
    assert shell.format_raw(Error("ERR x")) == "ERR x\n"  # then the reply's own newline


def test_json_format():
    assert shell.format_json(["a", None, 1]) == '["a", null, 1]'
    assert shell.format_json(Error("WRONGTYPE Operation")) == (
        '{"error": "WRONGTYPE Operation", "code": "WRONGTYPE"}')
    assert shell.format_json("é") == '"é"'


def test_parse_line_answers_unknown_commands_and_arity_locally():
    assert shell.parse_line(["GET", "k"]).action is Action.REDIS
    assert shell.parse_line(["get", "k"]).spec is REDIS["GET"]
    assert shell.parse_line(["KeyDist"]).action is Action.ADMIN
    assert shell.parse_line(["KeyDist"]).method is METHODS["keyDist"]  # the HTTP method
    assert shell.parse_line(["?"]).action is Action.HELP
    assert shell.parse_line(["EXIT"]).action is Action.QUIT
    with pytest.raises(Refused) as info:
        shell.parse_line(["get"])
    assert info.value.line == "ERR wrong number of arguments for 'get' command"
    assert info.value.usage == "usage: GET key"
    with pytest.raises(Refused) as info:
        shell.parse_line(["mset", "a", "1", "b"])
    assert info.value.line == "ERR wrong number of arguments for MSET"  # Redis's words
    with pytest.raises(Refused) as info:
        shell.parse_line(["ring", "x"])
    assert info.value.usage == "usage: RING"
    with pytest.raises(Refused) as info:
        shell.parse_line(["foo", "a", "b c"])
    assert info.value.line == "ERR unknown command `foo`, with args beginning with: `a`, `b c`, "
    assert info.value.usage == ""
    with pytest.raises(Refused) as info:
        shell.parse_line(["MIGRATE", "h", "1", "k", "0", "5"])
    assert "'migrate' is a Redis command dtriad does not serve" in info.value.line
    with pytest.raises(Refused):
        shell.parse_line(["auth", "secret"])  # a RESP connection command: nothing over HTTP


def test_unknown_command_cuts_arguments_as_redis_does():
    line = shell.unknown_command(["foo", "x" * 200, "y"])
    assert line == f"ERR unknown command `foo`, with args beginning with: `{'x' * 128}`, "
    assert shell.unknown_command(["foo\nbar"]) == (
        "ERR unknown command `foo bar`, with args beginning with: ")


def test_status_replies_are_marked():
    assert isinstance(shell.typed("OK", shell.parse_line(["set", "k", "v"])), Status)
    assert not isinstance(shell.typed("OK", shell.parse_line(["get", "k"])), Status)
    assert not isinstance(shell.typed("old", shell.parse_line(["set", "k", "v", "GET"])), Status)
    assert isinstance(shell.typed("PONG", shell.parse_line(["ping"])), Status)
    error = shell.typed(Error("ERR syntax error"), shell.parse_line(["set", "k", "v", "xx", "nx"]))
    assert type(error) is Error
    assert not isinstance(shell.typed("hi", shell.parse_line(["ping", "hi"])), Status)


def test_hints_show_the_arguments_still_to_type():
    params = "[EX seconds|PX milliseconds|EXAT timestamp|PXAT milliseconds-timestamp|KEEPTTL]"
    assert shell.hint("set") == f" key value {params} [NX|XX] [GET]"
    assert shell.hint("set ") == f"key value {params} [NX|XX] [GET]"
    assert shell.hint("SET k") == f" value {params} [NX|XX] [GET]"
    assert shell.hint("set k v ") == f"{params} [NX|XX] [GET]"
    assert shell.hint("set k v EX 10 ") == f"{params} [NX|XX] [GET]"
    assert shell.hint("") is None
    assert shell.hint("nosuch a") is None
    assert shell.hint('set "a') is None  # unbalanced quotes


def test_every_served_command_has_help_and_nothing_else_is_offered():
    entries = shell.help_entries()
    for spec in REDIS.values():
        if shell.served(spec):
            entry = entries[spec.name]
            assert entry.summary and entry.group == spec.group, spec.name
            assert entry.params or spec.arity in (1, -1), spec.name
        else:
            assert spec.name not in entries
    names = shell.command_names()
    assert {"ring", "keydist", "check", "health", "stats", "help", "quit", "get"} <= set(names)
    assert "auth" not in names and "migrate" not in names and "keys" in names


def test_help_texts():
    assert '"help <command>" for help on <command>' in shell.help_text([], "1.0")
    assert shell.help_text(["set"], "1.0") == (
        "\n  SET key value [EX seconds|PX milliseconds|EXAT timestamp|PXAT "
        "milliseconds-timestamp|KEEPTTL] [NX|XX] [GET]\n"
        "  summary: Set the string value of a key\n  since: 1.0.0\n  group: string\n\n")
    group = shell.help_text(["@list"], "1.0")
    assert "  LPUSH key element [element ...]" in group and "group:" not in group
    assert "  RING\n  summary: The ring" in shell.help_text(["ring"], "1.0")
    assert "not served by dtriad" in shell.help_text(["migrate"], "1.0")
    assert shell.help_text(["nosuch"], "1.0").startswith("no help for 'nosuch'")
    assert shell.help_text(["@nosuch"], "1.0").startswith("no such group")
    assert "counts every key of the cluster once" in shell.help_text(["dbsize"], "1.0")


def test_admin_commands_come_from_the_command_table():
    admin = [m for m in METHODS.values() if m.group is Group.ADMIN]
    assert list(shell.ADMIN_COMMANDS) == [m.name.lower() for m in admin]
    assert shell.help_text([], "1.0").endswith(
        "Admin commands (@dtriad): ring, keydist, check, health, stats\n")
    for method in admin:
        entry = shell.help_entries()[method.name.lower()]
        assert entry.group == "dtriad" and entry.summary.lower() == method.summary.lower()
        assert method.name in shell.ADMIN_FORMAT
    assert shell.help_entries()["keydist"].summary == (
        "Keys each node holds as master and as backup, as a bar chart")


def test_admin_tables():
    info = {"epoch": 3, "replicas": 1, "vnodes": 2, "copies": 2, "write_quorum": "all",
            "read_quorum": "one", "pending_epoch": None,
            "nodes": [{"name": "n1", "state": "up", "redis": "127.0.0.1:1",
                       "http": "http://127.0.0.1:2", "tokens": ["ab" * 20, "cd" * 20],
                       "share": {"master": 0.25, "backup": 0.75},
                       "arcs": {"master": 2, "backup": 2}}]}
    table = shell.ring_table(info).splitlines()
    assert table[0].startswith("epoch 3 · replicas 1 · vnodes 2")
    assert table[2].split() == ["n1", "up", "127.0.0.1:1", "http://127.0.0.1:2",
                                "ababababab…", "(+1)", "25.0%", "75.0%", "2/2"]
    chart = shell.keydist_chart({"n1": {"master": 10, "backup": 20, "misplaced": 0,
                                        "total": 30},
                                 "n2": {"master": 5, "backup": 0, "misplaced": 1, "total": 6},
                                 "n3": {"error": "Connection refused"}}, width=30)
    lines = chart.splitlines()
    assert lines[1].endswith("█" * 10 + "░" * 20) and lines[2].endswith("█" * 5)
    assert lines[3].endswith("down: Connection refused")


# ------------------------------------------------------------------- Remote
class FakeSession:
    """Answers as each URL's entry says: an exception to raise, or a JSON body."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.calls = []

    def post(self, url, data, timeout):
        self.calls.append(url)
        base = url.rsplit("/", 1)[0]
        outcome = self.behaviour[base]
        if isinstance(outcome, Exception):
            raise outcome
        reply = requests.Response()
        reply.status_code, reply._content = outcome
        return reply


def refused():
    reason = NewConnectionError(None, "Failed to establish a new connection: "
                                      "[Errno 111] Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/", reason=reason))


def test_remote_fails_over_to_the_next_dtserver_when_one_is_not_reached():
    a, b = "http://127.0.0.1:1", "http://127.0.0.1:2"
    session = FakeSession({a: refused(), b: (200, b'"OK"')})
    moves = []
    remote = Remote([a, b], session=session, on_failover=lambda *m: moves.append(m))
    assert remote.post("command", [("arg", "SET")], idempotent=False) == "OK"
    assert remote.address == "127.0.0.1:2" and moves == [
        ("127.0.0.1:1", "127.0.0.1:2", "Connection refused")]
    assert remote.post("command", [], idempotent=True) == "OK"
    assert session.calls[-1] == f"{b}/command"  # it stays on the one that answers


def test_remote_never_resends_a_write_that_reached_a_dtserver():
    a, b = "http://127.0.0.1:1", "http://127.0.0.1:2"
    session = FakeSession({a: requests.ReadTimeout("read timed out"), b: (200, b"1")})
    remote = Remote([a, b], session=session)
    with pytest.raises(Unreachable, match="may or may not have been applied"):
        remote.post("command", [("arg", "INCR")], idempotent=False)
    assert session.calls == [f"{a}/command"]
    assert remote.post("command", [("arg", "GET")], idempotent=True) == 1  # reads move on


def test_remote_reports_every_address_when_none_answers():
    a, b = "http://127.0.0.1:1", "http://127.0.0.1:2"
    remote = Remote([a, b], session=FakeSession({a: refused(), b: refused()}))
    with pytest.raises(Unreachable) as info:
        remote.post("ring", [], idempotent=True)
    assert "127.0.0.1:1: Connection refused; 127.0.0.1:2: Connection refused" in str(info.value)
    assert not remote.connected


def test_error_answers_become_redis_error_lines():
    a = "http://127.0.0.1:1"
    remote = Remote([a], session=FakeSession({a: (
        503, b'{"error": "write to key \'k\' is held by 1 of 3 copies", "code": "QUORUM"}')}))
    reply = remote.post("command", [], idempotent=False)
    assert reply == Error("QUORUM write to key 'k' is held by 1 of 3 copies")
    remote = Remote([a], session=FakeSession({a: (502, b"<html>bad gateway</html>")}))
    assert "without JSON: is it a DTServer?" in remote.post("ring", [], idempotent=True)


def run_shell(lines, mode="raw", behaviour=(200, b'"OK"')):
    a = "http://127.0.0.1:1"
    out, err = io.BytesIO(), io.StringIO()
    sh = Shell(Remote([a], session=FakeSession({a: behaviour})), mode, out, err)
    results = [sh.line(line) for line in lines]
    return results, out.getvalue().decode(), err.getvalue()


def test_shell_lines_without_a_round_trip():
    results, out, err = run_shell(['set k "a b', "", "get", "quit", "nosuch"], mode="tty")
    assert results == [False, True, False, None, False]
    assert out == ("Invalid argument(s)\n"
                   "(error) ERR wrong number of arguments for 'get' command\n"
                   "(error) ERR unknown command `nosuch`, with args beginning with: \n")
    assert err == "usage: GET key\n"
    results, out, _ = run_shell(['set k "\\xff"'])
    assert results == [False] and "not valid UTF-8" in out


@given(st.lists(st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=12))
def test_terminal_format_numbers_every_item(items):
    lines = shell.format_tty(items).splitlines()
    if not items:
        assert lines == ["(empty array)"]
    else:
        width = len(str(len(items)))
        assert [line[:width + 2] for line in lines] == [
            f"{i:>{width}}) " for i in range(1, len(items) + 1)]
