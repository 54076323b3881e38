"""Signed checkpoints as the auditor reads them: the format, its signature check, the newest valid one.

Shared by ``audit.checkpoint`` (which takes and signs them) and ``audit.reconcile`` (which proves the
ledger against them), so neither needs the other to read one.

The payload is canonical JSON (``canonical``), in one of two versions, both still read:

- ``v: 1`` (signed before holds): ``uid``, ``created_at``, ``last_transaction_id``,
  ``transaction_count`` (transactions up to it), ``wallet_count``, ``heads_digest`` and
  ``wallets_with_history`` (every wallet's chain length and head), ``supply`` (per currency code:
  ``balances``, and ``deposits`` and ``withdrawals`` up to the last transaction id). The chains are
  cut at the last entry whose transaction is at or below ``last_transaction_id``.
- ``v: 2`` adds ``last_entry_id``, the newest balance-history entry it covers, and ``held`` per
  currency in ``supply``. Entries that change ``held`` alone (a hold placed, voided or expired) have
  no transaction, so the chains are cut by entry id instead: every entry at or below
  ``last_entry_id`` is covered, whatever it records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit import receipts
from audit.models import Checkpoint

CHECKPOINT_VERSION = 2  # what ``checkpoint`` signs now
READABLE_VERSIONS = (1, 2)


class CheckpointError(Exception):
    """The checkpoint could not be taken or read (the message says why)."""


@dataclass(frozen=True)
class Signed:
    """A checkpoint as signed: the canonical payload text, its parsed fields and the signature."""

    payload: str
    signature: str
    key_id: str
    fields: dict[str, Any]

    @property
    def version(self) -> int:
        return int(self.fields["v"])

    @property
    def last_transaction_id(self) -> int:
        return int(self.fields["last_transaction_id"])

    @property
    def last_entry_id(self) -> int | None:
        """The newest balance-history entry it covers; None for a version 1 checkpoint (cut by transaction)."""
        return None if self.version < 2 else int(self.fields["last_entry_id"])

    @property
    def order(self) -> tuple[int, int]:
        """Newer checkpoints sort higher: by the last transaction, then by the last entry."""
        return self.last_transaction_id, self.last_entry_id or 0


class HeadsDigest:
    """sha256 over ``wallet_id:length:entry_hash\\n`` of every wallet with history, fed in wallet id order."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.wallets = 0

    def add(self, wallet_id: int, length: int, head: str) -> None:
        self._sha.update(f"{wallet_id}:{length}:{head}\n".encode())
        self.wallets += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def heads_digest(heads: Iterable[tuple[int, int, str]]) -> str:
    digest = HeadsDigest()
    for wallet_id, length, head in heads:
        digest.add(wallet_id, length, head)
    return digest.hexdigest()


def canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def verify_signed(payload: str, signature: str, key_id: str) -> Signed | None:
    """The parsed checkpoint if ``signature`` verifies with a trusted receipt key, else None."""
    key = (key_id or "").lower()
    if key not in receipts.trusted_public_keys():
        return None
    if not receipts.verify_message(payload.encode(), signature, public_key=key):
        return None
    try:
        fields = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(fields, dict) or fields.get("v") not in READABLE_VERSIONS:
        return None
    return Signed(payload=payload, signature=signature, key_id=key, fields=fields)


def load_file(path: str) -> tuple[Signed, list[tuple[int, int, str]]]:
    """Read and verify a checkpoint file; raises CheckpointError when it cannot be trusted."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        payload, signature, key_id = document["payload"], document["signature"], document["key_id"]
        heads = [(int(w), int(n), str(h)) for w, n, h in document["heads"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read checkpoint file {path}: {exc}") from exc
    signed = verify_signed(payload, signature, key_id)
    if signed is None:
        raise CheckpointError("checkpoint signature does not verify with any trusted receipt key")
    if heads_digest(heads) != signed.fields["heads_digest"] or len(heads) != signed.fields["wallets_with_history"]:
        raise CheckpointError("checkpoint file's heads do not match its signed digest")
    return signed, heads


def newest_valid() -> tuple[Signed | None, list[int]]:
    """The newest checkpoint in the database whose signature verifies, and the ids of rows that do not.

    Newest by the signed ``last_transaction_id`` (then ``last_entry_id``), never by a column a superuser
    could edit. Every row is verified: an Ed25519 check is cheap enough that years of hourly checkpoints
    stay fast (docs/benchmarks.md).
    """
    invalid: list[int] = []
    best: Signed | None = None
    for pk, payload, signature, key_id in Checkpoint.objects.order_by("id").values_list(
        "pk", "payload", "signature", "key_id"
    ):
        signed = verify_signed(payload, signature, key_id)
        if signed is None:
            invalid.append(pk)
        elif best is None or signed.order > best.order:
            best = signed
    return best, invalid
