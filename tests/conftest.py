"""Shared fixtures. The suite runs on PostgreSQL: a run against anything else fails loudly."""

import os
from decimal import Decimal
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from currencies.models import Currency
from tests.accounts.factories import UserFactory
from transactions.services import deposit_create
from wallets.models import Wallet

# The one module that also runs on SQLite, the embedded default (it starts that run itself).
MONEY_SUITE = Path(__file__).parent / "core" / "test_money.py"


@pytest.fixture(autouse=True, scope="session")
def _require_postgresql(request, django_db_setup, django_db_blocker):
    from django.db import connection

    if os.environ.get("MONEY_SUITE_ON_SQLITE") == "1":
        assert connection.vendor == "sqlite", "MONEY_SUITE_ON_SQLITE is the SQLite leg of the money suite"
        outside = {str(item.path) for item in request.session.items if item.path != MONEY_SUITE}
        assert not outside, f"only the money suite runs on SQLite, not {sorted(outside)}"
        return
    assert connection.vendor == "postgresql", (
        "the test suite must run on PostgreSQL (set DATABASE_URL); locking and constraints are only real there"
    )


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def usdt(db):
    return Currency.objects.get(code="USDT")


@pytest.fixture
def btc(db):
    return Currency.objects.get(code="BTC")


def make_user(balance: Decimal | str | int = 0, currencies=("USDT", "BTC", "ETH"), **kwargs):
    """A user with a wallet per currency; ``balance`` is deposited into USDT (recorded, so supply adds up)."""
    user = UserFactory(**kwargs)
    for currency in Currency.objects.filter(code__in=currencies):
        Wallet.objects.create(user=user, currency=currency)
    if Decimal(balance) > 0:
        deposit_create(user_id=user.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal(balance))
    return user


@pytest.fixture
def user_factory(db):
    return make_user


def grant_movements(user):
    """Give a (staff) user the permission that deposits and withdrawals need, as an operator would."""
    from django.contrib.auth.models import Permission

    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="transactions", codename="add_transaction")
    )
    return user


def make_cashier(balance: Decimal | str | int = 0, **kwargs):
    """A staff member who may move money: ``is_staff`` plus ``transactions.add_transaction``."""
    return grant_movements(make_user(balance, is_staff=True, **kwargs))


@pytest.fixture
def cashier_factory(db):
    return make_cashier


def auth_client(user) -> APIClient:
    from accounts.services import _issue_tokens

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {_issue_tokens(user).access}")
    return client


@pytest.fixture
def client_for():
    return auth_client
