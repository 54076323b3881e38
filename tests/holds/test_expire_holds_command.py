"""`manage.py expire_holds --once` in this process: one pass over what is due, how many it released."""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import BalanceHistory
from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from holds.models import Hold
from holds.services import hold_create
from tests.holds.states import make_due
from wallets.models import Wallet

# The command closes its connection when it ends, as a worker process should: not inside a test's transaction.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def expire_holds(*args: str) -> dict:
    out = StringIO()
    call_command("expire_holds", "--once", *args, stdout=out)
    return json.loads(out.getvalue())


def test_once_releases_what_is_due_and_prints_how_many(user_factory):
    usdt = Currency.objects.get(code="USDT")
    alice, bob = user_factory(balance=100), user_factory()
    due = [hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal(n)) for n in (1, 2, 3, 4, 5)]
    later = hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal("10"))
    for hold in due:
        make_due(hold)

    assert expire_holds("--batch", "2") == {"released": 5}  # three passes of at most two
    assert set(Hold.objects.filter(pk__in=[h.pk for h in due]).values_list("status", flat=True)) == {"expired"}
    assert Hold.objects.get(pk=later.pk).status == "active"
    assert Wallet.objects.get(user=alice, currency=usdt).held == Decimal(10)
    expired_events = OutboxEvent.objects.filter(payload__event_type="hold.expired")
    assert sorted(expired_events.values_list("key", flat=True)) == sorted(str(h.pk) for h in due)
    releases = BalanceHistory.objects.filter(hold_uid__in=[h.uid for h in due], transaction=None, held_delta__lt=0)
    assert sorted(releases.values_list("held_delta", flat=True)) == [-Decimal(n) for n in (5, 4, 3, 2, 1)]
    assert reconcile().ok

    assert expire_holds() == {"released": 0}  # nothing is released twice


@pytest.mark.parametrize(("option", "value"), [("--batch", "0"), ("--interval", "0")])
def test_options_out_of_range_are_refused(option, value):
    with pytest.raises(CommandError, match=option):
        expire_holds(option, value)
