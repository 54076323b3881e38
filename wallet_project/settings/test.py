"""Test settings: the suite runs on PostgreSQL (row locks, constraints and triggers are only real there)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wallet")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SIGNUP_GRANT", "")
os.environ.setdefault("RATELIMIT_ENABLE", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Tests change currencies inside rolled-back transactions: never serve a stale copy across tests.
os.environ.setdefault("CURRENCY_CACHE_SECONDS", "0")

from .base import *  # noqa: E402, F403

# Argon2 costs tens of milliseconds per hash by design; tests that are not about hashing use MD5. The
# production hashers stay listed (existing hashes verify); tests about hashing use the
# `production_hashers` fixture (tests/conftest.py).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]  # noqa: F405
