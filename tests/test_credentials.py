"""The credentials a cluster file holds (README, "Security"): which login each
part uses, and the files refused because one credential would open another's
part."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from dtriad import logs
from dtriad.config import INTERNAL_USER, SENTINEL_USER, ClusterConfig, Login
from dtriad.exceptions import ConfigurationError
from dtriad.ops.procs import backend_auth, redis_config

from .conftest import make_nodes

SEPARATE = {"password": "client-password", "secret": "s" * 16 + "-secret",
            "backend_password": "b" * 16 + "-internal", "sentinel_password": "n" * 16 + "-sent"}


def config(**settings) -> ClusterConfig:
    return ClusterConfig(nodes=make_nodes(3), replicas=1, **settings)


def test_separate_credentials_give_each_part_its_own_login():
    c = config(**SEPARATE)
    assert c.separate_credentials
    assert c.internal == Login(INTERNAL_USER, SEPARATE["backend_password"])
    assert c.sentinel_login == Login(SENTINEL_USER, SEPARATE["sentinel_password"])
    assert c.sentinel_secret == SEPARATE["sentinel_password"]
    assert config(**SEPARATE, backend_user="internal").internal.username == "internal"
    text = redis_config(6379, Path("/tmp/x"), persist=False, **backend_auth(c))
    assert "user default off ~* &* +@all" in text and "requirepass" not in text
    assert f"user dtriad on >{SEPARATE['backend_password']} ~* &* +@all" in text
    sentinel_line = next(line for line in text.splitlines() if SENTINEL_USER in line)
    assert SEPARATE["sentinel_password"] in sentinel_line and "~" not in sentinel_line
    assert SEPARATE["password"] not in text  # the client password opens no backend


def test_a_file_without_backend_password_keeps_one_password_everywhere():
    c = config(password="legacy-pw", secret="legacy-secret", username="app")
    assert not c.separate_credentials
    assert c.internal == c.sentinel_login == Login("app", "legacy-pw")
    assert c.sentinel_secret == "legacy-pw"
    assert config(password="pw").internal == Login(None, "pw")
    assert "requirepass pw" in redis_config(1, Path("/tmp/x"), persist=False,
                                            **backend_auth(config(password="pw")))


@pytest.mark.parametrize("change, words", [
    ({"backend_password": SEPARATE["password"]}, "password and backend_password must differ"),
    ({"sentinel_password": SEPARATE["backend_password"]},
     "backend_password and sentinel_password must differ"),
    ({"secret": SEPARATE["password"]}, "password and secret must differ"),
    ({"sentinel_password": None}, "needs a sentinel_password"),
    ({"password": None}, "needs a client password"),
    ({"backend_password": "short"}, "backend_password must have at least 16 characters"),
    ({"backend_user": "default"}, "backend_user must not be 'default'"),
    ({"backend_user": SENTINEL_USER}, "must not be 'dtriad-sentinel'"),
    ({"username": "dtriad"}, "must not be 'dtriad'"),
    ({"backend_user": "a b"}, "backend_user must be 1 to 64 letters"),
    ({"sentinel_password": "has a space in it!"}, "printable ASCII without spaces"),
])
def test_credentials_that_would_open_each_other_are_refused(change, words):
    with pytest.raises(ConfigurationError, match=words):
        config(**(SEPARATE | change))


@pytest.mark.parametrize("field", ["backend_user", "sentinel_password"])
def test_internal_settings_without_backend_password_are_refused(field):
    with pytest.raises(ConfigurationError, match=f"{field} needs a backend_password"):
        config(password="pw", **{field: "x" * 20})


def test_the_credentials_round_trip_and_are_never_logged(tmp_path):
    c = config(**SEPARATE, backend_user="internal")
    c.save(tmp_path / "cluster.json")
    assert ClusterConfig.load(tmp_path) == c
    stream = io.StringIO()
    handler = logs.setup("test", secrets=logs.secrets_of(c), stream=stream)
    try:
        logging.getLogger("t").warning("leak %s", " ".join(SEPARATE.values()))
        logs.add_secrets("rotated-password")
        logging.getLogger("t").warning("leak rotated-password")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert text.count(logs.REDACTED) == len(SEPARATE) + 1
    for secret in (*SEPARATE.values(), "rotated-password"):
        assert secret not in text
