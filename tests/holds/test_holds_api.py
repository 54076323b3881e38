"""/holds over HTTP (in process): the lifecycle, every error code with its status, and nothing half-written."""

import json
from datetime import timedelta
from decimal import Decimal

import jsonschema
import pytest
from django.utils import timezone

from audit.reconcile import reconcile
from events.models import OutboxEvent
from holds.api.serializers import HoldOut
from holds.events import hold_document
from holds.models import Hold, HoldCapture
from holds.services import withdrawal_request_create
from tests.holds.support import assert_error, expire, post, post_raw, wallet_of
from tests.ledger import chain_problems, ledger_state, ledger_state_with_keys
from transactions.models import Transaction
from transactions.services import deposit_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

HOLD_FIELDS = {
    "id", "uid", "status", "payer_user_id", "payee_user_id", "currency_id", "currency", "amount", "captured",
    "remaining", "memo", "expires_at", "created_at", "updated_at",
}  # fmt: skip
TRANSACTION_FIELDS = {
    "id", "hash", "signature", "status", "type", "from_user_id", "to_user_id", "currency_id", "currency", "amount",
    "memo", "created_at",
}  # fmt: skip


def state():
    """The ledger, the holds and what they hold: equal snapshots mean nothing was (half-)written."""
    return {
        **ledger_state(),
        "held": sorted(Wallet.objects.values_list("id", "held")),
        "holds": sorted(Hold.objects.values_list("id", "status", "captured", "updated_at")),
        "captures": HoldCapture.objects.count(),
    }


@pytest.fixture
def parties(user_factory):
    # Alice has no ETH wallet.
    return user_factory(balance=100, username="alice", currencies=("USDT", "BTC")), user_factory(username="bob")


@pytest.fixture
def held(parties, client_for):
    """Alice holds 30 USDT for Bob."""
    alice, bob = parties
    response = post(client_for(alice), "/holds", {"amount": "30", "to_user_id": bob.pk, "memo": "order 7"})
    assert response.status_code == 201, response.content
    return response.json()


# --- The lifecycle --------------------------------------------------------------------------------------


def test_a_hold_is_placed_captured_in_part_and_voided(parties, client_for):
    alice, bob = parties
    payer, payee = client_for(alice), client_for(bob)
    before = ledger_state()

    created = post(payer, "/holds", {"amount": "30", "to_user_id": bob.pk, "memo": "order 7"}, key="h-1")

    assert created.status_code == 201, created.content
    hold = created.json()
    assert set(hold) == HOLD_FIELDS
    assert hold["status"] == "active" and (hold["payer_user_id"], hold["payee_user_id"]) == (alice.pk, bob.pk)
    assert (hold["amount"], hold["captured"], hold["remaining"]) == ("30.00000000", "0.00000000", "30.00000000")
    assert (hold["currency_id"], hold["currency"], hold["memo"]) == (1, "USDT", "order 7")
    expires_at = Hold.objects.get(pk=hold["id"]).expires_at
    assert abs((expires_at - timezone.now()) - timedelta(seconds=86_400)) < timedelta(seconds=60)
    assert hold["expires_at"].endswith("Z") and created["Cache-Control"] == "no-store"
    assert wallet_of(payer, alice) == ("100.00000000", "30.00000000", "70.00000000")
    after = ledger_state()
    assert (after["transactions"], after["history"]) == (before["transactions"], before["history"] + 1)

    assert payer.get(f"/holds/{hold['id']}").json() == hold
    assert payee.get(f"/holds/{hold['id']}").json() == hold

    captured = post(payee, f"/holds/{hold['id']}/capture", {"amount": "10"}, key="c-1")

    assert captured.status_code == 200, captured.content
    body = captured.json()
    assert set(body) == {"hold", "transaction", "balance_after", "available_after"}
    assert set(body["transaction"]) == TRANSACTION_FIELDS
    assert body["balance_after"] is body["available_after"] is None  # the payer's wallet: not the payee's to read
    assert body["hold"]["status"] == "active"
    assert (body["hold"]["captured"], body["hold"]["remaining"]) == ("10.00000000", "20.00000000")
    tx = body["transaction"]
    assert (tx["type"], tx["status"], tx["from_user_id"], tx["to_user_id"]) == (
        "transfer",
        "completed",
        alice.pk,
        bob.pk,
    )
    assert tx["amount"] == "10.00000000" and Transaction.objects.get(pk=tx["id"]).hash == tx["hash"]
    assert wallet_of(payer, alice) == ("90.00000000", "20.00000000", "70.00000000")
    assert wallet_of(payee, bob) == ("10.00000000", "0.00000000", "10.00000000")

    voided = post(payer, f"/holds/{hold['id']}/void", key="v-1")

    assert voided.status_code == 200, voided.content
    assert voided.json()["status"] == "voided" and voided.json()["captured"] == "10.00000000"
    assert wallet_of(payer, alice) == ("90.00000000", "0.00000000", "90.00000000")
    for user in (alice, bob):
        assert chain_problems(Wallet.objects.get(user=user, currency_id=1)) == []
    events = OutboxEvent.objects.filter(topic="wallet.events", key=str(hold["id"])).order_by("id")
    assert [e.payload["event_type"] for e in events] == ["hold.created", "hold.captured", "hold.voided"]
    assert reconcile().ok


