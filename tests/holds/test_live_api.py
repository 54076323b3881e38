"""Holds and withdrawal requests over real HTTP: gunicorn with several workers, PostgreSQL, then reconcile."""

from collections import Counter

from tests.live import live_api, live_template, run_concurrently  # noqa: F401 - live_template is a fixture

CAPTURES = 10


def test_a_hold_lifecycle_and_an_approved_withdrawal_request_over_http(live_template):  # noqa: F811 - the fixture
    with live_api(live_template, "holds", workers=3) as api:
        alice, bob = api.seed(["alice", "bob"], funds=[{"USDT": "100"}, {}])
        (staff,) = api.seed(["approver"], staff=True)
        api.sql(
            "INSERT INTO accounts_user_user_permissions (user_id, permission_id) "
            "SELECT %s, id FROM auth_permission WHERE codename = 'approve_withdrawalrequest' RETURNING id",
            [staff["id"]],
        )
        http = api.http

        def wallet(user):
            reply = http.get(f"/wallet/{user['id']}", token=user["token"])
            assert reply.status == 200, reply.body
            body = reply.json()
            return body["balance"], body["held"], body["available"]

        # A hold for Bob, placed once however often it is sent.
        body = {"amount": "30", "to_username": "bob", "expires_in": 600}
        placed = http.post("/holds", body, token=alice["token"], headers={"Idempotency-Key": "hold-1"})
        again = http.post("/holds", body, token=alice["token"], headers={"Idempotency-Key": "hold-1"})
        assert placed.status == again.status == 201, placed.body
        assert again.json() == placed.json() and again.headers.get("idempotent-replayed") == "true"
        hold = placed.json()
        assert wallet(alice) == ("100.00000000", "30.00000000", "70.00000000")
        assert http.get(f"/holds/{hold['id']}", token=bob["token"]).json()["status"] == "active"

        # Bob captures 4 at a time from many clients at once, through every worker: the hold never gives more.
        def capture(n: int):
            return http.post(
                f"/holds/{hold['id']}/capture",
                {"amount": "4"},
                token=bob["token"],
                headers={"Idempotency-Key": f"capture-{n}"},
            )

        replies = run_concurrently([lambda n=n: capture(n) for n in range(CAPTURES)], threads=CAPTURES)
        outcomes = Counter((reply.status, reply.code) for reply in replies)
        assert outcomes == {(200, None): 7, (400, "AMOUNT_EXCEEDS_HOLD"): 3}, outcomes
        rest = http.post(f"/holds/{hold['id']}/capture", token=bob["token"])
        assert rest.status == 200 and rest.json()["hold"]["status"] == "captured", rest.body
        assert rest.json()["transaction"]["amount"] == "2.00000000"
        assert http.post(f"/holds/{hold['id']}/void", token=alice["token"]).code == "HOLD_NOT_ACTIVE"
        assert wallet(bob) == ("30.00000000", "0.00000000", "30.00000000")
        assert wallet(alice) == ("70.00000000", "0.00000000", "70.00000000")

        # A hold past its expiry: expired on every read, nothing to capture, its money available again.
        lapsed = http.post("/holds", {"amount": "10", "to_user_id": bob["id"]}, token=alice["token"]).json()
        api.sql(
            "UPDATE holds_hold SET expires_at = now() - interval '1 second' WHERE id = %s RETURNING id", [lapsed["id"]]
        )
        assert http.get(f"/holds/{lapsed['id']}", token=alice["token"]).json()["status"] == "expired"
        late = http.post(f"/holds/{lapsed['id']}/capture", token=bob["token"])
        assert (late.status, late.code) == (409, "HOLD_NOT_ACTIVE")
        assert wallet(alice) == ("70.00000000", "0.00000000", "70.00000000")

        # A withdrawal request: held at once, approved by staff with the permission, once.
        asked = http.post(
            "/withdrawal-requests",
            {"amount": "20", "address": "TXa9zQmemo", "network": "TRC20"},
            token=alice["token"],
            headers={"Idempotency-Key": "withdraw-1"},
        )
        assert asked.status == 202 and asked.json()["status"] == "pending", asked.body
        request = asked.json()
        assert wallet(alice) == ("70.00000000", "20.00000000", "50.00000000")
        refused = http.post(f"/withdrawal-requests/{request['id']}/approve", token=bob["token"])
        assert (refused.status, refused.code) == (403, "FORBIDDEN")
        approved = http.post(
            f"/withdrawal-requests/{request['id']}/approve", {"network_tx_id": "0xfeed"}, token=staff["token"]
        )
        assert approved.status == 200 and approved.json()["status"] == "completed", approved.body
        twice = http.post(f"/withdrawal-requests/{request['id']}/approve", token=staff["token"])
        assert (twice.status, twice.code) == (409, "WITHDRAWAL_REQUEST_NOT_PENDING")
        receipt = http.get(f"/tx/{approved.json()['transaction_hash']}", token=alice["token"]).json()
        assert (receipt["type"], receipt["amount"], receipt["to_user_id"]) == ("withdrawal", "20.00000000", None)
        assert wallet(alice) == ("50.00000000", "0.00000000", "50.00000000")

        # Another one rejected: released in full.
        second = http.post("/withdrawal-requests", {"amount": "5", "address": "x1"}, token=alice["token"]).json()
        rejected = http.post(
            f"/withdrawal-requests/{second['id']}/reject", {"reason": "unverified address"}, token=staff["token"]
        )
        assert rejected.status == 200 and rejected.json()["status"] == "rejected", rejected.body

        # All that is left can be spent: the expired hold is released by the spend itself.
        spent = http.post("/wallet/transfer", {"to_user_id": bob["id"], "amount": "50"}, token=alice["token"])
        assert spent.status == 200, spent.body
        assert wallet(alice) == ("0.00000000", "0.00000000", "0.00000000")
        assert wallet(bob) == ("80.00000000", "0.00000000", "80.00000000")
        assert api.sql("SELECT status FROM holds_hold WHERE id = %s", [lapsed["id"]]) == [("expired",)]

        reconcile = api.reconcile()
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
