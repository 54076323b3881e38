"""Point in time and statements over real HTTP: gunicorn with several workers on PostgreSQL.

A ledger is built over HTTP (concurrent transfers both ways, a hold captured in part and voided, a
staff deposit and a reversal); then the chain as the database holds it is replayed and a few
point-in-time answers and statements (JSON, cursor pages and CSV) are checked against it.
"""

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

from tests.live import live_api, live_template, run_concurrently  # noqa: F401 - live_template is a fixture

MICROSECOND = timedelta(microseconds=1)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def test_point_in_time_and_statements_over_http(live_template):  # noqa: F811 - the fixture
    with live_api(live_template, "statement", workers=3) as api:
        alice, bob = api.seed(["alice", "bob"], funds=[{"USDT": "100"}, {"USDT": "50"}])
        (staff,) = api.seed(["cashier"], staff=True)
        http = api.http

        def transfer(sender, recipient, amount):
            body = {"to_user_id": recipient["id"], "amount": amount, "currency": "USDT"}
            return http.post("/wallet/transfer", body, token=sender["token"])

        replies = run_concurrently(
            [lambda: transfer(alice, bob, "3")] * 6 + [lambda: transfer(bob, alice, "2")] * 6, threads=6
        )
        assert {reply.status for reply in replies} == {200}, [r.body for r in replies if r.status != 200]
        hold = http.post("/holds", {"amount": "20", "to_user_id": bob["id"]}, token=alice["token"]).json()
        assert http.post(f"/holds/{hold['id']}/capture", {"amount": "5"}, token=bob["token"]).status == 200
        assert http.post(f"/holds/{hold['id']}/void", token=alice["token"]).status == 200
        deposit = http.post("/deposits", {"user_id": alice["id"], "amount": "40"}, token=staff["token"])
        assert deposit.status == 201, deposit.body
        paid = transfer(alice, bob, "10").json()
        reversal = http.post(f"/tx/{paid['hash']}/reversals", {"amount": "4", "memo": "refund"}, token=staff["token"])
        assert reversal.status == 201, reversal.body

        (wallet_id,) = api.sql("SELECT id FROM wallets_wallet WHERE user_id = %s AND currency_id = 1", [alice["id"]])[0]
        entries = api.sql(
            "SELECT seq, created_at, delta, held_delta, transaction_id FROM audit_balancehistory"
            " WHERE wallet_id = %s ORDER BY seq",
            [wallet_id],
        )
        times = [row[1] for row in entries]
        assert times == sorted(times), "the chain is in time order"
        assert {row[4] is None for row in entries} == {True, False}  # movements and hold-only entries

        def replayed(at, *, inclusive=True):
            counted = [row for row in entries if (row[1] <= at if inclusive else row[1] < at)]
            return sum((row[2] for row in counted), Decimal(0)), sum((row[3] for row in counted), Decimal(0))

        # Point in time: at every entry's instant and just before it.
        for _, created_at, *_ in entries[:: max(1, len(entries) // 8)] + [entries[-1]]:
            for at in (created_at - MICROSECOND, created_at):
                reply = http.get(f"/wallet/{alice['id']}?at={iso(at)}", token=alice["token"])
                assert reply.status == 200, reply.body
                body = reply.json()
                balance, held = replayed(at)
                assert (Decimal(body["balance"]), Decimal(body["held"])) == (balance, held), at
                assert Decimal(body["available"]) == balance - held and body["as_of"] == iso(at)
        forbidden = http.get(f"/wallet/{alice['id']}?at={iso(times[0])}", token=bob["token"])
        assert (forbidden.status, forbidden.code) == (403, "FORBIDDEN")

        # A statement over the middle of the ledger, by cursor pages, and as CSV.
        start, end = times[len(times) // 4], times[3 * len(times) // 4]
        window = f"from={iso(start)}&to={iso(end)}"
        legs = [row for row in entries if row[4] is not None and start <= row[1] < end]
        assert len(legs) > 3  # more than one page of 3
        walked, cursor = [], ""
        while True:
            reply = http.get(f"/wallet/{alice['id']}/statement?{window}&limit=3{cursor}", token=alice["token"])
            assert reply.status == 200, reply.body
            body = reply.json()
            walked += body["data"]
            if not body["pagination"]["has_more"]:
                break
            cursor = "&cursor=" + body["pagination"]["next_cursor"]
        assert [entry["id"] for entry in walked] == [row[4] for row in legs]
        assert Decimal(body["opening_balance"]) == replayed(start, inclusive=False)[0]
        assert Decimal(body["closing_balance"]) == replayed(end, inclusive=False)[0]
        assert Decimal(body["total_in"]) == sum((row[2] for row in legs if row[2] > 0), Decimal(0))
        assert Decimal(body["total_out"]) == sum((-row[2] for row in legs if row[2] < 0), Decimal(0))
        assert Decimal(body["opening_balance"]) + Decimal(body["total_in"]) - Decimal(body["total_out"]) == Decimal(
            body["closing_balance"]
        )
        exported = http.get(f"/wallet/{alice['id']}/statement?{window}&format=csv", token=staff["token"])
        assert exported.status == 200 and exported.headers["content-type"] == "text/csv; charset=utf-8"
        assert exported.headers["content-disposition"].startswith(f'attachment; filename="statement-{alice["id"]}-')
        table = list(csv.DictReader(io.StringIO(exported.body.decode())))
        assert [row["transaction_id"] for row in table[1:-1]] == [str(entry["id"]) for entry in walked]
        assert (table[0]["balance_after"], table[-1]["balance_after"]) == (
            body["opening_balance"],
            body["closing_balance"],
        )
        other = http.get(f"/wallet/{alice['id']}/statement", token=bob["token"])
        assert (other.status, other.code) == (403, "FORBIDDEN")
