"""Oddly encoded bodies and client trace ids, over real HTTP on a production-like server with its limiter on."""

import json
import re

import pytest
import redis

from tests.live import live_api

POSTS = ["/users", "/auth/login", "/wallet/transfer"]
# Production refuses per-process counters (wallet.E001): a Redis database of this module's own, emptied first.
REDIS_URL = "redis://127.0.0.1:6379/5"


@pytest.fixture(scope="module")
def limited(live_template):
    # The limiter on (the shared live server has it off), with budgets no test here comes near.
    env = {
        "RATELIMIT_ENABLE": "true",
        "RATELIMIT_LOGIN": "1000/m",
        "RATELIMIT_SIGNUP": "1000/m",
        "REDIS_URL": REDIS_URL,
    }
    redis.Redis.from_url(REDIS_URL).flushdb()
    with live_api(live_template, "input", RATELIMIT_DEFAULT="1000/m", **env) as api:
        (alice,) = api.seed(["input-alice"], funds={"USDT": "10"})
        api.alice = alice
        yield api


def _body(path: str) -> dict:
    if path == "/wallet/transfer":
        return {"to_username": "nobody", "amount": "1"}
    return {"username": "input-someone", "email": "someone@example.test", "password": "correct horse battery"}


@pytest.mark.parametrize("charset", ["rot13", "base64", "zlib", "hex", "latin-1", "utf-16", "no-such-charset"])
@pytest.mark.parametrize("path", POSTS)
def test_a_body_in_any_charset_but_utf8_is_refused_as_415(limited, path, charset):
    raw = json.dumps(_body(path)).encode()
    reply = limited.http.post(
        path,
        raw=raw,
        token=limited.alice["token"],
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert reply.status == 415, reply.body[:300]
    assert reply.code == "UNSUPPORTED_MEDIA_TYPE"
    assert charset not in reply.json()["detail"]


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8"])
def test_a_declared_utf8_charset_is_read(limited, charset):
    reply = limited.http.post(
        "/wallet/transfer",
        raw=json.dumps({"to_username": "nobody", "amount": "1"}),
        token=limited.alice["token"],
        headers={"Content-Type": f"application/json; charset={charset}"},
    )
    assert reply.status == 404 and reply.code == "RECIPIENT_NOT_FOUND", reply.body[:300]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("field", ["username", "to_username", "password", "memo"])
def test_a_lone_surrogate_is_a_400_never_a_counter_store_outage(limited, path, field):
    body = json.dumps({**_body(path), field: "x\ud800y"})  # json.dumps writes the \ud800 escape
    assert "\\ud800" in body
    reply = limited.http.post(path, raw=body, token=limited.alice["token"])
    assert reply.status == 400, reply.body[:300]
    assert reply.code == "INVALID_REQUEST"
    assert "rate limit counters unavailable" not in limited.server.log_text()


def test_a_lone_surrogate_in_a_key_is_refused_too(limited):
    body = '{"username": "a", "password": "b", "\\udfff": 1}'
    reply = limited.http.post("/auth/login", raw=body)
    assert reply.status == 400 and reply.code == "INVALID_REQUEST", reply.body[:300]


def test_a_surrogate_pair_is_one_character_and_is_read(limited):
    # U+1F600 written as the escaped pair \ud83d\ude00: valid JSON, valid Unicode.
    body = '{"username": "grin-\\ud83d\\ude00", "password": "wrong password"}'
    reply = limited.http.post("/auth/login", raw=body)
    assert reply.status == 401 and reply.code == "INVALID_CREDENTIALS", reply.body[:300]


@pytest.mark.parametrize(
    "incoming", ["abc-123", "a", "x" * 128, "<script>alert(1)</script>", "-leading", "req:2024.06.01_x-1", "~!@#$%^&*"]
)
def test_a_client_trace_id_of_1_to_128_visible_ascii_characters_is_echoed(limited, incoming):
    reply = limited.http.get("/no/such/path", headers={"X-Trace-ID": incoming})
    assert reply.headers["x-trace-id"] == incoming
    assert reply.json()["trace_id"] == incoming


# (A DEL never gets this far: gunicorn itself refuses the request.)
@pytest.mark.parametrize("incoming", ["x" * 129, "has space", "tab\there", "ünïcode", ""])
def test_any_other_trace_id_is_replaced(limited, incoming):
    reply = limited.http.get("/no/such/path", headers={"X-Trace-ID": incoming.encode("utf-8").decode("latin-1")})
    generated = reply.headers["x-trace-id"]
    assert generated != incoming and re.fullmatch(r"[0-9a-f]{32}", generated)
    assert reply.json()["trace_id"] == generated
