"""http_auth = "token": the data methods need the data_token (or the secret);
health, the admin methods and the dashboard keep their rules. Request bodies
must arrive within body_timeout_s (408 TIMEOUT otherwise)."""

import json
import threading
import time

import pytest
from werkzeug.test import Client

from dtriad import logs
from dtriad.config import ClusterConfig, NodeSpec
from dtriad.core.commands import METHODS
from dtriad.exceptions import ConfigurationError
from dtriad.frontends.http import DATA_METHODS, make_wsgi_app
from dtriad.ops import shell

TOKEN = "data-token-0123456789"
SECRET = "cluster-secret-0123456789"
NODES = (NodeSpec("n1", "127.0.0.1:7001", "http://127.0.0.1:8001"),)


@pytest.fixture
def guarded(fake_cluster):
    core, backends = fake_cluster(secret=SECRET, data_token=TOKEN, http_auth="token")
    return Client(make_wsgi_app(core)), core


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def answer(reply):
    return reply.status_code, json.loads(reply.data)


def test_data_methods_are_every_key_method_and_nothing_else():
    assert {"get", "set", "mget", "mset", "command", "delete", "incr"} <= DATA_METHODS
    assert not DATA_METHODS & {"health", "ring", "keyDist", "check", "stats", "ringUpdate"}
    assert DATA_METHODS | {"health", "ring", "keyDist", "check", "stats",
                           "ringUpdate"} == set(METHODS)


@pytest.mark.parametrize("headers", [{}, bearer("wrong-token-0123456789"),
                                     {"Authorization": f"Basic {TOKEN}"},
                                     bearer(TOKEN[:-1]), bearer(TOKEN + "x")])
def test_a_missing_or_wrong_token_is_a_401_noauth(guarded, headers):
    client, _ = guarded
    for reply in (client.get("/set?key=k&value=v", headers=headers),
                  client.post("/set", data={"key": "k", "value": "v"}, headers=headers),
                  client.get("/command?arg=GET&arg=k", headers=headers),
                  client.get("/x/get?key=k", headers=headers)):  # spyne's last path part
        status, body = answer(reply)
        assert status == 401 and body["code"] == "NOAUTH", body
        assert "Authorization: Bearer <data_token>" in body["error"]
        assert TOKEN not in reply.data.decode() and SECRET not in reply.data.decode()
    # The token in the query string is not how: it would end up in access logs.
    assert client.get(f"/get?key=k&data_token={TOKEN}").status_code == 401


def test_the_token_opens_data_methods_and_so_does_the_secret(guarded):
    client, _ = guarded
    assert answer(client.get("/set?key=k&value=v", headers=bearer(TOKEN))) == (200, "OK")
    assert answer(client.get("/get?key=k", headers=bearer(SECRET))) == (200, "v")
    reply = client.post("/mset", data={"key": ["a", "b"], "value": ["1", "2"]},
                        headers=bearer(TOKEN))
    assert answer(reply) == (200, "OK")
    assert answer(client.get("/command?arg=MGET&arg=a&arg=b", headers=bearer(TOKEN))) \
        == (200, ["1", "2"])


def test_a_refused_body_is_not_read(guarded):
    client, _ = guarded
    app = client.application

    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body must not be read")

    seen = []
    app({"REQUEST_METHOD": "POST", "PATH_INFO": "/set", "CONTENT_LENGTH": "9",
         "CONTENT_TYPE": "application/x-www-form-urlencoded", "wsgi.input": Unreadable()},
        lambda s, h, e=None: seen.append(s))
    assert seen[0].startswith("401")


def test_health_is_open_and_admin_methods_still_need_the_secret(guarded):
    client, _ = guarded
    assert client.get("/health").status_code == 200
    assert client.get("/ring").status_code == 401
    # The data token opens no admin method: it is not the secret.
    status, body = answer(client.get("/ring", headers=bearer(TOKEN)))
    assert status == 401 and "cluster secret" in body["error"]
    assert client.get("/ring", headers=bearer(SECRET)).status_code == 200
    # The dashboard and /metrics keep their own rule (viewer_token or secret).
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 401
    assert client.get("/metrics", headers=bearer(SECRET)).status_code == 200


