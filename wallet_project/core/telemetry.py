"""OpenTelemetry: the switch, and the trace context carried across the outbox.

Tracing is off unless the standard ``OTEL_*`` variables ask for export (``tracing_requested``). Off,
``configure`` imports nothing beyond the OpenTelemetry API and patches nothing: the current span is the
invalid span, ``inject_headers`` adds nothing and ``span_from_headers`` starts a non-recording span, both
a few attribute look-ups; ``traced_producer`` and ``server_binding_cursor`` hand back the plain psycopg and
confluent-kafka objects. On, ``configure`` installs the SDK, the OTLP exporter and the instrumentations
(``telemetry_sdk``), which also sets the two hooks below; docs/operating.md, "Tracing", lists the variables
and the spans.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind

_tracer = trace.get_tracer("wallet")
# Any of these, non-empty, asks for export (to the OTLP/HTTP endpoint it names).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_configured: bool | None = None
# Set by telemetry_sdk.install while tracing is on: the confluent-kafka instrumentation's producer proxy,
# and the psycopg instrumentation's server-binding cursor class for a connection.
producer_instrumentation: Callable[[Any], Any] | None = None
server_binding_instrumentation: Callable[[Any], Any] | None = None

P = TypeVar("P")


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces to be exported.

    ``OTEL_SDK_DISABLED=true`` turns tracing off whatever else is set; an explicit ``OTEL_TRACES_EXPORTER``
    decides next (``none`` is off, anything else on); otherwise an OTLP endpoint variable turns it on.
    Nothing set: off (unlike the SDK's own default of exporting to localhost).
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = [name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if exporters:
        return any(name != "none" for name in exporters)
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure() -> bool:
    """Set up tracing for this process if the environment asks for it; True when it is on.

    Called once where a process starts (manage.py, wsgi, asgi, gunicorn's ``post_fork``); later calls,
    and calls in a process forked from a configured one, return the first answer (the SDK's batch
    processor starts its thread again in a forked child by itself).
    """
    global _configured
    if _configured is None:
        on = tracing_requested()
        if on:
            from wallet_project.core import telemetry_sdk  # the SDK and instrumentations, only when on

            telemetry_sdk.install()
        _configured = on
    return _configured


def inject_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus the W3C ``traceparent`` (and ``tracestate``) of the current span, if one is recording."""
    carrier = dict(headers)
    propagate.inject(carrier)
    return carrier


@contextmanager
def context_from_headers(headers: Mapping[str, str] | None) -> Iterator[None]:
    """The trace context stored in ``headers`` (an outbox row's) current while the block runs; no span of its own."""
    token = context.attach(propagate.extract(dict(headers or {})))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def span_from_headers(
    name: str, headers: Mapping[str, str] | None, *, kind: SpanKind = SpanKind.CONSUMER
) -> Iterator[Span]:
    """A span whose parent is the context stored in ``headers`` (an outbox row's), current while the block runs."""
    with context_from_headers(headers), _tracer.start_as_current_span(name, kind=kind) as span:
        yield span


def traced_producer(producer: P) -> P:
    """``producer`` as the confluent-kafka instrumentation wraps it when tracing is on, else ``producer`` itself.

    The proxy's ``produce`` is a PRODUCER span of the current context that appends the span's ``traceparent``
    to the message headers; it passes ``poll``, ``flush`` and ``purge`` on and nothing else, so keep the plain
    producer for the rest (``list_topics``).
    """
    wrap = producer_instrumentation
    return producer if wrap is None else wrap(producer)


def server_binding_cursor(raw_connection: Any) -> Any:
    """A psycopg server-binding cursor on ``raw_connection``, traced like the ORM's when tracing is on.

    The ORM's cursors come from the connection's ``cursor_factory``, which the psycopg instrumentation
    replaces with a traced subclass of Django's (client-binding) cursor; a statement that wants a
    server-binding cursor asks here instead of calling ``psycopg.Cursor`` itself, so its SQL spans are not lost.
    """
    import psycopg

    make = server_binding_instrumentation
    cursor_class = psycopg.Cursor if make is None else make(raw_connection)
    return cursor_class(raw_connection)
