"""The outbox and idempotency keys in the Django admin."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from events.models import OutboxEvent
from tests.accounts.factories import UserFactory
from transactions.models import IdempotencyKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def outbox_row(**fields) -> OutboxEvent:
    event_id = uuid.uuid4()
    defaults = {
        "event_id": event_id,
        "topic": "tx.created",
        "key": uuid.uuid4().hex * 2,
        "payload": {"event_id": str(event_id)},
        "headers": {"event_id": str(event_id), "trace_id": ""},
    }
    return OutboxEvent.objects.create(**{**defaults, **fields})


def test_staff_find_an_event_by_hash_and_retry_it(staff):
    later = timezone.now() + timezone.timedelta(hours=1)
    stuck = outbox_row(attempts=4, last_error="_MSG_TIMED_OUT", available_at=later)
    done = outbox_row(state=OutboxEvent.State.PUBLISHED, published_at=timezone.now())
    url = reverse("admin:events_outboxevent_changelist")

    listing = staff.get(url, {"q": stuck.key, "state__exact": "pending"})
    assert listing.status_code == 200
    assert str(stuck.event_id) in listing.content.decode()
    assert str(done.event_id) not in listing.content.decode()

    response = staff.post(url, {"action": "retry", "_selected_action": [stuck.pk, done.pk]})
    assert response.status_code == 302
    stuck.refresh_from_db()
    done.refresh_from_db()
    assert (stuck.state, stuck.available_at) == (OutboxEvent.State.PENDING, None)
    assert (done.state, done.published_at) == (OutboxEvent.State.PENDING, None)

    detail = staff.post(reverse("admin:events_outboxevent_change", args=[stuck.pk]), {"state": "published"})
    stuck.refresh_from_db()
    assert stuck.state == OutboxEvent.State.PENDING, f"an outbox row was edited by hand ({detail.status_code})"


def test_idempotency_keys_are_read_only(staff):
    owner = UserFactory()
    record = IdempotencyKey.objects.create(user=owner, key="k-1", scope="transfer", fingerprint="f" * 64)

    assert staff.get(reverse("admin:transactions_idempotencykey_changelist")).status_code == 200
    assert staff.get(reverse("admin:transactions_idempotencykey_change", args=[record.pk])).status_code == 200
    assert staff.get(reverse("admin:transactions_idempotencykey_add")).status_code == 403
    assert (
        staff.post(reverse("admin:transactions_idempotencykey_delete", args=[record.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert IdempotencyKey.objects.filter(pk=record.pk).exists()
