"""The HTTP API (FastAPI): cabinets, АСКУЭ users, dispatchers, exports and metrics.

``create_app(app)`` builds it over a wired `amr.app.App`; ``amr.api.command`` adds the
``amr api``, ``amr users`` and ``amr run`` commands.
"""

from amr.api.app import create_app
from amr.api.context import ApiContext, Poller

__all__ = ["ApiContext", "Poller", "create_app"]
