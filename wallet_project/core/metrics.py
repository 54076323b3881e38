"""Prometheus metrics at ``/metrics``.

django-prometheus's middleware measures every request (rates, latencies, status codes). On top:

- ``wallet_transfers_total{outcome}``: ``POST /wallet/transfer`` answers by outcome (``completed``,
  ``replayed``, or the lower-cased error code, e.g. ``insufficient_balance``). It is counted from
  the finished response, so nothing is measured while the wallets are locked.
- ``wallet_outbox_backlog``: events not yet published to Kafka, counted at scrape time (events.metrics).

Under several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode); the backlog gauge is read from the database on each scrape either way.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

TRANSFER_VIEW = "transfer"

TRANSFERS = Counter("wallet_transfers", "Transfer requests by outcome", ["outcome"])


def transfer_outcome(response: HttpResponse) -> str:
    if response.status_code < 300:
        return "replayed" if response.get("Idempotent-Replayed") == "true" else "completed"
    data = getattr(response, "data", None)
    code = data.get("code") if isinstance(data, dict) else None
    # Codes come from one closed vocabulary (core/errors.py's registry), so the label set stays small.
    return code.lower() if isinstance(code, str) and code.isupper() else f"http_{response.status_code}"


class TransferMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if request.method == "POST" and match is not None and match.url_name == TRANSFER_VIEW:
            TRANSFERS.labels(outcome=transfer_outcome(response)).inc()
        return response


# Gauges read when Prometheus scrapes, not on every request: the apps register theirs (events.metrics).
scrape_time = CollectorRegistry(auto_describe=False)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry) + generate_latest(scrape_time), content_type=CONTENT_TYPE_LATEST)
