"""Reads of webhook endpoints and deliveries, scoped to who may see them (the owner; staff: all)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from django.contrib.auth.models import AbstractUser
from django.db.models import Count, Min, Prefetch, QuerySet

from wallet_project.core import errors
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _endpoints_for(user: AbstractUser) -> QuerySet[WebhookEndpoint]:
    qs = WebhookEndpoint.objects.all()
    return qs if user.is_staff else qs.filter(owner_id=user.pk)


def endpoint_list(*, user: AbstractUser) -> QuerySet[WebhookEndpoint]:
    return _endpoints_for(user).order_by("-id")


def endpoint_get_for(*, user: AbstractUser, endpoint_id: int, lock: bool = False) -> WebhookEndpoint:
    """The endpoint, for its owner or staff; for anyone else, as for an unknown id: WEBHOOK_NOT_FOUND."""
    qs = _endpoints_for(user).filter(pk=endpoint_id)
    endpoint = (qs.select_for_update() if lock else qs).first()
    if endpoint is None:
        raise errors.WebhookNotFound()
    return endpoint


def delivery_list(*, user: AbstractUser, endpoint_id: int, status: str | None = None) -> QuerySet[WebhookDelivery]:
    endpoint = endpoint_get_for(user=user, endpoint_id=endpoint_id)
    qs = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status is not None:
        qs = qs.filter(status=status)
    return qs.prefetch_related(Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("number"))).order_by("-id")


def delivery_get_for(*, user: AbstractUser, endpoint_id: int, delivery_id: int, lock: bool = False) -> WebhookDelivery:
    endpoint = endpoint_get_for(user=user, endpoint_id=endpoint_id)
    qs = WebhookDelivery.objects.filter(endpoint=endpoint, pk=delivery_id)
    delivery = (qs.select_for_update() if lock else qs).first()
    if delivery is None:
        raise errors.WebhookDeliveryNotFound()
    return delivery


class WebhookHealth(NamedTuple):
    """What the ops console shows of webhooks: what waits, what gave up, which endpoints were switched off."""

    pending: int
    oldest_pending_at: datetime | None
    failed_24h: int
    endpoints_disabled: int


def webhook_health(*, now: datetime) -> WebhookHealth:
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).aggregate(
        count=Count("id"), oldest=Min("created_at")
    )
    failed = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.FAILED, completed_at__gte=now - timedelta(hours=24)
    ).count()
    return WebhookHealth(
        pending=pending["count"],
        oldest_pending_at=pending["oldest"],
        failed_24h=failed,
        endpoints_disabled=WebhookEndpoint.objects.filter(enabled=False).count(),
    )
