"""Secrets: argon2 password hashes, random bearer tokens and API keys (kept as SHA-256)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

TOKEN_BYTES = 32
API_KEY_PREFIX = "amrk_"


class Passwords:
    """Hash and verify passwords with argon2id."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy = unmatchable_hash(self.hasher)

    def hash(self, password: str) -> str:
        """An argon2id hash of `password` (with its own random salt)."""
        return self.hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when `password` matches; an unknown user costs the same time as a wrong password."""
        try:
            return self.hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def unmatchable_hash(hasher: PasswordHasher) -> str:
    """An encoded hash with `hasher`'s parameters and random salt and digest: verifying a password
    against it costs what a real hash costs and never matches, and making it costs no hashing (an
    argon2 hash at the default parameters takes most of a second: the API would start that much later)."""

    def b64(size: int) -> str:  # argon2's encoding: standard base64 without padding
        return base64.b64encode(secrets.token_bytes(size)).decode("ascii").rstrip("=")

    return (
        f"$argon2{hasher.type.name.lower()}$v={ARGON2_VERSION}$m={hasher.memory_cost},t={hasher.time_cost},"
        f"p={hasher.parallelism}${b64(hasher.salt_len)}${b64(hasher.hash_len)}"
    )


def new_token() -> str:
    """A fresh opaque bearer token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_key() -> str:
    """A fresh API key (shown once; only its hash is kept)."""
    return API_KEY_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a token or key is kept."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
