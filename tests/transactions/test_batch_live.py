"""POST /transfers/batch over real HTTP: gunicorn with several workers, PostgreSQL, then reconcile."""

from collections import Counter

from tests.live import live_api, live_template, run_concurrently  # noqa: F401 - live_template is a fixture

ROUNDS = 12


def test_batches_over_http_all_or_nothing_and_crossing_without_deadlock(live_template):  # noqa: F811 - the fixture
    with live_api(live_template, "batch", workers=3) as api:
        alice, bob, carol = api.seed(["alice", "bob", "carol"], funds={"USDT": "100", "BTC": "1"})
        http = api.http

        def wallet(user, currency="USDT"):
            reply = http.get(f"/wallet/{user['id']}?currency={currency}", token=user["token"])
            assert reply.status == 200, reply.body
            return reply.json()["balance"]

        # A batch in two currencies, to a recipient twice; sent twice under one key, posted once.
        body = {
            "transfers": [
                {"to_username": "bob", "currency": "USDT", "amount": "10"},
                {"to_user_id": carol["id"], "currency": "BTC", "amount": "0.25"},
                {"to_user_id": bob["id"], "currency": "USDT", "amount": "5", "memo": "tip"},
            ]
        }
        posted = http.post("/transfers/batch", body, token=alice["token"], headers={"Idempotency-Key": "b-1"})
        again = http.post("/transfers/batch", body, token=alice["token"], headers={"Idempotency-Key": "b-1"})
        assert posted.status == again.status == 201, posted.body
        assert again.json() == posted.json() and again.headers.get("idempotent-replayed") == "true"
        reply = posted.json()
        assert [t["amount"] for t in reply["transactions"]] == ["10.00000000", "0.25000000", "5.00000000"]
        assert [(b["currency"], b["balance_after"]) for b in reply["balances"]] == [
            ("USDT", "85.00000000"),
            ("BTC", "0.75000000"),
        ]
        assert (wallet(alice), wallet(bob), wallet(carol, "BTC")) == ("85.00000000", "115.00000000", "1.25000000")

        # A batch whose last item is more than is left: refused by name, nothing moves.
        failing = {"transfers": [{"to_user_id": bob["id"], "amount": "80"}, {"to_user_id": carol["id"], "amount": "6"}]}
        refused = http.post("/transfers/batch", failing, token=alice["token"])
        assert (refused.status, refused.code) == (400, "INSUFFICIENT_BALANCE"), refused.body
        assert list(refused.json()["errors"]) == ["transfers[1].amount"]
        assert (wallet(alice), wallet(bob), wallet(carol)) == ("85.00000000", "115.00000000", "100.00000000")

        # Alice and Carol pay the other two by batch while Bob pays Alice alone, through every worker.
        def batch(sender, first, second):
            items = [
                {"to_user_id": second["id"], "amount": "1"},
                {"to_user_id": first["id"], "currency": "BTC", "amount": "0.01"},
                {"to_user_id": first["id"], "amount": "1"},
            ]
            return http.post("/transfers/batch", {"transfers": items}, token=sender["token"])

        tasks = []
        for _ in range(ROUNDS):
            tasks += [
                lambda: batch(alice, bob, carol),
                lambda: batch(carol, alice, bob),
                lambda: http.post("/wallet/transfer", {"to_user_id": alice["id"], "amount": "1"}, token=bob["token"]),
            ]
        replies = run_concurrently(tasks, threads=9)
        outcomes = Counter(getattr(reply, "status", type(reply).__name__) for reply in replies)
        assert outcomes == {201: 2 * ROUNDS, 200: ROUNDS}, outcomes
        assert api.deadlocks() == 0
        # Each round: Alice -2 +1 +1, Bob +1 +1 -1, Carol +1 -2 (USDT).
        assert (wallet(alice), wallet(bob), wallet(carol)) == (
            "85.00000000",
            f"{115 + ROUNDS}.00000000",
            f"{100 - ROUNDS}.00000000",
        )

        reconcile = api.reconcile()
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
