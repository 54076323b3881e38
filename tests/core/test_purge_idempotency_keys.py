from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from transactions.models import IdempotencyKey

pytestmark = pytest.mark.django_db


def test_purge_deletes_only_keys_past_retention(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory()
    client = client_for(alice)
    for key in ("old", "fresh"):
        response = client.post(
            "/wallet/transfer", {"to_user_id": bob.pk, "amount": "1"}, format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        assert response.status_code == 200
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(hours=25))

    out = StringIO()
    call_command("purge_idempotency_keys", stdout=out)

    assert "deleted 1 " in out.getvalue()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]
    # The transfers themselves are untouched; only the replay records go.
    assert client.get(f"/transactions/{alice.pk}").json()["pagination"]["total"] == 3
