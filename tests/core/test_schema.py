"""The served OpenAPI schema says exactly what the API accepts: a body or query it calls valid is not a 400."""

import re
from datetime import timedelta

import jsonschema
import pytest

from wallets.selectors import MAX_WINDOW, WINDOW_PATTERN

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def _request_schema(schema: dict, name: str) -> dict:
    # The component by reference, with every component beside it for the references inside it.
    return {"$ref": f"#/components/schemas/{name}", "components": schema["components"]}


def _valid(component: dict, body: dict) -> bool:
    return jsonschema.Draft4Validator(component).is_valid(body)


def test_request_bodies_are_json_only(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert list(operation["requestBody"]["content"]) == ["application/json"], (method, path)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "to_user_id=2&amount=1"),
        ("multipart/form-data; boundary=b", '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--\r\n'),
    ],
)
def test_form_bodies_are_415(user_factory, client_for, content_type, body):
    response = client_for(user_factory(balance=10)).post("/wallet/transfer", body, content_type=content_type)
    assert response.status_code == 415 and response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"to_user_id": 2, "amount": "1"}, True),
        ({"to_username": "bob", "amount": "1"}, True),
        ({"to_user_id": 2, "to_username": "bob", "amount": "1"}, False),
        ({"amount": "1"}, False),
        ({"to_user_id": 2, "currency": "USDT", "amount": "1"}, True),
        ({"to_user_id": 2, "currency": "USDT", "currency_id": 1, "amount": "1"}, True),  # judged: must agree
    ],
)
def test_the_transfer_schema_states_exactly_one_recipient(schema, body, accepted):
    assert _valid(_request_schema(schema, "TransferInRequest"), body) is accepted


@pytest.mark.parametrize(
    ("component", "body", "accepted"),
    [
        ("RefreshInRequest", {"refresh": "   "}, False),
        ("RefreshInRequest", {"refresh": "a\x00b"}, False),
        ("RefreshInRequest", {"refresh": " token "}, True),
        ("LoginInRequest", {"username": "\t", "password": "x"}, False),
        ("LoginInRequest", {"username": "alice", "password": " "}, True),  # passwords are not trimmed
        ("TransferInRequest", {"to_user_id": 2, "amount": "1", "memo": ""}, True),
        ("TransferInRequest", {"to_user_id": 2, "amount": "1", "memo": "\x00"}, False),
        ("SignupInRequest", {"username": "alice", "email": "a@example.test", "password": "0" * 12}, False),
        ("SignupInRequest", {"username": "alice", "email": "a@example.test", "password": "0" * 11 + "x"}, True),
    ],
)
def test_string_rules_beyond_length_are_in_the_schema(schema, component, body, accepted):
    assert _valid(_request_schema(schema, component), body) is accepted


def test_the_window_pattern_is_exactly_the_windows_the_api_accepts(schema):
    parameters = schema["paths"]["/wallet/{user_id}/stats"]["get"]["parameters"]
    (window,) = [p for p in parameters if p["name"] == "window"]
    assert window["schema"]["pattern"] == WINDOW_PATTERN
    pattern = re.compile(WINDOW_PATTERN)
    units = {"m": "minutes", "h": "hours", "d": "days"}
    for unit, name in units.items():
        for n in range(1, 100_000):
            assert bool(pattern.fullmatch(f"{n}{unit}")) is (timedelta(**{name: n}) <= MAX_WINDOW), f"{n}{unit}"


def test_a_window_above_the_maximum_is_schema_invalid_and_refused(user_factory, client_for):
    user = user_factory()
    response = client_for(user).get(f"/wallet/{user.pk}/stats", {"window": "91022h"})
    assert response.status_code == 400 and not re.fullmatch(WINDOW_PATTERN, "91022h")


def test_a_public_operation_that_reads_an_optional_token_documents_its_401(schema, api):
    for path in ("/tx/{tx_hash}", "/receipts/public-key"):
        assert "401" in schema["paths"][path]["get"]["responses"], path
    response = api.get("/receipts/public-key", HTTP_AUTHORIZATION="Bearer stale.token.here")
    assert response.status_code == 401


@pytest.mark.parametrize("token", [None, "Bearer stale.token.here"])
@pytest.mark.parametrize("path", ["/wallet/transfer", "/users/me", "/deposits", "/auth/login", "/tx/" + "0" * 64])
def test_an_unsupported_method_is_405_whoever_asks(api, path, token):
    headers = {"HTTP_AUTHORIZATION": token} if token else {}
    response = api.generic("TRACE", path, **headers)
    assert response.status_code == 405 and response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert "Allow" in response


def test_an_unsupported_method_is_405_for_a_user_without_permission_too(user_factory, client_for):
    response = client_for(user_factory()).generic("TRACE", "/deposits")
    assert response.status_code == 405 and response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_a_supported_method_still_needs_its_token(api):
    response = api.post("/wallet/transfer", {"to_user_id": 2, "amount": "1"}, format="json")
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("username", ["\x01bob", "bob\x85", "\u00a0bob\u00a0"])
def test_a_lookup_the_schema_allows_is_never_a_400(user_factory, client_for, schema, username):
    parameters = schema["paths"]["/users/lookup"]["get"]["parameters"]
    (param,) = [p for p in parameters if p["name"] == "username"]
    assert jsonschema.Draft4Validator(param["schema"]).is_valid(username)
    response = client_for(user_factory()).get("/users/lookup", {"username": username})
    assert response.status_code == 404 and response.json()["code"] == "USER_NOT_FOUND"


def test_a_lookup_of_blanks_is_schema_invalid(schema):
    parameters = schema["paths"]["/users/lookup"]["get"]["parameters"]
    (param,) = [p for p in parameters if p["name"] == "username"]
    assert not jsonschema.Draft4Validator(param["schema"]).is_valid("   ")


@pytest.mark.parametrize("code", ["ZZZ", "\x85odd", "USD\x00"])
def test_history_filtered_by_an_unknown_currency_is_404_like_every_currency_lookup(user_factory, client_for, code):
    user = user_factory()
    response = client_for(user).get(f"/transactions/{user.pk}", {"currency": code})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("code", ["ZZZ", "\x85odd", "USD\x00"])
def test_balance_history_filtered_by_a_code_no_currency_has_is_empty(user_factory, client_for, code):
    user = user_factory(balance=5)
    response = client_for(user).get("/audit/balance-history", {"currency": code})
    assert response.status_code == 200 and response.json()["data"] == []


@pytest.mark.parametrize(
    ("key", "accepted"), [("k-1", True), ("a b", True), ("x" * 255, True), ("   ", False), ("é", False)]
)
def test_the_idempotency_key_header_schema_is_validate_keys_rule(schema, key, accepted):
    from transactions.idempotency import validate_key

    (param,) = [p for p in schema["paths"]["/wallet/transfer"]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
    assert jsonschema.Draft4Validator(param["schema"]).is_valid(key) is accepted
    try:
        validate_key(key)
    except Exception:  # noqa: BLE001 - InvalidRequest, the refusal being compared
        assert not accepted
    else:
        assert accepted
