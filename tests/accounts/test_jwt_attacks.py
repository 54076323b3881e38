"""Forged, expired and malformed tokens are 401 UNAUTHORIZED in the envelope, never a 500."""

import base64
import json
import time

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import _issue_tokens
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

KEY = settings.SIMPLE_JWT["SIGNING_KEY"]


def claims_for(user, **overrides):
    now = int(time.time())
    claims = {
        "token_type": "access",
        "user_id": user.pk,
        "username": user.username,
        "jti": "f" * 32,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "ver": user.token_version,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def call_with(token: str, path: str = "/users/me"):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    # A method the path serves: any other is a 405 whatever the token.
    return client.post(path, format="json") if path == "/wallet/transfer" else client.get(path)


def assert_unauthorized(response):
    assert response.status_code == 401, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "UNAUTHORIZED"


def test_a_well_formed_token_is_accepted():
    """The control for everything below: the forged tokens differ from this one in one way each."""
    user = UserFactory()
    assert call_with(jwt.encode(claims_for(user), KEY, algorithm="HS256")).status_code == 200


def test_alg_none_is_rejected():
    user = UserFactory()
    token = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for(user))}."
    assert_unauthorized(call_with(token))


def test_a_token_signed_with_another_key_is_rejected():
    user = UserFactory()
    assert_unauthorized(call_with(jwt.encode(claims_for(user), "another key " * 4, algorithm="HS256")))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_different_algorithm_with_the_same_key_is_rejected():
    user = UserFactory()
    assert_unauthorized(call_with(jwt.encode(claims_for(user), KEY, algorithm="HS512")))


def test_an_expired_token_is_rejected():
    user = UserFactory()
    past = int(time.time()) - 3600
    assert_unauthorized(call_with(jwt.encode(claims_for(user, iat=past, nbf=past, exp=past + 60), KEY)))


def test_a_token_without_exp_is_rejected():
    user = UserFactory()
    token = jwt.encode({k: v for k, v in claims_for(user).items() if k != "exp"}, KEY, algorithm="HS256")
    assert_unauthorized(call_with(token))


def test_a_refresh_token_is_not_an_access_token():
    assert_unauthorized(call_with(_issue_tokens(UserFactory()).refresh))


def test_a_token_of_a_deactivated_user_is_rejected():
    user = UserFactory()
    token = _issue_tokens(user).access
    user.is_active = False
    user.save()
    assert_unauthorized(call_with(token))


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "Bearer", "eyJhbGciOiJIUzI1NiJ9..", "ü.ü.ü", "x" * 5000],
)
def test_garbage_is_rejected(token):
    assert_unauthorized(call_with(token))


@pytest.mark.parametrize(
    "overrides",
    [
        {"user_id": "abc"},
        {"user_id": -1},
        {"user_id": 2**70},
        {"user_id": 1.5},
        {"user_id": True},
        {"user_id": None},
        {"user_id": [1]},
        {"exp": "tomorrow"},
        {"exp": 10**20},
        {"nbf": int(time.time()) + 3600},
        {"token_type": "refresh"},
        {"token_type": None},
        {"jti": None},
    ],
)
def test_correctly_signed_but_malformed_claims_are_401_not_500(overrides):
    user = UserFactory()
    assert_unauthorized(call_with(jwt.encode(claims_for(user, **overrides), KEY, algorithm="HS256")))


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer a b", "Basic dXNlcjpwYXNz"])
def test_malformed_authorization_headers_never_500(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/users/me")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("path", ["/users/me", "/wallet/transfer"])
def test_a_token_checked_before_still_expires(path, monkeypatch):
    """Verified tokens are remembered by their text; expiry is checked again on every request."""
    from datetime import timedelta

    import rest_framework_simplejwt.tokens as simplejwt_tokens

    from accounts import authentication

    user = UserFactory()
    token = jwt.encode(claims_for(user, exp=int(time.time()) + 60), KEY, algorithm="HS256")
    first = call_with(token, path)
    assert first.status_code != 401, first.content  # accepted (the transfer then fails on its empty body)
    assert authentication.verified_tokens.get(token.encode()) is not None

    later = simplejwt_tokens.aware_utcnow() + timedelta(minutes=2)
    monkeypatch.setattr(authentication, "aware_utcnow", lambda: later)
    monkeypatch.setattr(simplejwt_tokens, "aware_utcnow", lambda: later)
    assert_unauthorized(call_with(token, path))
    assert authentication.verified_tokens.get(token.encode()) is None


def test_remembered_tokens_are_forgotten_when_the_signing_settings_change(settings):
    from accounts import authentication

    token = jwt.encode(claims_for(UserFactory()), KEY, algorithm="HS256")
    assert call_with(token).status_code == 200
    assert authentication.verified_tokens.get(token.encode()) is not None
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT}  # sends setting_changed, as a key rotation in tests would
    assert authentication.verified_tokens.get(token.encode()) is None
