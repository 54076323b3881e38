"""GET /wallet/{user_id}?at=: the wallet as it stood at an instant, from its chain."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from audit.models import BalanceHistory
from holds.services import hold_create, hold_void
from tests.wallets.statements import MICROSECOND, iso
from transactions.services import deposit_create, transfer_create
from wallets.models import Wallet
from wallets.selectors import chain_point_query

pytestmark = pytest.mark.django_db

WALLET_FIELDS = {"id", "user_id", "currency_id", "currency", "balance", "held", "available", "created_at", "updated_at"}


@pytest.fixture
def story(user_factory, usdt):
    """Alice: 100 deposited, 30 held for Bob, 25 sent to Bob, the hold voided; the time of each entry."""
    alice, bob = user_factory(balance=100), user_factory()
    hold = hold_create(payer_id=alice.pk, payee_id=bob.pk, currency=usdt, amount=Decimal("30"))
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("25"))
    hold_void(hold_id=hold.pk, actor=alice)
    wallet = Wallet.objects.get(user=alice, currency=usdt)
    times = list(BalanceHistory.objects.filter(wallet=wallet).order_by("seq").values_list("created_at", flat=True))
    assert len(times) == 4
    return alice, bob, wallet, times


def at(client, user, instant, **query):
    return client.get(f"/wallet/{user.pk}", {"at": instant if isinstance(instant, str) else iso(instant), **query})


def test_the_wallet_at_each_step_of_its_chain(story, client_for):
    alice, _, wallet, (deposited, held, sent, voided) = story
    client = client_for(alice)
    steps = [
        (wallet.created_at, ("0.00000000", "0.00000000", "0.00000000"), wallet.created_at),
        (deposited - MICROSECOND, ("0.00000000", "0.00000000", "0.00000000"), wallet.created_at),
        (deposited, ("100.00000000", "0.00000000", "100.00000000"), deposited),  # an entry's own instant counts
        (held, ("100.00000000", "30.00000000", "70.00000000"), held),
        (sent - MICROSECOND, ("100.00000000", "30.00000000", "70.00000000"), held),
        (sent, ("75.00000000", "30.00000000", "45.00000000"), sent),
        (voided, ("75.00000000", "0.00000000", "75.00000000"), voided),
    ]
    for instant, (balance, held_amount, available), updated_at in steps:
        response = at(client, alice, instant)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == WALLET_FIELDS | {"as_of"}
        assert (body["balance"], body["held"], body["available"]) == (balance, held_amount, available), instant
        assert body["as_of"] == iso(instant) and body["updated_at"] == iso(updated_at)
        assert (body["id"], body["user_id"], body["currency"]) == (wallet.pk, alice.pk, "USDT")
        assert body["created_at"] == iso(wallet.created_at)


def test_a_future_instant_is_the_wallet_as_it_stands_now(story, client_for):
    alice, _, wallet, _ = story
    future = datetime.now(UTC) + timedelta(days=400)
    body = at(client_for(alice), alice, future).json()
    now = client_for(alice).get(f"/wallet/{alice.pk}").json()
    assert {k: body[k] for k in WALLET_FIELDS} == now
    assert body["as_of"] == iso(future)


def test_an_offset_is_normalised_to_utc(story, client_for):
    alice, _, _, (deposited, *_) = story
    local = deposited.astimezone(timezone(timedelta(hours=5, minutes=30)))
    body = at(client_for(alice), alice, local.isoformat()).json()
    assert body["as_of"] == iso(deposited) and body["as_of"].endswith("Z")
    assert body["balance"] == "100.00000000"


def test_before_the_wallet_was_opened_is_404_wallet_not_found(story, client_for):
    alice, _, wallet, _ = story
    response = at(client_for(alice), alice, wallet.created_at - MICROSECOND)
    assert response.status_code == 404
    assert response.json()["code"] == "WALLET_NOT_FOUND"


def test_another_currency_at_an_instant(story, client_for, btc):
    alice, *_ = story
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("0.5"))
    entry = BalanceHistory.objects.get(wallet__user=alice, wallet__currency=btc)
    client = client_for(alice)
    assert at(client, alice, entry.created_at, currency="BTC").json()["balance"] == "0.50000000"
    assert at(client, alice, entry.created_at - MICROSECOND, currency_id=btc.pk).json()["balance"] == "0.00000000"


@pytest.mark.parametrize(
    "value", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "12:00", "2026-01-01T00:00:00+24:00"]
)
def test_a_malformed_instant_is_400_naming_at(story, client_for, value):
    alice, *_ = story
    response = at(client_for(alice), alice, value)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST" and "at" in response.json()["errors"]


def test_someone_elses_wallet_at_an_instant_is_403(story, client_for):
    alice, bob, _, (deposited, *_) = story
    response = at(client_for(bob), alice, deposited)
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"
    assert "forbidden" in response.json()["error"]
    assert "100.0" not in response.content.decode()


def test_staff_read_any_wallet_at_an_instant(story, client_for, user_factory):
    alice, _, _, (deposited, *_) = story
    response = at(client_for(user_factory(is_staff=True)), alice, deposited)
    assert response.status_code == 200 and response.json()["balance"] == "100.00000000"


def test_at_an_instant_needs_a_token(story, api):
    alice, _, _, (deposited, *_) = story
    response = api.get(f"/wallet/{alice.pk}", {"at": iso(deposited)})
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


def test_a_wallet_without_at_is_unchanged(story, client_for):
    alice, *_ = story
    body = client_for(alice).get(f"/wallet/{alice.pk}").json()
    assert set(body) == WALLET_FIELDS and body["balance"] == "75.00000000"


def test_the_instant_is_one_probe_of_the_wallet_time_index():
    """The plan of the point-in-time read over 45,000 entries: one backward step into the index.

    The entries go to a temporary copy of the table with all its indexes (``LIKE ... INCLUDING ALL``),
    which shadows it for this connection's unqualified names, so the selector's own SQL plans against
    them; the real table, and the statistics other tests plan with, are left as they were.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'history_wallet_time'")
        ((definition,),) = cursor.fetchall()
        assert definition.endswith("ON public.audit_balancehistory USING btree (wallet_id, created_at, seq)")
        cursor.execute("CREATE TEMPORARY TABLE audit_balancehistory (LIKE public.audit_balancehistory INCLUDING ALL)")
        # Held-only entries, 5,000 for each of 9 wallets; only their shape matters here.
        cursor.execute(
            """
            INSERT INTO audit_balancehistory (wallet_id, user_id, transaction_id, delta, balance_before, balance_after,
                held_delta, held_before, held_after, hold_uid, prev_hash, entry_hash, seq, posting, created_at)
            SELECT w, w, NULL, 0, 10, 10, CASE WHEN i % 2 = 1 THEN 1 ELSE -1 END, (i - 1) % 2, i % 2,
                gen_random_uuid(), md5(w || ':' || (i - 1)) || md5('p'), md5(w || ':' || i) || md5('p'), i,
                NULL, now() - interval '1 day' + i * interval '1 second'
            FROM generate_series(1, 5000) i, generate_series(1, 9) w
            """
        )
        cursor.execute("ANALYZE pg_temp.audit_balancehistory")
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname LIKE 'pg_temp%' AND tablename = 'audit_balancehistory'"
            " AND indexdef LIKE '%(wallet_id, created_at, seq)'"
        )
        ((copy_of_the_index,),) = cursor.fetchall()
        query = chain_point_query(5, datetime.now(UTC) - timedelta(hours=12), inclusive=True)
        sql, params = query[:1].query.sql_with_params()
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
        cursor.execute("DROP TABLE pg_temp.audit_balancehistory")
    assert plan[0].startswith("Limit (actual rows=1 loops=1)"), plan
    assert f"Index Scan Backward using {copy_of_the_index}" in plan[1] and "(actual rows=1 loops=1)" in plan[1], plan
    assert not any("Sort" in line or "Seq Scan" in line for line in plan), plan
