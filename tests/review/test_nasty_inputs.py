"""Review: nasty inputs on every money-in-motion endpoint answer 4xx problem+json, never 5xx."""

import pytest

from tests.conftest import grant_movements
from tests.holds.conftest import grant_approvals

pytestmark = pytest.mark.django_db

NASTY = [
    '"1e-9"',
    "1e-9",
    "1E+30",
    "1e400",
    '"NaN"',
    '"Infinity"',
    "true",
    '{"a":1}',
    "[1]",
    '"\\u0661"',
    '"\\ud800"',
    '"' + "1" * 5000 + '"',
    "99999999999999999999999",
    "-0",
    "0.000000001",
    "1E-999999999",
    "1e999999999",
    "null",
    '"12.5\\u0000"',
    '"  12 "',
    "1.5e3",
]
IDS = [
    "9223372036854775808",
    '"9223372036854775808"',
    "-1",
    "0",
    "1.0",
    "true",
    '"\\ud800"',
    '{"x":1}',
    "1e3",
    "99999999999999999999999999",
]
STRS = [
    '"\\ud800"',
    '"a\\u0000b"',
    '"' + "x" * 10000 + '"',
    "123",
    "true",
    '{"a":1}',
    '["x"]',
    '""',
    '"\\udfff\\ud800"',
]


def run(client, path, template, field, values, results):
    for v in values:
        body = template.replace("@" + field, v)
        r = client.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"k{len(results)}")
        if r.status_code >= 400:
            assert r["Content-Type"] == "application/problem+json", (path, v[:40], r.content[:200])
        results.append((r.status_code, path, field, v[:40], r.content[:200]))


def test_nasty_inputs_never_answer_a_server_error(user_factory, client_for):
    alice = user_factory(balance=100, username="alice")
    bob = user_factory(username="bob")
    staff = grant_approvals(grant_movements(user_factory(is_staff=True, username="staff")))
    a, s = client_for(alice), client_for(staff)
    res = []
    run(a, "/holds", '{"amount": @amount, "to_user_id": %d}'.replace("%d", str(bob.pk)), "amount", NASTY, res)
    run(a, "/holds", '{"amount": "1", "to_user_id": @id}', "id", IDS, res)
    run(a, "/holds", '{"amount": "1", "expires_in": @id}', "id", IDS + NASTY, res)
    run(a, "/holds", '{"amount": "1", "memo": @s}', "s", STRS, res)
    run(a, "/holds", '{"amount": "1", "currency": @s}', "s", STRS, res)
    run(a, "/holds", '{"amount": "1", "to_username": @s}', "s", STRS, res)
    run(a, "/holds", '{"amount": "1", "currency_id": @id}', "id", IDS, res)
    r = a.post("/holds", {"amount": "50", "to_user_id": bob.pk}, format="json")
    hid = r.json()["id"]
    b = client_for(bob)
    run(b, f"/holds/{hid}/capture", '{"amount": @amount}', "amount", NASTY, res)
    run(s, f"/holds/{hid}/capture", '{"amount": "1", "to_user_id": @id}', "id", IDS, res)
    run(a, "/withdrawal-requests", '{"amount": @amount, "address": "abc"}', "amount", NASTY, res)
    run(a, "/withdrawal-requests", '{"amount": "1", "address": @s}', "s", STRS, res)
    run(a, "/withdrawal-requests", '{"amount": "1", "address": "abc", "memo": @s}', "s", STRS, res)
    run(a, "/withdrawal-requests", '{"amount": "1", "address": "abc", "network": @s}', "s", STRS, res)
    tx = s.post("/deposits", {"user_id": alice.pk, "amount": "5"}, format="json").json()
    run(s, f"/tx/{tx['hash']}/reversals", '{"amount": @amount, "memo": "x"}', "amount", NASTY, res)
    run(s, f"/tx/{tx['hash']}/reversals", '{"amount": "1", "memo": @s}', "s", STRS, res)
    run(
        a,
        "/transfers/batch",
        '{"transfers": [{"amount": @amount, "to_user_id": %d}]}'.replace("%d", str(bob.pk)),
        "amount",
        NASTY,
        res,
    )
    run(a, "/transfers/batch", '{"transfers": [{"amount": "1", "to_user_id": @id}]}', "id", IDS, res)
    run(
        a,
        "/transfers/batch",
        '{"transfers": [{"amount": "1", "to_user_id": %d, "memo": @s}]}'.replace("%d", str(bob.pk)),
        "s",
        STRS,
        res,
    )
    run(a, "/transfers/batch", '{"transfers": [{"amount": "1", "to_username": @s}]}', "s", STRS, res)
    run(
        a,
        "/transfers/batch",
        '{"transfers": [{"amount": "1", "to_user_id": %d, "currency": @s}]}'.replace("%d", str(bob.pk)),
        "s",
        STRS,
        res,
    )
    run(a, "/transfers/batch", '{"transfers": @s}', "s", STRS + ["[[1]]", "[null]", '[{"transfers":1}]'], res)
    run(
        a,
        "/wallet/transfer",
        '{"amount": "1", "to_user_id": %d, "memo": @s}'.replace("%d", str(bob.pk)),
        "s",
        STRS,
        res,
    )
    run(a, "/wallet/transfer", '{"amount": "1", "to_username": @s}', "s", STRS, res)
    for path in [
        "/holds/99999999999999999999999/capture",
        "/holds/9223372036854775808/void",
        "/withdrawal-requests/9223372036854775808/cancel",
        "/tx/" + "a" * 5000 + "/reversals",
        "/tx/%F0%9F%98%80/reversals",
        "/tx/%ED%A0%80/reversals",
    ]:
        for c in (a, s):
            r = c.post(path, {"memo": "x"}, format="json")
            res.append((r.status_code, path[:60], "", "", r.content[:200]))
    for path in [
        "/holds/99999999999999999999999",
        "/holds/9223372036854775808",
        "/withdrawal-requests/9223372036854775808",
        "/holds?status=%ED%A0%80",
        "/holds?cursor=%ED%A0%80",
        "/holds?limit=99999999999999999999",
    ]:
        r = a.get(path)
        res.append((r.status_code, path[:60], "", "", r.content[:200]))
    bad = [x for x in res if x[0] >= 500]
    assert len(res) > 200
    assert not bad, "\n".join(map(str, bad))
