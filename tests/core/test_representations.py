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
from transactions.services import transfer_create
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


def declared(schema, name):
    return set(schema[name]["properties"])


def test_a_transaction_renders_the_declared_properties(schema, transfer):
    *_, tx = transfer
    assert TransactionOut(tx).data == transaction_document(tx, currency_code=tx.currency.code)
    assert set(TransactionOut(tx).data) == declared(schema, "TransactionOut")
    assert set(TransferOut(tx).data) == declared(schema, "TransferOut")


def test_a_history_item_renders_the_declared_properties(schema, transfer):
    alice, _, tx = transfer
    entry = BalanceHistory.objects.select_related("transaction__currency").get(transaction=tx, user=alice)
    assert HistoryItemOut(entry).data == history_item(entry)
    assert set(history_item(entry)) == declared(schema, "HistoryItemOut")
    # The fast path renders raw rows with the same function: its items have the same keys.
    (fast,) = history_page(user_id=alice.pk, page=1, page_size=1)["data"]
    assert fast == history_item(entry)


def test_a_receipt_renders_the_declared_properties(schema, transfer, user_factory):
    alice, _, tx = transfer
    party = ReceiptOut(tx, context={"viewer": alice}).data
    assert party == receipt_document(tx, viewer=alice)
    assert set(party) == declared(schema, "ReceiptOut")
    public = ReceiptOut(tx, context={"viewer": AnonymousUser()}).data
    assert set(public) == set(schema["ReceiptOut"]["required"])
    assert set(ReceiptOut(tx, context={"viewer": user_factory()}).data) == set(public)


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
