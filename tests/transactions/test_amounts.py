"""Amounts on the wire: Decimal end to end, exact or refused, never rounded, never a 500."""

import json
from decimal import Decimal

import pytest

from tests.ledger import balance, ledger_state
from transactions.models import Transaction

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(user_factory, btc):
    from transactions.services import deposit_create

    user = user_factory(balance=1000)
    deposit_create(user_id=user.pk, currency=btc, amount=Decimal("10"))
    return user


@pytest.fixture
def bob(user_factory):
    return user_factory()


def send(client, raw_body: str):
    """A hand-written JSON body: what a client puts on the wire, not what a Python renderer would make of it."""
    return client.post("/wallet/transfer", raw_body, content_type="application/json")


def body_with(bob, amount_json: str, currency: str = "USDT") -> str:
    return f'{{"to_user_id": {bob.pk}, "currency": "{currency}", "amount": {amount_json}}}'


@pytest.mark.parametrize(
    ("amount_json", "expected"),
    [
        ('"0.1"', "0.10000000"),
        ("0.1", "0.10000000"),
        ("0.000001", "0.00000100"),
        ('"0.000001"', "0.00000100"),
        ("1e2", "100.00000000"),
        ("12", "12.00000000"),
        ('"12"', "12.00000000"),
        ('"12.500000000000"', "12.50000000"),  # trailing zeros are not extra places
        ('" 7.25 "', "7.25000000"),
        ("999.999999", "999.99999900"),
    ],
)
def test_exact_amounts_are_kept_exactly(alice, bob, client_for, amount_json, expected):
    response = send(client_for(alice), body_with(bob, amount_json))

    assert response.status_code == 200, response.content
    assert response.json()["amount"] == expected
    assert Transaction.objects.get(pk=response.json()["id"]).amount == Decimal(expected)
    assert balance(bob) == Decimal(expected)
    assert balance(alice) == Decimal(1000) - Decimal(expected)


def test_ten_json_tenths_make_exactly_one(alice, bob, client_for):
    client = client_for(alice)
    for _ in range(10):
        assert send(client, body_with(bob, "0.1")).status_code == 200
    assert balance(bob) == Decimal("1") and balance(alice) == Decimal("999")


def test_btc_takes_eight_places(alice, bob, client_for):
    response = send(client_for(alice), body_with(bob, "0.00000001", currency="BTC"))
    assert response.status_code == 200, response.content
    assert balance(bob, "BTC") == Decimal("0.00000001")


@pytest.mark.parametrize(
    ("amount_json", "currency"),
    [
        ('"0.0000001"', "USDT"),  # 7 places, USDT has 6
        ("0.0000001", "USDT"),
        ('"1.1234567"', "USDT"),
        ('"0.000000001"', "BTC"),  # 9 places, BTC has 8
        ("1e-9", "BTC"),
        # 31 significant digits: Decimal's default 28-digit context would round these; they must be refused.
        ('"1.000000000000000000000000000001"', "USDT"),
        ("1.000000000000000000000000000001", "USDT"),
        ('"999999.9999999999999999999999999"', "USDT"),
        ("0.1000000000000000000000000000001", "BTC"),
        ("1e-999999999", "USDT"),
    ],
)
def test_too_many_places_is_invalid_decimals_never_rounded(alice, bob, client_for, amount_json, currency):
    before = ledger_state()

    response = send(client_for(alice), body_with(bob, amount_json, currency))

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_DECIMALS"
    assert ledger_state() == before


@pytest.mark.parametrize(
    "amount_json",
    [
        '"1234567890123456789012345678901"',
        "1234567890123456789012345678901",
        "1e999999999",
        '"1000000.000001"',
        "100000000000000000000",
    ],
)
def test_huge_amounts_exceed_the_limit(alice, bob, client_for, amount_json):
    before = ledger_state()

    response = send(client_for(alice), body_with(bob, amount_json))

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "AMOUNT_EXCEEDS_LIMIT"
    assert ledger_state() == before


@pytest.mark.parametrize("amount_json", ['"0"', "0", '"0.000"', '"-0"', "-0.0", "-1", '"-0.5"', "-1e2"])
def test_zero_and_negative_are_amount_not_positive(alice, bob, client_for, amount_json):
    before = ledger_state()

    response = send(client_for(alice), body_with(bob, amount_json))

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "AMOUNT_NOT_POSITIVE"
    assert ledger_state() == before


@pytest.mark.parametrize(
    "amount_json",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        '"NaN"',
        '"Infinity"',
        '"inf"',
        '"1e5"',
        '"1E5"',
        '"١٢"',  # Arabic-Indic digits
        '"１２"',  # full-width digits
        '"1_000"',
        '"1,5"',
        '"0x10"',
        '"12 USDT"',
        '"."',
        '""',
        '"   "',
        "true",
        "false",
        "null",
        "[1]",
        '{"value": "1"}',
        '"+-1"',
        '"1.2.3"',
        "1" * 5000,  # beyond Python's int-parsing limit
        "1e9999999999999999999",  # beyond Decimal's exponent range
        "1e-9999999999999999999",
    ],
)
def test_anything_else_is_invalid_request(alice, bob, client_for, amount_json):
    before = ledger_state()

    response = send(client_for(alice), body_with(bob, amount_json))

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST"
    assert ledger_state() == before


def test_a_missing_amount_is_reported_on_the_field(alice, bob, client_for):
    response = send(client_for(alice), json.dumps({"to_user_id": bob.pk}))
    assert response.status_code == 400
    assert "amount" in response.json()["errors"]


def test_form_encoded_amounts_are_refused_and_move_nothing(alice, bob, client_for):
    """JSON only: a form or multipart body would skip the JSON parser's rules (the browsable API posts JSON)."""
    client = client_for(alice)

    form = client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "0.5"})  # APIClient: multipart
    encoded = client.post(
        "/wallet/transfer", f"to_user_id={bob.pk}&amount=0.5", content_type="application/x-www-form-urlencoded"
    )

    for response in (form, encoded):
        assert response.status_code == 415 and response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert balance(bob) == 0
