"""The OpenTelemetry SDK, the OTLP exporter and the instrumentations: imported only when tracing is on.

Everything is read from the standard ``OTEL_*`` variables by the SDK and the instrumentations themselves
(sampler, resource, batch processor, exporter endpoint, headers, timeout, excluded URLs); this module only
chooses the exporters and switches the instrumentations on.

SQL spans come from OpenTelemetry's DB-API integration the way its psycopg instrumentation does it (the
traced class replaces the ``cursor_factory`` Django passes to ``psycopg.connect``, so the connection
stays a real psycopg connection). The psycopg package itself is not used: no release of it matches
SDK 1.45.2 (its latest, 0.66b1, pins ``opentelemetry-instrumentation==0.66b1``, the SDK needs the
0.66b2 semantic conventions); the DB-API package it is built on does.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

import psycopg
from opentelemetry import trace
from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

DEFAULT_SERVICE_NAME = "wallet-api"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_PSYCOPG_ATTRIBUTES = {"database": "info.dbname", "port": "info.port", "host": "info.host", "user": "info.user"}


class TelemetryConfigurationError(RuntimeError):
    """The OTEL_* variables ask for something this deployment cannot do: refuse to start."""


def install(tracer_provider: TracerProvider | None = None) -> TracerProvider:
    """Install ``tracer_provider`` (by default one built from the environment) and the instrumentations.

    Without an argument the provider becomes the global one; tests pass their own and keep the global.
    """
    if tracer_provider is None:
        tracer_provider = TracerProvider(resource=resource())
        for exporter in exporters():
            tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(tracer_provider)
    DjangoInstrumentor().instrument(tracer_provider=tracer_provider)
    dbapi.wrap_connect(
        __name__,
        psycopg,  # type: ignore[arg-type]  # a module, as the psycopg instrumentation passes it
        "connect",
        "postgresql",
        _PSYCOPG_ATTRIBUTES,
        tracer_provider=tracer_provider,
        db_api_integration_factory=_PsycopgIntegration,
    )
    HTTPXClientInstrumentor().instrument(tracer_provider=tracer_provider)
    return tracer_provider


def uninstall() -> None:
    """Undo ``install``'s patches (tests); connections opened meanwhile keep their traced cursors."""
    HTTPXClientInstrumentor().uninstrument()
    dbapi.unwrap_connect(psycopg, "connect")  # type: ignore[arg-type]
    DjangoInstrumentor().uninstrument()


def resource() -> Resource:
    """The resource from ``OTEL_RESOURCE_ATTRIBUTES`` / ``OTEL_SERVICE_NAME``; the service defaults to wallet-api."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return detected


def exporters() -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (default ``otlp``), by the SDK's entry-point names.

    ``otlp`` means OTLP over HTTP/protobuf, the one OTLP transport installed; asking for gRPC, or for an
    exporter that is not installed, stops the process instead of silently exporting nothing.
    """
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
    ).strip()
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    available = {point.name: point for point in entry_points(group=_EXPORTER_GROUP)}
    chosen: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            if protocol not in ("", "http/protobuf"):
                raise TelemetryConfigurationError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only http/protobuf is installed"
                )
            name = "otlp_proto_http"
        if name not in available:
            raise TelemetryConfigurationError(
                f"OTEL_TRACES_EXPORTER names {name!r}; installed: {', '.join(sorted(available)) or 'none'}"
            )
        chosen.append(available[name].load()())
    return chosen


def _traced_cursor_class(base: type[psycopg.Cursor[Any]], tracer: dbapi.CursorTracer) -> type[psycopg.Cursor[Any]]:
    # A statement gets a span only under another span (a request, a produce, a worker's step): the
    # pollers' idle queries every second would otherwise each be a trace of their own.
    class TracedCursor(base):  # type: ignore[valid-type, misc]  # a subclass of whichever class Django asked for
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return super().execute(*args, **kwargs)
            return tracer.traced_execution(self, super().execute, *args, **kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            if not trace.get_current_span().is_recording():
                return super().executemany(*args, **kwargs)
            return tracer.traced_execution(self, super().executemany, *args, **kwargs)

    TracedCursor.__name__ = TracedCursor.__qualname__ = f"Traced{base.__name__}"
    return TracedCursor


class _PsycopgIntegration(dbapi.DatabaseApiIntegration):
    def wrapped_connection(self, connect_method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tracer: dbapi.CursorTracer = dbapi.CursorTracer(self)
        factory = _traced_cursor_class(kwargs.pop("cursor_factory", None) or psycopg.Cursor, tracer)
        # What telemetry.server_binding_cursor builds for the prepared statements (transactions/db.py).
        factory.server_binding = _traced_cursor_class(psycopg.Cursor, tracer)  # type: ignore[attr-defined]
        connection = connect_method(*args, cursor_factory=factory, **kwargs)
        self.get_connection_attributes(connection)
        return connection
