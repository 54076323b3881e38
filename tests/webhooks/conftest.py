import pytest

from tests.conftest import auth_client, make_user
from tests.ledger import flushable_append_only_tables
from webhooks.services import endpoint_create


@pytest.fixture(scope="session", autouse=True)
def _flushable_append_only_tables():
    """Transactional tests here end with a flush, which the append-only triggers would reject."""
    with flushable_append_only_tables():
        yield


@pytest.fixture
def private_targets(settings):
    """Loopback receivers allowed (WEBHOOK_ALLOW_PRIVATE_TARGETS), fast retries, short timeouts."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_RETRY_SCHEDULE = [0.01]
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS = 1.0
    return settings


@pytest.fixture
def endpoint_for(db, private_targets):
    def make(user, url: str, event_types=("*",)):
        return endpoint_create(owner=user, url=url, event_types=list(event_types))

    return make


@pytest.fixture
def alice(db):
    return make_user(balance=100, username="alice")


@pytest.fixture
def bob(db):
    return make_user(balance=100, username="bob")


@pytest.fixture
def carol(db):
    return make_user(balance=100, username="carol")


@pytest.fixture
def staff(db):
    return make_user(is_staff=True, username="staffer")


__all__ = ["auth_client"]
