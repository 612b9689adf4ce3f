"""Building the FastAPI application over a wired `amr.app.App`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from amr import __version__
from amr.api.context import ApiContext, Poller
from amr.api.errors import install_error_handlers
from amr.api.interval_metrics import register as register_sum_check_metrics
from amr.api.limits import BodyTimeout
from amr.api.metrics import Metrics, MetricsMiddleware
from amr.api.openapi import install_openapi
from amr.api.routes import (
    accounts,
    askue,
    auth,
    backfill,
    collectors,
    dashboard,
    dispatch,
    export,
    intervals,
    meter_ops,
    meters,
    moderation,
    operations,
    public,
    readings,
    sum_checks,
    system,
)
from amr.api.routes import registry as registry_routes
from amr.api.security import Passwords
from amr.app import App
from amr.dashboard import mount as mount_dashboard
from amr.errors import ConfigError
from amr.operations.metrics import register as register_event_metrics

DESCRIPTION = """
АСКУЭ (AMR) service API for customer cabinets, АСКУЭ users and dispatchers.

* Log in with `POST /api/v1/auth/token` and send `Authorization: Bearer <token>`; service
  accounts may send `X-API-Key` instead.
* Errors are always `{"code": "...", "message": "..."}`; `code` is stable (the validation reason
  codes such as `lower_than_previous` among them), `message` is in Russian or English by
  `Accept-Language` (Russian by default).
* Energy values are decimal strings in kWh (A+, A-) or kvarh (R+, R-) at the primary side.
* Whatever belongs to another user is answered as 404 `not_found`.
"""


def create_app(
    app: App,
    poller: Poller | None = None,
    *,
    registry: CollectorRegistry | None = None,
    passwords: Passwords | None = None,
) -> FastAPI:
    """The HTTP API over `app`'s store and meters.

    `poller` is the collector's «poll now» (optional); `registry` a Prometheus registry shared with
    the collector (a new one by default; it is `api.state.metrics.registry`); `passwords` the
    argon2 hasher (tests pass a cheap one).
    """
    api = FastAPI(
        title="amr АСКУЭ API",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        lifespan=_follow_registry,
    )
    metrics = Metrics(registry)
    register_event_metrics(metrics.registry, app.store)
    register_sum_check_metrics(metrics.registry, app.store)
    api.state.amr = ApiContext(app, passwords or Passwords(), metrics, poller)
    api.state.metrics = metrics
    install_error_handlers(api)
    install_openapi(api)
    routers = (auth, askue, accounts, meters, intervals, readings, public, moderation, dispatch, backfill, collectors,
               export, dashboard, operations, meter_ops)
    for module in (*routers, registry_routes, sum_checks, system):
        # the routes themselves rather than `include_router`: an included router's routes are built a second
        # time at the first request (FastAPI's effective routes), and these routers add nothing to them
        api.router.routes.extend(module.router.routes)
    mount_dashboard(api)
    api.add_middleware(MetricsMiddleware, metrics=metrics)
    api.add_middleware(BodyTimeout)
    return api


@asynccontextmanager
async def _follow_registry(api: FastAPI) -> AsyncIterator[None]:
    """While serving over the registry (``[registry] source = "database"``), take its changes (every worker)."""
    app: App = api.state.amr.app
    if app.registry_version is None:
        yield
        return
    from amr.registry.watch import RegistryWatch

    stop = asyncio.Event()
    watcher = asyncio.create_task(RegistryWatch(app).run(stop), name="amr-registry-watch")
    try:
        yield
    finally:
        stop.set()
        with suppress(asyncio.CancelledError):
            await watcher


CONFIG_VARIABLE = "AMR_CONFIG"


def app_from_environment() -> FastAPI:
    """The API for the configuration file named by ``AMR_CONFIG`` (one per worker process of `amr api --workers N`)."""
    path = os.environ.get(CONFIG_VARIABLE)
    if not path:
        raise ConfigError(f"set {CONFIG_VARIABLE} to the configuration file")
    return create_app(App.open(path))
