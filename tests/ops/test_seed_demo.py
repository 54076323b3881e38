from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from accounts.models import User
from tests.ledger import balance
from transactions.models import Transaction
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _local_development(settings):
    settings.DEBUG = True  # pytest-django runs tests with DEBUG off; the command is for local use


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_twice_creates_everything_once_and_the_users_can_log_in():
    first = seed()
    second = seed()

    assert DEMO_PASSWORD in first and "alice: created" in first
    assert "alice: exists" in second and "already made" in second
    assert balance(User.objects.get(username="alice")) == Decimal("1000")
    assert balance(User.objects.get(username="alice"), "BTC") == Decimal("0.5")
    assert balance(User.objects.get(username="bob"), "ETH") == Decimal("2")
    assert Transaction.objects.filter(type="deposit", memo="seed_demo").count() == 5

    for username in ("alice", "bob", "carol"):
        response = APIClient().post("/auth/login", {"username": username, "password": DEMO_PASSWORD}, format="json")
        assert response.status_code == 200 and response.json()["username"] == username

    staff = User.objects.get(username="admin")
    assert staff.is_staff and staff.check_password(DEMO_PASSWORD)


def test_seeded_money_is_accounted_for_as_deposits():
    seed()
    for code in ("USDT", "BTC", "ETH"):
        held = Wallet.objects.filter(currency__code=code).aggregate(s=Sum("balance"))["s"]
        deposited = Transaction.objects.filter(currency__code=code, type="deposit").aggregate(s=Sum("amount"))["s"]
        assert held == deposited


def test_seed_demo_refuses_to_run_in_production_without_force(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG is off"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(username="alice").exists()
