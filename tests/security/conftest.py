"""Fixtures for the security suite: a production-like live server on its own database, seeded randomness."""

import pytest

from tests.live import live_api, live_template, rng  # noqa: F401 - fixtures

ALLOWED_ORIGIN = "https://app.example.test"


@pytest.fixture(scope="session")
def live(live_template):  # noqa: F811 - the imported fixture
    """One production-like gunicorn (3 workers) for the fast live tests; each test seeds its own users.

    Behind a TLS proxy (so HSTS can be checked), one allowed CORS origin, a 1 s lock timeout.
    """
    with live_api(
        live_template,
        "security",
        DB_LOCK_TIMEOUT_MS="1000",
        BEHIND_TLS_PROXY="true",
        CORS_ALLOWED_ORIGINS=ALLOWED_ORIGIN,
    ) as api:
        yield api
