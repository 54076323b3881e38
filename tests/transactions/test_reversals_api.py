"""POST /tx/{hash}/reversals, and what receipts and the history show of reversals."""

import hashlib
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.reconcile import reconcile
from tests.accounts.factories import UserFactory
from tests.ledger import balance, ledger_state
from transactions.events import transaction_document
from transactions.models import Transaction
from transactions.selectors import history_item, history_page, history_queryset
from transactions.services import deposit_create, reversal_create, transfer_create, withdrawal_create
from wallet_project.core.pagination import paginate

pytestmark = pytest.mark.django_db


@pytest.fixture
def cashier(cashier_factory):
    return cashier_factory()


@pytest.fixture
def paid(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("40"), memo="rent")
    return alice, bob, tx


def post_reversal(client, tx_hash, body, **headers):
    return client.post(f"/tx/{tx_hash}/reversals", body, format="json", **headers)


def assert_reconciles():
    report = reconcile(verify_receipts=True)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]


def test_staff_with_the_permission_reverse_a_transfer(paid, cashier, client_for):
    alice, bob, original = paid

    response = post_reversal(client_for(cashier), original.hash, {"amount": "15", "memo": "duplicate payment"})

    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store" and response.get("Idempotent-Replayed") is None
    body = response.json()
    tx = Transaction.objects.select_related("currency", "reverses").get(hash=body["hash"])
    assert body == transaction_document(tx, currency_code="USDT")
    assert (body["type"], body["reverses"], body["amount"], body["memo"]) == (
        "reversal", original.hash, "15.00000000", "duplicate payment",
    )  # fmt: skip
    assert (body["from_user_id"], body["to_user_id"], body["currency"]) == (bob.pk, alice.pk, "USDT")
    assert (balance(alice), balance(bob)) == (Decimal("75"), Decimal("25"))
    assert tx.created_by_id == cashier.pk
    assert_reconciles()


def test_without_an_amount_all_that_remains_is_reversed(paid, cashier, client_for):
    alice, bob, original = paid
    client = client_for(cashier)
    assert post_reversal(client, original.hash, {"amount": 10, "memo": "part"}).status_code == 201  # a JSON number

    response = post_reversal(client, original.hash.upper(), {"memo": "the rest"})

    assert response.status_code == 201 and response.json()["amount"] == "30.00000000"
    again = post_reversal(client, original.hash, {"memo": "once more"})
    assert again.status_code == 409 and again.json()["code"] == "REVERSAL_EXCEEDS_ORIGINAL"
    assert again["Content-Type"] == "application/problem+json"
    assert (balance(alice), balance(bob)) == (Decimal("100"), Decimal("0"))
    assert_reconciles()


def test_deposits_and_withdrawals_reverse_through_the_api(user_factory, cashier, client_for, usdt):
    user = user_factory()
    deposit = deposit_create(user_id=user.pk, currency=usdt, amount=Decimal("50"), created_by_id=cashier.pk)
    withdrawal = withdrawal_create(user_id=user.pk, currency=usdt, amount=Decimal("20"), created_by_id=cashier.pk)
    client = client_for(cashier)

    out = post_reversal(client, deposit.hash, {"amount": "5", "memo": "bounced"}).json()
    back = post_reversal(client, withdrawal.hash, {"memo": "returned by the bank"}).json()

    assert (out["from_user_id"], out["to_user_id"], out["reverses"]) == (user.pk, None, deposit.hash)
    assert (back["from_user_id"], back["to_user_id"], back["reverses"]) == (None, user.pk, withdrawal.hash)
    assert balance(user) == Decimal("45")  # 50 - 20 - 5 + 20
    assert_reconciles()


@pytest.mark.parametrize("who", ["user", "party", "staff without the permission"])
def test_anyone_but_staff_with_the_permission_is_forbidden(paid, client_for, user_factory, who):
    alice, _, original = paid
    caller = {
        "user": user_factory(),
        "party": alice,
        "staff without the permission": user_factory(is_staff=True),
    }[who]
    before = ledger_state()

    response = post_reversal(client_for(caller), original.hash, {"memo": "mine"})

    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"
    assert ledger_state() == before


def test_an_inactive_staff_member_is_refused(paid, cashier, client_for):
    *_, original = paid
    client = client_for(cashier)
    cashier.is_active = False
    cashier.save(update_fields=["is_active"])
    assert post_reversal(client, original.hash, {"memo": "x"}).status_code == 401


