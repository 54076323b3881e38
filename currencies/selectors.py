from __future__ import annotations

from django.conf import settings

from currencies.models import Currency
from wallet_project.core import exceptions as errors
from wallet_project.core.money import format_amount


def currency_list_active() -> list[Currency]:
    return list(Currency.objects.filter(is_active=True).order_by("id"))


def currency_get(*, currency_id: int | None = None, code: str | None = None, active_only: bool = True) -> Currency:
    """Resolve a currency by id or code (default currency when neither is given); 404 NOT_FOUND otherwise."""
    qs = Currency.objects.filter(is_active=True) if active_only else Currency.objects.all()
    if currency_id is not None:
        currency = qs.filter(pk=currency_id).first()
    else:
        currency = qs.filter(code__iexact=(code or settings.DEFAULT_CURRENCY).strip()).first()
    if currency is None:
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
