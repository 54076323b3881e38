"""Verifiable receipts: a SHA-256 hash of a canonical encoding, signed with Ed25519.

Anyone holding the public key (``GET /receipts/public-key``) can check a receipt::

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    key.verify(bytes.fromhex(signature), hash.encode("ascii"))   # raises InvalidSignature if forged
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings

from currencies.money import format_amount

RECEIPT_VERSION = 1


def canonical_transaction(
    *,
    uid: str,
    type: str,
    from_user_id: int | None,
    to_user_id: int | None,
    currency: str,
    amount: Decimal,
    memo: str,
    created_at: datetime,
    reverses: str | None = None,
) -> bytes:
    """The exact bytes that are hashed; documented so third parties can recompute a hash.

    A reversal's encoding also names the hash of the transaction it takes back (``reverses``), so that
    its receipt covers what it reverses; other types have no such key, so every receipt signed before
    reversals existed recomputes as it did.
    """
    document = {
        "v": RECEIPT_VERSION,
        "uid": uid,
        "type": type,
        "from_user_id": from_user_id,
        "to_user_id": to_user_id,
        "currency": currency,
        "amount": format_amount(amount),
        "memo": memo,
        "created_at": created_at.isoformat(),
    }
    if type == "reversal":
        document["reverses"] = reverses
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def transaction_hash(**fields: Any) -> str:
    return hashlib.sha256(canonical_transaction(**fields)).hexdigest()


@lru_cache(maxsize=1)
def _signing_key() -> Ed25519PrivateKey:
    seed_hex = settings.RECEIPT_SIGNING_KEY
    if seed_hex:
        seed = bytes.fromhex(seed_hex)
    else:  # DJANGO_ENV=local only: production settings refuse to start without a key
        seed = hashlib.sha256(f"receipt-signing:{settings.SECRET_KEY}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def sign(hash_hex: str) -> str:
    return _signing_key().sign(hash_hex.encode("ascii")).hex()


def public_key_hex() -> str:
    return _signing_key().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def sign_message(message: bytes) -> str:
    """Sign arbitrary bytes (a ledger checkpoint's canonical payload) with the receipt key."""
    return _signing_key().sign(message).hex()


def verify_message(message: bytes, signature_hex: str, public_key: str | None = None) -> bool:
    """Check a signature made with the current receipt key, or with ``public_key`` (hex) if given."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key)) if public_key else None
        (key or _signing_key().public_key()).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def trusted_public_keys() -> set[str]:
    """The current receipt public key and the retired ones (``RECEIPT_PREVIOUS_PUBLIC_KEYS``), hex."""
    return {public_key_hex(), *(key.lower() for key in settings.RECEIPT_PREVIOUS_PUBLIC_KEYS)}


def verify(hash_hex: str, signature_hex: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        _signing_key().public_key().verify(bytes.fromhex(signature_hex), hash_hex.encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True