def test_http_auth_none_keeps_data_methods_open(fake_cluster):
    core, _ = fake_cluster(secret=SECRET, data_token=TOKEN)
    client = Client(make_wsgi_app(core))
    assert answer(client.get("/set?key=k&value=v")) == (200, "OK")
    assert answer(client.get("/get?key=k", headers=bearer("anything"))) == (200, "v")


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("settings, words", [
    ({"http_auth": "bearer"}, "http_auth must be one of none, token"),
    ({"http_auth": "token"}, "needs a data_token"),
    ({"data_token": "short"}, "data_token must be a string of at least 16"),
    ({"data_token": "with spaces 0123456789"}, "without spaces"),
    ({"data_token": 12345678901234567890}, "data_token must be a string"),
    ({"body_timeout_s": 0}, "body_timeout_s must be a number > 0"),
    ({"body_timeout_s": "2"}, "body_timeout_s must be a number > 0"),
])
def test_bad_settings_are_refused_with_the_reason(settings, words):
    with pytest.raises(ConfigurationError, match=words):
        ClusterConfig(nodes=NODES, replicas=0, **settings)


def test_the_settings_round_trip_and_the_token_is_never_logged(tmp_path):
    config = ClusterConfig(nodes=NODES, replicas=0, http_auth="token", data_token=TOKEN,
                           body_timeout_s=3.5)
    config.save(tmp_path / "cluster.json")
    again = ClusterConfig.load(tmp_path / "cluster.json")
    assert (again.http_auth, again.data_token, again.body_timeout_s) == ("token", TOKEN, 3.5)
    assert again.data_headers() == bearer(TOKEN)
    assert TOKEN in logs.secrets_of(config)
    default = ClusterConfig(nodes=NODES, replicas=0)
    assert default.http_auth == "none" and default.data_token is None
    assert default.data_headers() == {} and "data_token" not in default.to_dict()


# ------------------------------------------------------------------ the shell
def test_the_shell_sends_the_secret_else_the_data_token(tmp_path, monkeypatch):
    ClusterConfig(nodes=NODES, replicas=0, http_auth="token", data_token=TOKEN).save(
        tmp_path / "cluster.json")
    assert shell.endpoints(None, None, str(tmp_path)) == (["http://127.0.0.1:8001"], TOKEN)
    ClusterConfig(nodes=NODES, replicas=0, http_auth="token", data_token=TOKEN,
                  secret=SECRET).save(tmp_path / "cluster.json")
    assert shell.endpoints(None, None, str(tmp_path))[1] == SECRET
    monkeypatch.delenv("DTRIAD_SECRET", raising=False)
    monkeypatch.setenv("DTRIAD_DATA_TOKEN", TOKEN)
    assert shell.endpoints("h", 1, None) == (["http://h:1"], TOKEN)
    monkeypatch.setenv("DTRIAD_SECRET", SECRET)
    assert shell.endpoints("h", 1, None)[1] == SECRET


# ------------------------------------------------------------------ slow bodies
class Trickle:
    """A wsgi.input whose read waits until released (a stalled client)."""

    def __init__(self, data: bytes):
        self.data = data
        self.go = threading.Event()

    def read(self, *args):
        self.go.wait(10)
        return self.data


def post(app, stream, length, path="/set"):
    seen = []
    body = b"".join(app({"REQUEST_METHOD": "POST", "PATH_INFO": path,
                         "CONTENT_TYPE": "application/x-www-form-urlencoded",
                         "CONTENT_LENGTH": str(length), "wsgi.input": stream,
                         "wsgi.url_scheme": "http", "SERVER_NAME": "dt", "SERVER_PORT": "80"},
                        lambda s, h, e=None: seen.append(s)))
    return seen[0], json.loads(body)


def test_a_body_that_does_not_arrive_in_time_is_a_408(fake_cluster):
    core, backends = fake_cluster(body_timeout_s=0.2)
    app = make_wsgi_app(core)
    stream = Trickle(b"key=k&value=v")
    started = time.monotonic()
    status, body = post(app, stream, 13)
    took = time.monotonic() - started
    stream.go.set()
    assert status.startswith("408") and body["code"] == "TIMEOUT", body
    assert "did not arrive within 0.2 s" in body["error"]
    assert 0.2 <= took < 2
    # A body that does arrive is served as before.
    ready = Trickle(b"key=k&value=v")
    ready.go.set()
    assert post(app, ready, 13) == ("200 OK", "OK")


def test_when_every_reader_is_stalled_a_body_is_refused_at_once(fake_cluster):
    core, _ = fake_cluster(body_timeout_s=0.05)
    app = make_wsgi_app(core)
    stalled = [Trickle(b"") for _ in range(16)]
    try:
        for stream in stalled:
            assert post(app, stream, 5)[0].startswith("408")
        started = time.monotonic()
        status, body = post(app, Trickle(b"key=k&value=v"), 13)
        assert status.startswith("408") and "slow bodies" in body["error"]
        assert time.monotonic() - started < 0.05
        # Requests without a body are still served.
        assert Client(app).get("/health").status_code == 200
    finally:
        for stream in stalled:
            stream.go.set()
