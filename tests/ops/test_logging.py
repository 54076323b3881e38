import io
import json
import logging

import pytest

from wallet_project.core.logging import JsonFormatter
from wallet_project.core.tracing import TraceIdLogFilter

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log():
    """The production handler setup (JSON formatter + trace filter) on the root logger, at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceIdLogFilter())
    root = logging.getLogger()
    access = logging.getLogger("wallet.access")
    old_level = access.level
    root.addHandler(handler)
    access.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    root.removeHandler(handler)
    access.setLevel(old_level)


def test_every_log_line_of_a_failing_request_carries_its_trace_id(json_log, api, monkeypatch):
    def broken():
        raise RuntimeError("connection pool exhausted at 0xdeadbeef")

    monkeypatch.setattr("currencies.api.views.currency_list_active", broken)
    response = api.get("/currencies", HTTP_X_TRACE_ID="ops-trace-0001")

    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "INTERNAL_ERROR"
    assert body["trace_id"] == response["X-Trace-ID"] == "ops-trace-0001"
    assert "deadbeef" not in response.content.decode()  # internals stay in the log

    lines = json_log()
    error = next(line for line in lines if line["logger"] == "wallet.errors")
    access = next(line for line in lines if line["logger"] == "wallet.access")
    assert {line["trace_id"] for line in lines} == {"ops-trace-0001"}
    assert "deadbeef" in error["exc"]
    assert access["message"] == "request"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/currencies", 500)
    assert isinstance(access["duration_ms"], float | int) and access["duration_ms"] >= 0
    assert access["level"] == "INFO" and access["ts"].endswith("+00:00")


def test_a_generated_trace_id_matches_the_header_the_body_and_the_log(json_log, api):
    response = api.get("/currencies/999999", HTTP_X_TRACE_ID="not well formed!")
    trace_id = response["X-Trace-ID"]
    assert trace_id != "not well formed!" and len(trace_id) >= 8
    assert response.json()["trace_id"] == trace_id
    (access,) = [line for line in json_log() if line["logger"] == "wallet.access"]
    assert access["trace_id"] == trace_id and access["status"] == 404


def test_the_access_line_names_the_authenticated_user(json_log, user_factory, client_for):
    user = user_factory()
    response = client_for(user).get("/wallets")
    (access,) = [line for line in json_log() if line["logger"] == "wallet.access"]
    assert access["user_id"] == user.pk
    assert access["trace_id"] == response["X-Trace-ID"]


def test_two_requests_never_share_a_trace_id(json_log, api):
    first, second = api.get("/currencies"), api.get("/currencies")
    assert first["X-Trace-ID"] != second["X-Trace-ID"]
    logged = [line["trace_id"] for line in json_log() if line["logger"] == "wallet.access"]
    assert logged == [first["X-Trace-ID"], second["X-Trace-ID"]]
