"""Secrets: argon2 password hashes, random bearer tokens and API keys (kept as SHA-256)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOKEN_BYTES = 32
API_KEY_PREFIX = "amrk_"


class Passwords:
    """Hash and verify passwords with argon2id."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    def hash(self, password: str) -> str:
        """An argon2id hash of `password` (with its own random salt)."""
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; an unknown user costs the same time as a wrong password."""
        try:
            return self.hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def new_token() -> str:
    """A fresh opaque bearer token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_key() -> str:
    """A fresh API key (shown once; only its hash is kept)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a token or key is kept."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
