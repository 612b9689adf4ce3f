"""The HTTP API (FastAPI): cabinets, АСКУЭ users, dispatchers, exports and metrics.

``create_app(app)`` builds it over a wired `amr.app.App`; ``amr.api.command`` adds the
``amr api``, ``amr users`` and ``amr run`` commands. The application's modules (FastAPI and every
route) are imported when first named here, not with the commands: ``amr api`` loads them while it
opens the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amr.api.app import create_app
    from amr.api.context import ApiContext, Poller

__all__ = ["ApiContext", "Poller", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from amr.api.app import create_app

        return create_app
    if name in ("ApiContext", "Poller"):
        from amr.api import context

        return getattr(context, name)
    raise AttributeError(f"module 'amr.api' has no attribute {name!r}")
