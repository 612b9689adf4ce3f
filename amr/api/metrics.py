"""Prometheus metrics of the API, in a registry the collector can add its own counters to."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The API's metrics; pass one `registry` to the collector too so that ``/metrics`` shows both."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.latency = Histogram(
            "amr_api_request_duration_seconds",
            "API request latency by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.readings = Counter(
            "amr_api_readings",
            "readings received through the API by source and result (accepted, duplicate, pending, rejected, "
            "not_stored) and reason code",
            ["source", "result", "reason"],
            registry=self.registry,
        )

    def count_reading(self, source: str, result: str, reasons: list[str]) -> None:
        """Count one judged reading (once per reason when refused)."""
        for reason in reasons or [""]:
            self.readings.labels(source, result, reason).inc()

    def render(self) -> bytes:
        """The Prometheus text format of every metric in the registry."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every HTTP request, labelled with the route's path template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and observe its duration and status."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(scope["method"], _route(scope), str(status)).observe(elapsed)


def _route(scope: Scope) -> str:
    """The path template of the route that served the request (bounded label values)."""
    path = getattr(scope.get("route"), "path", None)  # set by FastAPI's routes
    if path:
        return str(path)
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        path = getattr(route, "path", None)
        if path and route.matches(scope)[0] is Match.FULL:
            return str(path)
    return "unmatched"
