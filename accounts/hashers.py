"""Verifies bcrypt hashes imported from the Go service ($2a$/$2b$), so they can be upgraded to Argon2."""

from __future__ import annotations

import hashlib

from django.contrib.auth.hashers import BasePasswordHasher, mask_hash
from django.utils.crypto import constant_time_compare


class LegacyBcryptHasher(BasePasswordHasher):
    """Accepts the Go service's raw bcrypt hashes stored as ``bcrypt_legacy$<$2b$...>``.

    Never used to create hashes: Django upgrades them to Argon2 (the first hasher) at login.
    bcrypt ignores bytes past 72; Go's bcrypt refuses such passwords, so no legacy hash can match
    one, and we answer "wrong password" instead of raising.
    """

    algorithm = "bcrypt_legacy"
    library = "bcrypt"

    def encode(self, password: str, salt: str) -> str:  # pragma: no cover - never a target hasher
        raise NotImplementedError("legacy bcrypt hashes are verified, never created")

    def salt(self) -> str:  # pragma: no cover
        raise NotImplementedError

    def verify(self, password: str, encoded: str) -> bool:
        import bcrypt  # on first use, as BasePasswordHasher._load_library(), which django-stubs omits

        algorithm, legacy = encoded.split("$", 1)
        assert algorithm == self.algorithm
        raw = password.encode()
        if len(raw) > 72:
            return False
        try:
            return constant_time_compare(bcrypt.hashpw(raw, legacy.encode()), legacy.encode())
        except ValueError:
            return False

    def decode(self, encoded: str) -> dict:
        algorithm, legacy = encoded.split("$", 1)
        return {"algorithm": algorithm, "hash": legacy, "salt": legacy[7:29], "work_factor": int(legacy[4:6])}

    def safe_summary(self, encoded: str) -> dict:
        decoded = self.decode(encoded)
        return {
            "algorithm": decoded["algorithm"],
            "work factor": decoded["work_factor"],
            "hash": mask_hash(hashlib.sha256(decoded["hash"].encode()).hexdigest()),
        }

    def must_update(self, encoded: str) -> bool:
        return True

    def harden_runtime(self, password: str, encoded: str) -> None:
        pass
