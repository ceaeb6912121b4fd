"""Request and response models of the HTTP API (they are the OpenAPI contract)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

from recommender.constants import CONTEXTS, OUTCOMES

if TYPE_CHECKING:
    Context = str
else:
    Context = Literal[CONTEXTS]  # the vocabulary of recommender.constants, one source of truth

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
"""Pseudonymous id: letters, digits and ``_ . : -``."""
FeatureValue = str | int | float | bool | None
EventType = Literal["delivered", "opened", "acted", "rated", "dismissed"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RankRequest(_Request):
    """Which nudge now, for one manager of the caller's organisation."""

    manager_id: Id
    features: (
        Annotated[
            dict[Annotated[str, StringConstraints(max_length=64)], FeatureValue],
            Field(max_length=100),
        ]
        | None
    ) = Field(
        None,
        description="Raw profile of a manager the model does not know yet (see data/README.md "
        "managers columns); takes precedence over the model's snapshot.",
    )
    candidates: Annotated[list[Id], Field(min_length=1, max_length=500)] | None = Field(
        None, description="Nudge ids to choose from; default: every eligible nudge of the org."
    )
    context: Context | None = Field(None, description="Where in the flow of work the nudge fits.")
    k: int = Field(3, ge=1, le=20, description="Number of items to return.")


class OutcomeEffect(BaseModel):
    """Expected change of one outcome versus no nudge, in the outcome's units."""

    mean: float
    std: float


class RankedNudge(BaseModel):
    """One nudge of the answer; the served one (``chosen``) comes first."""

    nudge_id: str
    nudge_type: str
    score: float | None = Field(description="Ranking objective vs no nudge; null on fallback.")
    effects: dict[str, OutcomeEffect] | None = Field(
        description=f"Per outcome ({', '.join(OUTCOMES)} for the default model); null on fallback."
    )
    probability: float = Field(
        ge=0.0, le=1.0, description="Probability of serving this nudge given one is sent."
    )
    chosen: bool
    reason: str = Field(description="One sentence a manager can read.")


class RankResponse(BaseModel):
    """A logged decision: report its events with ``event_id``."""

    event_id: uuid.UUID
    model_version: str
    fallback: bool = Field(description="True when no model is loaded (uniform exploration).")
    policy: str
    control: bool = Field(description="True when sampled into the holdout: send nothing.")
    holdout_probability: float = Field(ge=0.0, le=1.0)
    chosen_nudge_id: str | None
    reason_code: str | None = Field(
        description="Why no nudge is served: holdout, frequency_cap, no_context_match, "
        "all_recently_shown, no_candidates; null when one is."
    )
    items: list[RankedNudge]


class _EventBase(_Request):
    event_id: uuid.UUID
    nudge_id: Id | None = Field(None, description="The served nudge (checked when given).")
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[ -~]+$")] | None
    ) = Field(None, description="Replays with the same key are acknowledged, stored once.")


class PlainEvent(_EventBase):
    """The nudge was delivered, opened, acted on or dismissed."""

    type: Literal["delivered", "opened", "acted", "dismissed"]


class RatedEvent(_EventBase):
    """The manager rated the nudge's usefulness."""

    type: Literal["rated"]
    rating: int = Field(ge=1, le=5, description="Usefulness, 1 (low) to 5 (high).")


EventRequest = Annotated[PlainEvent | RatedEvent, Field(discriminator="type")]
"""What happened to a served nudge; ``type`` selects the shape."""
EVENT_TAGS = frozenset(("delivered", "opened", "acted", "dismissed", "rated"))
"""Tags pydantic puts in error locations of :data:`EventRequest` (removed from 422 bodies)."""


class EventResponse(BaseModel):
    """Acknowledgement; ``duplicate`` is true for a replay, which was not stored again."""

    event_id: uuid.UUID
    type: EventType
    duplicate: bool
    received_at: dt.datetime


class ModelInfo(BaseModel):
    """The model being served."""

    version: str
    loaded_at: dt.datetime
    fallback: bool
    policy: str
    nudge_types: list[str]
    outcome_names: list[str]
    metrics: dict[str, float] | None = Field(description="Evaluation summary, when exposed.")


class Health(BaseModel):
    """Liveness / readiness."""

    status: Literal["ok", "ready", "not_ready"]
    fallback: bool | None = None
    model_version: str | None = None


class ErrorItem(BaseModel):
    """One problem, located like pydantic's errors (``["body", "manager_id"]``)."""

    loc: list[str | int]
    msg: str
    type: str
    unknown: list[str] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body."""

    detail: list[ErrorItem]
