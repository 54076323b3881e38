"""Where a webhook is delivered: the fan-out from the outbox, the lease, the signed request, the outcome.

The worker (``manage.py deliver_webhooks``) repeats two steps, never in a request and never inside a
transfer's locked section:

1. ``webhooks_fan_out``: outbox rows still ``webhooks_pending``, in id order, become one delivery per
   matching enabled endpoint, and the flag is cleared, in one transaction. Only one fan-out runs at a
   time (a transaction-level advisory lock; a copy that does not get it skips the step): two fan-outs
   taking rows side by side with SKIP LOCKED could commit a later event's deliveries before an earlier
   one's, which would break the order below. The one fan-out takes the longest run of rows, in id order,
   that nothing else holds locked (the relay holds its batch while Kafka answers); the rest wait for the
   next pass, so a broker outage slows the fan-out down a little and never stops it.
2. ``deliver_next``: claim one due delivery (``FOR UPDATE SKIP LOCKED``, then a lease of
   ``WEBHOOK_LEASE_SECONDS`` committed before any network traffic), send it, record the attempt. A delivery
   is due when its ``next_attempt_at`` has come and no earlier delivery of the same endpoint and ordering
   key (the event's currency) is still pending. A worker killed mid-request leaves its lease to expire;
   the delivery is then claimed again (at least once: receivers deduplicate on ``webhook-id``).

Ordering: two events about one wallet are written under that wallet's row lock, so their outbox ids
follow their commits; the fan-out never creates a delivery for an event before one for an earlier
event of the same wallet, and an endpoint's deliveries of one currency go out one at a time in id order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from opentelemetry.trace import SpanKind

from events.models import OutboxEvent
from events.outbox import outbox_insert, publish_on_commit
from wallet_project.core import errors
from wallet_project.core.telemetry import inject_headers, span_from_headers
from webhooks import routing
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.signing import secret_decrypt, signature_header
from webhooks.targets import ip_literal, parse_target, resolve_target

logger = logging.getLogger("wallet.webhooks")

FANOUT_LOCK_KEY = 0x7765626B  # "webk": pg_try_advisory_xact_lock, one fan-out at a time
USER_AGENT = "wallet-webhooks/1"
MAX_ERROR_LENGTH = 512


# --- 1. fan-out ----------------------------------------------------------------------------------------


def _fan_out_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite (local development) serialises every write anyway
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [FANOUT_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def _rows_not_held(ids: list[int]) -> list[int]:
    """Those of ``ids`` still pending that no relay holds, locked ``FOR KEY SHARE`` until commit.

    A relay holds its batch ``FOR UPDATE`` while Kafka answers: skipped here. The weaker lock (not
    ``FOR UPDATE``) leaves the in-process publisher's ``FOR NO KEY UPDATE SKIP LOCKED`` free to mark a
    row published meanwhile; were it skipped, the relay would publish the event a second time.
    """
    if connection.vendor != "postgresql":
        return list(OutboxEvent.objects.filter(pk__in=ids, webhooks_pending=True).values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM core_outboxevent WHERE id = ANY(%s) AND webhooks_pending FOR KEY SHARE SKIP LOCKED",
            [ids],
        )
        return [row[0] for row in cursor.fetchall()]


def webhooks_fan_out(*, limit: int = 500) -> int:
    """Turn up to ``limit`` pending outbox rows into deliveries; returns how many rows were taken (0 when
    another copy holds the fan-out, or nothing is pending)."""
    with transaction.atomic(durable=True):
        if not _fan_out_lock():
            return 0
        ids = list(
            OutboxEvent.objects.filter(webhooks_pending=True).order_by("id").values_list("id", flat=True)[:limit]
        )
        if not ids:
            return 0
        locked = {
            row.pk: row
            for row in OutboxEvent.objects.filter(pk__in=_rows_not_held(ids)).only(
                "id", "event_id", "payload", "headers"
            )
        }
        taken: list[OutboxEvent] = []
        for pk in ids:  # the longest unlocked run, in id order: a row skipped now must not be overtaken
            if pk not in locked:
                break
            taken.append(locked[pk])
        if not taken:
            return 0
        endpoints = list(
            WebhookEndpoint.objects.filter(enabled=True, owner__is_active=True).values_list(
                "id", "owner_id", "owner__is_staff", "event_types"
            )
        )
        deliveries = []
        for row in taken:
            payload = row.payload if isinstance(row.payload, dict) else {}
            for endpoint_id, owner_id, staff, event_types in endpoints:
                if routing.endpoint_receives(owner_id=owner_id, staff=staff, event_types=event_types, payload=payload):
                    deliveries.append(
                        WebhookDelivery(
                            endpoint_id=endpoint_id,
                            event_id=row.event_id,
                            outbox_event=row,
                            event_type=str(payload.get("event_type"))[:64],
                            headers=row.headers or {},
                            ordering_key=routing.ordering_key(payload),
                        )
                    )
        # A rerun after a crash between insert and commit cannot happen (one transaction); the unique
        # constraint is the backstop all the same.
        WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        OutboxEvent.objects.filter(pk__in=[row.pk for row in taken]).update(webhooks_pending=False)
    if deliveries:
        logger.info("webhooks fanned out", extra={"events": len(taken), "deliveries": len(deliveries)})
    return len(taken)


# --- 2. claim, send, record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A leased delivery, with all the attempt needs (read while the lease was taken)."""

    delivery_id: int
    lease_id: uuid.UUID
    attempt_number: int
    endpoint_id: int
    url: str
    event_id: str
    body: str
    headers: dict[str, str]
    secrets: list[str]
    trace_id: str


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str = ""
    response_body: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not self.error


