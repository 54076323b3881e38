"""Races over real HTTP against the production-like server: a hot wallet and an idempotency-key storm."""

from collections import Counter
from decimal import Decimal

from tests.live import Reply, run_concurrently

THREADS = 16


def _balance(live, user_id: int, code: str = "USDT") -> Decimal:
    return live.sql(
        "SELECT w.balance FROM wallets_wallet w JOIN currencies_currency c ON c.id = w.currency_id "
        "WHERE w.user_id = %s AND c.code = %s",
        [user_id, code],
    )[0][0]


def test_a_hot_wallet_of_100_pays_exactly_100_of_200_concurrent_transfers(live, rng):
    tag = f"{rng.getrandbits(32):08x}"
    payer, payee = live.seed([f"hot-{tag}", f"sink-{tag}"], funds=[{"USDT": "100"}, {}])
    body = {"to_user_id": payee["id"], "currency": "USDT", "amount": "1"}
    keys = [f"hot-{tag}-{i}" for i in range(200)]
    rng.shuffle(keys)

    replies = run_concurrently(
        [
            lambda key=key: live.http.post(
                "/wallet/transfer", body, token=payer["token"], headers={"Idempotency-Key": key}
            )
            for key in keys
        ],
        threads=THREADS,
    )

    outcomes = Counter((r.status, r.code) if isinstance(r, Reply) else repr(r) for r in replies)
    print(f"seed={rng.seed_value} outcomes={dict(outcomes)}")
    assert outcomes == {(200, None): 100, (400, "INSUFFICIENT_BALANCE"): 100}
    assert _balance(live, payer["id"]) == 0
    assert _balance(live, payee["id"]) == 100
    assert live.sql("SELECT count(*) FROM transactions_transaction WHERE from_user_id = %s", [payer["id"]]) == [(100,)]


def test_an_idempotency_key_storm_moves_money_once_and_stays_per_user(live, rng):
    tag = f"{rng.getrandbits(32):08x}"
    alice, mallory, carol = live.seed(
        [f"idem-a-{tag}", f"idem-m-{tag}", f"idem-c-{tag}"], funds=[{"USDT": "500"}, {"USDT": "500"}, {}]
    )
    key = f"storm-{tag}"
    body = {"to_user_id": carol["id"], "currency": "USDT", "amount": "7.25", "memo": "once"}

    def send(user):
        return live.http.post("/wallet/transfer", body, token=user["token"], headers={"Idempotency-Key": key})

    concurrent = run_concurrently([lambda: send(alice)] * 100, threads=THREADS)
    sequential = [send(alice) for _ in range(100)]
    # Another user, the same key and the same body: an independent transfer of their own.
    theirs = [send(mallory) for _ in range(3)]

    replies = concurrent + sequential
    assert all(isinstance(r, Reply) for r in replies), [r for r in replies if not isinstance(r, Reply)][:3]
    outcomes = Counter((r.status, r.code, r.headers.get("idempotent-replayed")) for r in replies)
    print(f"seed={rng.seed_value} outcomes={dict(outcomes)}")
    originals = [r for r in replies if r.status == 200 and "idempotent-replayed" not in r.headers]
    replays = [r for r in replies if r.status == 200 and r.headers.get("idempotent-replayed") == "true"]
    in_flight = [r for r in replies if (r.status, r.code) == (409, "IDEMPOTENCY_KEY_IN_USE")]
    assert len(originals) == 1
    assert len(originals) + len(replays) + len(in_flight) == 200, outcomes
    assert all(r.status == 200 and r.headers.get("idempotent-replayed") == "true" for r in sequential)
    first = originals[0].json()
    for reply in replays:
        body_ = reply.json()
        assert (body_["id"], body_["hash"], body_["signature"]) == (first["id"], first["hash"], first["signature"])
        assert body_ == first
    assert first["from_user_id"] == alice["id"]

    assert [r.status for r in theirs] == [200, 200, 200]
    own = theirs[0].json()
    assert own["from_user_id"] == mallory["id"] and own["id"] != first["id"] and own["hash"] != first["hash"]
    assert "idempotent-replayed" not in theirs[0].headers
    assert all(r.json()["id"] == own["id"] and r.headers.get("idempotent-replayed") == "true" for r in theirs[1:])

    for user in (alice, mallory):
        rows = live.sql("SELECT hash FROM transactions_transaction WHERE from_user_id = %s", [user["id"]])
        assert len(rows) == 1
        assert live.sql("SELECT count(*) FROM core_outboxevent WHERE key = %s", [rows[0][0]]) == [(1,)]
    assert _balance(live, alice["id"]) == Decimal("492.75")
    assert _balance(live, mallory["id"]) == Decimal("492.75")
    assert _balance(live, carol["id"]) == Decimal("14.5")

    changed = live.http.post(
        "/wallet/transfer", {**body, "amount": "8"}, token=alice["token"], headers={"Idempotency-Key": key}
    )
    assert (changed.status, changed.code) == (422, "IDEMPOTENCY_KEY_MISMATCH")
    assert _balance(live, alice["id"]) == Decimal("492.75")
