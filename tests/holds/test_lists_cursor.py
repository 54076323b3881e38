"""GET /holds and GET /withdrawal-requests by cursor: stable while holds and requests arrive, bound to their list."""

from decimal import Decimal

import pytest

from holds.models import Hold, WithdrawalRequest
from holds.services import hold_create, hold_void, withdrawal_request_create
from tests.holds.support import assert_error

from ..paging import read_by_cursor, tampered

LIMIT = 3


def body_of(response):
    assert response.status_code == 200, response.content
    return response.json()


def every_id(client, path, *, limit=LIMIT, **params):
    body = body_of(client.get(path, {"limit": limit, **params}))
    ids = [item["id"] for item in body["data"]]
    while body["pagination"]["has_more"]:
        body = body_of(client.get(path, {"cursor": body["pagination"]["next_cursor"], "limit": limit, **params}))
        ids += [item["id"] for item in body["data"]]
    return ids


@pytest.fixture
def parties(user_factory):
    return user_factory(balance=1000, username="alice"), user_factory(balance=1000, username="bob")


def holds_between(alice, bob, usdt, count=8):
    """Holds both ways, some with no payee, one voided: every role and status has some."""
    made = []
    for n in range(count):
        payer, payee = (alice, bob) if n % 3 else (bob, alice)
        made.append(hold_create(payer_id=payer.pk, currency=usdt, amount=Decimal(n + 1), payee_id=payee.pk))
        if n % 4 == 0:
            made.append(hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal("0.5")))
    hold_void(hold_id=made[1].pk, actor=alice)
    return made


def ids_of(queryset):
    return list(queryset.order_by("-id").values_list("id", flat=True))


# The query, and the holds it lists (none is a withdrawal request's or past its expiry here).
HOLD_LISTS = {
    "either role": ({}, lambda alice: Hold.objects.filter(payer=alice) | Hold.objects.filter(payee=alice)),
    "payer": ({"role": "payer"}, lambda alice: Hold.objects.filter(payer=alice)),
    "payee, active": (
        {"role": "payee", "status": "active"},
        lambda alice: Hold.objects.filter(payee=alice, status="active"),
    ),
}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("case", HOLD_LISTS)
def test_hold_pages_read_exactly_the_holds_that_existed_while_holds_arrive(parties, client_for, usdt, case):
    alice, bob = parties
    holds_between(alice, bob, usdt, count=14)
    params, mine = HOLD_LISTS[case]
    before = ids_of(mine(alice))
    client = client_for(alice)

    def place(n):  # both ways, so every role's list grows
        payer, payee = (alice, bob) if n % 2 else (bob, alice)
        hold_create(payer_id=payer.pk, currency=usdt, amount=Decimal("0.1"), payee_id=payee.pk)

    pages, inserted = read_by_cursor(
        lambda query: body_of(client.get("/holds", {**params, **query})), limit=LIMIT, insert=place
    )

    assert [hold["id"] for page in pages for hold in page] == before
    assert len(pages) >= 2 and inserted >= len(pages)
    now = every_id(client, "/holds", **params)
    assert len(now) > len(before) and now[len(now) - len(before) :] == before  # the new ones come first


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("viewer", ["owner", "staff"])
def test_request_pages_read_exactly_the_requests_that_existed_while_requests_arrive(
    parties, client_for, user_factory, usdt, viewer
):
    alice, bob = parties
    for n in range(14):
        withdrawal_request_create(user_id=(alice if n % 2 else bob).pk, currency=usdt, amount=Decimal(1), address="a")
    client = client_for(alice if viewer == "owner" else user_factory(is_staff=True))
    requests = WithdrawalRequest.objects.all() if viewer == "staff" else WithdrawalRequest.objects.filter(user=alice)
    before = ids_of(requests)

    def ask(n):
        withdrawal_request_create(user_id=(alice if n % 2 else bob).pk, currency=usdt, amount=Decimal(1), address="b")

    pages, inserted = read_by_cursor(
        lambda query: body_of(client.get("/withdrawal-requests", query)), limit=LIMIT, insert=ask
    )

    assert [request["id"] for page in pages for request in page] == before
    assert len(pages) >= 2 and inserted >= len(pages)
    assert every_id(client, "/withdrawal-requests")[-len(before) :] == before


@pytest.mark.parametrize("case", HOLD_LISTS)
def test_hold_cursor_pages_are_the_page_number_pages(parties, client_for, usdt, case):
    alice, bob = parties
    holds_between(alice, bob, usdt)
    params, _ = HOLD_LISTS[case]
    client = client_for(alice)
    numbered = body_of(client.get("/holds", {"page_size": 100, **params}))["data"]
    first = body_of(client.get("/holds", {"limit": 2, **params}))
    assert first["data"] == numbered[:2]
    for limit in (1, 2, 100):
        assert every_id(client, "/holds", limit=limit, **params) == [hold["id"] for hold in numbered]