def test_a_capture_without_amount_takes_all_that_remains(held, parties, client_for):
    alice, bob = parties

    response = post(client_for(bob), f"/holds/{held['id']}/capture")

    assert response.status_code == 200, response.content
    hold = response.json()["hold"]
    assert (hold["status"], hold["captured"], hold["remaining"]) == ("captured", "30.00000000", "0.00000000")
    assert response.json()["transaction"]["amount"] == "30.00000000"
    assert wallet_of(client_for(alice), alice) == ("70.00000000", "0.00000000", "70.00000000")


def test_the_payee_may_void_and_staff_may_read_and_void(held, parties, client_for, user_factory, cashier_factory):
    alice, bob = parties
    assert client_for(user_factory(is_staff=True)).get(f"/holds/{held['id']}").status_code == 200
    response = post(client_for(bob), f"/holds/{held['id']}/void")
    assert response.status_code == 200 and response.json()["status"] == "voided"
    # Nothing remains to capture once it is voided; what was captured stays captured.
    assert (response.json()["captured"], response.json()["remaining"]) == ("0.00000000", "0.00000000")

    other = post(client_for(alice), "/holds", {"amount": "5"}).json()
    response = post(client_for(cashier_factory()), f"/holds/{other['id']}/void")
    assert response.status_code == 200 and response.json()["status"] == "voided"


def test_the_payee_by_username_is_case_insensitive(parties, client_for):
    alice, bob = parties
    response = post(client_for(alice), "/holds", {"amount": "1", "to_username": "BOB"})
    assert response.status_code == 201, response.content
    assert response.json()["payee_user_id"] == bob.pk


def test_a_hold_without_payee_is_captured_by_staff_as_a_transfer_or_a_withdrawal(parties, client_for, cashier_factory):
    alice, bob = parties
    payer, cashier = client_for(alice), client_for(cashier_factory())
    hold = post(payer, "/holds", {"amount": "40", "expires_in": 3600}).json()
    assert hold["payee_user_id"] is None

    to_bob = post(cashier, f"/holds/{hold['id']}/capture", {"amount": "15", "to_user_id": bob.pk})
    assert to_bob.status_code == 200, to_bob.content
    assert to_bob.json()["transaction"]["type"] == "transfer" and to_bob.json()["transaction"]["to_user_id"] == bob.pk

    out = post(cashier, f"/holds/{hold['id']}/capture")
    assert out.status_code == 200, out.content
    tx = out.json()["transaction"]
    assert (tx["type"], tx["from_user_id"], tx["to_user_id"], tx["amount"]) == (
        "withdrawal", alice.pk, None, "25.00000000"
    )  # fmt: skip
    assert out.json()["hold"]["status"] == "captured"
    assert wallet_of(payer, alice) == ("60.00000000", "0.00000000", "60.00000000")
    assert wallet_of(client_for(bob), bob) == ("15.00000000", "0.00000000", "15.00000000")
    assert reconcile().ok


