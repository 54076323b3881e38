"""Fixtures for the soak suite (``make soak``): live servers on private databases, seeded randomness."""

from tests.live import live_template, rng  # noqa: F401 - fixtures
