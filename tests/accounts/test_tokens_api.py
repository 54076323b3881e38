"""Refresh rotation, logout, password change and the profile endpoints."""

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import _issue_tokens
from tests.accounts.factories import PASSWORD, UserFactory
from tests.ledger import run_in_threads

pytestmark = pytest.mark.django_db

KEY = settings.SIMPLE_JWT["SIGNING_KEY"]


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def refresh(api, token):
    return api.post("/auth/refresh", {"refresh": token}, format="json")


def assert_unauthorized(response):
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "UNAUTHORIZED"


# --- refresh ---------------------------------------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_is_dead(api):
    user = UserFactory()
    first = _issue_tokens(user)

    rotated = refresh(api, first.refresh)

    assert rotated.status_code == 200, rotated.content
    body = rotated.json()
    assert body["token_type"] == "Bearer" and body["user_id"] == user.pk and body["expires_in"] == 86400
    assert body["refresh"] != first.refresh
    assert bearer(body["token"]).get("/users/me").status_code == 200
    assert_unauthorized(refresh(api, first.refresh))
    assert refresh(api, body["refresh"]).status_code == 200


def test_an_access_token_is_not_a_refresh_token(api):
    assert_unauthorized(refresh(api, _issue_tokens(UserFactory()).access))


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 4096])
def test_garbage_refresh_tokens_are_401(api, token):
    assert_unauthorized(refresh(api, token))


