"""Shared fixtures. The suite runs on PostgreSQL: a run against anything else fails loudly."""

import os
import types
from decimal import Decimal
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from currencies.models import Currency
from tests.accounts.factories import UserFactory
from transactions.services import deposit_create
from wallets.models import Wallet

# The modules that also run on SQLite, the embedded default (each starts that run itself).
MONEY_SUITE = Path(__file__).parent / "core" / "test_money.py"
SQLITE_SUITES = {MONEY_SUITE, Path(__file__).parent / "transactions" / "test_backends.py"}

TESTS = Path(__file__).resolve().parent
# Fixtures that start something outside the test process; a test using one (directly or through another
# fixture) gets the marker, so new tests are sorted without being edited.
OUT_OF_PROCESS_FIXTURES = {
    "live": {"live_template", "live", "live_server"},
    "broker": {"kafka_broker", "kafka_bootstrap"},
}
DIRECTORY_MARKERS = {"deploy": "deploy", "soak": "soak"}
# A test module that imports from one of these (by the ``__module__`` of what it imported) is marked.
IMPORT_MARKERS = {"tests.live": "live", "devtools.liveserver": "live", "playwright": "browser"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that leaves the process (``make check`` deselects them; ``make test`` runs them).

    Keyed on the directory (tests/deploy, tests/soak), on the fixtures a test uses, and on what its module
    imports (the live-server helpers, Playwright, subprocess): gunicorn, a broker, a browser or tools.
    """
    for item in items:
        path = Path(str(item.path)).resolve()
        parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
        wanted = {DIRECTORY_MARKERS[parts[0]]} if parts and parts[0] in DIRECTORY_MARKERS else set()
        fixtures = set(getattr(item, "fixturenames", ()))
        wanted |= {marker for marker, names in OUT_OF_PROCESS_FIXTURES.items() if fixtures & names}
        module = getattr(item, "module", None)
        runs_processes = False
        for value in vars(module).values() if module is not None else ():
            if isinstance(value, types.ModuleType) and value.__name__ == "subprocess":
                runs_processes = True  # the app or a tool in another process
                continue
            source = getattr(value, "__module__", None) or ""
            wanted |= {m for prefix, m in IMPORT_MARKERS.items() if source == prefix or source.startswith(prefix + ".")}
        if runs_processes and not wanted:
            wanted.add("live")
        for marker in sorted(wanted - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)


def _reused_database_lost_its_data() -> bool:
    """True when the kept test database exists but a transactional test's flush emptied it (killed run)."""
    import psycopg
    from django.db import connections

    connection = connections["default"]
    db = connection.settings_dict
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "password": db["PASSWORD"]}
    try:
        with psycopg.connect(dbname=connection.creation._get_test_db_name(), autocommit=True, **params) as conn:
            if conn.execute("SELECT to_regclass('currencies_currency')").fetchone()[0] is None:
                return False  # not migrated yet: pytest-django migrates it anyway
            return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM currencies_currency)").fetchone()[0]
    except psycopg.OperationalError:
        return False  # no such database yet: it is created


@pytest.fixture(scope="session")
def django_db_createdb(request) -> bool:
    """``--reuse-db`` (``make check``) recreates the database when a previous run left it without its data."""
    return bool(request.config.getvalue("create_db")) or (
        bool(request.config.getvalue("reuse_db")) and _reused_database_lost_its_data()
    )


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb):  # noqa: F811 - extends pytest-django's
    """A kept database must outlive the run with the data its migrations wrote.

    A transactional test ends by flushing every table; ``serialized_rollback`` restores the migrations'
    rows (the currencies) before the next test, not after the last one. Put them back at the end, so the
    next ``--reuse-db`` run starts from a migrated, seeded database.
    """
    yield
    if not django_db_keepdb:
        return
    from django.db import connections

    with django_db_blocker.unblock():
        connection = connections["default"]
        contents = getattr(connection, "_test_serialized_contents", None)
        if contents and not Currency.objects.exists():
            connection.creation.deserialize_db_from_string(contents)


@pytest.fixture
def production_hashers(settings):
    """The production password hashers (Argon2 first) for tests about hashing; the rest use a fast one."""
    from wallet_project.settings import base

    settings.PASSWORD_HASHERS = base.PASSWORD_HASHERS


@pytest.fixture(autouse=True, scope="session")
def _require_postgresql(request, django_db_setup, django_db_blocker):
    from django.db import connection

    if os.environ.get("MONEY_SUITE_ON_SQLITE") == "1":
        assert connection.vendor == "sqlite", "MONEY_SUITE_ON_SQLITE is the SQLite leg of the money suite"
        outside = {str(item.path) for item in request.session.items if item.path not in SQLITE_SUITES}
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
