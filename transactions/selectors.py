from __future__ import annotations

from string import hexdigits

from django.db.models import QuerySet

from audit.models import BalanceHistory
from currencies.models import Currency
from transactions.events import transaction_document
from transactions.models import Transaction
from wallet_project.core import exceptions as errors
from wallet_project.core.pagination import paginate
from wallet_project.core.params import choice_param, datetime_param
from wallet_project.core.receipts import canonical_transaction
from wallets.models import Wallet


def history_queryset(*, user_id: int, params) -> QuerySet[BalanceHistory]:
    """A user's transactions, newest first (each appears once: a user never pays themselves).

    Read from the user's balance-history legs, so the direction is the sign of the leg and the
    whole page is one range scan of (user, id).
    """
    qs = BalanceHistory.objects.filter(user_id=user_id)
    code = params.get("currency")
    if code:
        # A NUL cannot even be sent to PostgreSQL (a 500): such a code is simply unknown.
        currency = Currency.objects.filter(code__iexact=code).first() if code.isprintable() else None
        if currency is None:
            raise errors.InvalidRequest("unknown currency", errors={"currency": ["unknown currency"]})
        qs = qs.filter(wallet__currency_id=currency.pk)
    direction = choice_param(params, "direction", {"sent", "received"})
    if direction == "sent":
        qs = qs.filter(delta__lt=0)
    elif direction == "received":
        qs = qs.filter(delta__gt=0)
    tx_type = choice_param(params, "type", set(Transaction.Type.values))
    if tx_type:
        qs = qs.filter(transaction__type=tx_type)
    after = datetime_param(params, "created_after")
    if after:
        qs = qs.filter(created_at__gte=after)
    before = datetime_param(params, "created_before")
    if before:
        qs = qs.filter(created_at__lt=before)
    return qs.select_related("transaction", "transaction__currency").order_by("-id")


HISTORY_FILTERS = ("currency", "direction", "type", "created_after", "created_before")


def history_page(*, user_id: int, params) -> dict:
    """One page of a user's history (``{data, pagination}``), newest first.

    Unfiltered, the total is the sum of the user's wallets' ``entries`` (no count over the rows),
    and when the user's history lives in one wallet, as most do, page N is a range of that
    wallet's chain positions: as cheap at page 5,000 as at page 1. Filtered pages count and skip.
    """
    queryset = history_queryset(user_id=user_id, params=params)
    if any(params.get(name) for name in HISTORY_FILTERS):
        return paginate(queryset, params, history_item)
    chains = list(Wallet.objects.filter(user_id=user_id, entries__gt=0).values_list("id", "entries"))
    total = sum(entries for _, entries in chains)
    page_rows = None
    if len(chains) == 1:
        ((wallet_id, entries),) = chains

        def page_rows(offset: int, limit: int) -> list:
            newest = entries - offset
            # The wallet is the user's, so no user filter (the planner would intersect the range with
            # the user's whole history): one range of the (wallet, seq) index.
            return list(
                BalanceHistory.objects.filter(wallet_id=wallet_id, seq__lte=newest, seq__gt=newest - limit)
                .select_related("transaction", "transaction__currency")
                .order_by("-seq")
            )

    return paginate(queryset, params, history_item, total=total, page_rows=page_rows)


def history_item(entry: BalanceHistory) -> dict:
    tx = entry.transaction
    document = transaction_document(tx, currency_code=tx.currency.code)
    document["direction"] = "sent" if entry.delta < 0 else "received"
    return document


def transaction_get_by_hash(*, tx_hash: str) -> Transaction:
    tx = (
        Transaction.objects.select_related("currency").filter(hash=tx_hash.lower()).first()
        if len(tx_hash) == 64 and all(c in hexdigits for c in tx_hash)
        else None
    )
    if tx is None:
        raise errors.TransactionNotFound()
    return tx


def receipt_document(tx: Transaction, *, viewer) -> dict:
    document = {
        "hash": tx.hash,
        "signature": tx.signature,
        "status": tx.status,
        "type": tx.type,
        "currency": tx.currency.code,
        "amount": transaction_document(tx, currency_code=tx.currency.code)["amount"],
        "created_at": tx.created_at.isoformat().replace("+00:00", "Z"),
    }
    if (
        viewer is not None
        and viewer.is_authenticated
        and (viewer.is_staff or viewer.pk in (tx.from_user_id, tx.to_user_id))
    ):
        document["from_user_id"] = tx.from_user_id
        document["to_user_id"] = tx.to_user_id
        # What a party needs to recompute the hash itself: sha256(canonical) == hash.
        document["uid"] = str(tx.uid)
        document["memo"] = tx.memo
        document["canonical"] = canonical_transaction(
            uid=str(tx.uid),
            type=tx.type,
            from_user_id=tx.from_user_id,
            to_user_id=tx.to_user_id,
            currency=tx.currency.code,
            amount=tx.amount,
            memo=tx.memo,
            created_at=tx.created_at,
        ).decode()
    return document
