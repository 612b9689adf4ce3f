"""Who may see what: the caller (`Principal`) and the meters and accounts in its scope.

Roles: ``askue`` sees the meters linked to it and those of its linked accounts; ``cabinet``
(a service account) acts for its allowed accounts (and linked meters); ``dispatcher`` sees
every meter, or only those of its linked objects; ``admin`` sees everything. Whatever is out
of scope is answered as 404 not found, so its existence is not revealed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from amr.api.errors import forbidden, not_found
from amr.core.meters import Meter
from amr.store.users import User

STAFF = ("dispatcher", "admin")
HOLDERS = ("askue", "cabinet")


@dataclass(frozen=True, slots=True)
class Scope:
    """The meters (serials) and accounts a caller may see."""

    everything: bool
    serials: frozenset[str] = frozenset()
    accounts: frozenset[str] | None = None  # None: every account of the visible meters

    def sees(self, serial: str) -> bool:
        """True when the meter is in scope."""
        return self.everything or serial in self.serials

    def sees_account(self, account: str, meters: Mapping[str, Meter]) -> bool:
        """True when the account is in scope and has at least one configured meter."""
        holders = [m for m in meters.values() if account in m.accounts]
        if not holders:
            return False
        if self.accounts is not None:
            return account in self.accounts
        return any(self.sees(m.serial) for m in holders)

    def meters(self, meters: Mapping[str, Meter]) -> list[Meter]:
        """The visible meters, by object, name and serial."""
        found = meters.values() if self.everything else [meters[s] for s in self.serials if s in meters]
        return sorted(found, key=lambda m: (m.object, m.name, m.serial))

    def serial_filter(self, meter: str | None = None) -> frozenset[str] | None:
        """The serials to filter queries by, or None for every meter; narrowed to `meter` when one is
        asked for (to nothing when it lies outside the scope)."""
        serials = None if self.everything else self.serials
        if meter is not None:
            return frozenset({meter}) if serials is None or meter in serials else frozenset()
        return serials


def scope_for(user: User, meters: Mapping[str, Meter]) -> Scope:
    """The scope of a user's role and links."""
    if user.role == "admin" or (user.role == "dispatcher" and not user.objects):
        return Scope(everything=True)
    if user.role == "dispatcher":
        return Scope(False, frozenset(s for s, m in meters.items() if m.object in user.objects))
    serials = set(user.meters) | {s for s, m in meters.items() if user.accounts.intersection(m.accounts)}
    return Scope(False, frozenset(serials), frozenset(user.accounts))


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    user: User
    scope: Scope
    via: str = "token"  # token | api_key
    token_hash: str | None = field(default=None, repr=False)

    @property
    def login(self) -> str:
        """The caller's login (the actor in audit records)."""
        return self.user.login

    @property
    def role(self) -> str:
        """The caller's role."""
        return self.user.role

    @property
    def is_staff(self) -> bool:
        """Dispatchers and admins."""
        return self.user.role in STAFF

    def meter(self, serial: str, meters: Mapping[str, Meter]) -> Meter:
        """A meter in scope; 404 not found otherwise (whether it exists or not)."""
        meter = meters.get(serial)
        if meter is None or not self.scope.sees(serial):
            raise not_found(f"no meter {serial!r}", f"счётчик {serial!r} не найден")
        return meter

    def require(self, *roles: str) -> None:
        """403 forbidden unless the caller has one of `roles`."""
        if self.user.role not in roles:
            raise forbidden(
                f"role {self.user.role} may not do this; it needs {' or '.join(roles)}",
                f"роли {self.user.role} это недоступно; нужна роль {' или '.join(roles)}",
            )
