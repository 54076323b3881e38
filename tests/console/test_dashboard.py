"""The ops console: the product's name, sections for operators, and a dashboard that agrees with reconcile."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from accounts.models import User
from audit.reconcile import reconcile
from holds.models import WithdrawalRequest
from tests.accounts.factories import UserFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import endpoint_create, endpoint_test

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(settings):
    settings.LOCAL = True  # seed_demo is for local development
    call_command("seed_demo", stdout=StringIO())
    call_command("reconcile", stdout=StringIO())
    call_command("checkpoint", stdout=StringIO())
    client = Client()
    client.force_login(User.objects.get(username="admin"))
    return client


def figure(html: str, currency: str, name: str) -> str:
    row = re.search(rf'<tr data-currency="{currency}">(.*?)</tr>', html, re.S).group(1)
    return re.search(rf'data-figure="{name}">([^<]+)<', row).group(1)


def test_the_dashboard_figures_equal_reconciles_and_link_to_their_lists(seeded):
    html = seeded.get("/admin/").content.decode()
    report = reconcile()

    assert "Wallet ops console" in html and "Django administration" not in html
    for code, totals in report.supply.items():
        assert figure(html, code, "supply") == totals["balances"]
        assert figure(html, code, "held") == totals["held"]
        assert figure(html, code, "deposits-today") == totals["deposits"]  # seeded today
    assert 'data-figure="withdrawals-pending">1<' in html
    assert 'data-figure="reconcile-outcome" class="outcome-pass">pass<' in html
    assert "signature valid" in html
    # A drawn chart: rectangles of nonzero size for the seeded deposits.
    assert re.search(r'<rect class="kind-deposit" x="[\d.]+" y="[\d.]+" width="[1-9][\d.]*" height="[1-9][\d.]*"', html)
    # Every figure's link opens its list (the filters it names exist: no "?e=1" error redirect).
    links = set(re.findall(r'<a href="(/admin/[^"]+)"[^>]*data-figure', html))
    assert len(links) >= 10
    for link in links:
        response = seeded.get(link.replace("&amp;", "&"))
        assert response.status_code == 200, link
    queue = seeded.get("/admin/holds/withdrawalrequest/?status__exact=pending").content.decode()
    assert "TDemoWithdrawalAddressForCarol0001" in queue


def test_sections_are_named_for_what_operators_do(seeded):
    html = seeded.get("/admin/").content.decode()
    names = re.findall(r'<caption>\s*<a href="/admin/section/[a-z]+/"[^>]*>([^<]+)</a>', html)
    assert names == ["Ledger", "Customers", "Operations", "Webhooks", "Audit"]
    assert "Core plumbing" not in html
    operations = seeded.get("/admin/section/operations/").content.decode()
    assert operations.index("Withdrawal requests") < operations.index("Holds") < operations.index("Outbox events")
    assert seeded.get("/admin/section/nothing/").status_code == 404


def test_the_dashboard_is_for_staff_only(user_factory):
    client = Client()
    client.force_login(user_factory(username="mallory"))
    assert client.get("/admin/").status_code == 302


def test_a_forged_checkpoint_and_a_failed_reconcile_show_as_alerts(seeded, user_factory):
    from django.db import connection

    with connection.cursor() as cursor:  # as an attacker with database access would (triggers off)
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE audit_checkpoint SET signature = repeat('0', 128)")
        cursor.execute(
            "UPDATE wallets_wallet SET balance = balance + 1 WHERE id = (SELECT min(id) FROM wallets_wallet)"
        )
        cursor.execute("SET session_replication_role = origin")
    with pytest.raises(CommandError):
        call_command("reconcile", stdout=StringIO())
    html = seeded.get("/admin/").content.decode()
    assert "SIGNATURE INVALID" in html
    assert 'class="outcome-fail">fail<' in html


def test_staff_without_the_permission_see_no_queue_button(seeded):
    viewer = UserFactory(is_staff=True)
    client = Client()
    client.force_login(viewer)
    assert 'id="queue-reconcile"' not in client.get("/admin/").content.decode()
    assert 'id="queue-reconcile"' in seeded.get("/admin/").content.decode()
    assert WithdrawalRequest.objects.filter(status="pending").count() == 1


def test_the_webhooks_card_counts_what_waits_what_failed_and_what_was_switched_off(seeded, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.CONSOLE_CACHE_SECONDS = 0
    carol = User.objects.get(username="carol")
    waiting = endpoint_create(owner=carol, url="http://127.0.0.1:9/hooks", event_types=["*"]).endpoint
    failing = endpoint_create(owner=carol, url="http://127.0.0.1:9/other", event_types=["*"]).endpoint
    for _ in range(2):
        endpoint_test(user=carol, endpoint_id=waiting.pk)
    gave_up = endpoint_test(user=carol, endpoint_id=failing.pk)
    WebhookDelivery.objects.filter(pk=gave_up.pk).update(status="failed", completed_at=timezone.now())
    WebhookEndpoint.objects.filter(pk=failing.pk).update(enabled=False, disabled_reason="5 deliveries failed")

    html = seeded.get("/admin/").content.decode()

    assert 'data-figure="webhooks-pending">2<' in html
    assert 'data-figure="webhooks-failed">1 failed in 24 h<' in html
    assert 'data-figure="webhooks-disabled">1 endpoint disabled<' in html
    for name in ("webhooks-pending", "webhooks-failed", "webhooks-disabled"):
        link = re.search(rf'<a href="(/admin/[^"]+)" data-figure="{name}"', html).group(1).replace("&amp;", "&")
        listed = seeded.get(link)
        assert listed.status_code == 200 and "?e=1" not in listed.get("Location", ""), link
    disabled = seeded.get("/admin/webhooks/webhookendpoint/?enabled__exact=0").content.decode()
    assert "127.0.0.1:9/other" in disabled and "127.0.0.1:9/hooks" not in disabled
