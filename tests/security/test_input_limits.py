"""Hostile input never gets a 500 and never moves money: huge, deep, long, odd-typed or oddly encoded bodies."""

import json
from decimal import Decimal

import pytest
from django.conf import settings

from tests.conftest import make_cashier
from tests.ledger import balance, ledger_state_with_keys

pytestmark = pytest.mark.django_db

POSTS = [
    "/users",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/users/me/password",
    "/wallets",
    "/wallet/transfer",
    "/deposits",
    "/withdrawals",
]


@pytest.fixture
def alice(user_factory):
    return user_factory(balance=100)


@pytest.fixture
def bob(user_factory):
    return user_factory()


@pytest.fixture
def staff_client(user_factory, client_for):
    return client_for(make_cashier())


def _problem(response, status: int, *codes: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] in codes and body["trace_id"]
    text = json.dumps(body)
    for leak in ("Traceback", "sys.set_int_max_str_digits", "psycopg", "SELECT ", "settings."):
        assert leak not in text
    return body


@pytest.mark.parametrize("path", POSTS)
def test_a_body_over_max_body_bytes_is_413_in_the_envelope_on_every_post(path, staff_client):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert limit == 64 * 1024  # MAX_BODY_BYTES default
    body = json.dumps({"memo": "x" * limit})
    before = ledger_state_with_keys()
    response = staff_client.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big")
    _problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert ledger_state_with_keys() == before


def test_a_body_just_under_the_limit_is_read_and_judged_on_its_content(alice, bob, client_for):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    padding = limit - len(json.dumps({"to_user_id": bob.pk, "amount": "1", "memo": ""}))
    body = json.dumps({"to_user_id": bob.pk, "amount": "1", "memo": "x" * padding})
    assert len(body) == limit
    response = client_for(alice).post("/wallet/transfer", body, content_type="application/json")
    assert _problem(response, 400, "INVALID_REQUEST")["errors"]["memo"]
    assert balance(alice) == 100


def test_a_form_body_is_a_clean_415_however_many_fields(alice, client_for):
    # JSON only: form bodies are not parsed at all (they skipped the JSON parser's rules).
    body = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client_for(alice).post(
        "/wallet/transfer", body, content_type="application/x-www-form-urlencoded", HTTP_IDEMPOTENCY_KEY="form"
    )
    _problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_a_multipart_body_with_a_file_is_refused_cleanly_with_an_idempotency_key(alice, bob, client_for):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_for(alice).post(
        "/wallet/transfer",
        {"to_user_id": bob.pk, "amount": "1", "file": SimpleUploadedFile("a.txt", b"hello")},
        format="multipart",
        HTTP_IDEMPOTENCY_KEY="multipart",
    )
    _problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert balance(alice) == 100


@pytest.mark.parametrize("depth", [33, 900, 1_000, 5_000, 30_000])
@pytest.mark.parametrize("where", ["body", "amount", "memo"])
def test_deeply_nested_json_is_a_400_not_a_500(depth, where, alice, bob, client_for):
    nested = "[" * depth + "]" * depth
    if where == "body":
        body = nested
    else:
        body = json.dumps({"to_user_id": bob.pk, "amount": "1", where: "@"}).replace('"@"', nested)
    before = ledger_state_with_keys()
    response = client_for(alice).post(
        "/wallet/transfer", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"deep-{where}-{depth}"
    )
    _problem(response, 400, "INVALID_REQUEST")
    assert ledger_state_with_keys() == before


@pytest.mark.parametrize("path", ["/users", "/auth/login", "/wallets"])
def test_deep_nesting_is_refused_on_the_other_endpoints_too(path, alice, client_for):
    response = client_for(alice).post(path, "{" * 2000 + "}" * 2000, content_type="application/json")
    _problem(response, 400, "INVALID_REQUEST")


BIG = "9" * 10_000
HOSTILE_AMOUNTS = {
    "10,000-digit JSON integer": (BIG, ("INVALID_REQUEST", "AMOUNT_EXCEEDS_LIMIT")),
    "10,000-digit string": (json.dumps(BIG), ("AMOUNT_EXCEEDS_LIMIT",)),
    "10,000 decimal places": ("0." + "0" * 9_999 + "1", ("INVALID_DECIMALS",)),
    "10,000 places as a string": (json.dumps("0." + "0" * 9_999 + "1"), ("INVALID_DECIMALS",)),
    "10,000-digit mantissa": ("1." + "0" * 9_998 + "1", ("INVALID_DECIMALS",)),
    "huge exponent": ("1e999999999", ("AMOUNT_EXCEEDS_LIMIT",)),
    "tiny exponent": ("1e-999999999", ("INVALID_DECIMALS",)),
    "negative huge": ("-" + BIG, ("AMOUNT_NOT_POSITIVE", "INVALID_REQUEST")),
    "float artefact": ("0.30000000000000004", ("INVALID_DECIMALS",)),
    "NaN": ("NaN", ("INVALID_REQUEST",)),
    "Infinity": ("-Infinity", ("INVALID_REQUEST",)),
    "string NaN": ('"NaN"', ("INVALID_REQUEST",)),
    "string exponent": ('"1e2"', ("INVALID_REQUEST",)),
    "arabic-indic digits": ('"\\u0661\\u0662"', ("INVALID_REQUEST",)),
    "fullwidth digits": ('"\\uff11"', ("INVALID_REQUEST",)),
    "boolean": ("true", ("INVALID_REQUEST",)),
    "object": ('{"value": 1}', ("INVALID_REQUEST",)),
}


