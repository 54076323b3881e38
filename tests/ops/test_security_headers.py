import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

EVIL = "https://evil.example"
APP = "https://app.example"


def test_auth_and_money_responses_are_never_stored(user_factory, client_for, api):
    alice, bob = user_factory(balance=50, username="alice"), user_factory()
    client = client_for(alice)
    responses = {
        "login ok": api.post("/auth/login", {"username": "alice", "password": "correct horse battery"}, format="json"),
        "login refused": api.post("/auth/login", {"username": "alice", "password": "nope"}, format="json"),
        "refresh refused": api.post("/auth/refresh", {"refresh": "garbage"}, format="json"),
        "signup refused": api.post("/users", {"username": "x"}, format="json"),
        "me": client.get("/users/me"),
        "lookup": client.get("/users/lookup", {"username": "alice"}),
        "wallet": client.get(f"/wallet/{alice.pk}"),
        "other's wallet": client.get(f"/wallet/{bob.pk}"),
        "stats": client.get(f"/wallet/{alice.pk}/stats"),
        "wallets": client.get("/wallets"),
        "transfer": client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json"),
        "transfer refused": client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1000"}, format="json"),
        "history": client.get(f"/transactions/{alice.pk}"),
        "audit": client.get("/audit/balance-history"),
        "anonymous": api.get(f"/wallet/{alice.pk}"),
    }
    stored = {
        name: r.get("Cache-Control") for name, r in responses.items() if "no-store" not in r.get("Cache-Control", "")
    }
    assert stored == {}
    assert responses["login ok"].status_code == 200 and responses["transfer"].status_code == 200


def test_standard_security_headers_are_present(api):
    response = api.get("/currencies")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_cors_answers_no_origin_that_is_not_configured(api):
    preflight = api.options(
        "/wallet/transfer",
        HTTP_ORIGIN=EVIL,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert "Access-Control-Allow-Origin" not in preflight
    assert "Access-Control-Allow-Origin" not in api.get("/currencies", HTTP_ORIGIN=EVIL)


def test_cors_allows_exactly_the_configured_origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]
    client = APIClient()
    preflight = client.options(
        "/wallet/transfer",
        HTTP_ORIGIN=APP,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )
    assert preflight["Access-Control-Allow-Origin"] == APP
    assert "idempotency-key" in preflight["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in preflight
    response = client.get("/currencies", HTTP_ORIGIN=APP)
    assert response["Access-Control-Allow-Origin"] == APP
    assert "X-RateLimit-Remaining" in response["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in client.get("/currencies", HTTP_ORIGIN=EVIL)
