"""GET /currencies and /currencies/{id}: public, seed-shaped, USDT first."""

import pytest

from currencies.models import Currency
from tests.currencies.factories import CurrencyFactory

pytestmark = pytest.mark.django_db

FIELDS = {"id", "code", "name", "symbol", "decimals", "is_active", "max_transfer_amount"}


def test_the_list_is_a_bare_array_ordered_by_id_with_usdt_first(api):
    response = api.get("/currencies")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body, list)
    assert [c["id"] for c in body] == sorted(c["id"] for c in body)
    assert all(set(c) == FIELDS for c in body)
    usdt = body[0]
    assert (usdt["id"], usdt["code"]) == (1, "USDT")
    assert usdt["max_transfer_amount"] == "1000000.00000000"
    assert usdt["is_active"] is True
    assert [c["code"] for c in body[:3]] == ["USDT", "BTC", "ETH"]


def test_inactive_currencies_are_not_listed(api):
    retired = CurrencyFactory(code="OLD", is_active=False)
    listed = CurrencyFactory(code="NEW")

    codes = [c["code"] for c in api.get("/currencies").json()]

    assert listed.code in codes and retired.code not in codes


def test_one_currency_by_id(api):
    btc = Currency.objects.get(code="BTC")

    response = api.get(f"/currencies/{btc.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": btc.pk,
        "code": "BTC",
        "name": btc.name,
        "symbol": btc.symbol,
        "decimals": 8,
        "is_active": True,
        "max_transfer_amount": "100.00000000",
    }


def test_a_currency_without_a_limit_shows_null(api):
    unlimited = CurrencyFactory(max_transfer_amount=None)
    assert api.get(f"/currencies/{unlimited.pk}").json()["max_transfer_amount"] is None


@pytest.mark.parametrize("path", ["999999", "9" * 18, "1" * 30, "abc", "-1", "0", "1.0", "%20"])
def test_unknown_or_malformed_ids_are_404_not_found_never_500(api, path):
    response = api.get(f"/currencies/{path}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "NOT_FOUND"


def test_currencies_are_public_even_with_a_bad_token(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    assert api.get("/currencies").status_code == 200
    assert api.get("/currencies/1").status_code == 200
