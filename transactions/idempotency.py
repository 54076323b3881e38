"""Idempotency-Key handling (IETF draft semantics) for money-moving POSTs.

- same key + same body      -> the original outcome, replayed (``Idempotent-Replayed: true``)
- same key + different body -> 422 IDEMPOTENCY_KEY_MISMATCH
- same key while in flight  -> 409 IDEMPOTENCY_KEY_IN_USE
Keys are scoped per user and retained for ``IDEMPOTENCY_KEY_RETENTION_HOURS``; an expired key
is forgotten and may be reused.

The claim runs inside the service's database transaction and the outcome is written in that same
transaction, so a crashed request leaves neither money movement nor key behind.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from transactions.models import IdempotencyKey
from wallet_project.core import errors

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
REPLAYED_HEADER = "Idempotent-Replayed"


def _default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    # A multipart body can carry uploaded files: fingerprint them by name (such a body is refused anyway).
    return f"{type(value).__name__}:{value}"


def request_fingerprint(scope: str, body: Any) -> str:
    canonical = json.dumps({"scope": scope, "body": body}, sort_keys=True, separators=(",", ":"), default=_default)
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise errors.InvalidRequest(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters")
    return key


def _advisory_lock_id(user_id: int, key: str) -> int:
    digest = hashlib.sha256(f"idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def idempotency_claim(*, user_id: int, key: str, scope: str, fingerprint: str) -> IdempotencyKey | None:
    """Claim ``key`` for this transaction; return the stored outcome when it was already used.

    Must run inside ``transaction.atomic``. On PostgreSQL a transaction-scoped advisory lock marks
    the key as in flight; on SQLite transactions are already serialized (BEGIN IMMEDIATE).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_advisory_lock_id(user_id, key)])
            if not cursor.fetchone()[0]:
                raise errors.IdempotencyKeyInUse()
    record = IdempotencyKey.objects.filter(user_id=user_id, key=key).first()
    if record is None:
        return None
    retention = timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS)
    if record.created_at < timezone.now() - retention:
        record.delete()
        return None
    if record.scope != scope or record.fingerprint != fingerprint:
        raise errors.IdempotencyKeyMismatch()
    return record


def idempotency_store(
    *,
    user_id: int,
    key: str,
    scope: str,
    fingerprint: str,
    transaction_id: int | None = None,
    resource_id: int | None = None,
    error: errors.ApiError | None = None,
) -> None:
    """Record the outcome; must run in the same database transaction as the effect."""
    IdempotencyKey.objects.create(
        user_id=user_id,
        key=key,
        scope=scope,
        fingerprint=fingerprint,
        transaction_id=transaction_id,
        resource_id=resource_id,
        error_code=error.code if error else "",
        error_status=error.status_code if error else None,
        error_message=error.message[:512] if error else "",
        error_fields=error.errors if error and error.errors else None,
    )


def replayed_error(record: IdempotencyKey) -> errors.ApiError:
    """The stored failure, answered as it was the first time: same code, same status, same message."""
    headers = {REPLAYED_HEADER: "true"}
    cls = errors.by_code(record.error_code)
    fields = record.error_fields or None
    if cls is not None and record.error_status in (None, cls.status_code):
        return cls(record.error_message, errors=fields, headers=headers)
    # A code this version does not define (retired since the key was stored): its stored status.
    # Keys stored before statuses were (null) all carry codes defined today.
    status = record.error_status or errors.InternalError.status_code
    return errors.StoredError(
        code=record.error_code, status=status, message=record.error_message, errors=fields, headers=headers
    )


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    cutoff = timezone.now() - (older_than or timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS))
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
