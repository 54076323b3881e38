import math
from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from events.models import OutboxEvent

pytestmark = pytest.mark.django_db


def scrape(api) -> dict[tuple[str, tuple], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def transfers(metrics, outcome: str) -> float:
    return metrics.get(("wallet_transfers_total", (("outcome", outcome),)), 0.0)


def test_metrics_count_requests_and_transfers_by_outcome(api, user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    before = scrape(api)

    client = client_for(alice)
    assert client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "5"}, format="json").status_code == 200
    assert client.post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "500"}, format="json").status_code == 400
    after = scrape(api)

    assert transfers(after, "completed") == transfers(before, "completed") + 1
    assert transfers(after, "insufficient_balance") == transfers(before, "insufficient_balance") + 1
    requests = [v for (name, _), v in after.items() if name == "django_http_requests_total_by_method_total"]
    assert sum(requests) > sum(
        v for (name, _), v in before.items() if name == "django_http_requests_total_by_method_total"
    )
    assert any(name.startswith("django_http_requests_latency_seconds_by_view_method") for name, _ in after)


def test_a_replayed_transfer_is_counted_as_a_replay(api, user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    client = client_for(alice)
    before = scrape(api)
    for _ in range(2):
        client.post(
            "/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        )
    after = scrape(api)
    assert transfers(after, "completed") == transfers(before, "completed") + 1
    assert transfers(after, "replayed") == transfers(before, "replayed") + 1


def test_the_outbox_backlog_gauge_matches_the_pending_events(api, user_factory, client_for, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = ""  # no broker: events wait in the outbox
    alice, bob = user_factory(balance=Decimal(10)), user_factory()
    client_for(alice).post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json")
    backlog = scrape(api)[("wallet_outbox_backlog", ())]
    pending = OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).count()
    assert not math.isnan(backlog) and backlog == pending >= 1
