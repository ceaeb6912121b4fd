"""GET /v1/model: the model being served."""

from __future__ import annotations

import math
from collections.abc import Mapping

from fastapi import APIRouter, Request

from serving.deps import HolderDep, TenantDep
from serving.errors import ApiError, error_responses
from serving.schemas import ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


@router.get(
    "/model",
    operation_id="get_model",
    response_model=ModelInfo,
    responses=error_responses(401, 503),
)
async def get_model(request: Request, _org: TenantDep, holder: HolderDep) -> ModelInfo:
    """Version, load time and evaluation summary of the model being served."""
    served = holder.current
    if served is None:
        raise ApiError(503, [], "no model or fallback catalogue is ready", "not_ready")
    model = served.model
    return ModelInfo(
        version=served.version,
        loaded_at=served.loaded_at,
        fallback=served.fallback,
        policy=request.app.state.service.policy.name if model is not None else "uniform",
        nudge_types=list(served.nudge_types),
        outcome_names=[] if model is None else list(model.outcome_names),
        metrics=_metrics_summary(getattr(model, "metrics", None)),
    )


def _metrics_summary(metrics: object) -> dict[str, float] | None:
    """Finite numeric entries of the model's optional ``metrics`` mapping."""
    if not isinstance(metrics, Mapping):
        return None
    summary = {}
    for name, value in metrics.items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if numeric and math.isfinite(float(value)):
            summary[str(name)] = float(value)
    return summary
