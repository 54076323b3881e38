import pytest

from tests.ledger import flushable_append_only_tables
from tests.otel import spans  # noqa: F401 - the fixture, for the tracing tests


@pytest.fixture(scope="session", autouse=True)
def _flushable_append_only_tables():
    """Transactional tests here end with a flush, which the append-only triggers would reject."""
    with flushable_append_only_tables():
        yield
