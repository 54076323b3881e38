"""Delivery against a real receiver on loopback: signatures, retries, timeouts, redirects, disabling."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from currencies.models import Currency
from events.models import OutboxEvent
from tests.webhooks.support import Answer, Receiver
from transactions.services import transfer_create
from webhooks.delivery import deliver_next, webhooks_fan_out
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_rotate_secret, endpoint_test

pytestmark = pytest.mark.django_db


def transfer(sender, recipient, amount="1"):
    return transfer_create(
        sender_id=sender.pk,
        recipient_id=recipient.pk,
        currency=Currency.objects.get(code="USDT"),
        amount=Decimal(amount),
    )


def settle():
    OutboxEvent.objects.update(webhooks_pending=False)


def drain(limit=50) -> list[str]:
    statuses = []
    for _ in range(limit):
        webhooks_fan_out()
        status = deliver_next()
        if status is None:
            break
        statuses.append(status)
    return statuses


def make_due():
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def test_each_event_arrives_signed_and_the_library_verifies_it(alice, bob, endpoint_for):
    with Receiver() as receiver:
        created = endpoint_for(alice, receiver.url)
        settle()
        tx = transfer(alice, bob)
        assert drain() == ["succeeded"]
        [request] = receiver.received
    row = OutboxEvent.objects.get(payload__hash=tx.hash)
    assert request.headers["webhook-id"] == str(row.event_id)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-signature"].startswith("v1,") and " " not in request.headers["webhook-signature"]
    payload = Webhook(created.secret).verify(request.body, request.headers)
    assert payload == row.payload and payload["hash"] == tx.hash
    with pytest.raises(WebhookVerificationError):
        Webhook(created.secret).verify(request.body.replace(b'"1.00000000"', b'"9.00000000"'), request.headers)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.headers == row.headers  # the trace context travels with the delivery


def test_after_a_rotation_both_secrets_verify_until_the_grace_ends(alice, bob, endpoint_for):
    with Receiver() as receiver:
        created = endpoint_for(alice, receiver.url)
        rotated = endpoint_rotate_secret(user=alice, endpoint_id=created.endpoint.pk)
        settle()
        transfer(alice, bob)
        drain()
        WebhookEndpoint.objects.filter(pk=created.endpoint.pk).update(
            previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
        )
        transfer(alice, bob)
        drain()
        first, second = receiver.wait_for(2)
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    Webhook(created.secret).verify(first.body, first.headers)
    Webhook(rotated.secret).verify(first.body, first.headers)
    assert len(second.headers["webhook-signature"].split(" ")) == 1  # the grace is over
    Webhook(rotated.secret).verify(second.body, second.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(created.secret).verify(second.body, second.headers)


def test_a_500_is_retried_and_the_next_200_settles_it_with_every_attempt_recorded(alice, bob, endpoint_for, settings):
    settings.WEBHOOK_MAX_RESPONSE_BYTES = 10
    answers = [Answer(500, b"boom " * 100), Answer(200, b"thanks")]
    with Receiver(lambda n: answers[min(n, 1)]) as receiver:
        endpoint_for(alice, receiver.url)
        settle()
        transfer(alice, bob)
        assert drain(1) == ["pending"]
        delivery = WebhookDelivery.objects.get()
        assert delivery.next_attempt_at > timezone.now() - timedelta(seconds=1)
        make_due()
        assert drain() == ["succeeded"]
        assert len(set(receiver.event_ids())) == 1 and len(receiver.received) == 2
    attempts = list(
        WebhookDelivery.objects.get().attempts.values_list("number", "status_code", "error", "response_body")
    )
    assert attempts == [(1, 500, "HTTP 500", "boom boom "), (2, 200, "", "thanks")]


def test_a_redirect_is_not_followed_and_counts_as_a_failure(alice, bob, endpoint_for):
    with Receiver(lambda n: Answer(302, b"", {"Location": "http://127.0.0.1:1/elsewhere"})) as receiver:
        endpoint_for(alice, receiver.url)
        settle()
        transfer(alice, bob)
        assert drain(1) == ["pending"]
        assert len(receiver.received) == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.last_status_code == 302 and "not followed" in delivery.last_error
    assert "127.0.0.1:1/elsewhere" in delivery.last_error


def test_a_slow_receiver_times_out_within_the_total_timeout(alice, bob, endpoint_for, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1.0
    release = threading.Event()
    with Receiver(lambda n: Answer(200, block=release)) as receiver:
        endpoint_for(alice, receiver.url)
        settle()
        transfer(alice, bob)
        started = time.monotonic()
        try:
            assert drain(1) == ["pending"]
        finally:
            release.set()
        elapsed = time.monotonic() - started
    assert elapsed < 3
    assert WebhookDelivery.objects.get().last_error == "timed out after 1.0 s"


def test_a_receiver_that_is_down_is_retried_until_it_is_up(alice, bob, endpoint_for):
    receiver = Receiver()
    endpoint_for(alice, receiver.url)
    settle()
    transfer(alice, bob)
    assert drain(1) == ["pending"]
    assert "ConnectError" in WebhookDelivery.objects.get().last_error
    with receiver:
        make_due()
        assert drain() == ["succeeded"]
        assert len(receiver.received) == 1


def test_retries_run_out_then_the_delivery_fails_and_the_endpoint_is_disabled_with_an_event(
    alice, bob, staff, endpoint_for, settings
):
    settings.WEBHOOK_RETRY_HORIZON_SECONDS = 0.5
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    with Receiver(lambda n: Answer(503, b"down")) as receiver, Receiver() as ops:
        failing = endpoint_for(alice, receiver.url).endpoint
        watcher = endpoint_for(staff, ops.url, event_types=["webhook.*"]).endpoint
        settle()
        transfer(alice, bob)
        transfer(alice, bob)
        assert webhooks_fan_out() == 2
        deadline = time.monotonic() + 15
        while WebhookDelivery.objects.filter(endpoint=failing, status="pending").exists():
            assert time.monotonic() < deadline
            make_due()
            drain()
            time.sleep(0.05)
        failing.refresh_from_db()
        assert failing.enabled is False and failing.failure_streak == 2
        assert (
            failing.disabled_reason.startswith("2 deliveries in a row failed") and "HTTP 503" in failing.disabled_reason
        )
        drain()
        [notice] = ops.wait_for(1)
    assert notice.json()["event_type"] == "webhook.endpoint_disabled"
    assert notice.json()["endpoint"]["id"] == failing.pk
    assert OutboxEvent.objects.filter(topic="webhook.events", key=f"webhook:{failing.pk}").count() == 1
    assert set(WebhookDelivery.objects.filter(endpoint=failing).values_list("status", flat=True)) == {"failed"}
    assert WebhookDelivery.objects.filter(endpoint=watcher, status="succeeded").count() == 1
    # Disabled: new events are no longer fanned out to it.
    transfer(alice, bob)
    webhooks_fan_out()
    assert WebhookDelivery.objects.filter(endpoint=failing).count() == 2


def test_a_success_resets_the_failure_streak(alice, bob, endpoint_for):
    with Receiver() as receiver:
        endpoint = endpoint_for(alice, receiver.url).endpoint
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failure_streak=3)
        settle()
        transfer(alice, bob)
        drain()
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failure_streak == 0


def test_a_name_that_now_resolves_to_loopback_is_refused_at_delivery(alice, bob, endpoint_for, settings):
    with Receiver() as receiver:
        endpoint_for(alice, f"http://localhost:{receiver.port}/hook")
        settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False  # production rules at delivery time
        settle()
        transfer(alice, bob)
        assert drain(1) == ["pending"]
        assert receiver.received == []
    assert "refused" in WebhookDelivery.objects.get().last_error


def test_deliveries_of_one_endpoint_and_currency_wait_for_the_earlier_one(alice, bob, endpoint_for):
    answers = iter([Answer(500), Answer(200), Answer(200)])
    with Receiver(lambda n: next(answers)) as receiver:
        endpoint_for(alice, receiver.url)
        settle()
        first, second = transfer(alice, bob), transfer(alice, bob)
        assert drain(1) == ["pending"]  # the first failed: the second is not due while it is pending
        make_due()  # both due now: still the first goes first
        assert drain() == ["succeeded", "succeeded"]
        hashes = [r.json()["hash"] for r in receiver.received]
    assert hashes == [first.hash, first.hash, second.hash]


def test_a_test_ping_goes_out_to_a_disabled_endpoint_too(alice, endpoint_for):
    with Receiver() as receiver:
        created = endpoint_for(alice, receiver.url)
        WebhookEndpoint.objects.filter(pk=created.endpoint.pk).update(enabled=False, disabled_reason="off")
        endpoint_test(user=alice, endpoint_id=created.endpoint.pk)
        assert drain() == ["succeeded"]
        [ping] = receiver.received
    assert Webhook(created.secret).verify(ping.body, ping.headers)["event_type"] == "webhook.test"


def test_an_oversized_body_is_never_sent(alice, bob, endpoint_for, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    with Receiver() as receiver:
        endpoint_for(alice, receiver.url)
        settle()
        transfer(alice, bob)
        assert drain(1) == ["pending"]
        assert receiver.received == []
    assert "WEBHOOK_MAX_BODY_BYTES" in WebhookDelivery.objects.get().last_error


def test_a_stored_bracketed_name_is_refused_at_delivery_by_the_url_rules(alice, bob, endpoint_for):
    # An endpoint stored before the rule (or edited in the database) with "[v1.<name>]": urlsplit takes
    # it and returns the name inside, which resolves when someone owns it; httpx then raises InvalidURL,
    # which is no httpx.HTTPError and ended the worker. The URL rules refuse it before any lookup.
    with Receiver() as receiver:
        endpoint = endpoint_for(alice, receiver.url).endpoint
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://[v1.x]:{receiver.port}/hook")
        settle()
        transfer(alice, bob)
        assert drain(1) == ["pending"]
        assert receiver.received == []
    assert "not a valid host name" in WebhookDelivery.objects.get().last_error


def test_a_response_body_with_nul_bytes_is_stored_and_the_2xx_settles_the_delivery(alice, bob, endpoint_for):
    # PostgreSQL text cannot hold NUL: stored as is, the attempt's insert fails, the delivery is never
    # settled and goes out again at every lease expiry, holding back its endpoint's later deliveries.
    with Receiver(lambda n: Answer(200, b"ok\x00\x00binary")) as receiver:
        endpoint_for(alice, receiver.url)
        settle()
        transfer(alice, bob)
        assert drain() == ["succeeded"]
        assert len(receiver.received) == 1
    [attempt] = WebhookDelivery.objects.get().attempts.all()
    assert attempt.status_code == 200 and attempt.response_body == "ok\ufffd\ufffdbinary"
