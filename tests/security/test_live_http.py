"""What a client sees on the wire from a production-like server: headers, CORS, limits, clean failures."""

import json
import time

import pytest

from tests.live import connect
from tests.security.conftest import ALLOWED_ORIGIN

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@pytest.fixture(scope="module")
def pair(live):
    """Two funded users on the live server and one transfer between them."""
    alice, bob = live.seed(["http-alice", "http-bob"], funds=[{"USDT": "100"}, {}])
    sent = live.http.post("/wallet/transfer", {"to_user_id": bob["id"], "amount": "1"}, token=alice["token"])
    assert sent.status == 200, sent.body
    return alice, bob, sent.json()


def _paths(alice, tx):
    return [
        ("GET", "/health", None, None),
        ("GET", "/currencies", None, None),
        ("GET", f"/wallet/{alice['id']}", None, alice["token"]),
        ("GET", f"/transactions/{alice['id']}", None, alice["token"]),
        ("GET", f"/tx/{tx['hash']}", None, None),
        ("GET", "/users/me", None, alice["token"]),
        ("GET", "/no/such/path", None, None),
        ("DELETE", "/wallets", None, alice["token"]),
        ("POST", "/auth/login", {"username": "http-alice", "password": "wrong password"}, None),
    ]


def test_security_headers_are_on_every_response(live, pair):
    alice, _, tx = pair
    for method, path, body, token in _paths(alice, tx):
        reply = live.http.request(method, path, body, token=token)
        for name, value in SECURITY_HEADERS.items():
            assert reply.headers.get(name) == value, (method, path, name, reply.headers)
        assert "strict-transport-security" not in reply.headers, "HSTS over plain HTTP is meaningless"
        assert reply.headers.get("x-trace-id")
        if reply.status >= 400:
            assert reply.headers["content-type"] == "application/problem+json", (path, reply.body[:200])
            assert b"<html" not in reply.body.lower() and b"Traceback" not in reply.body


def test_hsts_is_sent_behind_a_tls_proxy(live, pair):
    alice, _, tx = pair
    for method, path, body, token in _paths(alice, tx):
        reply = live.http.request(method, path, body, token=token, headers={"X-Forwarded-Proto": "https"})
        hsts = reply.headers.get("strict-transport-security", "")
        assert "max-age=31536000" in hsts and "includeSubDomains" in hsts, (path, reply.headers)


def test_auth_and_money_responses_are_never_cached(live, pair):
    alice, bob, tx = pair
    login = live.http.post("/auth/login", {"username": "http-alice", "password": "correct horse battery"})
    assert login.status == 200
    replies = [
        login,
        live.http.post("/auth/login", {"username": "http-alice", "password": "nope nope"}),
        live.http.post("/auth/refresh", {"refresh": login.json()["refresh"]}),
        live.http.post("/wallet/transfer", {"to_user_id": bob["id"], "amount": "1"}, token=alice["token"]),
        live.http.post("/wallet/transfer", {"to_user_id": bob["id"], "amount": "1000"}, token=alice["token"]),
        live.http.get(f"/wallet/{alice['id']}", token=alice["token"]),
        live.http.get(f"/wallet/{alice['id']}/stats", token=alice["token"]),
        live.http.get("/wallets", token=alice["token"]),
        live.http.get(f"/transactions/{alice['id']}", token=alice["token"]),
        live.http.get("/audit/balance-history", token=alice["token"]),
        live.http.get("/users/me", token=alice["token"]),
        live.http.get(f"/tx/{tx['hash']}", token=alice["token"]),
    ]
    for reply in replies:
        assert "no-store" in reply.headers.get("cache-control", ""), (reply.status, reply.body[:100], reply.headers)


