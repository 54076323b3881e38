"""Test settings: the suite runs on PostgreSQL (row locks, constraints and triggers are only real there).

Production mode (no DJANGO_ENV), so that the suite exercises the production defaults, with throwaway
secrets and plain HTTP for the test client.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wallet")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-any-deployment-0123456789abcdef")
os.environ.setdefault("JWT_SECRET", "test-only-jwt-secret-not-for-any-deployment")
os.environ.setdefault("RECEIPT_SIGNING_KEY", "7e" * 32)
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("RATELIMIT_ENABLE", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Tests change currencies inside rolled-back transactions: never serve a stale copy across tests.
os.environ.setdefault("CURRENCY_CACHE_SECONDS", "0")
os.environ.setdefault("CONSOLE_CACHE_SECONDS", "0")

from .base import *  # noqa: E402, F403

# Argon2 costs tens of milliseconds per hash by design; tests that are not about hashing use MD5. The
# production hashers stay listed (existing hashes verify); tests about hashing use the
# `production_hashers` fixture (tests/conftest.py).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405
