"""POST /auth/login: the seed's token response, one answer for every kind of wrong, legacy hashes upgraded."""

import bcrypt
import jwt
import pytest
from django.conf import settings

from accounts.models import User
from tests.accounts.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def login(api, username, password):
    return api.post("/auth/login", {"username": username, "password": password}, format="json")


def without_trace(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "trace_id"}


def test_login_answers_with_the_seed_fields(api):
    user = UserFactory(username="alice")

    response = login(api, "alice", PASSWORD)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "refresh", "token_type", "user_id", "username", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["user_id"] == user.pk and body["username"] == "alice"
    assert body["expires_in"] == 86400
    assert response["Cache-Control"] == "no-store"


def test_the_access_token_is_an_hs256_jwt_with_the_seed_claims(api):
    user = UserFactory(username="alice")

    token = login(api, "alice", PASSWORD).json()["token"]

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"])
    assert claims["user_id"] == user.pk and isinstance(claims["user_id"], int)
    assert claims["username"] == "alice"
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 86400
    assert claims["token_type"] == "access"


def test_the_token_opens_the_api(api):
    UserFactory(username="alice")
    token = login(api, "alice", PASSWORD).json()["token"]

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/users/me").json()["username"] == "alice"


def test_unknown_user_wrong_password_and_inactive_user_get_the_same_401(api):
    UserFactory(username="alice")
    UserFactory(username="sleeper", is_active=False)

    unknown = login(api, "nobody", PASSWORD)
    wrong = login(api, "alice", "wrong password 1")
    inactive = login(api, "sleeper", PASSWORD)

    for response in (unknown, wrong, inactive):
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert without_trace(unknown.json()) == without_trace(wrong.json()) == without_trace(inactive.json())


@pytest.mark.parametrize("prefix", [b"2a", b"2b"])
def test_a_legacy_go_bcrypt_hash_logs_in_and_is_upgraded_to_argon2(api, prefix, production_hashers):
    legacy = bcrypt.hashpw(b"go service pass", bcrypt.gensalt(rounds=10, prefix=prefix)).decode()
    assert legacy.startswith(f"${prefix.decode()}$10$")
    user = UserFactory(username="gopher", password=f"bcrypt_legacy${legacy}")

    response = login(api, "gopher", "go service pass")

    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.password.startswith("argon2$")
    assert login(api, "gopher", "go service pass").status_code == 200


def test_a_wrong_password_against_a_legacy_hash_is_401_and_keeps_the_hash(api):
    legacy = bcrypt.hashpw(b"go service pass", bcrypt.gensalt(rounds=4)).decode()
    UserFactory(username="gopher", password=f"bcrypt_legacy${legacy}")

    response = login(api, "gopher", "not the pass")

    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_CREDENTIALS"
    assert User.objects.get(username="gopher").password == f"bcrypt_legacy${legacy}"


@pytest.mark.parametrize("password", ["p" * 100, "é" * 50, "x" * 256])
def test_long_passwords_never_500(api, password):
    legacy = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    UserFactory(username="gopher", password=f"bcrypt_legacy${legacy}")
    UserFactory(username="alice")

    # bcrypt would compare only the first 72 bytes; Go refused longer passwords, so they never match.
    assert login(api, "gopher", password).status_code == 401
    assert login(api, "alice", password).status_code == 401


def test_a_100_byte_password_works_for_a_new_user(api):
    password = "long password " + "x" * 86
    assert len(password.encode()) == 100
    created = api.post("/users", {"username": "longpw", "email": "l@example.com", "password": password}, format="json")
    assert created.status_code == 201

    assert login(api, "longpw", password).status_code == 200
    assert login(api, "longpw", password[:72]).status_code == 401


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "alice"}, {"username": "alice", "password": PASSWORD, "remember": True}, {"username": 5}],
)
def test_malformed_login_bodies_are_400(api, body):
    UserFactory(username="alice")

    response = api.post("/auth/login", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


def test_usernames_are_case_insensitive_at_login_as_they_are_unique(api):
    UserFactory(username="Alice")
    response = login(api, "aLICE", PASSWORD)
    assert response.status_code == 200
    assert response.json()["username"] == "Alice"
