"""The hold.* / withdrawal.* v1 validator (``consume_events --check`` on wallet.events) against what the
services really enqueue, message by message as the publisher would send it; no broker needed."""

import json
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission

from events.models import OutboxEvent
from events.publisher import message_for
from events.schemas import EVENT_STATUSES, wallet_event_problems
from holds.models import Hold
from holds.services import (
    hold_capture,
    hold_create,
    hold_void,
    holds_expire_due,
    withdrawal_request_approve,
    withdrawal_request_cancel,
    withdrawal_request_create,
    withdrawal_request_reject,
)
from tests.conftest import make_cashier

pytestmark = pytest.mark.django_db


def sent(row: OutboxEvent) -> dict:
    """The validator's arguments for an outbox row: key, headers and value as they go on the wire."""
    message = message_for(row)
    headers = {name: value.decode() for name, value in message["headers"]}
    return {"key": message["key"], "headers": headers, "value": message["value"]}


def wallet_events() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(topic=settings.KAFKA_WALLET_EVENTS_TOPIC).order_by("id"))


@pytest.fixture
def every_event(user_factory, usdt):
    """One event of each of the eight types, made by the services."""
    alice, bob = user_factory(balance=100), user_factory()
    staff = make_cashier()
    staff.user_permissions.add(Permission.objects.get(codename="approve_withdrawalrequest"))
    captured = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"))
    hold_capture(hold_id=captured.pk, actor=bob, amount=Decimal("10"))  # partial: stays active
    hold_capture(hold_id=captured.pk, actor=bob)  # the rest: captured
    voided = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("5"))
    hold_void(hold_id=voided.pk, actor=alice)
    lapsed = hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal("1"), expires_in=1)
    Hold.objects.filter(pk=lapsed.pk).update(expires_at=lapsed.created_at)
    assert holds_expire_due() == 1
    for decide in ("approve", "reject", "cancel"):
        request = withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal("2"), address="addr-1")
        if decide == "approve":
            withdrawal_request_approve(request_id=request.pk, actor=staff, network_tx_id="0xabc")
        elif decide == "reject":
            withdrawal_request_reject(request_id=request.pk, actor=staff, reason="no")
        else:
            withdrawal_request_cancel(request_id=request.pk, actor=alice)
    return wallet_events()


def test_every_event_the_services_enqueue_is_valid(every_event):
    types = [row.payload["event_type"] for row in every_event]
    assert set(types) == set(EVENT_STATUSES)
    assert types.count("hold.captured") == 2 and types.count("withdrawal.requested") == 3
    for row in every_event:
        assert wallet_event_problems(**sent(row)) == [], row.payload


def test_the_key_is_the_id_of_the_hold_or_the_request(every_event):
    for row in every_event:
        subject = "hold" if row.payload["event_type"].startswith("hold.") else "withdrawal_request"
        assert row.key == str(row.payload[subject]["id"])


def altered(row: OutboxEvent, change) -> dict:
    message = sent(row)
    value = json.loads(message["value"])
    change(value)
    return {**message, "value": json.dumps(value).encode()}


def test_malformed_events_are_named(every_event):
    by_type = {row.payload["event_type"]: row for row in every_event}
    created, approved = by_type["hold.created"], by_type["withdrawal.approved"]

    assert wallet_event_problems(**{**sent(created), "key": b"not-the-id"}) == ["key is not the hold id"]
    assert wallet_event_problems(**{**sent(created), "headers": {"event_id": "x", "trace_id": ""}}) == [
        "event_id header differs from the payload"
    ]

    def status(value):
        value["hold"]["status"] = "voided"
        value["hold"]["remaining"] = "0.00000000"  # as a voided hold shows it: only the status is wrong

    assert wallet_event_problems(**altered(created, status)) == ["hold.status 'voided' does not follow hold.created"]

    def amounts(value):
        value["hold"]["remaining"] = "1234.00000000"

    assert wallet_event_problems(**altered(created, amounts)) == [
        "hold.captured + remaining of an active hold differs from amount"
    ]

    def float_amount(value):
        value["hold"]["amount"] = 30.0

    assert "hold.amount is not a positive decimal string with 8 places" in wallet_event_problems(
        **altered(created, float_amount)
    )

    def no_transaction(value):
        del value["transaction"]

    assert wallet_event_problems(**altered(approved, no_transaction)) == ["transaction is not an object"]

    def other_hash(value):
        value["withdrawal_request"]["transaction_hash"] = "0" * 64

    assert wallet_event_problems(**altered(approved, other_hash)) == [
        "transaction.hash differs from withdrawal_request.transaction_hash"
    ]

    def undecided(value):
        value["withdrawal_request"]["decided_at"] = None

    assert wallet_event_problems(**altered(approved, undecided)) == [
        "withdrawal_request.decided_at and decided_by are not set once decided and null while pending"
    ]

    def unknown(value):
        value["event_type"] = "hold.refunded"

    assert wallet_event_problems(**altered(created, unknown)) == ["event_type is not a hold.* or withdrawal.* event"]
    assert wallet_event_problems(key=b"1", headers={}, value=b"[]") == ["value is not a JSON object"]


def test_a_tx_created_event_is_not_a_wallet_event(user_factory):
    user_factory(balance=5)
    deposit = OutboxEvent.objects.get(topic=settings.KAFKA_TOPIC)
    assert "event_type is not a hold.* or withdrawal.* event" in wallet_event_problems(**sent(deposit))
