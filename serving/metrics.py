"""Prometheus metrics on a per-app registry (many apps can live in one test process)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@dataclass
class ServeMetrics:
    """The service's instruments; labels never carry ids."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    errors: Counter
    decisions: Counter
    events: Counter
    model_info: Gauge
    model_refreshes: Counter

    @classmethod
    def create(cls) -> ServeMetrics:
        registry = CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            requests=Counter(
                "nudge_http_requests",
                "HTTP requests by route template and status code.",
                ("method", "route", "status"),
                registry=registry,
            ),
            latency=Histogram(
                "nudge_http_request_duration_seconds",
                "Request latency in seconds, by route template.",
                ("method", "route"),
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            errors=Counter(
                "nudge_http_errors",
                "Responses with status >= 500, by route template.",
                ("method", "route"),
                registry=registry,
            ),
            decisions=Counter(
                "nudge_decisions",
                "Ranking decisions by kind (nudge, control, empty) and fallback.",
                ("kind", "fallback"),
                registry=registry,
            ),
            events=Counter(
                "nudge_events",
                "Delivery events by type and whether they were replays.",
                ("type", "duplicate"),
                registry=registry,
            ),
            model_info=Gauge(
                "nudge_model_info",
                "1 for the model version being served.",
                ("version", "fallback"),
                registry=registry,
            ),
            model_refreshes=Counter(
                "nudge_model_refreshes",
                "Registry polls by outcome (loaded, unchanged, failed, timeout, busy, disabled).",
                ("outcome",),
                registry=registry,
            ),
        )

    def set_model(self, version: str | None, fallback: bool) -> None:
        """Expose ``version`` as the one being served (none: nothing is)."""
        self.model_info.clear()
        if version is not None:
            self.model_info.labels(version=version, fallback=str(fallback).lower()).set(1)


class MetricsMiddleware:
    """Pure ASGI middleware: count, time and error-count every HTTP request by route template."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
            if status >= 500:
                self.metrics.errors.labels(method, route).inc()
