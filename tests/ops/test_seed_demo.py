from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.management.commands.seed_demo import DEMO_PASSWORD
from accounts.models import User
from audit.reconcile import reconcile
from holds.models import Hold, WithdrawalRequest
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


def wallet(username: str, code: str = "USDT") -> Wallet:
    return Wallet.objects.get(user__username=username, currency__code=code)


def test_seed_demo_twice_makes_one_hold_and_one_pending_withdrawal_request():
    first = seed()
    second = seed()

    (hold,) = Hold.objects.filter(withdrawal_request__isnull=True)
    assert (hold.payer.username, hold.payee.username, hold.currency.code) == ("alice", "bob", "USDT")
    assert (hold.status, hold.amount, hold.captured, hold.memo) == ("active", Decimal("25"), 0, "seed_demo")
    assert hold.expires_at is not None
    (request,) = WithdrawalRequest.objects.all()
    assert (request.user.username, request.status, request.amount) == ("carol", "pending", Decimal("40"))
    assert Hold.objects.count() == 2  # the demo hold and the one behind the request

    assert (wallet("alice").balance, wallet("alice").held, wallet("alice").available) == (
        Decimal("1000"),
        Decimal("25"),
        Decimal("975"),
    )
    assert (wallet("carol").held, wallet("carol").available) == (Decimal("40"), Decimal("210"))
    assert wallet("bob").held == 0
    assert "25.00000000 USDT held" in first and "pending" in first
    assert "demo hold already made" in second and "demo request already made" in second
    assert reconcile().ok


def test_a_decided_demo_request_is_not_made_again():
    from holds.services import withdrawal_request_approve

    seed()
    request = WithdrawalRequest.objects.get()
    withdrawal_request_approve(request_id=request.pk, actor=User.objects.get(username="admin"))

    assert f"(request {request.pk}, completed)" in seed()
    assert WithdrawalRequest.objects.count() == 1
    assert (wallet("carol").balance, wallet("carol").held) == (Decimal("210"), 0)


def test_a_hold_the_payer_cannot_cover_is_skipped_and_the_rest_is_seeded(monkeypatch):
    from accounts.management.commands import seed_demo

    # As if alice had spent her demo money before this version of the command first made the hold.
    monkeypatch.setattr(seed_demo, "DEMO_HOLD", seed_demo.DemoHold("alice", "bob", "USDT", Decimal("1000.01")))
    out = seed()

    assert "skipped" in out and not Hold.objects.filter(withdrawal_request__isnull=True).exists()
    assert wallet("alice").held == 0
    assert WithdrawalRequest.objects.get().status == "pending"
    assert reconcile().ok


def test_seeded_money_is_accounted_for_as_deposits():
    seed()
    for code in ("USDT", "BTC", "ETH"):
        total = Wallet.objects.filter(currency__code=code).aggregate(s=Sum("balance"))["s"]
        deposited = Transaction.objects.filter(currency__code=code, type="deposit").aggregate(s=Sum("amount"))["s"]
        assert total == deposited
    assert reconcile().ok


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
        "holds": Hold.objects.count(),
        "withdrawal_requests": WithdrawalRequest.objects.count(),
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
