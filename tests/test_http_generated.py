"""The spyne service is generated from the command table: one method per entry,
with the entry's parameters and return type (dtriad.core.commands.METHODS)."""

import json

import pytest
from spyne.model.complex import Array
from spyne.model.primitive import AnyDict, Integer, Unicode
from werkzeug.test import Client

from dtriad.core.commands import API, METHODS, Group, Returns, method_names
from dtriad.frontends.http import HANDLERS, DTService, make_wsgi_app

# What the hand-written service declared before it was generated.
DECLARED = {
    "get": (["key", "read_quorum"], Unicode), "set": (["key", "value", "write_quorum"], Unicode),
    "getStrlen": (["key", "read_quorum"], Integer),
    "append": (["key", "value", "write_quorum"], Integer),
    "lPush": (["key", "value", "write_quorum"], Integer),
    "lPop": (["key", "write_quorum"], Unicode),
    "lIndex": (["key", "index", "read_quorum"], Unicode),
    "lLen": (["key", "read_quorum"], Integer), "delete": (["key", "write_quorum"], Integer),
    "exists": (["key", "read_quorum"], Integer),
    "expire": (["key", "seconds", "write_quorum"], Integer),
    "ttl": (["key", "read_quorum"], Integer), "incr": (["key", "write_quorum"], Integer),
    "mget": (["key", "read_quorum"], Array), "mset": (["key", "value", "write_quorum"], Unicode),
    "command": (["arg", "read_quorum", "write_quorum"], AnyDict),
    "check": ([], AnyDict), "ring": ([], AnyDict), "keyDist": ([], AnyDict),
    "health": ([], AnyDict), "ringUpdate": (["secret", "state"], AnyDict),
    "stats": ([], AnyDict),
}
ARRAYS = {("mget", "key"), ("mset", "key"), ("mset", "value"), ("command", "arg")}


def test_one_spyne_method_per_entry_with_the_same_parameters_as_before():
    assert set(DTService.public_methods) == set(METHODS) == set(DECLARED)
    assert method_names() == sorted(DECLARED, key=str.lower)
    for name, (params, returns) in DECLARED.items():
        descriptor = DTService.public_methods[name]
        assert descriptor.in_message.get_type_name() == name
        # Replies are bare (the JSON was always the bare value: ignore_wrappers),
        # so spyne builds no <name>Response object for each reply.
        assert descriptor.is_out_bare(), name
        fields = descriptor.in_message._type_info
        assert list(fields) == params == list(METHODS[name].params), name
        for param, kind in fields.items():
            if (name, param) in ARRAYS:
                assert issubclass(kind, Array), (name, param)
            else:
                assert kind is Unicode, (name, param)
        assert issubclass(descriptor.out_message, returns), name


def test_the_table_is_consistent():
    assert set(API) == {n for n, m in METHODS.items() if m.group is Group.DATA}
    assert {m.handler for m in METHODS.values() if m.handler} == set(HANDLERS)
    assert [n for n, m in METHODS.items() if m.secret] == ["ring", "keyDist", "check", "stats"]
    assert API["lIndex"].usage == "lIndex key index" and API["lIndex"].ints == ("index",)
    assert API["get"].redis == "GET" and API["get"].args == ("key",)
    assert METHODS["mget"].returns is Returns.TEXTS


@pytest.mark.parametrize("path,reply", [
    ("/get?key=k", "v"), ("/getStrlen?key=k", 1), ("/lPop?key=none", None),
    ("/mget?key=k&key=none", ["v", None]), ("/command?arg=GET&arg=k", "v"),
])
def test_replies_keep_their_json_types(fake_cluster, path, reply):
    core, _ = fake_cluster()
    client = Client(make_wsgi_app(core))
    assert client.get("/set?key=k&value=v").status_code == 200
    answer = client.get(path)
    assert (answer.status_code, json.loads(answer.data)) == (200, reply)


def test_stats_count_command_by_its_redis_command(fake_cluster):
    core, _ = fake_cluster()
    client = Client(make_wsgi_app(core))
    client.get("/command?arg=PING")
    client.get("/command")
    client.get("/get?key=k")
    stats = json.loads(client.get("/stats").data)
    assert stats["requests"] == {"command:ping": 1, "command": 1, "get": 1}
    assert stats["errors"] == {"ERR": 1}
