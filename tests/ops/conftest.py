import types

import django_ratelimit.core
import pytest
from django.core.cache import cache

from tests.ledger import flushable_append_only_tables

FROZEN_NOW = 1_800_000_000.0


@pytest.fixture(scope="session", autouse=True)
def _flushable_append_only_tables():
    """The browser test is transactional; its flush would otherwise be rejected by the triggers."""
    with flushable_append_only_tables():
        yield


@pytest.fixture
def ratelimits(settings, monkeypatch):
    """Rate limiting on, empty counters, and a frozen clock so that no window rolls over mid-test."""
    settings.RATELIMIT_ENABLE = True
    clock = types.SimpleNamespace(now=FROZEN_NOW)
    monkeypatch.setattr(django_ratelimit.core, "time", types.SimpleNamespace(time=lambda: clock.now))
    cache.clear()
    yield clock
    cache.clear()
