"""OpenTelemetry: the switch, and the trace context carried across the outbox.

Tracing is off unless the standard ``OTEL_*`` variables ask for export (``tracing_requested``). Off,
``configure`` imports nothing beyond the OpenTelemetry API and patches nothing: the current span is the
invalid span, ``inject_headers`` adds nothing and ``span_from_headers`` starts a non-recording span, both
a few attribute look-ups. On, ``configure`` installs the SDK, the OTLP exporter and the instrumentations
(``telemetry_sdk``); docs/operating.md, "Tracing", lists the variables and the spans.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind

_tracer = trace.get_tracer("wallet")
# Any of these, non-empty, asks for export (to the OTLP/HTTP endpoint it names).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_configured: bool | None = None


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
def span_from_headers(
    name: str, headers: Mapping[str, str] | None, *, kind: SpanKind = SpanKind.CONSUMER
) -> Iterator[Span]:
    """A span whose parent is the context stored in ``headers`` (an outbox row's), current while the block runs."""
    parent = propagate.extract(dict(headers or {}))
    token = context.attach(parent)
    try:
        with _tracer.start_as_current_span(name, kind=kind) as span:
            yield span
    finally:
        context.detach(token)


def server_binding_cursor(raw_connection: Any) -> Any:
    """A psycopg server-binding cursor on ``raw_connection``, traced like the ORM's when tracing is on.

    The ORM's cursors come from the connection's ``cursor_factory``, which the psycopg integration
    replaces; a statement that wants a server-binding cursor asks here instead of calling
    ``psycopg.Cursor`` itself, so its SQL spans are not lost.
    """
    import psycopg

    cursor_class = getattr(raw_connection.cursor_factory, "server_binding", psycopg.Cursor)
    return cursor_class(raw_connection)
