"""Helpers the hold and withdrawal-request API tests share."""

from datetime import timedelta

from django.utils import timezone

from holds.models import Hold


def post(client, path, body=None, *, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(path, body, format="json", **headers)


def post_raw(client, path, raw: str):
    """A hand-written JSON body: what a client puts on the wire, not what a Python renderer would make of it."""
    return client.post(path, raw, content_type="application/json")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def wallet_of(client, user, currency="USDT"):
    """(balance, held, available) of the user's wallet, as GET /wallet/{id} shows them."""
    response = client.get(f"/wallet/{user.pk}", {"currency": currency})
    assert response.status_code == 200, response.content
    body = response.json()
    return body["balance"], body["held"], body["available"]


def expire(hold_id: int) -> None:
    """Move the hold's expiry into the past, as the clock would: no sweeper, no service."""
    Hold.objects.filter(pk=hold_id).update(expires_at=timezone.now() - timedelta(seconds=1))
