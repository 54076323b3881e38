"""One representation per resource: what a response renders has exactly the keys its schema declares.

The output serializers are the schema; each delegates its representation to the one function the views
and events render with, so rendering a real object through the serializer shows both at once."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts.api.serializers import UserOut
from audit.api.serializers import BalanceHistoryOut
from audit.models import BalanceHistory
from audit.selectors import balance_history_document
from currencies.api.serializers import CurrencyOut
from currencies.selectors import currency_document
from transactions.api.serializers import HistoryItemOut, ReceiptOut, TransactionOut, TransferOut
from transactions.events import transaction_document
from transactions.selectors import history_item, history_page, receipt_document
from transactions.services import reversal_create, transfer_create
from wallets.api.serializers import WalletOut
from wallets.models import Wallet
from wallets.selectors import wallet_document

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api):
    return api.get("/openapi.json").json()["components"]["schemas"]


@pytest.fixture
def transfer(user_factory, usdt):
    alice, bob = user_factory(balance=10), user_factory()
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("2.5"), memo="hi")
    return alice, bob, tx


# Properties only a reversal has, and those only the transactions a reversal can take back have.
REVERSAL_ONLY = {"reverses"}
REVERSIBLE_ONLY = {"reversed_amount", "reversals"}


@pytest.fixture
def reversal(transfer, cashier_factory):
    *_, tx = transfer
    return reversal_create(original=tx, amount=Decimal("1"), memo="refund", created_by_id=cashier_factory().pk)


def declared(schema, name):
    return set(schema[name]["properties"])


def test_a_transaction_renders_the_declared_properties(schema, transfer):
    *_, tx = transfer
    assert TransactionOut(tx).data == transaction_document(tx, currency_code=tx.currency.code)
    assert set(TransactionOut(tx).data) == declared(schema, "TransactionOut") - REVERSAL_ONLY
    assert set(TransferOut(tx).data) == declared(schema, "TransferOut") - REVERSAL_ONLY


def test_a_reversal_renders_every_declared_property(schema, reversal):
    assert TransactionOut(reversal).data == transaction_document(reversal, currency_code=reversal.currency.code)
    assert set(TransactionOut(reversal).data) == declared(schema, "TransactionOut")


@pytest.mark.parametrize("kind", ["transfer", "reversal"])
def test_a_history_item_renders_the_declared_properties(schema, transfer, reversal, kind):
    alice, bob, tx = transfer
    tx = {"transfer": tx, "reversal": reversal}[kind]
    entry = BalanceHistory.objects.select_related("transaction__currency").get(transaction=tx, user=bob)
    assert HistoryItemOut(entry).data == history_item(entry)
    assert set(history_item(entry)) == declared(schema, "HistoryItemOut") - (
        REVERSAL_ONLY if kind == "transfer" else set()
    )
    # The fast path renders raw rows with the same function: its items have the same keys.
    page = history_page(user_id=bob.pk, page=1, page_size=2)["data"]
    (fast,) = [item for item in page if item["hash"] == tx.hash]
    assert fast == history_item(entry)


def test_a_receipt_renders_the_declared_properties(schema, transfer, reversal, user_factory):
    alice, _, tx = transfer
    party = ReceiptOut(tx, context={"viewer": alice}).data
    assert party == receipt_document(tx, viewer=alice)
    assert set(party) == declared(schema, "ReceiptOut") - REVERSAL_ONLY
    public = ReceiptOut(tx, context={"viewer": AnonymousUser()}).data
    assert set(public) == set(schema["ReceiptOut"]["required"]) | REVERSIBLE_ONLY
    assert set(ReceiptOut(tx, context={"viewer": user_factory()}).data) == set(public)
    of_reversal = ReceiptOut(reversal, context={"viewer": alice}).data
    assert of_reversal == receipt_document(reversal, viewer=alice)
    assert set(of_reversal) == declared(schema, "ReceiptOut") - REVERSIBLE_ONLY
    assert set(receipt_document(reversal, viewer=None)) == set(schema["ReceiptOut"]["required"]) | REVERSAL_ONLY


def test_a_wallet_a_user_and_a_currency_render_the_declared_properties(schema, transfer, usdt):
    alice, *_ = transfer
    wallet = Wallet.objects.select_related("currency").get(user=alice, currency=usdt)
    assert WalletOut(wallet).data == wallet_document(wallet)
    assert set(wallet_document(wallet)) == declared(schema, "WalletOut")
    user = UserOut(alice).data
    assert set(user) == declared(schema, "UserOut")
    assert all(set(w) == declared(schema, "WalletOut") for w in user["wallets"]) and user["wallets"]
    assert CurrencyOut(usdt).data == currency_document(usdt)
    assert set(currency_document(usdt)) == declared(schema, "CurrencyOut")


def test_a_balance_history_entry_renders_the_declared_properties(schema, transfer):
    alice, _, tx = transfer
    entry = BalanceHistory.objects.select_related("transaction", "wallet__currency").get(transaction=tx, user=alice)
    assert BalanceHistoryOut(entry).data == balance_history_document(entry)
    assert set(balance_history_document(entry)) == declared(schema, "BalanceHistoryOut")
