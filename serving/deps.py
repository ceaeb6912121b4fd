"""Request dependencies: the caller's organisation (from the API key) and app-wide services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from recommender.events import EventStore
from recommender.model_lifecycle import ModelHolder
from recommender.ranking.service import RankingService
from serving.errors import ApiError
from serving.metrics import ServeMetrics
from serving.settings import hash_api_key

T = TypeVar("T")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader")
_bearer = HTTPBearer(auto_error=False, scheme_name="BearerToken")


async def tenant_org(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    """The organisation of the presented API key (X-API-Key or Authorization: Bearer); 401 else."""
    key = api_key or (bearer.credentials if bearer is not None else None)
    org: str | None = None
    if key:
        org = request.app.state.tenants.get(hash_api_key(key))
    if org is None:
        raise ApiError(
            401,
            ["header", "X-API-Key"],
            "missing or invalid API key",
            "unauthorized",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return org


class Runner:
    """Runs blocking store work: inline for SQLite (local, sub-millisecond writes; no thread
    hop or GIL hand-off per request), in the threadpool for a networked database."""

    def __init__(self, inline: bool) -> None:
        self.inline = inline

    async def __call__(self, fn: Callable[[], T]) -> T:
        if self.inline:
            return fn()
        return await run_in_threadpool(fn)


async def _runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


async def _service(request: Request) -> RankingService:
    service: RankingService = request.app.state.service
    return service


async def _store(request: Request) -> EventStore:
    store: EventStore = request.app.state.store
    return store


async def _holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def _metrics(request: Request) -> ServeMetrics:
    metrics: ServeMetrics = request.app.state.metrics
    return metrics


TenantDep = Annotated[str, Depends(tenant_org)]
ServiceDep = Annotated[RankingService, Depends(_service)]
StoreDep = Annotated[EventStore, Depends(_store)]
HolderDep = Annotated[ModelHolder, Depends(_holder)]
MetricsDep = Annotated[ServeMetrics, Depends(_metrics)]
RunnerDep = Annotated[Runner, Depends(_runner)]
