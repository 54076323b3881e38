"""The transaction admin's "Reverse": a confirmation page (amount, memo), then the same service as the API."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.reconcile import reconcile
from tests.accounts.factories import UserFactory
from tests.conftest import grant_movements
from tests.ledger import balance, ledger_state
from transactions.models import Transaction
from transactions.services import reversal_create, transfer_create

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/transactions/transaction/"


@pytest.fixture
def cashier(db):
    """Staff who may look at transactions and move money (not a superuser: only what the page needs)."""
    cashier = grant_movements(UserFactory(username="cashier", is_staff=True))
    cashier.user_permissions.add(Permission.objects.get(codename="view_transaction"))
    return cashier


def console_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def console(cashier):
    return console_for(cashier)


@pytest.fixture
def paid(user_factory, usdt):
    alice, bob = user_factory(balance=100, username="alice"), user_factory(username="bob")
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("40"), memo="rent")
    return alice, bob, tx


def reverse_url(tx) -> str:
    return f"{CHANGELIST}{tx.pk}/reverse/"


def submit(console, tx, amount="", memo="refund", token="page-1"):
    return console.post(reverse_url(tx), {"amount": amount, "memo": memo, "token": token}, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_change_page_offers_reverse_to_staff_who_may_move_money(console, paid):
    *_, tx = paid
    page = console.get(f"{CHANGELIST}{tx.pk}/change/").content.decode()
    assert f'href="{reverse_url(tx)}"' in page and ">Reverse<" in page


def test_the_confirmation_page_asks_for_an_amount_and_a_memo_and_moves_nothing(console, paid):
    *_, tx = paid
    before = ledger_state()
    response = console.get(reverse_url(tx))
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="amount"' in page and 'name="memo"' in page and 'name="token"' in page
    assert tx.hash in page and "40.00000000" in page
    assert ledger_state() == before


def test_the_changelist_action_leads_to_the_confirmation_page(console, paid):
    *_, tx = paid
    assert 'value="reverse_selected"' in console.get(CHANGELIST).content.decode()
    response = console.post(CHANGELIST, {"action": "reverse_selected", "_selected_action": [tx.pk]})
    assert response.status_code == 302 and response["Location"] == reverse_url(tx)
    two = console.post(CHANGELIST, {"action": "reverse_selected", "_selected_action": [tx.pk, tx.pk - 1]}, follow=True)
    assert any("Select one transaction" in m for m in messages_of(two))


def test_a_partial_then_a_full_reversal_from_the_admin(console, cashier, paid):
    alice, bob, tx = paid

    first = submit(console, tx, amount="15", memo="overpaid", token="a")
    assert (balance(alice), balance(bob)) == (Decimal("75"), Decimal("25"))
    reversal = Transaction.objects.get(reverses=tx)
    assert (reversal.type, reversal.amount, reversal.memo, reversal.created_by) == (
        "reversal", Decimal("15"), "overpaid", cashier,
    )  # fmt: skip
    assert any(reversal.hash in m for m in messages_of(first))
    assert first.redirect_chain[-1][0] == f"{CHANGELIST}{tx.pk}/change/"
    assert reversal.hash[:16] in first.content.decode()  # the original's page lists it

    submit(console, tx, memo="the rest", token="b")  # no amount: what remains
    assert (balance(alice), balance(bob)) == (Decimal("100"), Decimal("0"))

    refused = submit(console, tx, memo="again", token="c")
    assert any("left to reverse" in m for m in messages_of(refused))
    assert tx.reversals.count() == 2
    assert reconcile(verify_receipts=True).ok


def test_submitting_the_same_page_twice_reverses_once(console, paid):
    alice, bob, tx = paid
    submit(console, tx, amount="10", token="same")
    again = submit(console, tx, amount="10", token="same")
    assert tx.reversals.count() == 1 and balance(bob) == Decimal("30")
    assert any("already applied" in m for m in messages_of(again))


def test_refusals_are_shown_and_move_nothing(console, paid, user_factory, usdt):
    alice, bob, tx = paid
    transfer_create(sender_id=bob.pk, recipient_id=user_factory().pk, currency=usdt, amount=Decimal("35"))
    before = ledger_state()

    insufficient = submit(console, tx, amount="6", token="x")
    assert any("insufficient balance" in m for m in messages_of(insufficient))
    places = submit(console, tx, amount="1.0000001", token="y")
    assert any("decimal places" in m for m in messages_of(places))
    malformed = console.post(reverse_url(tx), {"amount": "1e3", "memo": "m", "token": "z"})
    assert malformed.status_code == 200 and "plain decimal" in malformed.content.decode()
    no_memo = console.post(reverse_url(tx), {"amount": "1", "memo": "", "token": "z"})
    assert no_memo.status_code == 200 and "This field is required" in no_memo.content.decode()
    assert ledger_state() == before


def test_a_reversal_cannot_be_reversed_from_the_admin(console, cashier, paid):
    *_, tx = paid
    reversal = reversal_create(original=tx, amount=Decimal("1"), memo="r", created_by_id=cashier.pk)
    assert f'href="{reverse_url(reversal)}"' not in console.get(f"{CHANGELIST}{reversal.pk}/change/").content.decode()
    before = ledger_state()
    response = submit(console, reversal, amount="1")
    assert any("cannot be reversed" in m for m in messages_of(response))
    assert ledger_state() == before


def test_staff_without_the_movement_permission_cannot_reverse(paid):
    *_, tx = paid
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_transaction"))
    client = console_for(clerk)
    assert client.get(f"{CHANGELIST}{tx.pk}/change/").status_code == 200
    assert reverse_url(tx) not in client.get(f"{CHANGELIST}{tx.pk}/change/").content.decode()
    before = ledger_state()

    assert client.get(reverse_url(tx)).status_code == 403
    assert client.post(reverse_url(tx), {"amount": "1", "memo": "m", "token": "t"}).status_code == 403
    action = client.post(CHANGELIST, {"action": "reverse_selected", "_selected_action": [tx.pk]}, follow=True)
    assert messages_of(action) == ["No action selected."]  # not one of their actions
    assert 'value="reverse_selected"' not in client.get(CHANGELIST).content.decode()
    assert ledger_state() == before


def test_anonymous_visitors_are_sent_to_the_login(paid):
    *_, tx = paid
    response = Client().get(reverse_url(tx))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
