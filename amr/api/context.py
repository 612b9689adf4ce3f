"""What every route needs: the wired application, the API's store helpers, metrics and the poller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from amr.api.metrics import Metrics
from amr.api.security import Passwords
from amr.app import App
from amr.config import ApiConfig
from amr.core.meters import Meter
from amr.store import Store
from amr.store.accounts import AccountSettings
from amr.store.idempotency import Idempotency
from amr.store.pending import PendingReadings
from amr.store.throttle import Throttle
from amr.store.users import Users


class Poller(Protocol):
    """The collector's «poll now» (optional: without one the route answers 503 collector_not_running)."""

    async def poll_now(self, serial: str) -> dict[str, Any]:
        """Poll one meter at once; what was read."""
        ...


@dataclass
class ApiContext:
    """Shared state of one API instance (stateless between requests: everything lives in the store)."""

    app: App
    passwords: Passwords
    metrics: Metrics
    poller: Poller | None = None
    users: Users = field(init=False)
    throttle: Throttle = field(init=False)
    idempotency: Idempotency = field(init=False)
    settings: AccountSettings = field(init=False)
    pending: PendingReadings = field(init=False)

    def __post_init__(self) -> None:
        self.users = Users(self.app.store)
        self.throttle = Throttle(self.app.store)
        self.idempotency = Idempotency(self.app.store)
        self.settings = AccountSettings(self.app.store, self.app.config.api.public_submission)
        self.pending = PendingReadings(self.app.store)

    @property
    def store(self) -> Store:
        """The store."""
        return self.app.store

    @property
    def meters(self) -> dict[str, Meter]:
        """Configured meters by serial (with store ids)."""
        return self.app.meters

    @property
    def api(self) -> ApiConfig:
        """``[api]`` settings."""
        return self.app.config.api

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return self.app.config.site.tz

    @property
    def now(self) -> Callable[[], datetime]:
        """The clock (the ingestor's, so tests can move both)."""
        return self.app.ingestor.now
