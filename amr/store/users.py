"""API users, their links (accounts, meters, objects), bearer tokens and API keys.

Hashing passwords is the caller's job (`amr.api.security`); this module stores hashes and
looks secrets up by their SHA-256.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update

from amr.errors import InputError, NotFound
from amr.store.auth_models import (
    LINK_KINDS,
    ROLES,
    api_keys_table,
    api_tokens_table,
    api_user_links_table,
    api_users_table,
)
from amr.store.store import Store, StoreConflict, translate_errors


@dataclass(frozen=True, slots=True)
class User:
    """A user with its links."""

    id: int
    login: str
    name: str
    role: str
    disabled: bool
    password_hash: str | None = field(default=None, repr=False)
    accounts: frozenset[str] = frozenset()
    meters: frozenset[str] = frozenset()
    objects: frozenset[str] = frozenset()


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")


class Users:
    """Users, links, tokens and API keys kept in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, login: str, role: str, password_hash: str | None, now: datetime, name: str = "") -> User:
        """Create a user; `InputError` if the login is taken or the role unknown."""
        _check_role(role)
        login = login.strip()
        if not login or len(login) > 100:
            raise InputError("a login is 1 to 100 characters")
        try:
            with translate_errors(), self.store.engine.begin() as conn:
                conn.execute(
                    insert(api_users_table).values(
                        login=login, name=name, role=role, password_hash=password_hash, disabled=False, created_at=now
                    )
                )
        except StoreConflict:
            raise InputError(f"login {login!r} is taken; choose another") from None
        return self.get(login)

    def all(self) -> list[User]:
        """Every user with links, by login."""
        with translate_errors(), self.store.engine.connect() as conn:
            rows = conn.execute(select(api_users_table).order_by(api_users_table.c.login)).mappings().all()
            links = conn.execute(select(api_user_links_table)).mappings().all()
        by_user: dict[int, list[tuple[str, str]]] = {}
        for link in links:
            by_user.setdefault(link["user_id"], []).append((link["kind"], link["value"]))
        return [_user(row, by_user.get(row["id"], [])) for row in rows]

    def get(self, login: str) -> User:
        """A user by login; `NotFound` otherwise."""
        with translate_errors(), self.store.engine.connect() as conn:
            row = conn.execute(select(api_users_table).where(api_users_table.c.login == login)).mappings().first()
            if row is None:
                raise NotFound(f"no user {login!r}")
            links = conn.execute(
                select(api_user_links_table.c.kind, api_user_links_table.c.value).where(
                    api_user_links_table.c.user_id == row["id"]
                )
            ).all()
        return _user(row, [(k, v) for k, v in links])

    def by_id(self, user_id: int) -> User:
        """A user by id with links; `NotFound` otherwise."""
        with translate_errors(), self.store.engine.connect() as conn:
            row = conn.execute(select(api_users_table).where(api_users_table.c.id == user_id)).mappings().first()
            if row is None:
                raise NotFound(f"no user with id {user_id}")
            links = conn.execute(
                select(api_user_links_table.c.kind, api_user_links_table.c.value).where(
                    api_user_links_table.c.user_id == user_id
                )
            ).all()
        return _user(row, [(k, v) for k, v in links])

    def set_disabled(self, login: str, disabled: bool) -> None:
        """Disable (or enable again) a user; a disabled user's tokens stop working at once."""
        self._update(login, disabled=disabled)
        if disabled:
            user = self.get(login)
            with translate_errors(), self.store.engine.begin() as conn:
                conn.execute(delete(api_tokens_table).where(api_tokens_table.c.user_id == user.id))

    def set_password(self, login: str, password_hash: str | None) -> None:
        """Replace the password hash; existing tokens are revoked."""
        self._update(login, password_hash=password_hash)
        user = self.get(login)
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(delete(api_tokens_table).where(api_tokens_table.c.user_id == user.id))

    def _update(self, login: str, **values: object) -> None:
        with translate_errors(), self.store.engine.begin() as conn:
            done = conn.execute(
                update(api_users_table).where(api_users_table.c.login == login).values(**values)
            ).rowcount
        if not done:
            raise NotFound(f"no user {login!r}")

    def link(self, login: str, kind: str, values: Sequence[str], unlink: bool = False) -> None:
        """Link (or unlink) accounts, meters or objects to a user."""
        if kind not in LINK_KINDS:
            raise InputError(f"unknown link kind {kind!r}; use one of {', '.join(LINK_KINDS)}")
        user = self.get(login)
        current = {"account": user.accounts, "meter": user.meters, "object": user.objects}[kind]
        with translate_errors(), self.store.engine.begin() as conn:
            for value in dict.fromkeys(v.strip() for v in values if v.strip()):
                if unlink:
                    conn.execute(
                        delete(api_user_links_table).where(
                            api_user_links_table.c.user_id == user.id,
                            api_user_links_table.c.kind == kind,
                            api_user_links_table.c.value == value,
                        )
                    )
                elif value not in current:
                    conn.execute(insert(api_user_links_table).values(user_id=user.id, kind=kind, value=value))

    # --- tokens -------------------------------------------------------------------------

    def add_token(self, user_id: int, token_hash: str, now: datetime, expires_at: datetime) -> None:
        """Keep a new bearer token (its hash); expired tokens of every user are purged."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(delete(api_tokens_table).where(api_tokens_table.c.expires_at <= now))
            conn.execute(
                insert(api_tokens_table).values(
                    token_hash=token_hash, user_id=user_id, created_at=now, expires_at=expires_at
                )
            )

    def revoke_token(self, token_hash: str) -> None:
        """Forget a bearer token."""
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(delete(api_tokens_table).where(api_tokens_table.c.token_hash == token_hash))

    def by_token(self, token_hash: str) -> tuple[User, datetime] | None:
        """The user a token belongs to and when it expires, or None for an unknown token (one round trip
        for the token and its user, one for the links, on one connection: this runs on every request)."""
        with translate_errors(), self.store.engine.connect() as conn:
            row = (
                conn.execute(
                    select(api_users_table, api_tokens_table.c.expires_at)
                    .join(api_tokens_table, api_tokens_table.c.user_id == api_users_table.c.id)
                    .where(api_tokens_table.c.token_hash == token_hash)
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            links = conn.execute(
                select(api_user_links_table.c.kind, api_user_links_table.c.value).where(
                    api_user_links_table.c.user_id == row["id"]
                )
            ).all()
        return _user(row, [(k, v) for k, v in links]), row["expires_at"]

    # --- API keys -----------------------------------------------------------------------

    def add_api_key(self, login: str, key_hash: str, prefix: str, now: datetime) -> None:
        """Keep a new API key (its hash) for a service account (role cabinet)."""
        user = self.get(login)
        if user.role != "cabinet":
            raise InputError(f"API keys are for service accounts (role cabinet); {login!r} is {user.role}")
        with translate_errors(), self.store.engine.begin() as conn:
            conn.execute(
                insert(api_keys_table).values(user_id=user.id, key_hash=key_hash, prefix=prefix, created_at=now)
            )

    def revoke_api_keys(self, login: str, now: datetime) -> int:
        """Revoke every key of a user; the number revoked."""
        user = self.get(login)
        with translate_errors(), self.store.engine.begin() as conn:
            return int(
                conn.execute(
                    update(api_keys_table)
                    .where(api_keys_table.c.user_id == user.id, api_keys_table.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                ).rowcount
            )

    def by_api_key(self, key_hash: str) -> User | None:
        """The user of a live API key, or None."""
        with translate_errors(), self.store.engine.connect() as conn:
            user_id = conn.execute(
                select(api_keys_table.c.user_id).where(
                    api_keys_table.c.key_hash == key_hash, api_keys_table.c.revoked_at.is_(None)
                )
            ).scalar_one_or_none()
        return None if user_id is None else self.by_id(int(user_id))

    def api_key_count(self, login: str) -> int:
        """Live API keys of a user."""
        user = self.get(login)
        with translate_errors(), self.store.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(api_keys_table)
                    .where(api_keys_table.c.user_id == user.id, api_keys_table.c.revoked_at.is_(None))
                ).scalar_one()
            )


def _user(row: object, links: list[tuple[str, str]]) -> User:
    data = dict(row)  # type: ignore[call-overload]
    return User(
        id=data["id"],
        login=data["login"],
        name=data["name"],
        role=data["role"],
        disabled=bool(data["disabled"]),
        password_hash=data["password_hash"],
        accounts=frozenset(v for k, v in links if k == "account"),
        meters=frozenset(v for k, v in links if k == "meter"),
        objects=frozenset(v for k, v in links if k == "object"),
    )