@pytest.mark.parametrize("name", HOSTILE_AMOUNTS)
def test_hostile_amounts_are_refused_with_their_code_and_move_nothing(name, alice, bob, client_for):
    literal, codes = HOSTILE_AMOUNTS[name]
    body = json.dumps({"to_user_id": bob.pk, "currency": "USDT", "amount": "@"}).replace('"@"', literal)
    before = ledger_state_with_keys()
    response = client_for(alice).post("/wallet/transfer", body, content_type="application/json")
    _problem(response, 400, *codes)
    assert ledger_state_with_keys() == before


@pytest.mark.parametrize("field", ["to_user_id", "currency_id", "from_user_id"])
@pytest.mark.parametrize("literal", [BIG, "-" + BIG, "1e400", "1.5", '"' + BIG + '"', "true", "[1]"])
def test_hostile_ids_are_refused(field, literal, alice, bob, client_for):
    fields = {"to_user_id": bob.pk, "amount": "1", field: "@"}
    body = json.dumps(fields).replace('"@"', literal)
    response = client_for(alice).post("/wallet/transfer", body, content_type="application/json")
    _problem(response, 400, "INVALID_REQUEST")
    assert balance(alice) == 100


@pytest.mark.parametrize(
    ("literal", "currency", "expected"),
    [
        ("0.1", "USDT", "0.1"),
        ('"0.1"', "USDT", "0.1"),
        ("0.000001", "USDT", "0.000001"),
        ("1e-6", "USDT", "0.000001"),
        ("12.340000000", "USDT", "12.34"),
        ("0.12345678", "BTC", "0.12345678"),
        ('"0.00000001"', "BTC", "0.00000001"),
    ],
)
def test_exact_amounts_are_moved_exactly(literal, currency, expected, user_factory, client_for):
    from currencies.models import Currency
    from transactions.services import deposit_create

    alice, bob = user_factory(), user_factory()
    deposit_create(user_id=alice.pk, currency=Currency.objects.get(code=currency), amount=Decimal(100))
    body = json.dumps({"to_user_id": bob.pk, "currency": currency, "amount": "@"}).replace('"@"', literal)
    response = client_for(alice).post("/wallet/transfer", body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert Decimal(response.json()["amount"]) == Decimal(expected)
    assert balance(bob, currency) == Decimal(expected)
    assert balance(alice, currency) == 100 - Decimal(expected)


@pytest.mark.parametrize("literal", ["0.0000001", '"0.0000001"', "1.0000005", "0.30000000000000004", "1e-7"], ids=str)
def test_too_many_places_are_refused_never_rounded(literal, alice, bob, client_for):
    body = json.dumps({"to_user_id": bob.pk, "currency": "USDT", "amount": "@"}).replace('"@"', literal)
    response = client_for(alice).post("/wallet/transfer", body, content_type="application/json")
    _problem(response, 400, "INVALID_DECIMALS")
    assert balance(alice) == 100 and balance(bob) == 0


@pytest.mark.parametrize("path", ["/transactions/{me}", "/audit/balance-history"])
@pytest.mark.parametrize(
    ("query", "ok"),
    [
        ("page_size=100", True),
        ("page_size=101", False),
        ("page_size=0", False),
        ("page_size=-1", False),
        ("page_size=abc", False),
        ("page_size=1e2", False),
        ("page_size=" + "9" * 5000, False),
        ("page=0", False),
        ("page=99999999999999999999", False),
        ("page=%EF%BC%91", False),
    ],
)
def test_page_size_is_capped_and_malformed_paging_is_a_400(path, query, ok, alice, client_for):
    response = client_for(alice).get(f"{path.format(me=alice.pk)}?{query}")
    if ok:
        assert response.status_code == 200
        assert response.json()["pagination"]["page_size"] == 100
    else:
        _problem(response, 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    "path",
    [
        "/wallet/{me}?currency_id=" + "9" * 5000,
        "/wallet/{me}?currency=" + "X" * 5000,
        "/wallet/{me}/stats?window=" + "9" * 5000 + "d",
        "/wallet/{me}/stats?window=99999d",
        "/transactions/{me}?created_after=" + "9" * 5000,
        "/transactions/{me}?created_after=2024-13-45T99:99:99",
        "/transactions/{me}?currency=" + "\u0661" * 100,
        "/audit/balance-history?wallet_id=" + "9" * 5000,
        "/audit/balance-history?created_before=%00",
        "/users/lookup?username=" + "a" * 5000,
    ],
)
def test_hostile_query_parameters_are_4xx_not_500(path, alice, client_for):
    response = client_for(alice).get(path.format(me=alice.pk))
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize(
    "path",
    ["/wallet/" + "9" * 30, "/transactions/" + "9" * 19, "/tx/" + "a" * 5000, "/currencies/" + "9" * 19, "/wallet/-1"],
)
def test_hostile_path_ids_are_404_not_500(path, alice, client_for):
    response = client_for(alice).get(path)
    assert response.status_code in (403, 404), response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
