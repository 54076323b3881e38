"""GET /wallet/{user_id}/statement: a wallet's movements over [from, to), its balances at both ends."""

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import BalanceHistory
from holds.services import hold_capture, hold_create, hold_void
from tests.wallets.statements import MICROSECOND, iso
from transactions.models import Transaction
from transactions.services import deposit_create, reversal_create, transfer_create, withdrawal_create
from wallet_project.core.cursor import encode_cursor
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

STATEMENT_FIELDS = {
    "wallet_id", "currency", "from", "to", "opening_balance", "closing_balance", "total_in", "total_out", "count",
    "data", "pagination",
}  # fmt: skip
ENTRY_FIELDS = {
    "id", "hash", "type", "status", "amount", "memo", "created_at", "direction", "counterparty_user_id", "delta",
    "balance_after", "held_after",
}  # fmt: skip


@pytest.fixture
def story(user_factory, cashier_factory, usdt):
    """Alice's month: 100 in, a hold for Bob (part captured, the rest voided), transfers both ways, a
    withdrawal, a reversal of her payment to Bob. Returns the people, her wallet and its entries' times."""
    alice, bob, staff = user_factory(balance=100), user_factory(balance=50), cashier_factory()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("20"))
    hold_capture(hold_id=hold.pk, actor=bob, amount=Decimal("5"))
    hold_void(hold_id=hold.pk, actor=alice)
    paid = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("30"), memo="rent")
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("12.5"))
    withdrawal_create(user_id=alice.pk, currency=usdt, amount=Decimal("7"), created_by_id=staff.pk)
    reversal_create(original=paid, amount=Decimal("10"), memo="overpaid", created_by_id=staff.pk)
    wallet = Wallet.objects.get(user=alice, currency=usdt)
    entries = list(BalanceHistory.objects.filter(wallet=wallet).order_by("seq"))
    return alice, bob, staff, wallet, entries


def statement(client, user, **query):
    return client.get(f"/wallet/{user.pk}/statement", query)


def whole(wallet, entries):
    return {"from": iso(wallet.created_at), "to": iso(entries[-1].created_at + MICROSECOND)}


def test_a_statement_lists_movements_and_adds_up(story, client_for):
    alice, bob, _, wallet, entries = story
    response = statement(client_for(alice), alice, **whole(wallet, entries))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == STATEMENT_FIELDS
    assert (body["wallet_id"], body["currency"]) == (wallet.pk, "USDT")
    assert (body["from"], body["to"]) == (iso(wallet.created_at), iso(entries[-1].created_at + MICROSECOND))
    # 100 in, 5 captured by Bob, 30 to Bob, 12.5 from Bob, 7 withdrawn, 10 back from Bob; the hold's
    # placing and voiding move no money and are not listed.
    assert [(e["type"], e["direction"], e["delta"]) for e in body["data"]] == [
        ("deposit", "received", "100.00000000"),
        ("transfer", "sent", "-5.00000000"),
        ("transfer", "sent", "-30.00000000"),
        ("transfer", "received", "12.50000000"),
        ("withdrawal", "sent", "-7.00000000"),
        ("reversal", "received", "10.00000000"),
    ]
    assert [e["counterparty_user_id"] for e in body["data"]] == [None, bob.pk, bob.pk, bob.pk, None, bob.pk]
    assert [e["balance_after"] for e in body["data"]] == [
        "100.00000000", "95.00000000", "65.00000000", "77.50000000", "70.50000000", "80.50000000",
    ]  # fmt: skip
    assert body["data"][1]["held_after"] == "15.00000000"  # the capture took 5 of the 20 held
    assert (body["opening_balance"], body["closing_balance"]) == ("0.00000000", "80.50000000")
    assert (body["total_in"], body["total_out"], body["count"]) == ("122.50000000", "42.00000000", 6)
    assert body["pagination"] == {"page": 1, "page_size": 20, "total": 6, "total_pages": 1}
    rent = body["data"][2]
    assert set(rent) == ENTRY_FIELDS
    tx = Transaction.objects.get(pk=rent["id"])
    assert (rent["hash"], rent["amount"], rent["memo"], rent["status"]) == (tx.hash, "30.00000000", "rent", "completed")
    assert rent["created_at"] == iso(tx.created_at)
    reversal = body["data"][5]
    assert set(reversal) == ENTRY_FIELDS | {"reverses"} and reversal["reverses"] == tx.hash


