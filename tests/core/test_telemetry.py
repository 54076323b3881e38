"""The OpenTelemetry switch and set-up (wallet_project/core/telemetry*.py), and the webhook request's span."""

import http.server
import json
import logging
import threading

import httpx
import pytest
from opentelemetry.trace import SpanKind

from tests.otel import hex_parent, hex_span, hex_trace, parse_traceparent, traceparent
from wallet_project.core import telemetry_sdk
from wallet_project.core.logging import JsonFormatter
from wallet_project.core.telemetry import span_from_headers, tracing_requested
from wallet_project.core.tracing import TraceIdLogFilter

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "wallet-api", "OTEL_RESOURCE_ATTRIBUTES": "env=prod"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ],
)
def test_tracing_is_on_only_when_the_otel_variables_ask_for_export(environ, on):
    assert tracing_requested(environ) is on


def test_the_exporters_follow_otel_traces_exporter_and_refuse_what_is_not_installed(monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert [type(e) for e in telemetry_sdk.exporters()] == [OTLPSpanExporter]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,console")
    assert [type(e) for e in telemetry_sdk.exporters()] == [OTLPSpanExporter, ConsoleSpanExporter]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(telemetry_sdk.TelemetryConfigurationError, match="zipkin"):
        telemetry_sdk.exporters()
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(telemetry_sdk.TelemetryConfigurationError, match="grpc"):
        telemetry_sdk.exporters()


def test_the_service_is_wallet_api_unless_the_environment_names_it(monkeypatch):
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert telemetry_sdk.resource().attributes["service.name"] == "wallet-api"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,deployment.environment=prod")
    assert telemetry_sdk.resource().attributes["service.name"] == "from-attributes"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "wallet-relay")
    assert telemetry_sdk.resource().attributes["service.name"] == "wallet-relay"
    assert telemetry_sdk.resource().attributes["deployment.environment"] == "prod"


@pytest.fixture
def receiver():
    """A loopback HTTP server standing in for a webhook endpoint: it keeps each request's traceparent."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.headers.get("traceparent", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 - http.server's signature
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    finally:
        server.shutdown()
        server.server_close()


def test_an_httpx_request_under_an_outbox_rows_context_is_a_client_span_that_sends_its_traceparent(spans, receiver):
    url, seen = receiver
    row_headers = {"event_id": "e1", "traceparent": traceparent(TRACE, PARENT)}

    with span_from_headers("deliver webhook", row_headers, kind=SpanKind.PRODUCER) as deliver:
        with httpx.Client() as client:
            assert client.post(url, json={"event": "tx.created"}).status_code == 204

    [client_span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert hex_trace(client_span) == TRACE
    assert hex_parent(client_span) == format(deliver.get_span_context().span_id, "016x")
    assert [parse_traceparent(value) for value in seen] == [(TRACE, hex_span(client_span))]


def test_an_httpx_request_sends_no_traceparent_when_tracing_is_off(receiver):
    url, seen = receiver
    with span_from_headers("deliver webhook", {"traceparent": traceparent(TRACE, PARENT)}, kind=SpanKind.PRODUCER):
        httpx.post(url, json={})
    assert seen == [""]


def test_log_lines_under_a_span_carry_its_span_id(spans):
    record = logging.LogRecord("wallet", logging.INFO, __file__, 1, "hello", None, None)
    with span_from_headers("work", {"traceparent": traceparent(TRACE, PARENT)}) as span:
        TraceIdLogFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    assert line["otel_trace_id"] == TRACE  # no request trace id here: the OpenTelemetry one is given apart

    outside = logging.LogRecord("wallet", logging.INFO, __file__, 1, "hello", None, None)
    TraceIdLogFilter().filter(outside)
    assert "span_id" not in json.loads(JsonFormatter().format(outside))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the spans fixture closes the connection
def test_statements_outside_any_span_make_no_trace_and_inside_one_are_its_children(spans):
    """A worker's idle poll (and a health check) is a parentless CLIENT span: not sampled."""
    from django.db import connection
    from opentelemetry import trace

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.connection.execute("SELECT 2")  # a raw psycopg statement, as Django's health check makes
    assert spans.get_finished_spans() == ()

    with trace.get_tracer("test").start_as_current_span("work") as work:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 3")
    [statement] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert statement.attributes["db.statement"] == "SELECT 3"
    assert statement.parent.span_id == work.get_span_context().span_id
