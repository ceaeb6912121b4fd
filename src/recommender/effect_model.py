"""What the ranking service needs from a trained model: the ``EffectModel`` protocol.

Training produces a bundle that satisfies it (``recommender.bundle``); serving depends only on
this protocol, so tests can serve a small fake and the request path stays free of pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EffectPrediction:
    """Predicted effects of every nudge type versus no nudge, for ``n`` feature rows.

    effect: array of shape (n, n_types, n_outcomes), expected change per outcome, in the
        outcome's own units (360 points on 1-5, engagement points on 0-100).
    effect_std: array of shape (n, n_types, n_outcomes), uncertainty (standard deviation) of
        ``effect``.
    score: array of shape (n, n_types), the ranking objective: weighted sum of the effects
        standardised by each outcome's scale; higher is better, 0 means "as good as no nudge".
    """

    effect: np.ndarray
    effect_std: np.ndarray
    score: np.ndarray


@dataclass(frozen=True)
class CatalogueEntry:
    """One nudge of the catalogue as serving needs it (the text stays with the delivery layer)."""

    nudge_id: str
    org_id: str
    nudge_type: str
    competency_id: str | None
    contexts: frozenset[str]


class EffectModel(Protocol):
    """A loaded, validated model the ranking service can score with."""

    @property
    def version(self) -> str:
        """Registry version (or another stable id) of the loaded model."""
        ...

    @property
    def nudge_types(self) -> tuple[str, ...]:
        """Treatments the model scores, in the order of ``EffectPrediction`` axis 1."""
        ...

    @property
    def outcome_names(self) -> tuple[str, ...]:
        """Outcomes, in the order of ``EffectPrediction`` axis 2."""
        ...

    def catalogue(self, org_id: str) -> tuple[CatalogueEntry, ...]:
        """Nudges available to ``org_id``: its own and the global ones, as seen at training."""
        ...

    def manager_row(self, org_id: str, manager_id: str) -> np.ndarray | None:
        """Encoded feature row, shape (n_features,), from the training snapshot; None if unknown."""
        ...

    def encode(self, features: Mapping[str, object]) -> np.ndarray:
        """Encode raw profile features of a new manager, shape (n_features,).

        Raises ``ValueError`` naming the field and the rule when a feature is missing or invalid.
        """
        ...

    def predict(self, rows: np.ndarray) -> EffectPrediction:
        """Effects for encoded rows of shape (n, n_features)."""
        ...

    def reason(self, org_id: str, row: np.ndarray, nudge_type: str) -> str:
        """One sentence a manager can read on why ``nudge_type`` suits them.

        Built from evidence of similar managers; never quotes a group under 5 managers.
        """
        ...