def test_request_cursor_pages_are_the_page_number_pages(parties, client_for, usdt, user_factory):
    alice, bob = parties
    for n in range(5):
        withdrawal_request_create(user_id=(alice if n % 2 else bob).pk, currency=usdt, amount=Decimal(1), address="a")
    staff = client_for(user_factory(is_staff=True))
    for params in ({}, {"user_id": bob.pk}, {"status": "pending", "user_id": alice.pk}):
        numbered = body_of(staff.get("/withdrawal-requests", {"page_size": 100, **params}))["data"]
        assert every_id(staff, "/withdrawal-requests", limit=2, **params) == [item["id"] for item in numbered]


@pytest.mark.parametrize("path", ["/holds", "/withdrawal-requests"])
def test_a_modified_cursor_is_400(parties, client_for, usdt, path):
    alice, bob = parties
    holds_between(alice, bob, usdt)
    for _ in range(3):
        withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal(1), address="a")
    client = client_for(alice)
    cursor = body_of(client.get(path, {"limit": 1}))["pagination"]["next_cursor"]
    assert cursor
    for bad in [*tampered(cursor), ""]:
        response = client.get(path, {"cursor": bad})
        assert_error(response, 400, "INVALID_REQUEST")
        assert list(response.json()["errors"]) == ["cursor"]


def test_a_hold_cursor_of_another_user_another_filter_or_another_list_is_400(parties, client_for, usdt):
    alice, bob = parties
    holds_between(alice, bob, usdt)
    withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal(1), address="a")
    withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal(1), address="a")
    as_alice, as_bob = client_for(alice), client_for(bob)

    def cursor_of(client, path="/holds", **params):
        cursor = body_of(client.get(path, {"limit": 1, **params}))["pagination"]["next_cursor"]
        assert cursor
        return cursor

    refused = [
        (as_bob, "/holds", {"cursor": cursor_of(as_alice)}),  # the same filters, someone else's holds
        (as_alice, "/holds", {"cursor": cursor_of(as_alice, role="payer"), "role": "payee"}),
        (as_alice, "/holds", {"cursor": cursor_of(as_alice, role="payer")}),
        (as_alice, "/holds", {"cursor": cursor_of(as_alice), "status": "active"}),
        (as_alice, "/holds", {"cursor": cursor_of(as_alice, "/withdrawal-requests")}),
        (as_alice, "/withdrawal-requests", {"cursor": cursor_of(as_alice)}),
        (
            as_alice,
            "/withdrawal-requests",
            {"cursor": cursor_of(as_alice, "/withdrawal-requests"), "status": "pending"},
        ),
    ]
    for client, path, params in refused:
        response = client.get(path, params)
        assert_error(response, 400, "INVALID_REQUEST")
        assert list(response.json()["errors"]) == ["cursor"], (path, params)


def test_a_request_cursor_of_another_staff_member_or_user_filter_is_400(parties, client_for, usdt, user_factory):
    alice, bob = parties
    for user in (alice, alice, bob, bob):
        withdrawal_request_create(user_id=user.pk, currency=usdt, amount=Decimal(1), address="a")
    staff, other_staff = client_for(user_factory(is_staff=True)), client_for(user_factory(is_staff=True))
    cursor = body_of(staff.get("/withdrawal-requests", {"limit": 1, "user_id": alice.pk}))["pagination"]["next_cursor"]
    assert staff.get("/withdrawal-requests", {"cursor": cursor, "user_id": alice.pk}).status_code == 200
    assert_error(staff.get("/withdrawal-requests", {"cursor": cursor, "user_id": bob.pk}), 400, "INVALID_REQUEST")
    assert_error(
        other_staff.get("/withdrawal-requests", {"cursor": cursor, "user_id": alice.pk}), 400, "INVALID_REQUEST"
    )


@pytest.mark.parametrize("path", ["/holds", "/withdrawal-requests"])
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"page": "1", "limit": "5"}, "limit"),
        ({"page_size": "5", "cursor": "x"}, "cursor"),
    ],
)
def test_limits_and_mixed_modes_are_400(parties, client_for, path, params, named):
    alice, _ = parties
    response = client_for(alice).get(path, params)
    assert_error(response, 400, "INVALID_REQUEST")
    assert list(response.json()["errors"]) == [named]


@pytest.mark.parametrize("path", ["/holds", "/withdrawal-requests"])
def test_page_number_requests_keep_their_envelope(parties, client_for, usdt, path):
    alice, bob = parties
    holds_between(alice, bob, usdt, count=3)
    withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal(1), address="a")
    body = body_of(client_for(alice).get(path, {"page_size": 2}))
    assert set(body["pagination"]) == {"page", "page_size", "total", "total_pages"}
    by_limit = body_of(client_for(alice).get(path, {"limit": 2}))
    assert by_limit["data"] == body["data"]
    assert set(by_limit["pagination"]) == {"next_cursor", "has_more"}
