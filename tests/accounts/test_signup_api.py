"""POST /users: a user and a wallet per default currency, atomically, or nothing at all."""

import pytest
from django.test import override_settings

from accounts.models import User
from tests.accounts.factories import UserFactory
from tests.ledger import ledger_state
from transactions.models import Transaction
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "correct horse 1"
FAST_HASHING = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])


def signup(api, **overrides):
    body = {"username": "alice", "email": "alice@example.com", "password": GOOD_PASSWORD, **overrides}
    return api.post("/users", body, format="json")


def test_signup_answers_201_with_the_user_and_a_wallet_per_default_currency(api, production_hashers):
    response = signup(api)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "username", "email", "created_at", "wallets"}
    assert body["username"] == "alice" and body["email"] == "alice@example.com"
    assert "password" not in response.content.decode()
    assert [w["currency"] for w in body["wallets"]] == ["USDT", "BTC", "ETH"]
    for wallet in body["wallets"]:
        assert set(wallet) == {
            "id", "user_id", "currency_id", "currency", "balance", "held", "available", "created_at", "updated_at"
        }  # fmt: skip
        assert wallet["user_id"] == body["id"]
        assert wallet["balance"] == wallet["held"] == wallet["available"] == "0.00000000"
    user = User.objects.get(pk=body["id"])
    assert user.password.startswith("argon2")
    assert user.check_password(GOOD_PASSWORD)
    assert Wallet.objects.filter(user=user).count() == 3


@FAST_HASHING
@override_settings(SIGNUP_GRANT="")
def test_without_a_grant_no_money_is_created(api):
    before = ledger_state()

    assert signup(api).status_code == 201

    after = ledger_state()
    assert after["transactions"] == before["transactions"]
    assert after["history"] == before["history"] and after["outbox"] == before["outbox"]


@FAST_HASHING
@override_settings(SIGNUP_GRANT="USDT:1000")
def test_the_signup_grant_is_a_recorded_deposit(api):
    before = ledger_state()

    response = signup(api)

    assert response.status_code == 201, response.content
    wallets = {w["currency"]: w["balance"] for w in response.json()["wallets"]}
    assert wallets == {"USDT": "1000.00000000", "BTC": "0.00000000", "ETH": "0.00000000"}
    grant = Transaction.objects.get(to_user_id=response.json()["id"])
    assert grant.type == "deposit" and grant.from_user_id is None
    assert grant.amount == 1000 and grant.currency.code == "USDT"
    after = ledger_state()
    assert after["transactions"] == before["transactions"] + 1
    assert after["history"] == before["history"] + 1
    assert after["outbox"] == before["outbox"] + 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"username": "ALICE", "email": "other@example.com"},
        {"username": "alice", "email": "other@example.com"},
        {"username": "somebody", "email": "Alice@Example.COM"},
    ],
)
@FAST_HASHING
def test_duplicate_username_or_email_is_409_case_insensitively(api, overrides):
    UserFactory(username="alice", email="alice@example.com")
    before = (User.objects.count(), Wallet.objects.count())

    response = signup(api, **overrides)

    assert response.status_code == 409
    assert response.json()["code"] == "USER_ALREADY_EXISTS"
    assert (User.objects.count(), Wallet.objects.count()) == before


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"password": "short1"}, "password"),
        ({"password": "password"}, "password"),  # too common
        ({"password": "12345678901"}, "password"),  # entirely numeric
        ({"email": "not-an-email"}, "email"),
        ({"email": ""}, "email"),
        ({"username": "a"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "ålice"}, "username"),
        ({"username": "x" * 33}, "username"),
        ({"is_staff": True}, "is_staff"),
        ({"balance": "1000"}, "balance"),
        ({"password": None}, "password"),
    ],
)
def test_invalid_signups_are_400_with_field_errors_and_create_nothing(api, overrides, field):
    before = (User.objects.count(), Wallet.objects.count())

    response = signup(api, **overrides)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "INVALID_REQUEST"
    assert field in body["errors"]
    assert (User.objects.count(), Wallet.objects.count()) == before


def test_missing_fields_are_each_reported(api):
    response = api.post("/users", {}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert set(response.json()["errors"]) == {"username", "email", "password"}


@pytest.mark.parametrize("body", ["[]", '"alice"', "null", "{", ""])
def test_a_body_that_is_not_an_object_is_400(api, body):
    response = api.post("/users", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert User.objects.count() == 0


def test_signup_of_a_staff_user_is_impossible_through_the_api(api):
    response = signup(api, is_staff=True, is_superuser=True)

    assert response.status_code == 400
    assert not User.objects.filter(is_staff=True).exists()


@FAST_HASHING
@override_settings(SIGNUP_GRANT="USDT:1000")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_signups_for_one_name_create_exactly_one_user():
    from rest_framework.test import APIClient

    from tests.ledger import run_in_threads

    def attempt(n):
        body = {"username": "racer", "email": f"racer{n}@example.com", "password": GOOD_PASSWORD}
        return APIClient().post("/users", body, format="json")

    responses = run_in_threads([lambda n=n: attempt(n) for n in range(8)], threads=8)

    assert not [r for r in responses if isinstance(r, Exception)], responses
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"USER_ALREADY_EXISTS"}
    user = User.objects.get(username="racer")
    assert Wallet.objects.filter(user=user).count() == 3
    assert Transaction.objects.filter(to_user=user).count() == 1  # one grant, not eight
    assert Wallet.objects.count() == 3