def _due(now: datetime) -> QuerySet[WebhookDelivery]:
    earlier = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        ordering_key=OuterRef("ordering_key"),
        status=WebhookDelivery.Status.PENDING,
        id__lt=OuterRef("id"),
    )
    return (
        WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        # A test ping goes out to a disabled endpoint too: it is how one checks a receiver before enabling it.
        .filter(Q(endpoint__enabled=True) | Q(event_type=routing.TEST_EVENT))
        .filter(~Exists(earlier))
    )


def _secrets_in_use(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    in_use = [secret_decrypt(endpoint.secret_encrypted)]
    if endpoint.previous_secret_encrypted and (endpoint.previous_secret_expires_at or now) > now:
        in_use.append(secret_decrypt(endpoint.previous_secret_encrypted))
    return in_use


def body_of(delivery: WebhookDelivery) -> str:
    payload = delivery.payload if delivery.payload is not None else delivery.outbox_event.payload  # type: ignore[union-attr]
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def delivery_claim() -> Claim | None:
    """Lease the next due delivery (committed before any request is made), or None when nothing is due."""
    with transaction.atomic(durable=True):
        now = timezone.now()
        delivery = (
            _due(now)
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint", "outbox_event")
            .order_by("next_attempt_at", "id")
            .first()
        )
        if delivery is None:
            return None
        delivery.lease_id = uuid.uuid4()
        delivery.leased_until = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
        delivery.attempt_count += 1
        delivery.save(update_fields=["lease_id", "leased_until", "attempt_count"])
        endpoint = delivery.endpoint
        body = body_of(delivery)
        trace_id = ""
        if delivery.payload is None and delivery.outbox_event is not None:
            trace_id = str(delivery.outbox_event.payload.get("trace_id") or "")
        return Claim(
            delivery_id=delivery.pk,
            lease_id=delivery.lease_id,
            attempt_number=delivery.attempt_count,
            endpoint_id=endpoint.pk,
            url=endpoint.url,
            event_id=str(delivery.event_id),
            body=body,
            headers={str(k): str(v) for k, v in (delivery.headers or {}).items()},
            secrets=_secrets_in_use(endpoint, now),
            trace_id=trace_id,
        )


async def _post(
    url: httpx.URL, *, body: bytes, headers: dict[str, str], sni: str | None, connect_timeout: float, limit: int
) -> tuple[int, str, bytes]:
    timeout = httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS, connect=connect_timeout)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        extensions = {"sni_hostname": sni} if sni else {}
        async with client.stream("POST", url, content=body, headers=headers, extensions=extensions) as response:
            received = b""
            async for chunk in response.aiter_raw():
                received += chunk
                if len(received) >= limit:
                    break  # the rest is never read: bodies are stored truncated
            return response.status_code, response.headers.get("location", ""), received[:limit]


