"""The OpenTelemetry SDK, the OTLP exporter and the instrumentations: imported only when tracing is on.

Everything is read from the standard ``OTEL_*`` variables by the SDK and the instrumentations themselves
(sampler, resource, batch processor, exporter endpoint, headers, timeout, excluded URLs); this module only
chooses the exporters and switches the instrumentations on:

- Django (the request span), psycopg (SQL spans: it replaces the ``cursor_factory`` Django passes to
  ``psycopg.connect`` with a traced subclass) and httpx (the webhook request) patch globally;
- confluent-kafka wraps the producers the outbox code asks for (``telemetry.traced_producer``, its
  ``instrument_producer`` proxy): its global mode would replace ``confluent_kafka.Producer``/``Consumer``
  after the modules that import them, and its consumer spans start a trace of their own per poll
  (linked, not a child), where ``consume_events`` continues the message's trace itself.

A CLIENT span without a parent is not sampled (``NoRootClientSpans``): the workers' idle polls, the
connection health checks and the publisher thread's bookkeeping would otherwise each be a trace of one SQL
span, every second.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

import psycopg
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation import confluent_kafka as kafka_instrumentation
from opentelemetry.instrumentation import psycopg as psycopg_instrumentation
from opentelemetry.instrumentation.confluent_kafka import ProxiedProducer
from opentelemetry.instrumentation.confluent_kafka.version import __version__ as kafka_instrumentation_version
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.psycopg.version import __version__ as psycopg_instrumentation_version
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from wallet_project.core import telemetry

DEFAULT_SERVICE_NAME = "wallet-api"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_SERVER_BINDING_ATTRIBUTE = "_wallet_server_binding_cursor"
KAFKA_SCHEMA_URL = "https://opentelemetry.io/schemas/1.11.0"  # as ConfluentKafkaInstrumentor names its tracer


class TelemetryConfigurationError(RuntimeError):
    """The OTEL_* variables ask for something this deployment cannot do: refuse to start."""


class NoRootClientSpans(Sampler):
    """Drops a CLIENT span that has no parent (a statement or a request made outside any operation);
    every other span is decided by ``delegate``, the sampler ``OTEL_TRACES_SAMPLER`` configures."""

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoRootClientSpans{{{self.delegate.get_description()}}}"


def tracer_provider() -> TracerProvider:
    """A provider with the resource and the sampler the environment configures (no span processor yet)."""
    provider = TracerProvider(resource=resource())
    provider.sampler = NoRootClientSpans(provider.sampler)  # before any tracer is made: each keeps its sampler
    return provider


def install(provider: TracerProvider | None = None) -> TracerProvider:
    """Install ``provider`` (by default one built from the environment) and the instrumentations.

    Without an argument the provider becomes the global one, exporting as ``OTEL_TRACES_EXPORTER`` says;
    tests pass their own and keep the global.
    """
    if provider is None:
        provider = tracer_provider()
        for exporter in exporters():
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    chosen = provider
    # ConfluentKafkaInstrumentor.instrument_producer, with its tracer made once (20 us) instead of per produce.
    kafka_tracer = trace.get_tracer(
        kafka_instrumentation.__name__,
        kafka_instrumentation_version,
        tracer_provider=provider,
        schema_url=KAFKA_SCHEMA_URL,
    )

    def traced_producer(producer: Any) -> Any:
        return ProxiedProducer(producer, kafka_tracer)

    def server_binding_cursor_class(raw_connection: psycopg.Connection[Any]) -> type[psycopg.Cursor[Any]]:
        return _server_binding_cursor_class(raw_connection, chosen)

    telemetry.producer_instrumentation = traced_producer
    telemetry.server_binding_instrumentation = server_binding_cursor_class
    return provider


def uninstall() -> None:
    """Undo ``install``'s patches (tests); connections opened meanwhile keep their traced cursors."""
    telemetry.producer_instrumentation = None
    telemetry.server_binding_instrumentation = None
    HTTPXClientInstrumentor().uninstrument()
    PsycopgInstrumentor().uninstrument()
    DjangoInstrumentor().uninstrument()


def _server_binding_cursor_class(
    raw_connection: psycopg.Connection[Any], provider: TracerProvider
) -> type[psycopg.Cursor[Any]]:
    """psycopg's server-binding cursor, traced by the psycopg instrumentation; made once per connection.

    The instrumentation traces what a connection's ``cursor_factory`` makes (for Django, a client-binding
    cursor); this is its factory for a connection instrumented on its own (``instrument_connection``) with
    psycopg's own cursor as the base, and the connection's attributes (database, host, port, user).
    """
    made = getattr(raw_connection, _SERVER_BINDING_ATTRIBUTE, None)
    if made is None:
        integration = psycopg_instrumentation.DatabaseApiIntegration(
            psycopg_instrumentation.__name__,
            PsycopgInstrumentor._DATABASE_SYSTEM,
            connection_attributes=PsycopgInstrumentor._CONNECTION_ATTRIBUTES,
            version=psycopg_instrumentation_version,
            tracer_provider=provider,
            connect_module=psycopg,  # type: ignore[arg-type]  # a module, as the instrumentation passes it
        )
        integration.get_connection_attributes(raw_connection)
        made = psycopg_instrumentation._new_cursor_factory(db_api=integration, base_factory=psycopg.Cursor)
        setattr(raw_connection, _SERVER_BINDING_ATTRIBUTE, made)
    return made


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
