"""The outbox backlog gauge on /metrics (wallet_project.core.metrics serves it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily

from events.models import OutboxEvent
from wallet_project.core.metrics import scrape_time

logger = logging.getLogger("wallet.metrics")


class OutboxBacklogCollector:
    """Reads the backlog from the database when Prometheus scrapes, not on every transfer."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("wallet_outbox_backlog", "Outbox events not yet published to Kafka")
        try:
            gauge.add_metric([], OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).count())
        except Exception:  # noqa: BLE001 - a scrape must answer even when the database does not
            logger.warning("outbox backlog unavailable", exc_info=True)
            gauge.add_metric([], float("nan"))
        yield gauge


_registered: list[OutboxBacklogCollector] = []


def register_collectors() -> None:
    """Add the backlog gauge to the scrape-time registry once (EventsConfig.ready)."""
    if not _registered:
        _registered.append(OutboxBacklogCollector())
        scrape_time.register(_registered[0])