async def _attempt(claim: Claim, headers: dict[str, str]) -> tuple[int, str, bytes]:
    target = parse_target(claim.url)
    loop = asyncio.get_running_loop()
    # Resolved again now, and connected to the address checked here (DNS rebinding); Host and SNI name the host.
    addresses = await loop.run_in_executor(None, resolve_target, target)
    url = httpx.URL(target.url).copy_with(host=addresses[0], fragment=None)
    sni = target.host if target.scheme == "https" and ip_literal(target.host) is None else None
    return await _post(
        url,
        body=claim.body.encode(),
        headers={**headers, "Host": target.host_header},
        sni=sni,
        connect_timeout=settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS,
        limit=settings.WEBHOOK_MAX_RESPONSE_BYTES,
    )


def delivery_send(claim: Claim) -> Outcome:
    """One signed POST, bounded by WEBHOOK_TIMEOUT_SECONDS in total (connect, send, response, body)."""
    started_at = timezone.now()
    started = time.monotonic()

    def outcome(**kwargs: Any) -> Outcome:
        return Outcome(started_at=started_at, duration_ms=round((time.monotonic() - started) * 1000), **kwargs)

    if len(claim.body.encode()) > settings.WEBHOOK_MAX_BODY_BYTES:
        return outcome(error=f"body larger than WEBHOOK_MAX_BODY_BYTES ({settings.WEBHOOK_MAX_BODY_BYTES})")
    # INTERNAL: the HTTP request under it is the httpx instrumentation's CLIENT span (and a delivery of an
    # event written outside any trace still starts one: only parentless CLIENT spans are not sampled).
    with span_from_headers("webhook.deliver", claim.headers, kind=SpanKind.INTERNAL) as span:
        span.set_attribute("webhook.endpoint_id", claim.endpoint_id)
        span.set_attribute("webhook.event_id", claim.event_id)
        span.set_attribute("webhook.attempt", claim.attempt_number)
        signed_at = timezone.now()
        headers = inject_headers(
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "webhook-id": claim.event_id,
                "webhook-timestamp": str(int(signed_at.timestamp())),
                "webhook-signature": signature_header(
                    secrets_in_use=claim.secrets, msg_id=claim.event_id, timestamp=signed_at, body=claim.body
                ),
                **({"X-Trace-ID": claim.trace_id} if claim.trace_id else {}),
            }
        )
        try:
            status_code, location, received = asyncio.run(_bounded(claim, headers))
        except errors.WebhookTargetForbidden as exc:
            return outcome(error=exc.message[:MAX_ERROR_LENGTH])
        except TimeoutError:
            return outcome(error=f"timed out after {settings.WEBHOOK_TIMEOUT_SECONDS} s")
        except httpx.HTTPError as exc:
            return outcome(error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_LENGTH])
        span.set_attribute("http.response.status_code", status_code)
        error = ""
        if 300 <= status_code < 400:
            error = f"HTTP {status_code}: redirect to {location[:200] or '(no location)'} not followed"
        elif not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
        # PostgreSQL text holds no NUL: stored as is, the attempt could not be recorded (nor the delivery settled).
        response_body = received.decode("utf-8", "replace").replace("\x00", "\ufffd")
        return outcome(status_code=status_code, error=error, response_body=response_body)


async def _bounded(claim: Claim, headers: dict[str, str]) -> tuple[int, str, bytes]:
    async with asyncio.timeout(settings.WEBHOOK_TIMEOUT_SECONDS):
        return await _attempt(claim, headers)


