"""/webhooks: CRUD scoped to the owner (staff: all), the secret shown once, rotation, pings, deliveries."""

import threading

import pytest
from django.db import connection

from tests.conftest import auth_client, make_user
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import secret_decrypt

pytestmark = pytest.mark.django_db

URL = "https://93.184.215.14/hook"


def create(client, url=URL, event_types=("tx.created",), **extra):
    return client.post("/webhooks", {"url": url, "event_types": list(event_types), **extra}, format="json")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_create_shows_the_secret_once_and_never_again(alice):
    client = auth_client(alice)
    response = create(client, description="orders")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["user_id"] == alice.pk and body["enabled"] is True and body["event_types"] == ["tx.created"]
    assert response["Cache-Control"].startswith("no-store")
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] not in endpoint.secret_encrypted  # stored encrypted
    assert secret_decrypt(endpoint.secret_encrypted) == body["secret"]
    read = client.get(f"/webhooks/{body['id']}")
    listed = client.get("/webhooks")
    assert "secret" not in read.json() and body["secret"] not in read.content.decode()
    assert [e["id"] for e in listed.json()["data"]] == [body["id"]]
    assert body["secret"] not in listed.content.decode()


def test_someone_elses_endpoint_is_not_found_on_every_route(alice, bob):
    endpoint_id = create(auth_client(alice)).json()["id"]
    other = auth_client(bob)
    assert_error(other.get(f"/webhooks/{endpoint_id}"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(other.patch(f"/webhooks/{endpoint_id}", {"enabled": False}, format="json"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(other.delete(f"/webhooks/{endpoint_id}"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(other.post(f"/webhooks/{endpoint_id}/rotate-secret"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(other.post(f"/webhooks/{endpoint_id}/test"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(other.get(f"/webhooks/{endpoint_id}/deliveries"), 404, "WEBHOOK_NOT_FOUND")
    assert other.get("/webhooks").json()["data"] == []
    assert WebhookEndpoint.objects.get(pk=endpoint_id).enabled is True


def test_staff_see_and_manage_every_endpoint(alice, staff):
    endpoint_id = create(auth_client(alice)).json()["id"]
    client = auth_client(staff)
    assert [e["id"] for e in client.get("/webhooks").json()["data"]] == [endpoint_id]
    response = client.patch(f"/webhooks/{endpoint_id}", {"enabled": False}, format="json")
    assert response.json()["enabled"] is False and response.json()["disabled_reason"] == "disabled by staff"


def test_patch_changes_url_types_and_enabled(alice):
    client = auth_client(alice)
    endpoint_id = create(client).json()["id"]
    response = client.patch(
        f"/webhooks/{endpoint_id}",
        {"url": "https://93.184.215.15/new", "event_types": ["hold.*", "withdrawal.requested"], "enabled": False},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["url"].endswith("/new") and body["event_types"] == ["hold.*", "withdrawal.requested"]
    assert (body["enabled"], body["disabled_reason"]) == (False, "disabled by its owner")
    again = client.patch(f"/webhooks/{endpoint_id}", {"enabled": True}, format="json").json()
    assert (again["enabled"], again["disabled_reason"], again["disabled_at"]) == (True, "", None)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"url": URL, "event_types": []}, "event_types"),
        ({"url": URL, "event_types": ["tx.deleted"]}, "event_types"),
        ({"url": URL, "event_types": ["ledger.checkpoint"]}, "event_types"),  # staff only
        ({"url": URL, "event_types": ["webhook.*"]}, "event_types"),
        ({"url": URL, "event_types": "tx.created"}, "event_types"),
        ({"url": URL, "event_types": [1]}, "event_types.0"),
        ({"url": 5, "event_types": ["*"]}, "url"),
        ({"event_types": ["*"]}, "url"),
        ({"url": URL, "event_types": ["*"], "description": "x" * 257}, "description"),
        ({"url": URL, "event_types": ["*"], "secret": "whsec_mine"}, "secret"),
        ({"url": "https://" + "a" * 2050, "event_types": ["*"]}, "url"),
    ],
)
def test_bad_bodies_are_refused_and_write_nothing(alice, body, field):
    response = auth_client(alice).post("/webhooks", body, format="json")
    assert_error(response, 400, "INVALID_REQUEST")
    assert field in response.json()["errors"]
    assert not WebhookEndpoint.objects.exists()


def test_enabled_must_be_a_json_boolean(alice):
    client = auth_client(alice)
    endpoint_id = create(client).json()["id"]
    assert_error(client.patch(f"/webhooks/{endpoint_id}", {"enabled": "false"}, format="json"), 400, "INVALID_REQUEST")
    assert WebhookEndpoint.objects.get(pk=endpoint_id).enabled is True


def test_staff_may_subscribe_to_staff_only_events(staff):
    response = create(auth_client(staff), event_types=["ledger.checkpoint", "webhook.*"])
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/", "https://127.0.0.1/", "https://localhost/", "https://2130706433/"]
)
def test_forbidden_targets_are_refused_on_create_and_patch(alice, url):
    client = auth_client(alice)
    assert_error(create(client, url=url), 400, "WEBHOOK_TARGET_FORBIDDEN")
    endpoint_id = create(client).json()["id"]
    assert_error(client.patch(f"/webhooks/{endpoint_id}", {"url": url}, format="json"), 400, "WEBHOOK_TARGET_FORBIDDEN")
    assert WebhookEndpoint.objects.get(pk=endpoint_id).url == URL


def test_loopback_is_accepted_where_private_targets_are_allowed(alice, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert create(auth_client(alice), url="http://127.0.0.1:9/hook").status_code == 201


def test_a_user_has_at_most_the_configured_number_of_endpoints(alice, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_USER = 2
    client = auth_client(alice)
    assert [create(client).status_code for _ in range(2)] == [201, 201]
    assert_error(create(client), 409, "WEBHOOK_LIMIT_REACHED")
    assert WebhookEndpoint.objects.count() == 2


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_for_the_grace_period(alice):
    client = auth_client(alice)
    created = create(client).json()
    rotated = client.post(f"/webhooks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["secret"] != created["secret"] and body["secret"].startswith("whsec_")
    assert body["previous_secret_expires_at"] is not None
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert secret_decrypt(endpoint.previous_secret_encrypted) == created["secret"]
    assert secret_decrypt(endpoint.secret_encrypted) == body["secret"]


def test_test_queues_a_ping_and_deliveries_list_it(alice):
    client = auth_client(alice)
    endpoint_id = create(client).json()["id"]
    ping = client.post(f"/webhooks/{endpoint_id}/test")
    assert ping.status_code == 202
    assert (ping.json()["event_type"], ping.json()["status"], ping.json()["attempts"]) == (
        "webhook.test",
        "pending",
        [],
    )
    listed = client.get(f"/webhooks/{endpoint_id}/deliveries").json()
    assert [d["id"] for d in listed["data"]] == [ping.json()["id"]]
    assert client.get(f"/webhooks/{endpoint_id}/deliveries?status=failed").json()["data"] == []
    assert_error(client.get(f"/webhooks/{endpoint_id}/deliveries?status=odd"), 400, "INVALID_REQUEST")


def test_redeliver_resets_a_failed_delivery_and_others_ids_are_not_found(alice, bob):
    client = auth_client(alice)
    endpoint_id = create(client).json()["id"]
    delivery_id = client.post(f"/webhooks/{endpoint_id}/test").json()["id"]
    WebhookDelivery.objects.filter(pk=delivery_id).update(status="failed", retry_count=7)
    response = client.post(f"/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert WebhookDelivery.objects.get(pk=delivery_id).retry_count == 0
    assert_error(client.post(f"/webhooks/{endpoint_id}/deliveries/999999/redeliver"), 404, "WEBHOOK_DELIVERY_NOT_FOUND")
    bobs = create(auth_client(bob)).json()["id"]
    bobs_delivery = auth_client(bob).post(f"/webhooks/{bobs}/test").json()["id"]
    # Alice's endpoint with Bob's delivery id, and Bob's endpoint from Alice: both unknown to her.
    assert_error(
        client.post(f"/webhooks/{endpoint_id}/deliveries/{bobs_delivery}/redeliver"), 404, "WEBHOOK_DELIVERY_NOT_FOUND"
    )
    assert_error(client.post(f"/webhooks/{bobs}/deliveries/{bobs_delivery}/redeliver"), 404, "WEBHOOK_NOT_FOUND")


def test_delete_removes_the_endpoint_and_its_deliveries(alice):
    client = auth_client(alice)
    endpoint_id = create(client).json()["id"]
    client.post(f"/webhooks/{endpoint_id}/test")
    assert client.delete(f"/webhooks/{endpoint_id}").status_code == 204
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()
    assert_error(client.get(f"/webhooks/{endpoint_id}"), 404, "WEBHOOK_NOT_FOUND")


def test_anonymous_callers_are_refused(api):
    assert_error(api.get("/webhooks"), 401, "UNAUTHORIZED")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_endpoint_cap_holds_under_concurrent_registrations(settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_USER = 3
    user = make_user(username="racer")
    barrier = threading.Barrier(6)
    results = []

    def register():
        try:
            barrier.wait(5)
            results.append(create(auth_client(user)).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=register) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201, 201, 201, 409, 409, 409]
    assert WebhookEndpoint.objects.filter(owner=user).count() == 3
