"""Both paging modes of the lists: the schema documents them, and a cursor page is one ordered index range."""

from decimal import Decimal

import jsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import BalanceHistory
from holds.services import hold_create, withdrawal_request_create
from transactions import sql
from transactions.services import deposit_create, transfer_create
from wallet_project.core import errors
from wallet_project.core.cursor import encode_cursor
from wallet_project.core.pagination import cursor_window, keyset_page
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

LISTS = ["/transactions/{user_id}", "/holds", "/withdrawal-requests", "/audit/balance-history"]


@pytest.fixture
def ledger(user_factory, usdt, btc):
    """Alice: two wallets' history, holds both ways, withdrawal requests; Bob the other party."""
    alice, bob = user_factory(balance=100), user_factory(balance=100)
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
    for n in range(10):
        sender, recipient = (alice, bob) if n % 2 else (bob, alice)
        transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal(1))
        hold_create(payer_id=sender.pk, currency=usdt, amount=Decimal(1), payee_id=recipient.pk)
        withdrawal_request_create(user_id=alice.pk, currency=usdt, amount=Decimal(1), address="a")
    return alice, bob


# --- The schema ----------------------------------------------------------------------------------------


@pytest.fixture
def schema(api):
    return api.get("/openapi.json").json()


def _nullable(node):
    """OpenAPI 3.0's ``nullable`` in JSON Schema terms (Draft 4 does not know it)."""
    if isinstance(node, dict):
        node = {key: _nullable(value) for key, value in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    return node


@pytest.mark.parametrize("path", LISTS)
def test_each_list_documents_both_modes_parameters_and_envelopes(schema, path):
    operation = schema["paths"][path]["get"]
    parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert {"page", "page_size", "cursor", "limit"} <= set(parameters)
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert parameters["cursor"]["schema"]["type"] == "string"
    envelope = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    components = schema["components"]["schemas"]
    assert components[envelope]["properties"]["pagination"] == {"$ref": "#/components/schemas/ListPagination"}
    assert components["ListPagination"] == {
        "oneOf": [{"$ref": "#/components/schemas/PaginationOut"}, {"$ref": "#/components/schemas/CursorPaginationOut"}]
    }
    assert "400" in operation["responses"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("query", [{}, {"page": 2, "page_size": 2}, {"limit": 2}, {"limit": 100}])
def test_every_answer_of_either_mode_is_valid_by_the_schema(schema, ledger, client_for, path, query):
    alice, _ = ledger
    client = client_for(alice)
    url = path.format(user_id=alice.pk)
    body = client.get(url, query).json()
    if "limit" in query and body["pagination"]["has_more"]:
        assert client.get(url, {"cursor": body["pagination"]["next_cursor"]}).status_code == 200
    envelope = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft4Validator(_nullable({**envelope, "components": schema["components"]}))
    validator.validate(body)
    assert set(body["pagination"]) == (
        {"next_cursor", "has_more"} if "limit" in query else {"page", "page_size", "total", "total_pages"}
    )


# --- The paginator -----------------------------------------------------------------------------------------


def test_keyset_paging_needs_one_descending_order(ledger):
    window = cursor_window({"limit": 5}, scope={"list": "test"})
    for queryset in [
        BalanceHistory.objects.order_by("id"),
        BalanceHistory.objects.order_by("-created_at", "-id"),
        BalanceHistory.objects.all(),
        [BalanceHistory.objects.order_by("-id"), BalanceHistory.objects.order_by("-seq")],
    ]:
        with pytest.raises(ValueError, match="descending"):
            keyset_page(queryset, str, window)


def test_a_signed_cursor_of_another_layout_is_400_not_a_500(ledger):
    """A cursor of this list that carries no usable position (as an older release's might) is refused."""
    scope = {"list": "test", "viewer": 1}
    bound = cursor_window({"limit": 1}, scope=scope).scope
    for position in [{"id": "5"}, {"id": -1}, {"id": True}, {"seq": 5}, {}]:
        window = cursor_window({"cursor": encode_cursor(position, scope=bound)}, scope=scope)
        with pytest.raises(errors.InvalidRequest) as refused:
            keyset_page(BalanceHistory.objects.order_by("-id"), str, window)
        assert refused.value.errors == {"cursor": ["invalid cursor"]}


def test_a_window_is_bound_to_every_value_of_its_scope():
    scope = {"list": "holds", "viewer": 1, "status": None, "role": "payer"}
    cursor = cursor_window({"limit": 1}, scope=scope).envelope([], {"id": 9})["pagination"]["next_cursor"]
    assert cursor_window({"cursor": cursor}, scope=dict(scope)).after == {"id": 9}
    for changed in [{"viewer": 2}, {"status": "active"}, {"role": None}, {"list": "withdrawal-requests"}]:
        with pytest.raises(errors.InvalidRequest):
            cursor_window({"cursor": cursor}, scope={**scope, **changed})
    assert cursor_window({"page": 1, "page_size": 20}, scope=scope) is None  # page-number mode


# --- The plans: one range of an index, read in its order, stopped by the LIMIT -----------------------------

# (list, query, the index whose range a page reads, the condition that starts the range below the cursor)
PLANS = [
    ("history", {}, "history_user_recent", "(id < "),  # two wallets: the user's entries by id
    ("history", {"direction": "sent"}, "history_user_recent", "(id < "),
    ("holds", {}, "hold_payer_recent", "(id < "),  # two ranges, merged: what she pays ...
    ("holds", {}, "hold_payee_recent", "(id < "),  # ... and what she is paid
    ("holds", {"role": "payer", "status": "active"}, "hold_payer_recent", "(id < "),
    ("withdrawal-requests", {}, "withdrawal_request_user_recent", "(id < "),
    ("withdrawal-requests/staff", {}, "holds_withdrawalrequest_pkey", "(id < "),
    ("audit/balance-history", {}, "history_user_recent", "(id < "),
    ("audit/balance-history", {"currency": "USDT"}, "history_user_recent", "(id < "),
    ("audit/balance-history/staff", {}, "audit_balancehistory_pkey", "(id < "),
    ("audit/balance-history/staff", {"wallet_id": "alice's USDT"}, "history_wallet_position", "(seq < "),
]


def explain(statement: str, params=None) -> str:
    with connection.cursor() as cursor:
        # A test database of a few rows is cheapest read whole, or sorted after a scan once its statistics
        # say it is tiny (as they do after the audit tests have run): without these options the planner
        # shows the plan it takes for a table of any size. The assertions below then prove that the page
        # is one range of the index, read in its order, which is what a keyset page needs.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + statement, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(("name", "query", "index", "start"), PLANS)
def test_a_cursor_page_is_an_ordered_index_range_without_offset(
    ledger, client_for, user_factory, usdt, name, query, index, start
):
    alice, _ = ledger
    client = client_for(user_factory(is_staff=True) if name.endswith("/staff") else alice)
    path = {"history": f"/transactions/{alice.pk}"}.get(name, "/" + name.removesuffix("/staff"))
    if query.get("wallet_id"):
        query = {"wallet_id": Wallet.objects.get(user=alice, currency=usdt).pk}
    cursor = client.get(path, {"limit": 2, **query}).json()["pagination"]["next_cursor"]
    assert cursor

    with CaptureQueriesContext(connection) as queries:
        page = client.get(path, {"cursor": cursor, "limit": 2, **query})
    assert page.status_code == 200 and len(page.json()["data"]) == 2

    statements = [q["sql"] for q in queries.captured_queries if q["sql"] and " LIMIT 3" in q["sql"]]
    assert statements and not any("OFFSET" in statement for statement in statements)
    (plan,) = [plan for plan in map(explain, statements) if f" using {index} on " in plan]
    assert start in index_condition(plan, index), plan
    assert "Sort" not in plan, plan  # rows come in the index's order: the LIMIT stops the range


def index_condition(plan: str, index: str) -> str:
    """The ``Index Cond`` of the plan's scan of ``index``."""
    lines = plan.splitlines()
    at = next(n for n, line in enumerate(lines) if f" using {index} on " in line)
    assert "Index Cond" in lines[at + 1], plan
    return lines[at + 1]


def test_a_one_wallet_history_page_is_a_range_of_its_chain_positions(user_factory, usdt, client_for):
    """The one-wallet path runs the page-number fast path's own prepared statement, on the cursor's positions."""
    alice, bob = user_factory(balance=10), user_factory()
    for _ in range(5):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))
    client = client_for(bob)
    cursor = client.get(f"/transactions/{bob.pk}", {"limit": 2}).json()["pagination"]["next_cursor"]
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/transactions/{bob.pk}", {"cursor": cursor, "limit": 2}).status_code == 200
    assert not any("OFFSET" in (q["sql"] or "") for q in queries.captured_queries)

    wallet = Wallet.objects.get(user=bob, currency=usdt)
    plan = explain(sql.POSITION_PAGE_SQL, [wallet.pk, 3, 1])
    condition = index_condition(plan, "history_wallet_posting")
    assert "posting <= " in condition and "posting > " in condition, plan
    assert "Sort" not in plan, plan
