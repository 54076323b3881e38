"""The deposit and withdraw commands: the staff member named as creator needs the same permission as in the API."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import make_cashier
from tests.ledger import balance, ledger_state
from transactions.models import Transaction

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("command", ["deposit", "withdraw"])
def test_the_named_staff_member_is_recorded_as_creator(command, user_factory):
    cashier, bob = make_cashier(), user_factory(balance=20)
    run(command, bob.username, "5", "--staff", cashier.username)
    tx = Transaction.objects.filter(type="deposit" if command == "deposit" else "withdrawal").latest("id")
    assert tx.created_by_id == cashier.pk and tx.amount == Decimal(5)


@pytest.mark.parametrize("command", ["deposit", "withdraw"])
@pytest.mark.parametrize(
    "who",
    [
        pytest.param({"is_staff": True}, id="staff-without-permission"),
        pytest.param({"is_staff": True, "is_active": False, "is_superuser": True}, id="inactive-superuser"),
        pytest.param({"is_staff": False, "is_superuser": True}, id="superuser-without-staff-status"),
    ],
)
def test_a_staff_name_without_the_movement_permission_is_refused_and_nothing_moves(command, who, user_factory):
    clerk, bob = user_factory(**who), user_factory(balance=20)
    before = ledger_state()
    with pytest.raises(CommandError, match="transactions.add_transaction"):
        run(command, bob.username, "5", "--staff", clerk.username)
    assert ledger_state() == before and balance(bob) == Decimal(20)