def test_holds_in_another_currency_by_code_or_id(parties, client_for, btc):
    alice, bob = parties
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("1"))
    client = client_for(alice)
    by_code = post(client, "/holds", {"amount": "0.00000001", "currency": "btc", "to_user_id": bob.pk})
    by_id = post(client, "/holds", {"amount": "0.5", "currency_id": btc.pk, "currency": "BTC"})
    for response in (by_code, by_id):
        assert response.status_code == 201, response.content
        assert (response.json()["currency_id"], response.json()["currency"]) == (btc.pk, "BTC")
    assert wallet_of(client, alice, "BTC") == ("1.00000000", "0.50000001", "0.49999999")
    assert wallet_of(client, alice) == ("100.00000000", "0.00000000", "100.00000000")


# --- Listing ------------------------------------------------------------------------------------------


def test_the_list_shows_own_holds_newest_first_by_role_and_effective_status(parties, client_for, user_factory, usdt):
    alice, bob = parties
    carol = user_factory(balance=50)
    a, b = client_for(alice), client_for(bob)
    first = post(a, "/holds", {"amount": "1", "to_user_id": bob.pk}).json()
    second = post(a, "/holds", {"amount": "2"}).json()
    third = post(client_for(carol), "/holds", {"amount": "3", "to_user_id": alice.pk}).json()
    post(client_for(carol), "/holds", {"amount": "4"})  # not alice's business
    withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("5"), address="0xabc")  # not a hold here
    post(a, f"/holds/{second['id']}/void")
    expire(first["id"])

    def ids(client, **query):
        response = client.get("/holds", query)
        assert response.status_code == 200, response.content
        return [hold["id"] for hold in response.json()["data"]]

    assert ids(a) == [third["id"], second["id"], first["id"]]
    assert ids(a, role="payer") == [second["id"], first["id"]]
    assert ids(a, role="payee") == [third["id"]]
    assert ids(a, status="active") == [third["id"]]
    assert ids(a, status="expired") == [first["id"]]  # stored active, past its expiry
    assert ids(a, status="voided") == [second["id"]]
    assert ids(a, status="captured") == []
    assert ids(a, status="expired", role="payee") == []
    assert ids(b) == [first["id"]]
    listed = a.get("/holds", {"role": "payer"}).json()["data"]
    assert listed[1]["status"] == "expired" and listed[0]["status"] == "voided"
    assert all(set(hold) == HOLD_FIELDS for hold in listed)


def test_the_list_is_paged_as_the_history_is(parties, client_for):
    alice, _ = parties
    client = client_for(alice)
    made = [post(client, "/holds", {"amount": "1"}).json()["id"] for _ in range(5)]

    page = client.get("/holds", {"page": 2, "page_size": 2}).json()

    assert [hold["id"] for hold in page["data"]] == [made[2], made[1]]
    assert page["pagination"] == {"page": 2, "page_size": 2, "total": 5, "total_pages": 3}
    assert client.get("/holds", {"page": 9}).json()["data"] == []


@pytest.mark.parametrize(
    "query",
    [{"page": "0"}, {"page": "x"}, {"page_size": "101"}, {"page": ""}, {"status": "pending"}, {"role": "staff"}],
)
def test_malformed_list_parameters_are_400(parties, client_for, query):
    assert_error(client_for(parties[0]).get("/holds", query), 400, "INVALID_REQUEST")


# --- Expiry without a sweeper -----------------------------------------------------------------------------


