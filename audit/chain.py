"""The per-wallet hash chain over balance history."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal

from currencies.money import format_amount

# The prev_hash of a wallet's first entry, and the audit_head of a wallet with none.
GENESIS_HASH = "0" * 64


def entry_hash(
    *,
    prev_hash: str,
    wallet_id: int,
    transaction_hash: str,
    delta: Decimal,
    balance_before: Decimal,
    balance_after: Decimal,
    created_at: datetime,
) -> str:
    material = "|".join(
        [
            prev_hash,
            str(wallet_id),
            transaction_hash,
            format_amount(delta),
            format_amount(balance_before),
            format_amount(balance_after),
            created_at.isoformat(),
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()