@pytest.mark.parametrize("body", [{}, {"refresh": ""}, {"refresh": 5, "extra": 1}, {"refresh": "x" * 4097}])
def test_malformed_refresh_bodies_are_400(api, body):
    response = api.post("/auth/refresh", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


def test_a_correctly_signed_refresh_token_with_an_absurd_exp_is_401_not_500(api):
    user = UserFactory()
    claims = jwt.decode(_issue_tokens(user).refresh, KEY, algorithms=["HS256"])
    claims["exp"] = 10**20
    assert_unauthorized(refresh(api, jwt.encode(claims, KEY, algorithm="HS256")))


def test_refresh_for_a_deactivated_user_is_401(api):
    user = UserFactory()
    pair = _issue_tokens(user)
    User.objects.filter(pk=user.pk).update(is_active=False)

    assert_unauthorized(refresh(api, pair.refresh))


def test_refresh_for_a_deleted_user_is_401(api):
    user = UserFactory()
    pair = _issue_tokens(user)
    user.delete()

    assert_unauthorized(refresh(api, pair.refresh))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sixteen_concurrent_refreshes_of_one_token_yield_exactly_one_new_pair():
    pair = _issue_tokens(UserFactory())

    def attempt():
        return refresh(APIClient(), pair.refresh)

    responses = run_in_threads([attempt] * 16, threads=16)

    assert not [r for r in responses if isinstance(r, Exception)], responses
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 15, statuses


# --- logout ----------------------------------------------------------------------------------------


def test_logout_blacklists_the_refresh_token(api):
    user = UserFactory()
    pair = _issue_tokens(user)

    response = bearer(pair.access).post("/auth/logout", {"refresh": pair.refresh}, format="json")

    assert response.status_code == 200, response.content
    assert_unauthorized(refresh(api, pair.refresh))


def test_logout_everywhere_revokes_earlier_access_and_refresh_tokens(api):
    user = UserFactory()
    laptop, phone = _issue_tokens(user), _issue_tokens(user)

    response = bearer(laptop.access).post("/auth/logout", {"everywhere": True}, format="json")

    assert response.status_code == 200
    assert_unauthorized(bearer(laptop.access).get("/users/me"))
    assert_unauthorized(bearer(phone.access).get("/users/me"))
    assert_unauthorized(refresh(api, phone.refresh))
    # A fresh login still works.
    fresh = _issue_tokens(User.objects.get(pk=user.pk))
    assert bearer(fresh.access).get("/users/me").status_code == 200


def test_logout_needs_a_refresh_token_or_everywhere():
    pair = _issue_tokens(UserFactory())
    response = bearer(pair.access).post("/auth/logout", {}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


def test_logout_with_someone_elses_refresh_token_is_403_and_leaves_it_alive(api):
    alice, mallory = UserFactory(), UserFactory()
    alice_pair = _issue_tokens(alice)

    response = bearer(_issue_tokens(mallory).access).post(
        "/auth/logout", {"refresh": alice_pair.refresh}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert refresh(api, alice_pair.refresh).status_code == 200


def test_logout_without_a_token_is_401(api):
    assert_unauthorized(api.post("/auth/logout", {"everywhere": True}, format="json"))


# --- password change -------------------------------------------------------------------------------


def test_changing_the_password_revokes_earlier_tokens(api):
    user = UserFactory(username="alice")
    old = _issue_tokens(user)

    response = bearer(old.access).post(
        "/users/me/password", {"current_password": PASSWORD, "new_password": "a brand new secret"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert_unauthorized(bearer(old.access).get("/users/me"))
    assert_unauthorized(refresh(api, old.refresh))
    login = api.post("/auth/login", {"username": "alice", "password": "a brand new secret"}, format="json")
    assert login.status_code == 200
    assert api.post("/auth/login", {"username": "alice", "password": PASSWORD}, format="json").status_code == 401


def test_changing_the_password_needs_the_current_one():
    user = UserFactory()
    pair = _issue_tokens(user)

    response = bearer(pair.access).post(
        "/users/me/password", {"current_password": "not it at all", "new_password": "a brand new secret"}, format="json"
    )

    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert bearer(pair.access).get("/users/me").status_code == 200


def test_a_weak_new_password_is_400_and_changes_nothing():
    user = UserFactory()
    pair = _issue_tokens(user)

    response = bearer(pair.access).post(
        "/users/me/password", {"current_password": PASSWORD, "new_password": "password"}, format="json"
    )

    assert response.status_code == 400
    assert "new_password" in response.json()["errors"]
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)
    assert bearer(pair.access).get("/users/me").status_code == 200


# --- /users/me and /users/lookup -------------------------------------------------------------------


def test_me_shows_the_profile_and_wallets(user_factory, client_for):
    user = user_factory(balance=5, username="alice")

    body = client_for(user).get("/users/me").json()

    assert body["id"] == user.pk and body["username"] == "alice" and body["email"] == "alice@example.com"
    assert {w["currency"]: w["balance"] for w in body["wallets"]}["USDT"] == "5.00000000"


def test_me_needs_a_token(api):
    assert_unauthorized(api.get("/users/me"))


def test_lookup_finds_id_and_username_but_never_the_email(user_factory, client_for):
    caller, bob = UserFactory(), UserFactory(username="Bob", email="bob-secret@example.com")

    response = client_for(caller).get("/users/lookup", {"username": "bob"})

    assert response.status_code == 200
    assert response.json() == {"id": bob.pk, "username": "Bob"}
    assert "bob-secret" not in response.content.decode()


@pytest.mark.parametrize("username", ["nobody", "sleeper"])
def test_lookup_of_an_unknown_or_inactive_user_is_404(client_for, username):
    UserFactory(username="sleeper", is_active=False)

    response = client_for(UserFactory()).get("/users/lookup", {"username": username})

    assert response.status_code == 404
    assert response.json()["code"] == "USER_NOT_FOUND"


@pytest.mark.parametrize("query", [{}, {"username": ""}, {"username": "x" * 151}, {"username": "bob\x00"}])
def test_lookup_without_a_sane_username_is_400(client_for, query):
    response = client_for(UserFactory()).get("/users/lookup", query)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


def test_lookup_needs_a_token(api):
    UserFactory(username="bob")
    assert_unauthorized(api.get("/users/lookup", {"username": "bob"}))
