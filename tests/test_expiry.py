"""Relative expiries become absolute before a write reaches any copy."""

from hypothesis import given
from hypothesis import strategies as st

from dtriad.core.expiry import absolute

NOW = 1_700_000_000_000


def test_each_relative_form_becomes_its_absolute_one():
    assert absolute(["EXPIRE", "k", "10"], NOW) == ["PEXPIREAT", "k", NOW + 10_000]
    assert absolute(["pexpire", "k", "250"], NOW) == ["PEXPIREAT", "k", NOW + 250]
    assert absolute(["SETEX", "k", "2", "v"], NOW) == ["SET", "k", "v", "PXAT", NOW + 2000]
    assert absolute(["PSETEX", "k", "5", "v"], NOW) == ["SET", "k", "v", "PXAT", NOW + 5]
    assert absolute(["SET", "k", "v", "NX", "ex", "3", "GET"], NOW) == [
        "SET", "k", "v", "NX", "PXAT", NOW + 3000, "GET"]
    assert absolute(["GETEX", "k", "PX", "7"], NOW) == ["GETEX", "k", "PXAT", NOW + 7]
    assert absolute(["RESTORE", "k", "100", b"payload", "REPLACE"], NOW) == [
        "RESTORE", "k", NOW + 100, b"payload", "REPLACE", "ABSTTL"]


def test_what_redis_would_refuse_or_treat_specially_is_sent_as_it_came():
    for argv in (["EXPIRE", "k", "-1"], ["EXPIRE", "k", "0"], ["EXPIRE", "k", "x"],
                 ["SETEX", "k", "0", "v"], ["SET", "k", "v", "EX", "1", "PX", "1"],
                 ["SET", "k", "v", "EX"], ["SET", "k", "v", "KEEPTTL"], ["GETEX", "k"],
                 ["RESTORE", "k", "0", b"p"], ["RESTORE", "k", "5", b"p", "ABSTTL"],
                 ["GET", "k"], ["EXPIRE", "k", str(10 ** 15)]):
        assert absolute(argv, NOW) == argv


@given(st.integers(min_value=1, max_value=10 ** 9), st.integers(min_value=0, max_value=2 ** 41))
def test_the_absolute_time_is_now_plus_the_relative_one(seconds, now):
    assert absolute(["EXPIRE", "k", str(seconds)], now)[2] == now + seconds * 1000
