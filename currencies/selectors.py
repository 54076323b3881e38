from __future__ import annotations

import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save

from currencies.models import Currency
from currencies.money import format_amount
from wallet_project.core import errors


def currency_list_active() -> list[Currency]:
    return list(Currency.objects.filter(is_active=True).order_by("id"))


class _CurrencyCache:
    """The currency table, held per process for a few seconds: every money request needs it.

    Saving a currency clears it in the saving process at once; other processes see the change
    within ``CURRENCY_CACHE_SECONDS``.
    """

    def __init__(self) -> None:
        self.loaded_at = float("-inf")
        self.by_id: dict[int, Currency] = {}
        self.by_code: dict[str, Currency] = {}

    def clear(self, **_: object) -> None:
        self.loaded_at = float("-inf")

    def get(self) -> _CurrencyCache:
        if time.monotonic() - self.loaded_at > settings.CURRENCY_CACHE_SECONDS:
            rows = list(Currency.objects.all())
            self.by_id = {c.pk: c for c in rows}
            self.by_code = {c.code.upper(): c for c in rows}
            self.loaded_at = time.monotonic()
        return self


_cache = _CurrencyCache()
post_save.connect(_cache.clear, sender=Currency, dispatch_uid="currency_cache_clear_save")
post_delete.connect(_cache.clear, sender=Currency, dispatch_uid="currency_cache_clear_delete")


def currency_get(*, currency_id: int | None = None, code: str | None = None, active_only: bool = True) -> Currency:
    """Resolve a currency by id or code (default currency when neither is given); 404 NOT_FOUND otherwise."""
    cache = _cache.get()
    if currency_id is not None:
        currency = cache.by_id.get(currency_id)
    else:
        currency = cache.by_code.get((code or settings.DEFAULT_CURRENCY).strip().upper())
    if currency is None or (active_only and not currency.is_active):
        raise errors.NotFound("currency not found")
    return currency


def currency_document(currency: Currency) -> dict:
    return {
        "id": currency.pk,
        "code": currency.code,
        "name": currency.name,
        "symbol": currency.symbol,
        "decimals": currency.decimals,
        "is_active": currency.is_active,
        "max_transfer_amount": None
        if currency.max_transfer_amount is None
        else format_amount(currency.max_transfer_amount),
    }
