"""POST /v1/rank: which nudge now, for one manager."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter

from recommender.ranking.decision import Decision
from recommender.ranking.service import (
    InvalidFeaturesError,
    NotReadyError,
    UnknownManagerError,
    UnknownNudgesError,
)
from serving.deps import MetricsDep, RunnerDep, ServiceDep, TenantDep
from serving.errors import ApiError, error_responses
from serving.schemas import OutcomeEffect, RankedNudge, RankRequest, RankResponse

logger = logging.getLogger("serving.rank")
router = APIRouter(prefix="/v1", tags=["ranking"])


@router.post(
    "/rank",
    operation_id="rank",
    response_model=RankResponse,
    responses=error_responses(401, 404, 413, 422, 503),
)
async def rank(
    body: RankRequest, org: TenantDep, service: ServiceDep, metrics: MetricsDep, run: RunnerDep
) -> RankResponse:
    """Rank nudges for a manager, sample the one to serve, and log the decision."""
    try:
        decision, _served = await run(
            lambda: service.rank(
                org,
                body.manager_id,
                features=body.features,
                candidates=body.candidates,
                context=body.context,
                k=body.k,
            )
        )
    except NotReadyError:
        raise ApiError(503, [], "no model or fallback catalogue is ready", "not_ready") from None
    except UnknownManagerError:
        raise ApiError(404, ["body", "manager_id"], "unknown manager_id", "not_found") from None
    except UnknownNudgesError as error:
        raise ApiError(
            404,
            ["body", "candidates"],
            "unknown nudge ids",
            "not_found",
            unknown=list(error.nudge_ids),
        ) from None
    except InvalidFeaturesError as error:
        loc: list[str | int] = ["body", "features", *([error.field] if error.field else [])]
        raise ApiError(422, loc, str(error), "value_error") from None
    metrics.decisions.labels(decision.kind, str(decision.fallback).lower()).inc()
    logger.info(
        "decision event_id=%s org=%s manager=%s kind=%s nudge=%s model=%s",
        decision.decision_id,
        decision.org_id,
        decision.manager_id,
        decision.kind,
        decision.chosen_nudge_id,
        decision.model_version,
    )
    return to_response(decision)


def to_response(decision: Decision) -> RankResponse:
    """The HTTP view of a decision."""
    items = [
        RankedNudge(
            nudge_id=item.nudge_id,
            nudge_type=item.nudge_type,
            score=item.score,
            effects=None
            if item.effect is None or item.effect_std is None
            else {
                name: OutcomeEffect(mean=mean, std=item.effect_std[name])
                for name, mean in item.effect.items()
            },
            probability=item.probability,
            chosen=item.chosen,
            reason=item.reason,
        )
        for item in decision.items
    ]
    return RankResponse(
        event_id=uuid.UUID(decision.decision_id),
        model_version=decision.model_version,
        fallback=decision.fallback,
        policy=decision.policy,
        control=decision.kind == "control",
        holdout_probability=decision.holdout_share,
        chosen_nudge_id=decision.chosen_nudge_id,
        reason_code=None if decision.reason_code is None else str(decision.reason_code),
        items=items,
    )