def test_past_its_expiry_a_hold_reads_expired_cannot_be_captured_and_frees_the_money(parties, client_for):
    alice, bob = parties
    payer, payee = client_for(alice), client_for(bob)
    hold = post(payer, "/holds", {"amount": "100", "to_user_id": bob.pk, "expires_in": 60}).json()
    assert wallet_of(payer, alice) == ("100.00000000", "100.00000000", "0.00000000")
    assert_error(post(payer, "/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}), 400, "INSUFFICIENT_BALANCE")

    expire(hold["id"])

    assert payer.get(f"/holds/{hold['id']}").json()["status"] == "expired"
    before = state()
    assert_error(post(payee, f"/holds/{hold['id']}/capture"), 409, "HOLD_NOT_ACTIVE")
    assert_error(post(payee, f"/holds/{hold['id']}/capture", {"amount": "1"}), 409, "HOLD_NOT_ACTIVE")
    assert_error(post(payer, f"/holds/{hold['id']}/void"), 409, "HOLD_NOT_ACTIVE")
    assert state() == before
    # Every place a wallet is shown counts only active holds.
    assert wallet_of(payer, alice) == ("100.00000000", "0.00000000", "100.00000000")
    (usdt_wallet,) = [w for w in payer.get("/wallets").json() if w["currency"] == "USDT"]
    (me_wallet,) = [w for w in payer.get("/users/me").json()["wallets"] if w["currency"] == "USDT"]
    assert (usdt_wallet["held"], usdt_wallet["available"]) == (me_wallet["held"], me_wallet["available"])
    assert (usdt_wallet["held"], usdt_wallet["available"]) == ("0.00000000", "100.00000000")

    spent = post(payer, "/wallet/transfer", {"to_user_id": bob.pk, "amount": "100"})

    assert spent.status_code == 200, spent.content
    assert Hold.objects.get(pk=hold["id"]).status == "expired"  # the spend recorded the release
    assert wallet_of(payer, alice) == ("0.00000000", "0.00000000", "0.00000000")
    assert chain_problems(Wallet.objects.get(user=alice, currency_id=1)) == []
    assert reconcile().ok


# --- Refusals -------------------------------------------------------------------------------------------


def test_someone_elses_or_an_unknown_hold_is_hold_not_found(held, client_for, user_factory):
    carol = client_for(user_factory(balance=10))
    before = state()
    for response in (
        carol.get(f"/holds/{held['id']}"),
        post(carol, f"/holds/{held['id']}/capture"),
        post(carol, f"/holds/{held['id']}/void"),
        carol.get("/holds/999999"),
        post(carol, "/holds/999999/capture", {"amount": "1"}),
        post(carol, "/holds/999999/void"),
    ):
        assert_error(response, 404, "HOLD_NOT_FOUND")
    assert carol.get("/holds").json()["data"] == []
    assert state() == before


def test_a_withdrawal_requests_hold_is_not_reachable_as_a_hold(parties, client_for, usdt, cashier_factory):
    alice, _ = parties
    request = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("5"), address="0xabc")
    owner, cashier = client_for(alice), client_for(cashier_factory())
    before = state()
    for client in (owner, cashier):
        assert_error(client.get(f"/holds/{request.hold_id}"), 404, "HOLD_NOT_FOUND")
        assert_error(post(client, f"/holds/{request.hold_id}/capture"), 404, "HOLD_NOT_FOUND")
        assert_error(post(client, f"/holds/{request.hold_id}/void"), 404, "HOLD_NOT_FOUND")
    assert state() == before


def test_only_the_payee_or_staff_who_move_money_may_capture(held, parties, client_for, user_factory):
    alice, _ = parties
    staff_without_permission = client_for(user_factory(is_staff=True))
    before = state()
    assert_error(post(client_for(alice), f"/holds/{held['id']}/capture"), 403, "FORBIDDEN")
    assert_error(post(staff_without_permission, f"/holds/{held['id']}/capture"), 403, "FORBIDDEN")
    assert_error(post(staff_without_permission, f"/holds/{held['id']}/void"), 403, "FORBIDDEN")
    assert state() == before


@pytest.mark.parametrize("ending", ["captured", "voided", "expired"])
def test_a_hold_that_ended_is_hold_not_active(held, parties, client_for, ending):
    alice, bob = parties
    if ending == "captured":
        assert post(client_for(bob), f"/holds/{held['id']}/capture").status_code == 200
    elif ending == "voided":
        assert post(client_for(alice), f"/holds/{held['id']}/void").status_code == 200
    else:
        expire(held["id"])
    before = state()

    assert_error(post(client_for(bob), f"/holds/{held['id']}/capture", {"amount": "1"}), 409, "HOLD_NOT_ACTIVE")
    assert_error(post(client_for(alice), f"/holds/{held['id']}/void"), 409, "HOLD_NOT_ACTIVE")

    assert state() == before
    assert client_for(alice).get(f"/holds/{held['id']}").json()["status"] == ending


def test_capturing_more_than_remains_is_amount_exceeds_hold(held, parties, client_for):
    _, bob = parties
    assert post(client_for(bob), f"/holds/{held['id']}/capture", {"amount": "25"}).status_code == 200
    before = state()

    response = post(client_for(bob), f"/holds/{held['id']}/capture", {"amount": "5.000001"})

    assert_error(response, 400, "AMOUNT_EXCEEDS_HOLD")
    assert state() == before
    assert post(client_for(bob), f"/holds/{held['id']}/capture", {"amount": "5"}).json()["hold"]["status"] == "captured"


def test_a_hold_needs_available_money_not_just_balance(parties, client_for, usdt):
    alice, bob = parties
    client = client_for(alice)
    assert post(client, "/holds", {"amount": "70", "to_user_id": bob.pk}).status_code == 201
    before = state()

    for response in (
        post(client, "/holds", {"amount": "30.000001"}),
        post(client, "/wallet/transfer", {"to_user_id": bob.pk, "amount": "30.000001"}),
        post(client, "/withdrawal-requests", {"amount": "31", "address": "0xabc"}),
    ):
        assert_error(response, 400, "INSUFFICIENT_BALANCE")
        assert "insufficient" in response.json()["error"]
    assert state() == before
    assert post(client, "/holds", {"amount": "30"}).status_code == 201
    assert wallet_of(client, alice) == ("100.00000000", "100.00000000", "0.00000000")


def test_capture_rules_on_the_target(parties, client_for, cashier_factory, held):
    alice, bob = parties
    cashier = client_for(cashier_factory())
    before = state()
    # A hold for its payee goes to the payee only.
    response = post(cashier, f"/holds/{held['id']}/capture", {"to_user_id": alice.pk})
    assert_error(response, 400, "INVALID_REQUEST")
    assert "to_user_id" in response.json()["errors"]
    assert state() == before
    no_payee = post(client_for(alice), "/holds", {"amount": "5"}).json()
    before = state()
    assert_error(
        post(cashier, f"/holds/{no_payee['id']}/capture", {"to_user_id": alice.pk}), 400, "SAME_ACCOUNT_TRANSFER"
    )
    assert_error(post(cashier, f"/holds/{no_payee['id']}/capture", {"to_user_id": 2**62}), 404, "RECIPIENT_NOT_FOUND")
    assert state() == before


FAILURES = [
    pytest.param({"to_user_id": "{alice}"}, 400, "SAME_ACCOUNT_TRANSFER", id="payee-is-payer"),
    pytest.param({"to_username": "ALICE"}, 400, "SAME_ACCOUNT_TRANSFER", id="payee-is-payer-by-name"),
    pytest.param({"to_user_id": 2**62}, 404, "RECIPIENT_NOT_FOUND", id="unknown-payee"),
    pytest.param({"to_username": "nobody-here"}, 404, "RECIPIENT_NOT_FOUND", id="unknown-payee-name"),
    pytest.param({"to_user_id": "{bob}", "to_username": "bob"}, 400, "INVALID_REQUEST", id="two-payees"),
    pytest.param({"currency": "NOPE"}, 404, "NOT_FOUND", id="unknown-currency"),
    pytest.param({"currency_id": 1, "currency": "BTC"}, 404, "NOT_FOUND", id="currency-id-and-code-disagree"),
    pytest.param({"currency": "ETH"}, 404, "SENDER_WALLET_NOT_FOUND", id="no-wallet-in-currency"),
    pytest.param({"amount": "100.000001"}, 400, "INSUFFICIENT_BALANCE", id="more-than-available"),
    pytest.param({"amount": "0"}, 400, "AMOUNT_NOT_POSITIVE", id="zero"),
    pytest.param({"amount": "-5"}, 400, "AMOUNT_NOT_POSITIVE", id="negative"),
    pytest.param({"amount": "1.0000001"}, 400, "INVALID_DECIMALS", id="too-many-decimals"),
    pytest.param({"amount": "1000000.000001"}, 400, "AMOUNT_EXCEEDS_LIMIT", id="over-the-limit"),
    pytest.param({"amount": "1" * 40}, 400, "AMOUNT_EXCEEDS_LIMIT", id="huge"),
    pytest.param({"amount": "1e2"}, 400, "INVALID_REQUEST", id="exponent-in-a-string"),
    pytest.param({"amount": "NaN"}, 400, "INVALID_REQUEST", id="nan-string"),
    pytest.param({"amount": None}, 400, "INVALID_REQUEST", id="null-amount"),
    pytest.param({"amount": True}, 400, "INVALID_REQUEST", id="boolean-amount"),
    pytest.param({"memo": "x" * 257}, 400, "INVALID_REQUEST", id="memo-too-long"),
    pytest.param({"memo": 7}, 400, "INVALID_REQUEST", id="memo-a-number"),
    pytest.param({"payer_user_id": "{bob}"}, 400, "INVALID_REQUEST", id="extra-field-payer"),
    pytest.param({"status": "captured"}, 400, "INVALID_REQUEST", id="extra-field-status"),
    pytest.param({"to_user_id": str(2**62)}, 404, "RECIPIENT_NOT_FOUND", id="id-as-digit-string"),
    pytest.param({"to_user_id": 1.0}, 400, "INVALID_REQUEST", id="id-as-float"),
    pytest.param({"to_user_id": True}, 400, "INVALID_REQUEST", id="id-as-boolean"),
]


@pytest.mark.parametrize(("overrides", "status", "code"), FAILURES)
def test_each_refusal_of_a_new_hold_has_its_code_and_writes_nothing(parties, client_for, overrides, status, code):
    alice, bob = parties
    ids = {"{alice}": alice.pk, "{bob}": bob.pk}
    body = {"amount": "1", **{k: ids.get(v, v) if isinstance(v, str) else v for k, v in overrides.items()}}
    before = state()

    response = post(client_for(alice), "/holds", body)

    assert_error(response, status, code)
    assert state() == before


EXPIRES_IN_REFUSED = [
    "true",
    "false",
    "null",
    '"60"',
    '"abc"',
    "60.0",
    "6e1",
    "1.5",
    "0",
    "-1",
    "2592001",
    "[60]",
    "{}",
]


@pytest.mark.parametrize("raw", EXPIRES_IN_REFUSED)
def test_expires_in_is_a_json_integer_of_1_to_2592000_seconds(parties, client_for, raw):
    alice, _ = parties
    before = state()

    response = post_raw(client_for(alice), "/holds", f'{{"amount": "1", "expires_in": {raw}}}')

    assert_error(response, 400, "INVALID_REQUEST")
    assert "expires_in" in response.json()["errors"]
    assert state() == before


@pytest.mark.parametrize("seconds", [1, 2_592_000])
def test_expires_in_bounds_are_accepted(parties, client_for, seconds):
    response = post_raw(client_for(parties[0]), "/holds", f'{{"amount": "1", "expires_in": {seconds}}}')
    assert response.status_code == 201, response.content
    hold = Hold.objects.get(pk=response.json()["id"])
    assert hold.expires_at - hold.created_at == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("raw_amount", "code"),
    [
        ("NaN", "INVALID_REQUEST"),
        ("Infinity", "INVALID_REQUEST"),
        ("-Infinity", "INVALID_REQUEST"),
        ('"1E5"', "INVALID_REQUEST"),
        ('"١٢"', "INVALID_REQUEST"),
        ("1" * 5000, "INVALID_REQUEST"),
        ("1e9999999999999999999", "INVALID_REQUEST"),
        ("1e999999999", "AMOUNT_EXCEEDS_LIMIT"),
        ("1e-9", "INVALID_DECIMALS"),
        ("0.1000000000000000000000000000001", "INVALID_DECIMALS"),
        ("-1e2", "AMOUNT_NOT_POSITIVE"),
    ],
)
def test_nasty_amounts_on_the_wire_are_refused_with_their_code(parties, client_for, raw_amount, code):
    alice, bob = parties
    before = state()
    response = post_raw(client_for(alice), "/holds", f'{{"amount": {raw_amount}, "to_user_id": {bob.pk}}}')
    assert_error(response, 400, code)
    assert state() == before


