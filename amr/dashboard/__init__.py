"""The dispatcher's dashboard: static HTML, JavaScript and CSS served by the API itself.

``mount(api)`` serves ``amr/dashboard/static`` at ``/dashboard/`` and sends ``/`` there. Everything
the browser loads comes from this package (no CDN, no build step): the page works offline and
talks only to the API it came from (``/api/v1/...``, bearer token kept in the tab's
sessionStorage). Russian by default, English on a switch.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from amr.dashboard.polls import PollLog

STATIC = Path(__file__).parent / "static"
PREFIX = "/dashboard"


class _Static(StaticFiles):
    """Static files that the browser revalidates (so a new version shows at once)."""

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount(api: FastAPI) -> None:
    """Serve the dashboard at ``/dashboard/`` and redirect ``/`` to it."""

    @api.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @api.get(PREFIX, include_in_schema=False)
    def bare() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    api.mount(PREFIX, _Static(directory=STATIC, html=True), name="dashboard")
    if not hasattr(api.state, "poll_log"):
        api.state.poll_log = None


__all__ = ["PREFIX", "STATIC", "PollLog", "mount"]
