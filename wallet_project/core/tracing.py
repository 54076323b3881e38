"""Request tracing: every request carries a trace id from the edge to logs, errors and Kafka headers.

The trace id is the client's ``X-Trace-ID`` when it sends a well-formed one; otherwise, with
OpenTelemetry on, the request span's trace id (32 hex digits, the id a trace backend shows), and with
it off a random one of the same form. Log records made under a span also carry its ``span_id`` (and
``otel_trace_id`` when the client's own id differs from the OpenTelemetry trace id).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace
from opentelemetry.trace import format_span_id, format_trace_id

TRACE_HEADER = "X-Trace-ID"
# A client's own id is kept when it is 1-128 visible ASCII characters (no spaces, no control characters),
# as the Go service kept any id: clients correlate on their own ids, however short.
_WELL_FORMED = re.compile(r"[\x21-\x7e]{1,128}")
_trace_id: ContextVar[str] = ContextVar("trace_id", default="")

access_logger = logging.getLogger("wallet.access")


def current_trace_id() -> str:
    return _trace_id.get()


def new_trace_id() -> str:
    return uuid.uuid4().hex


def set_trace_id(value: str) -> None:
    _trace_id.set(value)


class TraceIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "trace_id", None):
            # django.request logs 4xx/5xx after the middleware chain has returned (and the context
            # variable is reset); such records carry the request, which knows its trace id.
            record.trace_id = current_trace_id() or getattr(getattr(record, "request", None), "trace_id", "")
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.span_id = format_span_id(span_context.span_id)
            otel_trace_id = format_trace_id(span_context.trace_id)
            if otel_trace_id != getattr(record, "trace_id", ""):
                record.otel_trace_id = otel_trace_id
        return True


class TraceIdMiddleware:
    """Accepts a well-formed X-Trace-ID, generates one otherwise, echoes it and logs one line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(TRACE_HEADER, "")
        span = trace.get_current_span()  # the request span when OpenTelemetry is on, else the invalid span
        if _WELL_FORMED.fullmatch(incoming):
            trace_id = incoming
            if span.is_recording():
                span.set_attribute("wallet.trace_id", trace_id)  # find a trace by the client's own id
        elif span.get_span_context().is_valid:
            trace_id = format_trace_id(span.get_span_context().trace_id)
        else:
            trace_id = new_trace_id()
        token = _trace_id.set(trace_id)
        request.trace_id = trace_id  # type: ignore[attr-defined]  # an attribute of our own on the request
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[TRACE_HEADER] = trace_id
            user = getattr(request, "user", None)
            access_logger.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "user_id": getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None,
                },
            )
            return response
        finally:
            _trace_id.reset(token)