def test_json_numbers_are_exact(parties, client_for):
    alice, _ = parties
    response = post_raw(client_for(alice), "/holds", '{"amount": 0.1, "expires_in": 60}')
    assert response.status_code == 201 and response.json()["amount"] == "0.10000000"
    response = post_raw(client_for(alice), "/holds", '{"amount": 1e1}')
    assert response.status_code == 201 and response.json()["amount"] == "10.00000000"


@pytest.mark.parametrize(
    "raw",
    [
        '{"amount": "1", "memo": "\\ud800"}',
        '{"amount": "1", "memo": "ok\\udfff"}',
        '{"amount": "1", "memo": "\\u0000"}',
        '{"amount": "1", "amount": "2", "unknown": 1}',
        '["amount", "1"]',
        '"1"',
        "{",
    ],
)
def test_bodies_that_are_not_a_clean_json_object_are_invalid_request(parties, client_for, raw):
    before = state()
    assert_error(post_raw(client_for(parties[0]), "/holds", raw), 400, "INVALID_REQUEST")
    assert state() == before


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"amount": "0"}', "AMOUNT_NOT_POSITIVE"),
        ('{"amount": "-1"}', "AMOUNT_NOT_POSITIVE"),
        ('{"amount": "1.0000001"}', "INVALID_DECIMALS"),
        ('{"amount": 1e-7}', "INVALID_DECIMALS"),
        ('{"amount": "1e1"}', "INVALID_REQUEST"),
        ('{"amount": NaN}', "INVALID_REQUEST"),
        ('{"amount": "31"}', "AMOUNT_EXCEEDS_HOLD"),
        ('{"amount": 100000000000000000000}', "AMOUNT_EXCEEDS_LIMIT"),
        ('{"amount": true}', "INVALID_REQUEST"),
        ('{"amount": "1", "memo": "x"}', "INVALID_REQUEST"),
        ('{"to_user_id": "me"}', "INVALID_REQUEST"),
        ('{"amount": "\\ud83d"}', "INVALID_REQUEST"),
    ],
)
def test_nasty_captures_are_refused_with_their_code_and_write_nothing(held, parties, client_for, raw, code):
    _, bob = parties
    before = state()
    response = post_raw(client_for(bob), f"/holds/{held['id']}/capture", raw)
    assert_error(response, 400, code)
    assert state() == before


