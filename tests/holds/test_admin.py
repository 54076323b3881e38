"""Holds and withdrawal requests in the ops console: the read-only hold pages and the approval queue."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from audit.reconcile import reconcile
from events.models import OutboxEvent
from holds.models import Hold, WithdrawalRequest
from holds.services import (
    hold_capture,
    hold_create,
    withdrawal_request_approve,
    withdrawal_request_create,
    withdrawal_request_reject,
)
from tests.accounts.factories import UserFactory
from tests.ledger import chain_problems, ledger_state
from transactions.models import Transaction
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

QUEUE = "/admin/holds/withdrawalrequest/"
HOLDS = "/admin/holds/hold/"


def permissions(*codenames: str) -> list[Permission]:
    return [Permission.objects.get(content_type__app_label="holds", codename=c) for c in codenames]


@pytest.fixture
def approver(db):
    """Staff who may decide withdrawals: view the queue plus ``holds.approve_withdrawalrequest``, no superuser."""
    user = UserFactory(username="approver", is_staff=True)
    user.user_permissions.add(*permissions("view_withdrawalrequest", "approve_withdrawalrequest", "view_hold"))
    return user


@pytest.fixture
def console(approver) -> Client:
    client = Client()
    client.force_login(approver)
    return client


@pytest.fixture
def superuser_console(db) -> Client:
    client = Client()
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def wallet(user, code="USDT") -> Wallet:
    return Wallet.objects.get(user=user, currency__code=code)


def request_for(user, usdt, amount="40", address="bc1-demo-address") -> WithdrawalRequest:
    return withdrawal_request_create(user_id=user.pk, currency=usdt, amount=Decimal(amount), address=address)


def decide(client: Client, action: str, requests: list[WithdrawalRequest], **form: str):
    """Submit the confirmation page of ``action`` (as its form does) and follow back to the queue."""
    data = {"action": action, "_selected_action": [r.pk for r in requests], "apply": "yes", **form}
    return client.post(QUEUE, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_the_queue_shows_pending_requests_first_oldest_first(console, user_factory, usdt, approver):
    alice = user_factory(balance=100)
    decided = request_for(alice, usdt, "1")
    withdrawal_request_reject(request_id=decided.pk, actor=approver, reason="duplicate")
    older, newer = request_for(alice, usdt, "2"), request_for(alice, usdt, "3")

    response = console.get(QUEUE)
    assert response.status_code == 200
    assert [r.pk for r in response.context["cl"].result_list] == [older.pk, newer.pk, decided.pk]
    assert list(response.context["cl"].get_queryset(response.wsgi_request)) == [older, newer, decided]

    pending = console.get(QUEUE, {"status__exact": "pending"}).context["cl"].result_list
    assert [r.pk for r in pending] == [older.pk, newer.pk]


def test_the_queue_is_searched_by_address_username_and_uid(console, user_factory, usdt):
    alice, bob = user_factory(balance=10, username="alice"), user_factory(balance=10, username="bob")
    by_alice = request_for(alice, usdt, "1", address="addr-alice-1")
    by_bob = request_for(bob, usdt, "1", address="addr-bob-1")

    def found(term: str) -> list[int]:
        return [r.pk for r in console.get(QUEUE, {"q": term}).context["cl"].result_list]

    assert found("addr-bob-1") == [by_bob.pk]
    assert found("alice") == [by_alice.pk]
    assert found(str(by_bob.uid)) == [by_bob.pk]
    assert found("addr-bob") == []  # whole values only


def test_approving_one_request_asks_to_confirm_then_completes_the_withdrawal(console, approver, user_factory, usdt):
    alice = user_factory(balance=100, username="alice")
    pending = request_for(alice, usdt, "40")
    assert (wallet(alice).balance, wallet(alice).held) == (Decimal(100), Decimal(40))

    page = console.post(QUEUE, {"action": "approve_selected", "_selected_action": [pending.pk]})
    html = page.content.decode()
    assert page.status_code == 200 and 'name="network_tx_id"' in html and "bc1-demo-address" in html
    assert WithdrawalRequest.objects.get(pk=pending.pk).status == "pending"  # nothing happens before confirming

    response = decide(console, "approve_selected", [pending], network_tx_id="0xfeed")

    done = WithdrawalRequest.objects.select_related("transaction").get(pk=pending.pk)
    assert (done.status, done.network_tx_id, done.decided_by) == ("completed", "0xfeed", approver)
    tx = done.transaction
    assert (tx.type, tx.amount, tx.from_user, tx.to_user, tx.created_by) == (
        "withdrawal",
        Decimal(40),
        alice,
        None,
        approver,
    )
    w = wallet(alice)
    assert (w.balance, w.held, w.available) == (Decimal(60), Decimal(0), Decimal(60))
    assert Hold.objects.get(pk=pending.hold_id).status == "captured"
    assert chain_problems(w) == [] and reconcile().ok
    assert OutboxEvent.objects.filter(key=str(pending.pk), payload__event_type="withdrawal.approved").count() == 1
    [message] = messages_of(response)
    assert "approved" in message and tx.hash in message and "0xfeed" in message


def test_approving_several_requests_completes_each_without_a_network_id(console, user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    first, second = request_for(alice, usdt, "10"), request_for(bob, usdt, "20")

    page = console.post(QUEUE, {"action": "approve_selected", "_selected_action": [first.pk, second.pk]})
    assert page.status_code == 200 and 'name="network_tx_id"' not in page.content.decode()

    response = decide(console, "approve_selected", [first, second], network_tx_id="ignored-for-several")
    assert set(WithdrawalRequest.objects.values_list("status", "network_tx_id")) == {("completed", "")}
    assert (wallet(alice).balance, wallet(bob).balance) == (Decimal(90), Decimal(30))
    assert len([m for m in messages_of(response) if "approved" in m]) == 2
    assert reconcile().ok


def test_rejecting_asks_for_a_reason_and_releases_the_hold(console, approver, user_factory, usdt):
    alice = user_factory(balance=100)
    pending = request_for(alice, usdt, "40")
    before = Transaction.objects.count()

    page = console.post(QUEUE, {"action": "reject_selected", "_selected_action": [pending.pk]})
    assert page.status_code == 200 and '<textarea name="reason"' in page.content.decode()

    without = console.post(QUEUE, {"action": "reject_selected", "_selected_action": [pending.pk], "apply": "yes"})
    assert without.status_code == 200 and "This field is required" in without.content.decode()
    assert WithdrawalRequest.objects.get(pk=pending.pk).status == "pending"

    response = decide(console, "reject_selected", [pending], reason="address on a sanctions list")

    done = WithdrawalRequest.objects.get(pk=pending.pk)
    assert (done.status, done.reason, done.decided_by, done.transaction) == (
        "rejected",
        "address on a sanctions list",
        approver,
        None,
    )
    w = wallet(alice)
    assert (w.balance, w.held, w.available) == (Decimal(100), Decimal(0), Decimal(100))
    assert Transaction.objects.count() == before  # a rejection moves no money
    assert Hold.objects.get(pk=pending.hold_id).status == "voided"
    assert chain_problems(w) == [] and reconcile().ok
    assert any("rejected" in m and "sanctions" in m for m in messages_of(response))


def test_deciding_an_already_decided_request_reports_it_and_changes_nothing(console, approver, user_factory, usdt):
    alice = user_factory(balance=100)
    completed, rejected = request_for(alice, usdt, "10"), request_for(alice, usdt, "20")
    withdrawal_request_approve(request_id=completed.pk, actor=approver)
    withdrawal_request_reject(request_id=rejected.pk, actor=approver, reason="typo in the address")
    pending = request_for(alice, usdt, "5")
    before = ledger_state()

    page = console.post(QUEUE, {"action": "approve_selected", "_selected_action": [completed.pk, rejected.pk]})
    assert "no longer pending" in page.content.decode()
    response = decide(console, "approve_selected", [completed, rejected])

    assert ledger_state() == before
    assert dict(WithdrawalRequest.objects.filter(pk__in=[completed.pk, rejected.pk]).values_list("pk", "status")) == {
        completed.pk: "completed",
        rejected.pk: "rejected",
    }
    assert WithdrawalRequest.objects.get(pk=rejected.pk).transaction is None
    notes = messages_of(response)
    assert len(notes) == 2 and all("WITHDRAWAL_REQUEST_NOT_PENDING" in n for n in notes)
    assert any("already completed" in n for n in notes) and any("already rejected" in n for n in notes)

    # Mixed with a pending one, each is decided on its own: the refusal stops nothing else.
    response = decide(console, "reject_selected", [completed, pending], reason="changed my mind")
    assert WithdrawalRequest.objects.get(pk=pending.pk).status == "rejected"
    assert WithdrawalRequest.objects.get(pk=completed.pk).reason == ""
    notes = messages_of(response)
    assert any("already completed" in n for n in notes) and any("rejected (changed my mind)" in n for n in notes)
    assert wallet(alice).balance == Decimal(90) and wallet(alice).held == 0
    assert reconcile().ok


def test_staff_without_the_approval_permission_can_look_but_not_decide(user_factory, usdt):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(*permissions("view_withdrawalrequest"))
    client = Client()
    client.force_login(clerk)
    pending = request_for(user_factory(balance=100), usdt, "40")
    before = ledger_state()

    page = client.get(QUEUE)
    assert page.status_code == 200 and str(pending.pk) in page.content.decode()
    assert "approve_selected" not in page.content.decode() and "reject_selected" not in page.content.decode()

    for action, form in [("approve_selected", {}), ("reject_selected", {"reason": "no"})]:
        confirm = client.post(QUEUE, {"action": action, "_selected_action": [pending.pk]})
        assert "decision-confirmation" not in confirm.content.decode()
        decide(client, action, [pending], **form)

    assert WithdrawalRequest.objects.get(pk=pending.pk).status == "pending"
    assert ledger_state() == before


def test_nobody_edits_a_request_or_a_hold_here(superuser_console, user_factory, usdt):
    pending = request_for(user_factory(balance=100), usdt, "40")
    for model, pk in [("withdrawalrequest", pending.pk), ("hold", pending.hold_id)]:
        assert superuser_console.get(f"/admin/holds/{model}/add/").status_code == 403
        assert superuser_console.post(f"/admin/holds/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
        detail = superuser_console.get(f"/admin/holds/{model}/{pk}/change/")
        assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
        assert not re.search(r'name="(amount|address|status)"', detail.content.decode())
        changed = superuser_console.post(f"/admin/holds/{model}/{pk}/change/", {"amount": "1", "address": "x"})
        assert changed.status_code == 403
    assert WithdrawalRequest.objects.get(pk=pending.pk).amount == Decimal(40)


def test_a_normal_user_is_sent_to_the_login_page(user_factory):
    client = Client()
    client.force_login(user_factory())
    for path in (QUEUE, HOLDS):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


# -- holds ----------------------------------------------------------------------------------------


def test_the_hold_list_shows_the_effective_status_and_the_amounts(superuser_console, user_factory, usdt):
    alice, bob = user_factory(balance=100, username="alice"), user_factory(username="bob")
    live = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"))
    hold_capture(hold_id=live.pk, actor=bob, amount=Decimal("12.5"))
    lapsed = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("5"))
    Hold.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(minutes=1))  # not swept yet

    response = superuser_console.get(HOLDS)
    rows = {
        int(re.search(r"/admin/holds/hold/(\d+)/change/", row).group(1)): row
        for row in re.findall(r"<tr>.*?</tr>", response.content.decode(), re.S)
        if "/admin/holds/hold/" in row
    }
    assert "active" in rows[live.pk] and "30.00000000" in rows[live.pk]
    assert "12.50000000" in rows[live.pk] and "17.50000000" in rows[live.pk]
    assert "expired" in rows[lapsed.pk] and "active" not in rows[lapsed.pk]

    def listed(**query) -> list[int]:
        return [h.pk for h in superuser_console.get(HOLDS, query).context["cl"].result_list]

    assert listed(status="expired") == [lapsed.pk]
    assert listed(status="active") == [live.pk]
    assert listed(status="captured") == []
    assert listed(q=str(lapsed.uid)) == [lapsed.pk]
    assert listed(q="bob") == [lapsed.pk, live.pk]
    assert listed(q="carol") == []


def test_a_hold_page_shows_its_captures_read_only(superuser_console, user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"))
    _, first = hold_capture(hold_id=hold.pk, actor=bob, amount=Decimal("10"))
    _, second = hold_capture(hold_id=hold.pk, actor=bob)

    page = superuser_console.get(f"{HOLDS}{hold.pk}/change/").content.decode()
    assert first.hash in page and second.hash in page and "20.00000000" in page
    assert "captured" in page and not re.search(r'name="captures-\d+-(amount|transaction)"', page)


def test_a_withdrawal_hold_is_told_apart_from_a_plain_hold(superuser_console, user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    plain = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("1"))
    pending = request_for(alice, usdt, "2")

    def listed(kind: str) -> list[int]:
        return [h.pk for h in superuser_console.get(HOLDS, {"kind": kind}).context["cl"].result_list]

    assert (listed("hold"), listed("withdrawal")) == ([plain.pk], [pending.hold_id])
    page = superuser_console.get(f"{HOLDS}{pending.hold_id}/change/").content.decode()
    assert f"/admin/holds/withdrawalrequest/{pending.pk}/change/" in page


def test_the_wallet_admin_shows_held_and_available_read_only(superuser_console, user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"))
    w = wallet(alice)

    listing = superuser_console.get("/admin/wallets/wallet/", {"q": alice.username}).content.decode()
    assert "100.00000000" in listing and "30.00000000" in listing and "70.00000000" in listing
    detail = superuser_console.get(f"/admin/wallets/wallet/{w.pk}/change/").content.decode()
    assert "30.00000000" in detail and "70.00000000" in detail
    assert not re.search(r'name="(held|available|balance)"', detail)
    assert superuser_console.post(f"/admin/wallets/wallet/{w.pk}/change/", {"held": "0"}).status_code == 403
    assert wallet(alice).held == Decimal(30)
