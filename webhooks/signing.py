"""Signing secrets and signatures, per the Standard Webhooks specification (the ``standardwebhooks`` package).

A secret is ``whsec_`` + base64 of 32 random bytes. The worker needs it in clear to sign, so it is stored,
encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived by HKDF from
``WEBHOOK_SECRET_KEY`` (or ``SECRET_KEY`` when that is unset): a database dump alone does not reveal
the secrets. Changing that key makes the stored secrets unreadable (rotate every endpoint afterwards).
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@lru_cache(maxsize=4)
def _fernet(key_material: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"wallet webhook secrets v1").derive(
        key_material.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _cipher() -> Fernet:
    return _fernet(settings.WEBHOOK_SECRET_KEY or settings.SECRET_KEY)


def secret_encrypt(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("the webhook secret cannot be decrypted (WEBHOOK_SECRET_KEY or SECRET_KEY changed?)")


def signature_header(*, secrets_in_use: list[str], msg_id: str, timestamp: datetime, body: str) -> str:
    """``webhook-signature``: one ``v1,<base64>`` per secret, space-separated (the spec's form for a rotation)."""
    return " ".join(Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets_in_use)