def test_a_void_refuses_a_body_with_fields(held, parties, client_for):
    before = state()
    response = post(client_for(parties[0]), f"/holds/{held['id']}/void", {"amount": "1"})
    assert_error(response, 400, "INVALID_REQUEST")
    assert state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/holds"),
        ("post", "/holds"),
        ("get", "/holds/1"),
        ("post", "/holds/1/capture"),
        ("post", "/holds/1/void"),
    ],
)
def test_without_a_token_every_hold_endpoint_is_401(api, method, path):
    assert_error(getattr(api, method)(path, {}, format="json"), 401, "UNAUTHORIZED")


# --- Idempotency ------------------------------------------------------------------------------------------


def test_a_replayed_hold_is_the_same_hold_and_holds_once(parties, client_for):
    alice, bob = parties
    client = client_for(alice)
    body = {"amount": "12.5", "to_user_id": bob.pk}
    first = post(client, "/holds", body, key="k-1")
    before = ledger_state_with_keys()

    again = post(client, "/holds", body, key="k-1")

    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert ledger_state_with_keys() == before
    assert Hold.objects.count() == 1
    assert wallet_of(client, alice)[1] == "12.50000000"


def test_the_same_key_with_another_body_or_operation_is_422_and_writes_nothing(held, parties, client_for):
    alice, bob = parties
    client = client_for(alice)
    assert post(client, "/holds", {"amount": "1"}, key="k-2").status_code == 201
    before = state()

    assert_error(post(client, "/holds", {"amount": "2"}, key="k-2"), 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert_error(post(client, f"/holds/{held['id']}/void", key="k-2"), 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert_error(post(client, "/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, key="k-2"), 422,
                 "IDEMPOTENCY_KEY_MISMATCH")  # fmt: skip
    assert state() == before


def test_a_replayed_capture_is_the_same_transaction_and_moves_money_once(held, parties, client_for):
    alice, bob = parties
    payee = client_for(bob)
    first = post(payee, f"/holds/{held['id']}/capture", {"amount": "10"}, key="c-1")
    before = ledger_state_with_keys()

    again = post(payee, f"/holds/{held['id']}/capture", {"amount": "10"}, key="c-1")

    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["transaction"] == first.json()["transaction"]
    assert again.json()["hold"]["id"] == held["id"]
    assert ledger_state_with_keys() == before
    assert wallet_of(payee, bob)[0] == "10.00000000"


def test_the_same_capture_key_on_another_hold_is_a_mismatch_not_a_replay(held, parties, client_for):
    alice, bob = parties
    other = post(client_for(alice), "/holds", {"amount": "10", "to_user_id": bob.pk}).json()
    payee = client_for(bob)
    assert post(payee, f"/holds/{held['id']}/capture", {"amount": "1"}, key="c-2").status_code == 200
    before = state()

    response = post(payee, f"/holds/{other['id']}/capture", {"amount": "1"}, key="c-2")

    assert_error(response, 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert state() == before


def test_a_replayed_void_answers_as_the_first_did(held, parties, client_for):
    client = client_for(parties[0])
    first = post(client, f"/holds/{held['id']}/void", key="v-1")
    again = post(client, f"/holds/{held['id']}/void", key="v-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    # Without the key the hold has ended: a second void is refused.
    assert_error(post(client, f"/holds/{held['id']}/void"), 409, "HOLD_NOT_ACTIVE")


def test_a_refusal_is_replayed_even_after_the_money_arrives(parties, client_for, usdt):
    alice, _ = parties
    client = client_for(alice)
    assert_error(post(client, "/holds", {"amount": "150"}, key="k-3"), 400, "INSUFFICIENT_BALANCE")
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal("100"))

    again = post(client, "/holds", {"amount": "150"}, key="k-3")

    assert_error(again, 400, "INSUFFICIENT_BALANCE")
    assert again["Idempotent-Replayed"] == "true" and Hold.objects.count() == 0


@pytest.mark.parametrize("key", ["", "   ", "é", "x" * 256])
def test_malformed_keys_are_400_and_hold_nothing(parties, client_for, key):
    before = state()
    assert_error(post(client_for(parties[0]), "/holds", {"amount": "1"}, key=key), 400, "INVALID_REQUEST")
    assert state() == before


# --- The schema documents what the API does ----------------------------------------------------------------


@pytest.fixture
def schema(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


OPERATIONS = {
    ("/holds", "post"): {"201", "400", "401", "404", "409", "422"},
    ("/holds", "get"): {"200", "400", "401"},
    ("/holds/{hold_id}", "get"): {"200", "401", "404"},
    ("/holds/{hold_id}/capture", "post"): {"200", "400", "401", "403", "404", "409", "422"},
    ("/holds/{hold_id}/void", "post"): {"200", "400", "401", "403", "404", "409", "422"},
}


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_hold_operation_documents_its_responses(schema, path, method):
    operation = schema["paths"][path][method]
    assert OPERATIONS[path, method] <= set(operation["responses"])
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            assert list(response["content"]) == ["application/problem+json"]
    if method == "post":
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    if "404" in operation["responses"] and path != "/holds":
        assert "`HOLD_NOT_FOUND`" in operation["responses"]["404"]["description"]


def test_a_hold_renders_the_declared_properties(schema, held):
    hold = Hold.objects.select_related("currency").get(pk=held["id"])
    assert HoldOut(hold).data == hold_document(hold)
    assert set(hold_document(hold)) == set(schema["components"]["schemas"]["HoldOut"]["properties"]) == HOLD_FIELDS
    capture = schema["components"]["schemas"]["HoldCaptureOut"]["properties"]
    assert set(capture) == {"hold", "transaction", "balance_after", "available_after"}


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"amount": "1"}, True),
        ({"amount": "1", "to_user_id": 2}, True),
        ({"amount": "1", "to_username": "bob"}, True),
        ({"amount": "1", "to_user_id": 2, "to_username": "bob"}, False),
        ({"amount": "1", "expires_in": 0}, False),
        ({"amount": "1", "expires_in": 2_592_001}, False),
        ({"amount": "1", "expires_in": "60"}, False),
        ({"amount": "1", "payer_user_id": 2}, False),
    ],
)
def test_the_create_schema_says_what_the_api_accepts(schema, parties, client_for, body, accepted):
    component = {"$ref": "#/components/schemas/HoldCreateInRequest", "components": schema["components"]}
    assert jsonschema.Draft4Validator(component).is_valid(body) is accepted
    alice, bob = parties
    wire = {k: (bob.pk if k == "to_user_id" else v) for k, v in body.items()}
    response = post_raw(client_for(alice), "/holds", json.dumps(wire))
    assert (response.status_code == 201) is accepted, response.content
