"""OpenTelemetry context carried across the outbox: into an event row's headers, out of them in a worker.

Only the OpenTelemetry API is used here. With no SDK configured (the default: no ``OTEL_*`` variables),
the current span is the invalid span, ``inject_headers`` adds nothing and ``span_from_headers`` starts a
non-recording span: both cost a few attribute look-ups.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context, propagate, trace
from opentelemetry.trace import Span, SpanKind

_tracer = trace.get_tracer("wallet")


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
