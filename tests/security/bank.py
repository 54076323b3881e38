"""A bank under load over real HTTP: random transfers (some designed to fail) and the invariants to prove.

Shared by the fast conservation test and the soak runs (bigger, with crashes and database faults).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.live import LiveApi, Reply, run_concurrently

CURRENCIES = {"USDT": {"id": 1, "decimals": 6}, "BTC": {"id": 2, "decimals": 8}}
# Designed failures and the one answer each must get.
EXPECTED = {
    "overdraft": (400, "INSUFFICIENT_BALANCE"),
    "bad_decimals": (400, "INVALID_DECIMALS"),
    "unknown_recipient": (404, "RECIPIENT_NOT_FOUND"),
    "same_account": (400, "SAME_ACCOUNT_TRANSFER"),
    "not_positive": (400, "AMOUNT_NOT_POSITIVE"),
    "malformed_amount": (400, "INVALID_REQUEST"),
}
Q8 = Decimal("0.00000001")


@dataclass
class Op:
    kind: str
    sender: dict[str, Any]
    recipient_id: int | None
    currency: str
    amount: Decimal | None
    body: str
    key: str | None
    replies: list[Reply | Exception] = field(default_factory=list)

    @property
    def final(self) -> Reply | Exception:
        return self.replies[-1]


def funding(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Per-user deposits: 100-1000 USDT and 0.1-1 BTC, with random places (supply stays far below the overdrafts)."""
    return [
        {
            "USDT": f"{Decimal(rng.randint(100_000_000, 1_000_000_000)).scaleb(-6):f}",
            "BTC": f"{Decimal(rng.randint(10_000_000, 100_000_000)).scaleb(-8):f}",
        }
        for _ in range(count)
    ]


def _amount(rng: random.Random, currency: str) -> Decimal:
    places = CURRENCIES[currency]["decimals"]
    top = 50 if currency == "USDT" else Decimal("0.05")
    return (Decimal(rng.randint(1, int(top * 10**places))).scaleb(-places)).normalize()


def _body(rng: random.Random, fields: dict[str, Any], amount_literal: str) -> str:
    """JSON text; the amount goes in as a JSON string or as a bare JSON number (parsed straight to Decimal)."""
    text = json.dumps({**fields, "amount": "@AMOUNT@"})
    literal = json.dumps(amount_literal) if rng.random() < 0.5 else amount_literal
    return text.replace('"@AMOUNT@"', literal)


def plan(rng: random.Random, users: list[dict[str, Any]], count: int, *, failure_rate: float = 0.15) -> list[Op]:
    """``count`` transfers among ``users``; about ``failure_rate`` of them are designed to fail."""
    ops = []
    for _ in range(count):
        sender = rng.choice(users)
        recipient = rng.choice([u for u in users if u["id"] != sender["id"]])
        currency = rng.choice(list(CURRENCIES))
        kind = "valid"
        if rng.random() < failure_rate:
            kind = rng.choice(list(EXPECTED))
        amount: Decimal | None = _amount(rng, currency)
        fields: dict[str, Any] = {}
        if rng.random() < 0.5:
            fields["to_user_id"] = recipient["id"]
        else:
            fields["to_username"] = recipient["username"]
        if rng.random() < 0.5:
            fields["currency"] = currency
        else:
            fields["currency_id"] = CURRENCIES[currency]["id"]
        if rng.random() < 0.3:
            fields["memo"] = f"memo {rng.randint(0, 10**6)}"
        literal = f"{amount:f}"
        if kind == "overdraft":
            # Below the currency's limit (so the limit check cannot hide it) and above the whole supply.
            amount = Decimal("999999") if currency == "USDT" else Decimal("99.5")
            literal = f"{amount:f}"
        elif kind == "bad_decimals":
            literal = f"1.{'0' * CURRENCIES[currency]['decimals']}1"
        elif kind in ("unknown_recipient", "same_account"):
            fields.pop("to_user_id", None)
            fields.pop("to_username", None)
            by_id = rng.random() < 0.5
            if kind == "same_account":
                fields["to_user_id" if by_id else "to_username"] = sender["id"] if by_id else sender["username"]
            elif by_id:
                fields["to_user_id"] = 10**12 + rng.randint(0, 10**6)
            else:
                fields["to_username"] = f"ghost-{rng.getrandbits(32):08x}"
        elif kind == "not_positive":
            literal = rng.choice(["0", "-1", "-0.5", "0.000000"])
        if kind == "malformed_amount":
            bad = rng.choice(["abc", "1e3", "\u0661\u0662", "", "1,5", "0x10", "NaN", "Infinity", True, None, [1]])
            body = json.dumps({**fields, "amount": bad})
        else:
            body = _body(rng, fields, literal)
        if kind != "valid" and kind != "overdraft":
            amount = None
        key = f"bank-{rng.getrandbits(64):016x}" if rng.random() < 0.5 else None
        ops.append(Op(kind, sender, recipient["id"], currency, amount, body, key))
    return ops


