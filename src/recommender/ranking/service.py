"""Request-level ranking: resolve the manager and the candidates, apply rules, decide, log.

The HTTP layer calls :meth:`RankingService.rank` and maps its exceptions to status codes; the
organisation always comes from the caller's credentials, never from the request body.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from recommender.model_lifecycle import ModelHolder, ServedModel
from recommender.ranking.decision import Decision, decide
from recommender.ranking.eligibility import PastDecision, RuleConfig
from recommender.ranking.policies import ExplorationPolicy, Sampler

_STRIPES = 64


class NotReadyError(RuntimeError):
    """Neither a model nor a fallback catalogue is available."""


class UnknownManagerError(LookupError):
    """The manager is not known to the caller's organisation (or does not exist)."""


class UnknownNudgesError(LookupError):
    """Candidate nudge ids not in the caller's organisation catalogue (or nonexistent)."""

    def __init__(self, nudge_ids: Sequence[str]) -> None:
        super().__init__(f"unknown nudge ids: {', '.join(nudge_ids)}")
        self.nudge_ids = tuple(nudge_ids)


class InvalidFeaturesError(ValueError):
    """Explicit features the model cannot encode; ``field`` names the feature when known."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


class DecisionLog(Protocol):
    """Where decisions are stored and the manager's recent ones read back."""

    def recent_nudges(
        self, org_id: str, manager_id: str, since: dt.datetime
    ) -> list[PastDecision]: ...

    def record_decision(self, decision: Decision) -> None: ...


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class RankingService:
    """Ranks nudges for one manager at a time and logs every decision.

    holdout_share: probability in [0, 1) that an eligible decision is a control (no nudge).
    """

    holder: ModelHolder
    log: DecisionLog
    rules: RuleConfig
    policy: ExplorationPolicy
    holdout_share: float
    sampler: Sampler
    clock: Callable[[], dt.datetime] = _utc_now
    _locks: tuple[threading.Lock, ...] = field(
        default_factory=lambda: tuple(threading.Lock() for _ in range(_STRIPES)), repr=False
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_share < 1.0:
            raise ValueError(f"holdout_share must be in [0, 1), got {self.holdout_share}")

    def rank(
        self,
        org_id: str,
        manager_id: str,
        *,
        features: Mapping[str, object] | None = None,
        candidates: Sequence[str] | None = None,
        context: str | None = None,
        k: int = 3,
    ) -> tuple[Decision, ServedModel]:
        """Decide for ``manager_id`` of ``org_id`` and store the decision.

        features: raw profile of a manager (takes precedence over the model's snapshot);
            required when the model does not know the manager.
        candidates: nudge ids to choose from (default: the org's whole catalogue).
        Raises NotReadyError, UnknownManagerError, UnknownNudgesError, InvalidFeaturesError.
        """
        served = self.holder.current  # read once: a concurrent swap never mixes two models
        if served is None:
            raise NotReadyError("no model and no fallback catalogue")
        row = self._row(served, org_id, manager_id, features)
        catalogue = served.org_catalogue(org_id)
        if candidates is None:
            positions = catalogue.scorable()
        else:
            known, unknown = catalogue.resolve(candidates)
            if unknown:
                raise UnknownNudgesError(unknown)
            positions = catalogue.scorable(known)
        lock = self._locks[zlib.crc32(f"{org_id}/{manager_id}".encode()) % _STRIPES]
        with lock:  # cap and no-repeat checks are exact within one process
            now = self.clock()
            history = (
                self.log.recent_nudges(org_id, manager_id, now - self.rules.history_window)
                if positions
                else []
            )
            decision = decide(
                model=served.model,
                row=row,
                org_id=org_id,
                manager_id=manager_id,
                catalogue=catalogue,
                positions=positions,
                context=context,
                history=history,
                now=now,
                rules=self.rules,
                policy=self.policy,
                holdout_share=self.holdout_share,
                sampler=self.sampler,
                k=k,
                model_version=served.version,
            )
            self.log.record_decision(decision)
        return decision, served

    @staticmethod
    def _row(
        served: ServedModel,
        org_id: str,
        manager_id: str,
        features: Mapping[str, object] | None,
    ) -> np.ndarray | None:
        model = served.model
        if model is None:
            return None
        if features is not None:
            try:
                return np.asarray(model.encode(features), dtype=np.float64)
            except ValueError as error:
                raise InvalidFeaturesError(str(error), _field_of(error, features)) from None
        row = model.manager_row(org_id, manager_id)
        if row is None:
            raise UnknownManagerError(manager_id)
        return np.asarray(row, dtype=np.float64)


_FIELD_PREFIX = re.compile(r"^(?:feature\s+)?'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:")


def _field_of(error: ValueError, features: Mapping[str, object]) -> str | None:
    """The feature an ``encode`` error names: ``error.field``, a ``name:`` prefix, or a key."""
    name = getattr(error, "field", None)
    if isinstance(name, str) and name:
        return name
    message = str(error)
    prefix = _FIELD_PREFIX.match(message)
    if prefix:
        return prefix[1]
    return next((key for key in features if f"'{key}'" in message), None)
