"""Password hashing: an unknown user costs what a wrong password costs, and starting costs no hash."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import VerifyMismatchError

from amr.api.security import Passwords, unmatchable_hash


class CountingHasher(PasswordHasher):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hashed = 0
        self.verified = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashed += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


CHEAP = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}


def test_passwords_start_without_hashing() -> None:
    hasher = CountingHasher(**CHEAP)
    Passwords(hasher)
    assert hasher.hashed == 0


@pytest.mark.parametrize(
    "hasher",
    [PasswordHasher(), PasswordHasher(**CHEAP), PasswordHasher(**CHEAP, type=Type.I, salt_len=8, hash_len=24)],
    ids=["default", "cheap", "argon2i"],
)
def test_the_unknown_users_hash_has_the_hashers_parameters(hasher: PasswordHasher) -> None:
    real = extract_parameters(PasswordHasher(**CHEAP, type=hasher.type, salt_len=hasher.salt_len,
                                             hash_len=hasher.hash_len).hash("x"))
    dummy = extract_parameters(unmatchable_hash(hasher))
    assert (dummy.type, dummy.version, dummy.salt_len, dummy.hash_len) == (
        real.type, real.version, real.salt_len, real.hash_len
    )
    assert (dummy.time_cost, dummy.memory_cost, dummy.parallelism) == (
        hasher.time_cost, hasher.memory_cost, hasher.parallelism
    )
    if hasher.memory_cost == CHEAP["memory_cost"]:  # computed in full, then refused (not a malformed hash)
        with pytest.raises(VerifyMismatchError):
            hasher.verify(unmatchable_hash(hasher), "x")


def test_an_unknown_user_is_verified_like_a_wrong_password() -> None:
    hasher = CountingHasher(**CHEAP)
    passwords = Passwords(hasher)
    stored = passwords.hash("secret")
    assert passwords.verify(stored, "secret")
    assert not passwords.verify(stored, "wrong")
    assert not passwords.verify(None, "secret")
    assert not passwords.verify(None, "")
    assert hasher.verified == 4  # the unknown user went through argon2 too