def send(api: LiveApi, op: Op, *, retries: int = 0, retry_on: tuple[int, ...] = ()) -> Op:
    """Send ``op``; on a connection error or a status in ``retry_on``, resend it with the same key."""
    for attempt in range(retries + 1):
        headers = {"Idempotency-Key": op.key} if op.key else {}
        try:
            reply = api.http.post("/wallet/transfer", raw=op.body, token=op.sender["token"], headers=headers)
        except OSError as exc:
            op.replies.append(exc)
        else:
            op.replies.append(reply)
            if reply.status not in retry_on:
                return op
        if attempt < retries:
            time.sleep(0.05 * (attempt + 1))
    return op


def run(api: LiveApi, ops: list[Op], *, threads: int, **send_options: Any) -> float:
    started = time.perf_counter()
    results = run_concurrently([lambda op=op: send(api, op, **send_options) for op in ops], threads=threads)
    crashed = [r for r in results if isinstance(r, Exception)]
    assert not crashed, f"client threads crashed: {crashed[:3]}"
    return time.perf_counter() - started


def outcome_problems(ops: list[Op]) -> list[str]:
    """Every final answer is either a success or exactly the failure the operation was designed for."""
    problems = []
    for op in ops:
        reply = op.final
        if isinstance(reply, Exception):
            problems.append(f"{op.kind}: no answer ({reply!r})")
            continue
        if reply.status >= 500:
            problems.append(f"{op.kind}: {reply.status} {reply.body[:200]!r}")
        elif op.kind == "valid":
            if reply.status != 200 and (reply.status, reply.code) != (400, "INSUFFICIENT_BALANCE"):
                problems.append(f"valid transfer answered {reply.status} {reply.body[:200]!r}")
            elif reply.status == 200:
                body = reply.json()
                if Decimal(body["amount"]) != op.amount or body["amount"] != f"{op.amount.quantize(Q8):f}":
                    problems.append(f"amount {op.amount} came back as {body['amount']}")
                if body["from_user_id"] != op.sender["id"] or body["currency"] != op.currency:
                    problems.append(f"wrong parties or currency in {body}")
        elif (reply.status, reply.code) != EXPECTED[op.kind]:
            problems.append(f"{op.kind} answered {reply.status} {reply.body[:200]!r}, expected {EXPECTED[op.kind]}")
        if reply.status >= 400 and not reply.headers.get("content-type", "").startswith("application/problem+json"):
            problems.append(f"error without the envelope: {reply.status} {reply.headers.get('content-type')}")
    return problems


def successes(ops: list[Op]) -> list[tuple[Op, dict[str, Any]]]:
    return [(op, op.final.json()) for op in ops if isinstance(op.final, Reply) and op.final.status == 200]


def expected_balances(
    users: list[dict[str, Any]], funds: list[dict[str, str]], done: list[tuple[Op, dict[str, Any]]]
) -> dict[tuple[int, str], Decimal]:
    balances: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for user, money in zip(users, funds, strict=True):
        for code, amount in money.items():
            balances[(user["id"], code)] += Decimal(amount)
    for op, body in done:
        balances[(body["from_user_id"], op.currency)] -= op.amount
        balances[(body["to_user_id"], op.currency)] += op.amount
    return balances


def ledger_problems(
    api: LiveApi, users: list[dict[str, Any]], funds: list[dict[str, str]], done: list[tuple[Op, dict[str, Any]]]
) -> list[str]:
    """Compare the database with what the clients were told: supply, balances, transfers, outbox rows."""
    problems = []
    supply: Counter = Counter()
    for money in funds:
        for code, amount in money.items():
            supply[code] += Decimal(amount)
    rows = api.sql(
        "SELECT c.code, sum(w.balance), min(w.balance) FROM wallets_wallet w "
        "JOIN currencies_currency c ON c.id = w.currency_id GROUP BY c.code"
    )
    for code, total, lowest in rows:
        if total != supply.get(code, 0):
            problems.append(f"{code}: balances sum to {total}, deposits were {supply.get(code, 0)}")
        if lowest < 0:
            problems.append(f"{code}: a negative balance {lowest}")
    want = expected_balances(users, funds, done)
    have = {
        (user_id, code): balance
        for user_id, code, balance in api.sql(
            "SELECT w.user_id, c.code, w.balance FROM wallets_wallet w "
            "JOIN currencies_currency c ON c.id = w.currency_id"
        )
    }
    wrong = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
    if wrong:
        problems.append(f"{len(wrong)} wallets differ from the acknowledged transfers, e.g. {list(wrong.items())[:3]}")
    acknowledged = {body["id"] for _, body in done}
    if len(acknowledged) != len(done):
        problems.append(f"{len(done)} successes carry only {len(acknowledged)} distinct transaction ids")
    stored = {row[0] for row in api.sql("SELECT id FROM transactions_transaction WHERE type = 'transfer'")}
    if stored != acknowledged:
        problems.append(
            f"transfers in the database ({len(stored)}) != acknowledged ({len(acknowledged)}): "
            f"unacknowledged {sorted(stored - acknowledged)[:5]}, missing {sorted(acknowledged - stored)[:5]}"
        )
    outbox = api.sql(
        "SELECT count(*), count(DISTINCT t.id) FROM core_outboxevent o "
        "JOIN transactions_transaction t ON t.hash = o.key WHERE t.type = 'transfer'"
    )[0]
    if outbox != (len(stored), len(stored)):
        problems.append(f"outbox rows for transfers {outbox}, transfers {len(stored)}")
    return problems
