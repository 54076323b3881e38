"""System checks for what the settings alone cannot refuse, and their enforcement when a server starts.

Rate-limit counters live in the Django cache. Local memory is one cache per process: behind gunicorn's
N workers every worker counts on its own, so ``60/m`` becomes ``N x 60/m`` and the login limit N x 5.
Production therefore refuses a process-local store while rate limits are on (``wallet.E001``).

The check is a deployment check (``manage.py check --deploy``) and runs again when a WSGI or ASGI
application is built (``ensure_safe_to_serve``), because gunicorn runs no system checks. It is not a
settings error: ``migrate``, ``relay_outbox``, ``reconcile`` and ``collectstatic`` count no requests
and must not need Redis.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

RATELIMIT_STORE_NOT_SHARED = "wallet.E001"
# Backends whose counters one process cannot see from another (or that count nothing at all).
PROCESS_LOCAL_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
}


@checks.register(checks.Tags.caches, deploy=True)
def check_ratelimit_store(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if getattr(settings, "LOCAL", False) or not getattr(settings, "RATELIMIT_ENABLE", True):
        return []
    alias = getattr(settings, "RATELIMIT_USE_CACHE", "default")
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend not in PROCESS_LOCAL_CACHES:
        return []
    return [
        checks.Error(
            f"rate limits are on but their counters are in {backend}, which each process keeps for itself: "
            "with several workers every limit is multiplied by their number",
            hint="set REDIS_URL (a store all workers share), or RATELIMIT_ENABLE=false to switch limits off",
            obj="CACHES",
            id=RATELIMIT_STORE_NOT_SHARED,
        )
    ]


def ensure_safe_to_serve() -> None:
    """Refuse to build a server application on a configuration ``check --deploy`` reports as an error."""
    silenced = set(settings.SILENCED_SYSTEM_CHECKS)
    errors = [m for m in check_ratelimit_store() if m.is_serious() and m.id not in silenced]
    if errors:
        raise ImproperlyConfigured("; ".join(f"{m.id}: {m.msg} (HINT: {m.hint})" for m in errors))