def test_a_window_inside_the_story_opens_and_closes_at_its_ends(story, client_for):
    alice, _, _, wallet, entries = story
    legs = [e for e in entries if e.transaction_id]
    # From the capture (inclusive) to the withdrawal (exclusive), the hold's void among them.
    start, end = legs[1].created_at, legs[4].created_at
    assert [e.held_delta for e in entries if e.transaction_id is None and start <= e.created_at < end] == [-15]
    body = statement(client_for(alice), alice, **{"from": iso(start), "to": iso(end)}).json()
    assert [e["id"] for e in body["data"]] == [leg.transaction_id for leg in legs[1:4]]
    assert (body["opening_balance"], body["closing_balance"]) == ("100.00000000", "77.50000000")
    assert (body["total_in"], body["total_out"], body["count"]) == ("12.50000000", "35.00000000", 3)
    # The opening is the wallet just before ``from``: GET ?at= a microsecond earlier says the same.
    before = client_for(alice).get(f"/wallet/{alice.pk}", {"at": iso(start - MICROSECOND)}).json()
    assert before["balance"] == body["opening_balance"]


def test_hold_only_windows_change_nothing_and_list_nothing(story, client_for):
    alice, _, _, wallet, entries = story
    void = next(e for e in entries if e.transaction_id is None and e.held_delta < 0)
    window = {"from": iso(void.created_at), "to": iso(void.created_at + MICROSECOND)}
    body = statement(client_for(alice), alice, **window).json()
    assert body["data"] == [] and body["count"] == 0
    assert body["opening_balance"] == body["closing_balance"] == "95.00000000"
    assert body["pagination"] == {"page": 1, "page_size": 20, "total": 0, "total_pages": 0}


def test_the_window_defaults_to_this_month_until_now(story, client_for):
    alice, *_ = story
    before = timezone.now()
    body = statement(client_for(alice), alice).json()
    after = timezone.now()
    end = datetime.fromisoformat(body["to"])
    assert before <= end <= after
    assert datetime.fromisoformat(body["from"]) == end.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert body["count"] == 6 and body["closing_balance"] == "80.50000000"


def test_from_defaults_to_the_start_of_the_month_before_to(story, client_for):
    alice, *_ = story
    body = statement(client_for(alice), alice, to="2026-03-01T00:00:00Z").json()
    assert (body["from"], body["to"]) == ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
    body = statement(client_for(alice), alice, to="2026-03-15T10:00:00+02:00").json()
    assert (body["from"], body["to"]) == ("2026-03-01T00:00:00Z", "2026-03-15T08:00:00Z")


def test_page_paging(story, client_for):
    alice, _, _, wallet, entries = story
    window = whole(wallet, entries)
    client = client_for(alice)
    pages = [statement(client, alice, **window, page=page, page_size=4).json() for page in (1, 2, 3)]
    assert [len(p["data"]) for p in pages] == [4, 2, 0]
    assert all(p["pagination"]["total"] == 6 and p["pagination"]["total_pages"] == 2 for p in pages)
    assert all(p["count"] == 6 and p["closing_balance"] == "80.50000000" for p in pages)  # totals are the window's
    everything = statement(client, alice, **window).json()["data"]
    assert pages[0]["data"] + pages[1]["data"] == everything


def test_cursor_paging(story, client_for):
    alice, _, _, wallet, entries = story
    window = whole(wallet, entries)
    client = client_for(alice)
    first = statement(client, alice, **window, limit=4).json()
    assert first["pagination"]["has_more"] is True and set(first["pagination"]) == {"next_cursor", "has_more"}
    second = statement(client, alice, **window, limit=4, cursor=first["pagination"]["next_cursor"]).json()
    assert second["pagination"] == {"next_cursor": None, "has_more": False}
    assert first["data"] + second["data"] == statement(client, alice, **window).json()["data"]
    # Without limit, a cursor pages by the default limit.
    again = statement(client, alice, **window, cursor=first["pagination"]["next_cursor"]).json()
    assert again["data"] == second["data"]


