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
    settings.LOCAL = True  # the test settings are production mode; the command is for local development


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


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_seed_demo_refuses_to_run_in_production_without_force(settings, debug):
    settings.LOCAL, settings.DEBUG = False, debug  # DEBUG=true in production opens nothing
    with pytest.raises(CommandError, match="outside local development"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.filter(username="alice").exists()


def _everything() -> dict:
    from django.contrib.auth.models import Group

    return {
        "users": sorted(User.objects.values_list("id", "username", "is_staff", "is_superuser", "password")),
        "wallets": sorted(Wallet.objects.values_list("id", "user_id", "currency_id", "balance")),
        "transactions": Transaction.objects.count(),
        "groups": sorted(Group.objects.values_list("name", flat=True)),
    }


@pytest.mark.parametrize("name", ["alice", "Carol", "admin", "ADMIN"])
def test_seed_demo_refuses_a_demo_name_someone_else_registered_and_writes_nothing(api, name):
    response = api.post(
        "/users", {"username": name, "email": f"{name}@evil.example", "password": "their own password"}, format="json"
    )
    assert response.status_code == 201
    before = _everything()

    with pytest.raises(CommandError, match=name.lower()):
        seed()

    assert _everything() == before


def test_seed_demo_refuses_an_admin_it_did_not_make_even_a_real_superuser():
    User.objects.create_superuser(username="admin", email="ops@example.com", password="the operator's own")
    before = _everything()
    with pytest.raises(CommandError, match="admin"):
        seed()
    assert _everything() == before


def test_seed_demo_refuses_when_its_own_admin_can_no_longer_move_money():
    seed()
    User.objects.filter(username="admin").update(is_staff=False)
    before = _everything()
    with pytest.raises(CommandError, match="admin"):
        seed()
    assert _everything() == before


def test_every_seeded_deposit_is_made_by_staff_allowed_to_move_money():
    from wallet_project.core.permissions import can_move_money

    seed()
    creators = User.objects.filter(pk__in=Transaction.objects.filter(memo="seed_demo").values("created_by_id"))
    assert creators.count() == 1 and all(can_move_money(u) for u in creators)