def retry_delay(retry_count: int) -> timedelta:
    """The wait after the ``retry_count``-th failure: WEBHOOK_RETRY_SCHEDULE (the last step repeating),
    ±20 % jitter so that failures do not retry in lockstep."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    base = schedule[min(retry_count, len(schedule)) - 1]
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def delivery_record(claim: Claim, outcome: Outcome) -> str:
    """Store the attempt; settle the delivery (succeeded, retry later, failed) if the lease is still ours.
    Returns the delivery's status afterwards ("" if it is gone or another worker holds it now)."""
    with transaction.atomic(durable=True):
        # The endpoint first, then the delivery: the order of endpoint_delete (which locks the endpoint
        # and cascades to its deliveries), so recording an outcome and deleting an endpoint never deadlock.
        if WebhookEndpoint.objects.select_for_update().filter(pk=claim.endpoint_id).values_list("pk").first() is None:
            return ""  # the endpoint was deleted meanwhile
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=claim.delivery_id).first()
        if delivery is None:
            return ""  # the endpoint was deleted meanwhile
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=claim.attempt_number,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error[:MAX_ERROR_LENGTH],
            response_body=outcome.response_body,
        )
        if delivery.lease_id != claim.lease_id:
            return ""  # the lease ran out and another worker took the delivery, or it was redelivered
        now = timezone.now()
        delivery.lease_id = None
        delivery.leased_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error[:MAX_ERROR_LENGTH]
        fields = ["lease_id", "leased_until", "last_status_code", "last_error", "status"]
        if outcome.succeeded:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.completed_at = now
            delivery.save(update_fields=[*fields, "completed_at"])
            WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failure_streak__gt=0).update(failure_streak=0)
            return delivery.status
        delivery.retry_count += 1
        delay = retry_delay(delivery.retry_count)
        horizon = delivery.schedule_started_at + timedelta(seconds=settings.WEBHOOK_RETRY_HORIZON_SECONDS)
        if now + delay <= horizon:
            delivery.next_attempt_at = now + delay
            delivery.save(update_fields=[*fields, "retry_count", "next_attempt_at"])
            return delivery.status
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.completed_at = now
        delivery.save(update_fields=[*fields, "retry_count", "completed_at"])
        if delivery.event_type != routing.TEST_EVENT:
            _count_failure(delivery.endpoint_id, last_error=delivery.last_error)
        return delivery.status


def _count_failure(endpoint_id: int, *, last_error: str) -> None:
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.failure_streak = F("failure_streak") + 1
    endpoint.save(update_fields=["failure_streak"])
    endpoint.refresh_from_db(fields=["failure_streak"])
    if endpoint.enabled and endpoint.failure_streak >= settings.WEBHOOK_DISABLE_AFTER_FAILURES:
        endpoint_disable(
            endpoint,
            reason=f"{endpoint.failure_streak} deliveries in a row failed after every retry; the last: {last_error}",
        )


def endpoint_disable(endpoint: WebhookEndpoint, *, reason: str) -> None:
    """Disable a (locked) endpoint with a reason and publish ``webhook.endpoint_disabled`` (staff endpoints)."""
    now = timezone.now()
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:512]
    endpoint.disabled_at = now
    endpoint.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
    event_id = uuid.uuid4()
    payload = {
        "event_id": str(event_id),
        "event_type": routing.ENDPOINT_DISABLED,
        "schema_version": 1,
        "occurred_at": now.isoformat().replace("+00:00", "Z"),
        "trace_id": "",
        "endpoint": {
            "id": endpoint.pk,
            "user_id": endpoint.owner_id,
            "url": endpoint.url,
            "disabled_reason": endpoint.disabled_reason,
            "disabled_at": now.isoformat().replace("+00:00", "Z"),
        },
    }
    row = outbox_insert(
        key=f"webhook:{endpoint.pk}",
        event_id=event_id,
        payload=payload,
        headers={"event_id": str(event_id), "trace_id": ""},
        topic=settings.KAFKA_WEBHOOK_EVENTS_TOPIC,
    )
    publish_on_commit(row)
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.pk, "reason": endpoint.disabled_reason})


def deliver_next() -> str | None:
    """Claim, send and record one due delivery; None when nothing is due, else the delivery's new status."""
    claim = delivery_claim()
    if claim is None:
        return None
    outcome = delivery_send(claim)
    status = delivery_record(claim, outcome)
    log = logger.info if outcome.succeeded else logger.warning
    log(
        "webhook attempt",
        extra={
            "delivery_id": claim.delivery_id,
            "endpoint_id": claim.endpoint_id,
            "event_id": claim.event_id,
            "attempt": claim.attempt_number,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
            "status": status,
        },
    )
    return status
