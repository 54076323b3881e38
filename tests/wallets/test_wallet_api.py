"""GET /wallet/{user_id}, /wallet/{user_id}/stats and GET/POST /wallets."""

from decimal import Decimal

import pytest

from currencies.models import Currency
from tests.currencies.factories import CurrencyFactory
from tests.wallets.factories import WalletFactory
from transactions.services import deposit_create, transfer_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

WALLET_FIELDS = {"id", "user_id", "currency_id", "currency", "balance", "held", "available", "created_at", "updated_at"}


def test_the_default_wallet_is_usdt(user_factory, client_for):
    user = user_factory(balance="12.5")

    response = client_for(user).get(f"/wallet/{user.pk}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == WALLET_FIELDS
    assert body["user_id"] == user.pk and body["currency"] == "USDT" and body["currency_id"] == 1
    assert (body["balance"], body["held"], body["available"]) == ("12.50000000", "0.00000000", "12.50000000")
    assert body["id"] == Wallet.objects.get(user=user, currency_id=1).pk


@pytest.mark.parametrize("query", [{"currency_id": "2"}, {"currency": "BTC"}, {"currency": "btc"}])
def test_another_currency_by_id_or_code(user_factory, client_for, btc, query):
    user = user_factory()
    deposit_create(user_id=user.pk, currency=btc, amount=Decimal("0.00000001"))

    body = client_for(user).get(f"/wallet/{user.pk}", query).json()

    assert body["currency"] == "BTC" and body["balance"] == "0.00000001"


def test_someone_elses_wallet_is_403_forbidden(user_factory, client_for):
    alice, bob = user_factory(), user_factory(balance=7)

    response = client_for(alice).get(f"/wallet/{bob.pk}")

    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert "forbidden" in response.json()["error"]
    assert "7.0" not in response.content.decode()


def test_a_nonexistent_user_id_is_403_for_a_normal_user(user_factory, client_for):
    """Whether an id exists must not be observable: the same 403 as for someone else's id."""
    alice = user_factory()
    assert client_for(alice).get("/wallet/999999999").status_code == 403


def test_staff_may_read_any_wallet(user_factory, client_for):
    staff, bob = user_factory(is_staff=True), user_factory(balance=7)

    response = client_for(staff).get(f"/wallet/{bob.pk}")

    assert response.status_code == 200
    assert response.json()["balance"] == "7.00000000"


def test_a_wallet_needs_a_token(user_factory, api):
    user = user_factory()
    response = api.get(f"/wallet/{user.pk}")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("currency_id", ["abc", "0", "-1", "1.5", "1" * 30, "١"])
def test_a_malformed_currency_id_is_400(user_factory, client_for, currency_id):
    user = user_factory()
    response = client_for(user).get(f"/wallet/{user.pk}", {"currency_id": currency_id})
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("query", [{"currency_id": "999"}, {"currency": "DOGE"}])
def test_an_unknown_currency_is_404_not_found(user_factory, client_for, query):
    user = user_factory()
    response = client_for(user).get(f"/wallet/{user.pk}", query)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_a_currency_without_a_wallet_is_404_wallet_not_found(user_factory, client_for):
    user = user_factory()
    response = client_for(user).get(f"/wallet/{user.pk}", {"currency": "USDC"})
    assert response.status_code == 404
    assert response.json()["code"] == "WALLET_NOT_FOUND"


# --- stats -----------------------------------------------------------------------------------------


def test_stats_per_currency(user_factory, client_for, usdt, btc):
    alice, bob = user_factory(balance=100), user_factory(balance=10)
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("30"))
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("5.5"))
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("2"))

    response = client_for(alice).get(f"/wallet/{alice.pk}/stats", {"window": "24h"})

    assert response.status_code == 200, response.content
    assert response.json() == {
        "window": "24h",
        "currency": "USDT",
        "transaction_count": 3,  # the deposit, the transfer out, the transfer in
        "total_sent": "30.00000000",
        "total_received": "105.50000000",
        "balance_change": "75.50000000",
    }
    btc_stats = client_for(alice).get(f"/wallet/{alice.pk}/stats", {"currency": "BTC", "window": "7d"}).json()
    assert btc_stats["currency"] == "BTC" and btc_stats["total_received"] == "2.00000000"
    assert btc_stats["transaction_count"] == 1


def test_stats_default_to_24h(user_factory, client_for):
    user = user_factory()
    assert client_for(user).get(f"/wallet/{user.pk}/stats").json()["window"] == "24h"


@pytest.mark.parametrize("window", ["0h", "24", "h", "24x", "-1h", "1.5h", "99999d", "3661d", "24h;drop", "２４h"])
def test_bad_windows_are_400(user_factory, client_for, window):
    user = user_factory()
    response = client_for(user).get(f"/wallet/{user.pk}/stats", {"window": window})
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


def test_someone_elses_stats_are_403(user_factory, client_for):
    alice, bob = user_factory(), user_factory()
    assert client_for(alice).get(f"/wallet/{bob.pk}/stats").status_code == 403
    assert client_for(user_factory(is_staff=True)).get(f"/wallet/{bob.pk}/stats").status_code == 200


# --- GET/POST /wallets -----------------------------------------------------------------------------


def test_the_callers_wallets(user_factory, client_for):
    user = user_factory(balance=3)
    user_factory(balance=9)

    response = client_for(user).get("/wallets")

    assert response.status_code == 200
    assert [(w["currency"], w["balance"]) for w in response.json()] == [
        ("USDT", "3.00000000"),
        ("BTC", "0.00000000"),
        ("ETH", "0.00000000"),
    ]
    assert {w["user_id"] for w in response.json()} == {user.pk}


def test_opening_a_wallet_in_another_active_currency(user_factory, client_for):
    user = user_factory()

    response = client_for(user).post("/wallets", {"currency": "usdc"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["currency"] == "USDC" and response.json()["balance"] == "0.00000000"
    assert Wallet.objects.filter(user=user, currency__code="USDC").count() == 1


def test_opening_a_wallet_twice_is_409(user_factory, client_for):
    user = user_factory()

    response = client_for(user).post("/wallets", {"currency": "BTC"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "WALLET_ALREADY_EXISTS"
    assert Wallet.objects.filter(user=user, currency__code="BTC").count() == 1


@pytest.mark.parametrize("code", ["DOGE", "OLD"])
def test_opening_a_wallet_in_an_unknown_or_inactive_currency_is_404(user_factory, client_for, code):
    CurrencyFactory(code="OLD", is_active=False)
    user = user_factory()

    response = client_for(user).post("/wallets", {"currency": code}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert Wallet.objects.filter(user=user).count() == 3


@pytest.mark.parametrize(
    "body", [{"currency": "USDC", "balance": "1000"}, {"currency": "USDC", "user_id": 1}, {}, {"currency": ""}]
)
def test_opening_a_wallet_with_extra_or_missing_fields_is_400(user_factory, client_for, body):
    user = user_factory()

    response = client_for(user).post("/wallets", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert not Wallet.objects.filter(currency__code="USDC").exists()


def test_a_wallet_opened_through_the_factory_starts_empty():
    wallet = WalletFactory(currency=Currency.objects.get(code="ETH"))
    assert wallet.balance == 0 and wallet.audit_head == "0" * 64
