from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q
from django.utils import timezone

from audit.models import BalanceHistory
from currencies.models import Currency
from currencies.money import format_amount
from currencies.money_field import MoneySum
from wallet_project.core import errors
from wallets.models import Wallet

_WINDOW = re.compile(r"^([1-9][0-9]{0,4})([mhd])$", re.ASCII)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MAX_WINDOW = timedelta(days=3660)
# The windows parse_window accepts, as one pattern for the schema: up to 99999m, 87840h, 3660d.
WINDOW_PATTERN = (
    r"^(?:[1-9][0-9]{0,4}m"
    r"|(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-7][0-9]{2}|878[0-3][0-9]|87840)h"
    r"|(?:[1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-5][0-9]|3660)d)$"
)


# The holds app's reading of what holds past their expiry still reserve in ``held`` until their release
# is recorded (holds.apps registers it): ``reader(wallet_ids, now) -> {wallet_id: amount}``. A wallet
# shows what a spend may take now; the ledger releases such holds before it would refuse one.
ExpiredHeldReader = Callable[[list[int], datetime], dict[int, Decimal]]
_expired_held_reader: ExpiredHeldReader | None = None


def register_expired_held_reader(reader: ExpiredHeldReader) -> None:
    global _expired_held_reader
    _expired_held_reader = reader


def wallet_documents(wallets: Sequence[Wallet]) -> list[dict]:
    """The wallets as every response shows them: ``held`` counts active holds only, not expired ones."""
    # Only a wallet that holds something can hold something expired: no query for the others.
    holding = [wallet.pk for wallet in wallets if wallet.held > 0]
    expired = _expired_held_reader(holding, timezone.now()) if holding and _expired_held_reader else {}
    return [_document(wallet, held=wallet.held - expired.get(wallet.pk, Decimal(0))) for wallet in wallets]


def wallet_document(wallet: Wallet) -> dict:
    return wallet_documents([wallet])[0]


def _document(wallet: Wallet, *, held: Decimal) -> dict:
    return {
        "id": wallet.pk,
        "user_id": wallet.user_id,
        "currency_id": wallet.currency_id,
        "currency": wallet.currency.code,
        "balance": format_amount(wallet.balance),
        "held": format_amount(held),
        "available": format_amount(wallet.balance - held),
        "created_at": wallet.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": wallet.updated_at.isoformat().replace("+00:00", "Z"),
    }


def wallet_list(*, user_id: int) -> list[Wallet]:
    return list(Wallet.objects.filter(user_id=user_id).select_related("currency").order_by("currency_id"))


def wallet_get(*, user_id: int, currency: Currency) -> Wallet:
    wallet = Wallet.objects.filter(user_id=user_id, currency=currency).select_related("currency").first()
    if wallet is None:
        raise errors.WalletNotFound(f"no {currency.code} wallet for this user")
    return wallet


def parse_window(raw: str | None) -> tuple[str, timedelta]:
    text = "24h" if raw is None else raw  # an empty or padded value is malformed, not the default
    match = _WINDOW.match(text)
    if not match:
        raise errors.InvalidRequest("window must look like 30m, 24h or 7d", errors={"window": ["invalid window"]})
    span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if span > MAX_WINDOW:
        raise errors.InvalidRequest("window is too long (at most 3660d)", errors={"window": ["too long"]})
    return text, span


def wallet_stats(*, user_id: int, currency: Currency, window: timedelta) -> dict:
    """Activity of one wallet over a window; never summed across currencies."""
    since = timezone.now() - window
    rows = BalanceHistory.objects.filter(
        user_id=user_id, wallet__currency=currency, created_at__gte=since, transaction__isnull=False
    )
    agg = rows.aggregate(
        count=Count("id"),
        sent=MoneySum("delta", filter=Q(delta__lt=0)),
        received=MoneySum("delta", filter=Q(delta__gt=0)),
        change=MoneySum("delta"),
    )
    zero = Decimal(0)
    return {
        "transaction_count": agg["count"],
        "total_sent": format_amount(-(agg["sent"] or zero)),
        "total_received": format_amount(agg["received"] or zero),
        "balance_change": format_amount(agg["change"] or zero),
    }
