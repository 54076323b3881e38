"""Writes on webhook endpoints: register, change, delete, rotate the secret, ping, redeliver.

Delivery itself (fan-out, lease, request, retries, disabling) is ``webhooks.delivery``, run by the worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import transaction
from django.utils import timezone

from wallet_project.core import errors
from webhooks import routing
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import delivery_get_for, endpoint_get_for
from webhooks.signing import secret_encrypt, secret_generate
from webhooks.targets import check_target


@dataclass(frozen=True)
class WithSecret:
    """An endpoint and its new signing secret, which is shown this once."""

    endpoint: WebhookEndpoint
    secret: str


def endpoint_create(*, owner: AbstractUser, url: str, event_types: Sequence[str], description: str = "") -> WithSecret:
    """Register an endpoint (at most WEBHOOK_MAX_ENDPOINTS_PER_USER per owner); its secret is returned once."""
    check_target(url)  # before any lock: it may resolve a name
    secret = secret_generate()
    with transaction.atomic(durable=True):
        # The owner's row serialises concurrent registrations, so the cap holds under a race.
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
        if WebhookEndpoint.objects.filter(owner_id=owner.pk).count() >= settings.WEBHOOK_MAX_ENDPOINTS_PER_USER:
            raise errors.WebhookLimitReached(
                f"at most {settings.WEBHOOK_MAX_ENDPOINTS_PER_USER} webhook endpoints per user"
            )
        endpoint = WebhookEndpoint.objects.create(
            owner_id=owner.pk,
            url=url,
            description=description,
            event_types=list(dict.fromkeys(event_types)),
            secret_encrypted=secret_encrypt(secret),
        )
    return WithSecret(endpoint, secret)


def endpoint_update(
    *,
    user: AbstractUser,
    endpoint_id: int,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    enabled: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change what is given; enabling clears the disabled reason and the failure streak."""
    if url is not None:
        check_target(url)
    with transaction.atomic(durable=True):
        endpoint = endpoint_get_for(user=user, endpoint_id=endpoint_id, lock=True)
        if url is not None:
            endpoint.url = url
        if event_types is not None:
            endpoint.event_types = list(dict.fromkeys(event_types))
        if description is not None:
            endpoint.description = description
        if enabled is True and not endpoint.enabled:
            endpoint.enabled = True
            endpoint.disabled_reason = ""
            endpoint.disabled_at = None
            endpoint.failure_streak = 0
        elif enabled is False and endpoint.enabled:
            endpoint.enabled = False
            endpoint.disabled_reason = f"disabled by {'staff' if user.pk != endpoint.owner_id else 'its owner'}"
            endpoint.disabled_at = timezone.now()
        endpoint.save()
    return endpoint


def endpoint_delete(*, user: AbstractUser, endpoint_id: int) -> None:
    """Delete the endpoint and its deliveries; a request in flight finishes, and its outcome is dropped."""
    with transaction.atomic(durable=True):
        endpoint_get_for(user=user, endpoint_id=endpoint_id, lock=True).delete()


def endpoint_rotate_secret(*, user: AbstractUser, endpoint_id: int, grace: timedelta | None = None) -> WithSecret:
    """A new signing secret; the current one keeps signing alongside it for ``grace`` (default
    WEBHOOK_SECRET_GRACE_SECONDS; zero revokes it at once)."""
    grace = timedelta(seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS) if grace is None else grace
    secret = secret_generate()
    with transaction.atomic(durable=True):
        endpoint = endpoint_get_for(user=user, endpoint_id=endpoint_id, lock=True)
        now = timezone.now()
        if grace > timedelta(0):
            endpoint.previous_secret_encrypted = endpoint.secret_encrypted
            endpoint.previous_secret_expires_at = now + grace
        else:
            endpoint.previous_secret_encrypted = ""
            endpoint.previous_secret_expires_at = None
        endpoint.secret_encrypted = secret_encrypt(secret)
        endpoint.secret_rotated_at = now
        endpoint.save()
    return WithSecret(endpoint, secret)


def endpoint_test(*, user: AbstractUser, endpoint_id: int) -> WebhookDelivery:
    """Queue a ``webhook.test`` delivery (sent by the worker, to a disabled endpoint too)."""
    with transaction.atomic(durable=True):
        endpoint = endpoint_get_for(user=user, endpoint_id=endpoint_id)
        event_id = uuid.uuid4()
        now = timezone.now()
        return WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type=routing.TEST_EVENT,
            ordering_key=routing.TEST_EVENT,
            payload={
                "event_id": str(event_id),
                "event_type": routing.TEST_EVENT,
                "schema_version": 1,
                "occurred_at": now.isoformat().replace("+00:00", "Z"),
                "endpoint_id": endpoint.pk,
            },
        )


def delivery_redeliver(*, user: AbstractUser, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again, now, with a fresh retry schedule (same event id: receivers deduplicate)."""
    with transaction.atomic(durable=True):
        delivery = delivery_get_for(user=user, endpoint_id=endpoint_id, delivery_id=delivery_id, lock=True)
        now = timezone.now()
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.next_attempt_at = now
        delivery.schedule_started_at = now
        delivery.retry_count = 0
        delivery.completed_at = None
        # A worker sending it right now keeps its request; its outcome no longer settles the delivery.
        delivery.lease_id = None
        delivery.leased_until = None
        delivery.save()
    return delivery