def test_a_cursor_keeps_the_window_it_started_with(story, client_for, usdt):
    """With ``to`` left to default (now), the next pages are pages of the first page's statement."""
    alice, bob, _, _, _ = story
    client = client_for(alice)
    first = statement(client, alice, limit=5).json()
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("1"))
    second = statement(client, alice, limit=5, cursor=first["pagination"]["next_cursor"]).json()
    assert (second["from"], second["to"], second["count"]) == (first["from"], first["to"], 6)
    assert len(second["data"]) == 1 and second["pagination"]["has_more"] is False


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2999-01-01T00:00:00Z"},
    ],
)
def test_from_not_before_to_is_400_naming_from(story, client_for, query):
    alice, *_ = story
    response = statement(client_for(alice), alice, **query)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST" and "from" in response.json()["errors"]


def test_at_most_366_days(story, client_for):
    alice, *_ = story
    client = client_for(alice)
    ok = statement(client, alice, **{"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"})  # a leap year
    assert ok.status_code == 200, ok.content
    response = statement(client, alice, **{"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00.000001Z"})
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST" and "to" in response.json()["errors"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("from", "yesterday"),
        ("from", ""),
        ("to", "2026-13-01T00:00:00Z"),
        ("format", "xml"),
        ("format", ""),
        ("page", "0"),
        ("page_size", "101"),
        ("limit", "0"),
        ("limit", "101"),
        ("cursor", ""),
        ("cursor", "not-a-cursor"),
        ("currency_id", "abc"),
    ],
)
def test_malformed_parameters_are_400_naming_them(story, client_for, name, value):
    alice, *_ = story
    response = statement(client_for(alice), alice, **{name: value})
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST" and name in response.json()["errors"]


def test_a_cursor_of_another_window_or_wallet_or_forged_is_400(story, client_for):
    alice, bob, _, wallet, entries = story
    client = client_for(alice)
    window = whole(wallet, entries)
    cursor = statement(client, alice, **window, limit=2).json()["pagination"]["next_cursor"]
    elsewhere = {**window, "from": iso(wallet.created_at + MICROSECOND)}
    forged = encode_cursor({"seq": 1, "from": window["from"], "to": window["to"]}, scope="statement:0::")
    for query in (
        {**elsewhere, "cursor": cursor},
        {**window, "cursor": cursor, "currency": "BTC"},
        {**window, "cursor": cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")},
        {**window, "cursor": forged},
    ):
        response = statement(client, alice, **query)
        assert response.status_code == 400, query
        assert response.json()["code"] == "INVALID_REQUEST" and "cursor" in response.json()["errors"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"page": 1, "limit": 5}, "limit"),
        ({"page_size": 5, "cursor": "x"}, "cursor"),
        ({"page": 2, "cursor": "x"}, "cursor"),
    ],
)
def test_page_and_cursor_together_are_400(story, client_for, query, named):
    alice, *_ = story
    response = statement(client_for(alice), alice, **query)
    assert response.status_code == 400 and response.json()["errors"] == {
        named: ["cannot be combined with page or page_size"]
    }


def test_someone_elses_statement_is_403(story, client_for, user_factory):
    alice, bob, *_ = story
    response = statement(client_for(bob), alice)
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"
    assert "forbidden" in response.json()["error"]
    assert statement(client_for(bob), alice, format="csv").status_code == 403
    # Whether an id exists is not observable: the same 403.
    assert client_for(bob).get("/wallet/999999999/statement").status_code == 403


def test_staff_read_any_statement(story, client_for):
    alice, _, staff, *_ = story
    response = statement(client_for(staff), alice)
    assert response.status_code == 200 and response.json()["count"] == 6


def test_a_statement_needs_a_token(story, api):
    alice, *_ = story
    response = api.get(f"/wallet/{alice.pk}/statement")
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