def test_staff_granted_only_the_permission_may_reverse(paid, client_for):
    *_, original = paid
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(content_type__app_label="transactions", codename="add_transaction")
    )
    assert post_reversal(client_for(clerk), original.hash, {"memo": "granted"}).status_code == 201


def test_a_missing_token_is_401(paid, api):
    *_, original = paid
    response = post_reversal(api, original.hash, {"memo": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize("tx_hash", ["0" * 64, "abc", "z" * 64])
def test_an_unknown_transaction_is_404(db, cashier, client_for, tx_hash):
    response = post_reversal(client_for(cashier), tx_hash, {"memo": "x"})
    assert response.status_code == 404 and response.json()["code"] == "TRANSACTION_NOT_FOUND"


@pytest.mark.parametrize(
    "body, code, field",
    [
        ({}, "INVALID_REQUEST", "memo"),
        ({"memo": ""}, "INVALID_REQUEST", "memo"),
        ({"memo": "   "}, "INVALID_REQUEST", "memo"),
        ({"memo": "m" * 257}, "INVALID_REQUEST", "memo"),
        ({"memo": "x", "amount": "1e3"}, "INVALID_REQUEST", "amount"),
        ({"memo": "x", "amount": None}, "INVALID_REQUEST", "amount"),
        ({"memo": "x", "to_user_id": 1}, "INVALID_REQUEST", "to_user_id"),  # no unknown fields
        ({"memo": "x", "amount": "0"}, "AMOUNT_NOT_POSITIVE", None),
        ({"memo": "x", "amount": "-5"}, "AMOUNT_NOT_POSITIVE", None),
        ({"memo": "x", "amount": "1.0000001"}, "INVALID_DECIMALS", None),
    ],
)
def test_a_bad_body_is_400_and_moves_nothing(paid, cashier, client_for, body, code, field):
    *_, original = paid
    before = ledger_state()
    response = post_reversal(client_for(cashier), original.hash, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    if field:
        assert field in response.json()["errors"]
    assert ledger_state() == before


def test_a_reversal_of_a_reversal_is_400(paid, cashier, client_for):
    *_, original = paid
    client = client_for(cashier)
    reversal = post_reversal(client, original.hash, {"amount": "1", "memo": "x"}).json()
    response = post_reversal(client, reversal["hash"], {"memo": "undo the undo"})
    assert response.status_code == 400 and response.json()["code"] == "INVALID_REQUEST"
    assert "cannot be reversed" in response.json()["detail"]


def test_more_than_the_debited_wallet_has_available_is_insufficient_balance(paid, cashier, client_for, user_factory):
    alice, bob, original = paid
    transfer_create(sender_id=bob.pk, recipient_id=user_factory().pk, currency=original.currency, amount=Decimal(39))
    before = ledger_state()
    response = post_reversal(client_for(cashier), original.hash, {"amount": "2", "memo": "x"})
    assert response.status_code == 400 and response.json()["code"] == "INSUFFICIENT_BALANCE"
    assert ledger_state() == before


def test_more_than_remains_is_409(paid, cashier, client_for):
    *_, original = paid
    response = post_reversal(client_for(cashier), original.hash, {"amount": "40.000001", "memo": "x"})
    assert response.status_code == 409 and response.json()["code"] == "REVERSAL_EXCEEDS_ORIGINAL"


# -- Idempotency-Key ---------------------------------------------------------------------------------


def test_a_repeated_key_replays_the_reversal(paid, cashier, client_for):
    alice, bob, original = paid
    client = client_for(cashier)
    body = {"amount": "10", "memo": "retry-safe"}

    first = post_reversal(client, original.hash, body, HTTP_IDEMPOTENCY_KEY="rev-1")
    second = post_reversal(client, original.hash, body, HTTP_IDEMPOTENCY_KEY="rev-1")

    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and first.get("Idempotent-Replayed") is None
    assert second.json() == first.json()
    assert original.reversals.count() == 1 and balance(bob) == Decimal("30")


def test_a_key_reused_for_another_transaction_is_a_mismatch(paid, cashier, client_for, usdt):
    alice, bob, original = paid
    other = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("5"))
    client = client_for(cashier)
    body = {"amount": "1", "memo": "same body"}
    assert post_reversal(client, original.hash, body, HTTP_IDEMPOTENCY_KEY="k").status_code == 201

    response = post_reversal(client, other.hash, body, HTTP_IDEMPOTENCY_KEY="k")

    assert response.status_code == 422 and response.json()["code"] == "IDEMPOTENCY_KEY_MISMATCH"
    assert other.reversals.count() == 0


def test_a_refusal_is_replayed_with_its_code(paid, cashier, client_for):
    *_, original = paid
    client = client_for(cashier)
    body = {"amount": "41", "memo": "too much"}
    post_reversal(client, original.hash, body, HTTP_IDEMPOTENCY_KEY="big")
    again = post_reversal(client, original.hash, body, HTTP_IDEMPOTENCY_KEY="big")
    assert again.status_code == 409 and again.json()["code"] == "REVERSAL_EXCEEDS_ORIGINAL"
    assert again["Idempotent-Replayed"] == "true"


# -- Receipts ----------------------------------------------------------------------------------------


def test_the_originals_receipt_shows_what_was_reversed(paid, cashier, client_for, api):
    *_, original = paid
    assert api.get(f"/tx/{original.hash}").json()["reversals"] == []
    first = reversal_create(original=original, amount=Decimal("15"), memo="a", created_by_id=cashier.pk)
    second = reversal_create(original=original, amount=Decimal("5"), memo="b", created_by_id=cashier.pk)

    receipt = api.get(f"/tx/{original.hash}").json()

    assert receipt["reversed_amount"] == "20.00000000" and receipt["amount"] == "40.00000000"
    assert receipt["reversals"] == [
        {"hash": t.hash, "amount": a, "created_at": t.created_at.isoformat().replace("+00:00", "Z")}
        for t, a in ((first, "15.00000000"), (second, "5.00000000"))
    ]
    assert "reverses" not in receipt


def test_a_reversals_receipt_names_its_original_and_recomputes(paid, cashier, client_for, api):
    alice, bob, original = paid
    tx = reversal_create(original=original, amount=Decimal("1"), memo="refund", created_by_id=cashier.pk)

    public = api.get(f"/tx/{tx.hash}").json()
    party = client_for(alice).get(f"/tx/{tx.hash}").json()

    assert public["type"] == "reversal" and public["reverses"] == original.hash
    assert "reversals" not in public and "reversed_amount" not in public and "memo" not in public
    assert hashlib.sha256(party["canonical"].encode()).hexdigest() == party["hash"] == tx.hash
    assert json.loads(party["canonical"])["reverses"] == original.hash
    assert (party["from_user_id"], party["to_user_id"], party["memo"]) == (bob.pk, alice.pk, "refund")


# -- The history --------------------------------------------------------------------------------------


def test_the_history_shows_reversals_and_filters_by_type(paid, cashier, client_for):
    alice, bob, original = paid
    tx = reversal_create(original=original, amount=Decimal("4"), memo="refund", created_by_id=cashier.pk)
    client = client_for(bob)

    page = client.get(f"/transactions/{bob.pk}").json()  # one chain: the written-out SQL
    only = client.get(f"/transactions/{bob.pk}", {"type": "reversal"}).json()  # filtered: the ORM

    newest = page["data"][0]
    assert (newest["hash"], newest["type"], newest["reverses"], newest["direction"]) == (
        tx.hash, "reversal", original.hash, "sent",
    )  # fmt: skip
    assert "reverses" not in page["data"][1]
    assert [item["hash"] for item in only["data"]] == [tx.hash] and only["data"][0] == newest
    received = client_for(alice).get(f"/transactions/{alice.pk}", {"direction": "received"}).json()["data"]
    assert received[0]["reverses"] == original.hash and received[0]["direction"] == "received"


def test_history_pages_with_reversals_cost_no_extra_query(paid, cashier, django_assert_num_queries):
    alice, bob, original = paid
    for _ in range(3):
        reversal_create(original=original, amount=Decimal("1"), memo="r", created_by_id=cashier.pk)
    expected = paginate(history_queryset(user_id=bob.pk), history_item, page=1, page_size=10)
    with django_assert_num_queries(2):  # the wallets' entry counts, then the page
        fast = history_page(user_id=bob.pk, page=1, page_size=10)
    assert fast == expected and sum("reverses" in item for item in fast["data"]) == 3
    with django_assert_num_queries(3):  # the ORM path: count, ids, the page's rows with their originals joined
        paginate(history_queryset(user_id=bob.pk, tx_type="reversal"), history_item, page=1, page_size=10)


def test_rendering_a_transfer_or_a_posted_reversal_reads_nothing(paid, cashier):
    *_, original = paid
    tx = reversal_create(original=original, amount=Decimal("1"), memo="r", created_by_id=cashier.pk)
    with CaptureQueriesContext(connection) as captured:
        transaction_document(original, currency_code="USDT")
        document = transaction_document(tx, currency_code="USDT")
    assert captured.captured_queries == [] and document["reverses"] == original.hash
