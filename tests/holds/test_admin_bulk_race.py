"""Two staff members bulk-approving the same requests at once, on real threads: each approved exactly once."""

import html
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from audit.reconcile import reconcile
from holds.models import WithdrawalRequest
from holds.services import withdrawal_request_create
from tests.accounts.factories import UserFactory
from tests.ledger import run_in_threads
from transactions.models import Transaction

QUEUE = "/admin/holds/withdrawalrequest/"


def approver(name: str):
    user = UserFactory(username=name, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="holds", codename__in=["view_withdrawalrequest", "approve_withdrawalrequest"]
        )
    )
    return user


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_staff_bulk_approving_the_same_requests_approve_each_once(user_factory, usdt):
    owners = [user_factory(balance=100) for _ in range(3)]
    requests = [
        withdrawal_request_create(user_id=owner.pk, currency=usdt, amount=Decimal("30"), address=f"addr-{n}")
        for n, owner in enumerate(owners)
        for _ in range(2)
    ]
    ids = [r.pk for r in requests]
    clients = []
    for name in ("first-approver", "second-approver"):
        client = Client()
        client.force_login(approver(name))
        clients.append(client)

    def bulk_approve(client: Client):
        data = {"action": "approve_selected", "_selected_action": ids, "apply": "yes"}
        # From the page, not response.context: the test client's template signal is shared by threads.
        page = client.post(QUEUE, data, follow=True).content.decode()
        return [html.unescape(m) for m in re.findall(r'<li class="(?:success|error)">(.*?)</li>', page, re.S)]

    results = run_in_threads([lambda c=c: bulk_approve(c) for c in clients], threads=2)

    assert not [r for r in results if isinstance(r, Exception)], results
    approved = [m for messages in results for m in messages if ": approved; withdrawal transaction" in m]
    refused = [m for messages in results for m in messages if "not changed, it is already completed" in m]
    assert len(approved) == len(ids) and len(refused) == len(ids)  # each once; the other side told why
    assert set(WithdrawalRequest.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"completed"}
    assert Transaction.objects.filter(type="withdrawal").count() == len(ids)
    assert reconcile().ok