def test_currencies(story, client_for, user_factory, btc):
    alice, *_ = story
    client = client_for(alice)
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("0.25"))
    body = statement(client, alice, currency="BTC").json()
    assert (body["currency"], body["count"], body["closing_balance"]) == ("BTC", 1, "0.25000000")
    assert statement(client, alice, currency_id=btc.pk).json()["currency"] == "BTC"
    unknown = statement(client, alice, currency="ZZZ")
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    usdt_only = user_factory(currencies=("USDT",))
    missing = statement(client_for(usdt_only), usdt_only, currency="BTC")
    assert missing.status_code == 404 and missing.json()["code"] == "WALLET_NOT_FOUND"


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_streams_every_entry_between_its_balances(story, client_for, usdt):
    alice, bob, _, wallet, entries = story
    # More entries than a page, with a memo a spreadsheet would run as a formula.
    for _ in range(25):
        transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("0.01"), memo="=1+1")
    end = BalanceHistory.objects.filter(wallet=wallet).order_by("-seq").first().created_at + MICROSECOND
    window = {"from": iso(wallet.created_at), "to": iso(end)}
    response = statement(client_for(alice), alice, **window, format="csv", page_size=5)

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    stamp = lambda t: t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")  # noqa: E731
    assert response["Content-Disposition"] == (
        f'attachment; filename="statement-{alice.pk}-USDT-{stamp(wallet.created_at)}-{stamp(end)}.csv"'
    )
    rows = csv_rows(response)
    body = statement(client_for(alice), alice, **window, page_size=100).json()
    assert len(rows) == 2 + 31 == 2 + body["count"]
    assert (rows[0]["type"], rows[0]["created_at"], rows[0]["balance_after"]) == (
        "opening_balance", window["from"], "0.00000000"
    )  # fmt: skip
    assert (rows[-1]["type"], rows[-1]["created_at"], rows[-1]["balance_after"]) == (
        "closing_balance", window["to"], body["closing_balance"]
    )  # fmt: skip
    for row, entry in zip(rows[1:-1], body["data"], strict=True):
        assert row["transaction_id"] == str(entry["id"]) and row["hash"] == entry["hash"]
        assert (row["delta"], row["balance_after"], row["held_after"]) == (
            entry["delta"], entry["balance_after"], entry["held_after"]
        )  # fmt: skip
        assert row["counterparty_user_id"] == ("" if entry["counterparty_user_id"] is None else str(bob.pk))
        assert row["reverses"] == entry.get("reverses", "")
    assert rows[-2]["memo"] == "'=1+1"  # CSV injection defused
    assert rows[1]["delta"] == "100.00000000" and rows[2]["delta"] == "-5.00000000"  # numbers stay numbers


def test_an_empty_csv_statement_is_its_two_balances(story, client_for):
    alice, *_ = story
    response = statement(client_for(alice), alice, format="csv", **{"from": "2020-01-01T00:00:00Z", "to": "2020-02-01"})
    rows = csv_rows(response)
    assert [(r["type"], r["balance_after"]) for r in rows] == [
        ("opening_balance", "0.00000000"),
        ("closing_balance", "0.00000000"),
    ]


def test_format_json_is_the_default(story, client_for):
    alice, _, _, wallet, entries = story
    client = client_for(alice)
    explicit = statement(client, alice, **whole(wallet, entries), format="json")
    assert explicit["Content-Type"] == "application/json"
    assert explicit.json() == statement(client, alice, **whole(wallet, entries)).json()


def test_the_schema_documents_the_statement_and_its_errors(api):
    schema = api.get("/openapi.json").json()
    operation = schema["paths"]["/wallet/{user_id}/statement"]["get"]
    assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
    assert {"application/json", "text/csv"} <= set(operation["responses"]["200"]["content"])
    names = {p["name"] for p in operation["parameters"]}
    assert {"currency_id", "currency", "from", "to", "format", "page", "page_size", "cursor", "limit"} <= names
    wallet = schema["paths"]["/wallet/{user_id}"]["get"]
    assert "at" in [p["name"] for p in wallet["parameters"]]
    assert {"400", "403", "404"} <= set(wallet["responses"])


def test_far_instants_are_refused_not_a_server_error(story, client_for):
    alice, *_ = story
    response = statement(client_for(alice), alice, **{"from": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
