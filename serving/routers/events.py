"""POST /v1/events: what happened to a served nudge."""

from __future__ import annotations

import logging

from fastapi import APIRouter

from recommender.events import DecisionNotFoundError, EventRejectedError, IdempotencyConflictError
from serving.deps import MetricsDep, RunnerDep, StoreDep, TenantDep
from serving.errors import ApiError, error_responses
from serving.schemas import EventRequest, EventResponse, RatedEvent

logger = logging.getLogger("serving.events")
router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events",
    operation_id="report_event",
    response_model=EventResponse,
    responses=error_responses(401, 404, 409, 413, 422),
)
async def report_event(
    body: EventRequest, org: TenantDep, store: StoreDep, metrics: MetricsDep, run: RunnerDep
) -> EventResponse:
    """Record a delivery event; a replay is acknowledged with duplicate=true, stored once."""
    try:
        receipt = await run(
            lambda: store.record_event(
                org,
                str(body.event_id),
                body.type,
                rating=body.rating if isinstance(body, RatedEvent) else None,
                nudge_id=body.nudge_id,
                idempotency_key=body.idempotency_key,
            )
        )
    except DecisionNotFoundError:
        raise ApiError(404, ["body", "event_id"], "unknown event_id", "not_found") from None
    except EventRejectedError as error:
        status = 409 if error.field == "event_id" else 422
        raise ApiError(status, ["body", error.field], str(error), "conflict") from None
    except IdempotencyConflictError as error:
        raise ApiError(409, ["body", "idempotency_key"], str(error), "conflict") from None
    metrics.events.labels(body.type, str(receipt.duplicate).lower()).inc()
    logger.info(
        "event event_id=%s org=%s type=%s duplicate=%s",
        receipt.decision_id,
        org,
        receipt.type,
        receipt.duplicate,
    )
    return EventResponse(
        event_id=body.event_id,
        type=receipt.type,
        duplicate=receipt.duplicate,
        received_at=receipt.received_at,
    )
