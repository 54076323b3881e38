"""One error envelope everywhere: application/problem+json with the seed's fields and a trace id."""

import re

import pytest

from tests.conftest import make_cashier

pytestmark = pytest.mark.django_db

ENVELOPE = {"type", "title", "status", "detail", "error", "code", "trace_id"}
LEAKS = re.compile(r"Traceback|File \"|SELECT |INSERT |psycopg|django\.|\.py\b|wallets_wallet", re.IGNORECASE)


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert ENVELOPE <= set(body), body
    assert body["status"] == status and body["code"] == code
    assert body["error"] and body["detail"] and body["title"]
    assert body["trace_id"] == response["X-Trace-ID"]
    assert not LEAKS.search(response.content.decode()), response.content
    return body


@pytest.mark.parametrize("path", ["/nope", "/wallet", "/wallet/1/unknown", "/transactions/", "/users/", "/api/v2"])
def test_unknown_paths_are_404_in_the_envelope(api, path):
    assert_problem(api.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/wallet/transfer"),
        ("delete", "/users"),
        ("put", "/currencies"),
        ("post", "/currencies/1"),
        ("get", "/auth/login"),
        ("patch", "/deposits"),
        ("post", "/health"),
        ("delete", "/tx/" + "0" * 64),
    ],
)
def test_wrong_methods_are_405_in_the_envelope(user_factory, client_for, method, path):
    client = client_for(make_cashier())
    assert_problem(getattr(client, method)(path), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize("body", ['{"to_user_id": 1,', "{'single': 'quotes'}", "\xff\xfe", "[1, 2"])
def test_malformed_json_is_400_invalid_request(user_factory, client_for, body):
    client = client_for(user_factory())
    response = client.post("/wallet/transfer", body.encode("latin-1"), content_type="application/json")
    assert_problem(response, 400, "INVALID_REQUEST")


def test_malformed_json_on_a_public_endpoint(api):
    assert_problem(api.post("/users", b"{nope", content_type="application/json"), 400, "INVALID_REQUEST")


def test_an_unsupported_media_type_is_415(api):
    response = api.post("/auth/login", b"<xml/>", content_type="application/xml")
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_validation_errors_carry_field_errors(api):
    body = assert_problem(api.post("/users", {"username": "x"}, format="json"), 400, "INVALID_REQUEST")
    assert set(body["errors"]) == {"username", "email", "password"}
    assert all(isinstance(msgs, list) and msgs for msgs in body["errors"].values())


def test_domain_errors_have_no_errors_member(user_factory, client_for):
    alice, bob = user_factory(balance=1), user_factory()
    response = client_for(alice).post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "5"}, format="json")
    body = assert_problem(response, 400, "INSUFFICIENT_BALANCE")
    assert "errors" not in body


def test_401_and_403_are_in_the_envelope(user_factory, client_for, api):
    unauthorized = api.get("/users/me")
    assert_problem(unauthorized, 401, "UNAUTHORIZED")
    assert unauthorized["WWW-Authenticate"].startswith("Bearer")
    alice, bob = user_factory(), user_factory()
    assert_problem(client_for(alice).get(f"/wallet/{bob.pk}"), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "incoming",
    [
        "abc12345-trace",
        "0123456789abcdef0123456789abcdef",
        "req:2024.06.01_x-1",
        "A" * 128,
        "abc-123",
        "a",
        "-leading",
        "<script>alert(1)</script>",  # escaped in the JSON body; a header cannot be split without CR/LF
        "!\"#$%&'()*+,/;<=>?@[\\]^`{|}~",
    ],
)
def test_a_well_formed_trace_id_is_echoed_on_success_and_error(api, incoming):
    ok = api.get("/currencies", HTTP_X_TRACE_ID=incoming)
    missing = api.get("/nope", HTTP_X_TRACE_ID=incoming)

    assert ok["X-Trace-ID"] == incoming
    assert missing["X-Trace-ID"] == incoming and missing.json()["trace_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["has spaces in it", "x" * 500, "x" * 129, "", " ", "tab\there", "del\x7f", "line\r\nbreak", "ünïcode-trace"],
)
def test_a_malformed_trace_id_is_replaced(api, incoming):
    response = api.get("/nope", HTTP_X_TRACE_ID=incoming)

    generated = response["X-Trace-ID"]
    assert generated != incoming and re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.json()["trace_id"] == generated


def test_every_response_gets_a_fresh_trace_id(api):
    first, second = api.get("/currencies")["X-Trace-ID"], api.get("/currencies")["X-Trace-ID"]
    assert first != second


def test_success_responses_are_plain_json(api):
    response = api.get("/currencies")
    assert response["Content-Type"] == "application/json"


def test_health_touches_nothing_and_answers_ok(api, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_a_body_over_max_body_bytes_is_413_not_500(api, settings):
    body = '{"username": "' + "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + '"}'
    assert_problem(api.post("/users", body, content_type="application/json"), 413, "PAYLOAD_TOO_LARGE")