def test_cors_answers_only_the_allowed_origin(live, pair):
    alice, _, _ = pair
    allowed = live.http.get("/currencies", headers={"Origin": ALLOWED_ORIGIN})
    assert allowed.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    assert "idempotent-replayed" in allowed.headers.get("access-control-expose-headers", "").lower()
    assert "access-control-allow-credentials" not in allowed.headers

    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }
    ok = live.http.request("OPTIONS", "/wallet/transfer", headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert ok.status == 200
    assert ok.headers.get("access-control-allow-origin") == ALLOWED_ORIGIN
    assert {"authorization", "content-type", "idempotency-key"} <= {
        h.strip() for h in ok.headers.get("access-control-allow-headers", "").lower().split(",")
    }

    for origin in ("https://evil.example", "null", ALLOWED_ORIGIN + ".evil.example", "http://app.example.test"):
        simple = live.http.get(f"/wallet/{alice['id']}", token=alice["token"], headers={"Origin": origin})
        refused = live.http.request("OPTIONS", "/wallet/transfer", headers={"Origin": origin, **preflight})
        for reply in (simple, refused):
            assert "access-control-allow-origin" not in reply.headers, (origin, reply.headers)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 256 * 1024])
def test_an_oversized_body_is_rejected_quickly_over_http(live, pair, size):
    alice, bob, _ = pair
    body = json.dumps({"to_user_id": bob["id"], "amount": "1", "memo": "x" * size})
    started = time.perf_counter()
    reply = live.http.post("/wallet/transfer", raw=body, token=alice["token"], headers={"Idempotency-Key": "big"})
    elapsed = time.perf_counter() - started
    assert (reply.status, reply.code) == (413, "PAYLOAD_TOO_LARGE"), reply.body[:200]
    assert elapsed < 3, f"took {elapsed:.2f}s"
    assert live.http.get("/health").status == 200


def test_a_locked_wallet_makes_a_transfer_fail_fast_with_503_and_retry_after(live):
    """DB_LOCK_TIMEOUT_MS=1000 on this server: a held row lock costs a client one second, not a hung worker."""
    payer, payee = live.seed(["lock-payer", "lock-payee"], funds=[{"USDT": "10"}, {}])
    body = {"to_user_id": payee["id"], "currency": "USDT", "amount": "2"}
    headers = {"Idempotency-Key": "locked-once"}
    with connect(live.dbname, autocommit=False) as holder:
        holder.execute("SELECT id FROM wallets_wallet WHERE user_id = %s FOR UPDATE", [payer["id"]])
        started = time.perf_counter()
        reply = live.http.post("/wallet/transfer", body, token=payer["token"], headers=headers, timeout=20)
        elapsed = time.perf_counter() - started
        other = live.http.get(f"/wallet/{payer['id']}", token=payer["token"])
        holder.rollback()
    assert (reply.status, reply.code) == (503, "SERVICE_UNAVAILABLE"), reply.body[:300]
    assert reply.headers["content-type"] == "application/problem+json"
    assert int(reply.headers["retry-after"]) >= 1
    assert 0.9 < elapsed < 5, f"answered after {elapsed:.2f}s"
    assert other.status == 200 and other.json()["balance"] == "10.00000000", "reads never wait for the lock"
    # Nothing was written, the key was not burnt: the retry goes through once.
    retry = live.http.post("/wallet/transfer", body, token=payer["token"], headers=headers)
    assert retry.status == 200 and "idempotent-replayed" not in retry.headers
    again = live.http.post("/wallet/transfer", body, token=payer["token"], headers=headers)
    assert again.json()["id"] == retry.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert live.sql("SELECT count(*) FROM transactions_transaction WHERE from_user_id = %s", [payer["id"]]) == [(1,)]


def test_app_database_sessions_carry_lock_statement_and_idle_timeouts(live):
    script = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    for name in ('lock_timeout', 'statement_timeout', 'idle_in_transaction_session_timeout'):\n"
        "        c.execute('SHOW ' + name)\n"
        "        print(name, c.fetchone()[0])\n"
    )
    result = live.manage("shell", "-c", script)
    assert result.returncode == 0, result.stderr
    names = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
    settings = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(names))
    assert settings == {"lock_timeout": "1s", "statement_timeout": "15s", "idle_in_transaction_session_timeout": "30s"}
