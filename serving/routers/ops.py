"""Operational endpoints (no auth, no ids): liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import HolderDep, MetricsDep
from serving.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "No model and no fallback yet."}},
)
async def readyz(holder: HolderDep) -> Response:
    """Ready once a model, or the declared fallback catalogue, can serve."""
    served = holder.current
    if served is None:
        body = Health(status="not_ready", fallback=None, model_version=None)
        return JSONResponse(body.model_dump(), status_code=503)
    body = Health(status="ready", fallback=served.fallback, model_version=served.version)
    return JSONResponse(body.model_dump())


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
)
async def metrics(app_metrics: MetricsDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
