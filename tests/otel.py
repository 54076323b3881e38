"""OpenTelemetry in tests: spans in memory in this process, and a small OTLP/HTTP receiver for other processes.

In-process, the global tracer provider is set once to a switch (``SWITCH``) that delegates to an SDK
provider only while the ``spans`` fixture runs: a global provider can be set only once per process, and
the tests after a tracing test must see tracing off again (no traceparent in their outbox rows).
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from wallet_project.core import telemetry_sdk

ROOT = Path(__file__).resolve().parents[1]


# --- in this process ----------------------------------------------------------------------------------


class _SwitchTracer(trace.Tracer):
    def __init__(self, switch: SwitchTracerProvider, args: tuple, kwargs: dict) -> None:
        self._switch, self._args, self._kwargs = switch, args, kwargs

    def _real(self) -> trace.Tracer:
        return self._switch.target.get_tracer(*self._args, **self._kwargs)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._real().start_span(*args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:
        with self._real().start_as_current_span(*args, **kwargs) as span:
            yield span


class SwitchTracerProvider(trace.TracerProvider):
    """The process's global provider in tests: no-op until ``target`` is an SDK provider."""

    def __init__(self) -> None:
        self.target: trace.TracerProvider = trace.NoOpTracerProvider()

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _SwitchTracer(self, args, kwargs)


SWITCH = SwitchTracerProvider()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test, as ``configure`` sets it up, with the finished spans in memory.

    Database connections are closed before and after: the psycopg instrumentation traces connections
    opened while it is installed.
    """
    if trace.get_tracer_provider() is not SWITCH:
        trace.set_tracer_provider(SWITCH)
    assert trace.get_tracer_provider() is SWITCH, "another global tracer provider was set in this process"
    exporter = InMemorySpanExporter()
    provider = telemetry_sdk.tracer_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    connection.close()
    SWITCH.target = provider
    telemetry_sdk.install(provider)
    try:
        yield exporter
    finally:
        telemetry_sdk.uninstall()
        SWITCH.target = trace.NoOpTracerProvider()
        connection.close()
        provider.shutdown()


def hex_trace(span: ReadableSpan) -> str:
    return trace.format_trace_id(span.context.trace_id)


def hex_span(span: ReadableSpan) -> str:
    return trace.format_span_id(span.context.span_id)


def hex_parent(span: ReadableSpan) -> str | None:
    return trace.format_span_id(span.parent.span_id) if span.parent is not None else None


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def parse_traceparent(value: str) -> tuple[str, str]:
    """(trace id, parent span id) of a W3C traceparent."""
    version, trace_id, span_id, _flags = value.split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16, value
    return trace_id, span_id


# --- in other processes: an OTLP/HTTP receiver ---------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, ...
    attributes: dict[str, Any]


@dataclass
class OtlpReceiver:
    """``POST /v1/traces`` on loopback, decoded as ``ExportTraceServiceRequest`` (protobuf, maybe gzip)."""

    server: http.server.ThreadingHTTPServer
    received: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def spans(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [span for span in self.received if span.trace_id == trace_id]

    def wait_for(self, trace_id: str, predicate, *, timeout: float = 20.0) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.spans(trace_id)
            if predicate(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def _store(self, body: bytes) -> None:
        from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name", "")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=ProtoSpan.SpanKind.Name(span.kind),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.received.extend(spans)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@contextlib.contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver: OtlpReceiver

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            receiver._store(body)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = OtlpReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def tracing_env(receiver: OtlpReceiver, service: str, **extra: str) -> dict[str, str]:
    """The OTEL_* variables that point a process at ``receiver``, exporting within a fraction of a second."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


@contextlib.contextmanager
def worker(env: dict[str, str], *command: str) -> Iterator[subprocess.Popen]:
    """``manage.py <command>`` in a child process (a long-running worker); SIGTERM, then SIGKILL, afterwards.

    Its spans are exported when it exits (the SDK flushes at exit), or every ``OTEL_BSP_SCHEDULE_DELAY``.
    """
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def clean_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without any OTEL_* variable."""
    return {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("OTEL_")}


def names(spans: Sequence[Any]) -> list[str]:
    return sorted(span.name for span in spans)
