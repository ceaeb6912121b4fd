"""Which catalogue nudges may be served to a manager right now.

Rules, applied in this order:

1. frequency cap: at most ``frequency_cap`` decisions *with a nudge* per manager within the
   rolling ``frequency_window`` (control and empty decisions do not count);
2. context match: when the request names a context, the nudge's ``contexts`` must contain it;
3. no repeat: a nudge chosen for the manager within ``no_repeat_window`` is not eligible.

When the rules leave nothing, the result carries a :class:`ReasonCode` instead of an error.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from recommender.effect_model import CatalogueEntry


class ReasonCode(enum.StrEnum):
    """Why a decision serves no nudge."""

    HOLDOUT = "holdout"
    """Sampled into the control arm (no nudge), with its probability logged."""
    FREQUENCY_CAP = "frequency_cap"
    """The manager already received the maximum number of nudges in the rolling window."""
    NO_CONTEXT_MATCH = "no_context_match"
    """No candidate fits the requested context."""
    ALL_RECENTLY_SHOWN = "all_recently_shown"
    """Every candidate fitting the context was served to the manager within the no-repeat window."""
    NO_CANDIDATES = "no_candidates"
    """The catalogue offers the organisation no nudge the model can score."""


@dataclass(frozen=True)
class RuleConfig:
    """Serving rules.

    frequency_cap: maximum decisions with a nudge per manager in ``frequency_window`` (>= 1).
    frequency_window: length of the rolling window of the cap.
    no_repeat_window: a nudge chosen within this window is not served again (0 disables).
    """

    frequency_cap: int = 3
    frequency_window: dt.timedelta = dt.timedelta(days=7)
    no_repeat_window: dt.timedelta = dt.timedelta(days=14)

    def __post_init__(self) -> None:
        if self.frequency_cap < 1:
            raise ValueError(f"frequency_cap must be >= 1, got {self.frequency_cap}")
        if self.frequency_window <= dt.timedelta(0):
            raise ValueError("frequency_window must be positive")
        if self.no_repeat_window < dt.timedelta(0):
            raise ValueError("no_repeat_window must be >= 0")

    @property
    def history_window(self) -> dt.timedelta:
        """How far back the rules need the manager's past decisions."""
        return max(self.frequency_window, self.no_repeat_window)


@dataclass(frozen=True)
class PastDecision:
    """A past decision that served ``nudge_id`` to the manager at ``decided_at`` (UTC)."""

    nudge_id: str
    decided_at: dt.datetime


@dataclass(frozen=True)
class Eligibility:
    """Outcome of the rules: eligible entries (catalogue order) or why there are none."""

    eligible: tuple[CatalogueEntry, ...]
    reason_code: ReasonCode | None


@dataclass(frozen=True)
class OrgCatalogue:
    """An organisation's catalogue indexed for the request path.

    entries: nudges available to the org (own and global), in catalogue order.
    type_index: array of shape (len(entries),), position of each entry's nudge type in the
        model's ``nudge_types`` (-1 when the model does not score that type).
    """

    entries: tuple[CatalogueEntry, ...]
    type_index: np.ndarray
    by_id: dict[str, int] = field(repr=False)

    @classmethod
    def build(cls, entries: Iterable[CatalogueEntry], nudge_types: Sequence[str]) -> OrgCatalogue:
        """Index ``entries``; types outside ``nudge_types`` get -1 and are never eligible."""
        entries = tuple(entries)
        positions = {name: i for i, name in enumerate(nudge_types)}
        type_index = np.array([positions.get(e.nudge_type, -1) for e in entries], dtype=np.intp)
        return cls(entries, type_index, {e.nudge_id: i for i, e in enumerate(entries)})

    def resolve(self, nudge_ids: Sequence[str]) -> tuple[list[int], list[str]]:
        """Positions of ``nudge_ids`` (duplicates dropped, order kept) and the unknown ids.

        Nudges of other organisations are unknown here, exactly like nonexistent ones.
        """
        known: list[int] = []
        unknown: list[str] = []
        seen: set[str] = set()
        for nudge_id in nudge_ids:
            if nudge_id in seen:
                continue
            seen.add(nudge_id)
            position = self.by_id.get(nudge_id)
            if position is None:
                unknown.append(nudge_id)
            else:
                known.append(position)
        return known, unknown

    def scorable(self, positions: Iterable[int] | None = None) -> list[int]:
        """Positions (all when None) whose nudge type the model scores."""
        if positions is None:
            positions = range(len(self.entries))
        return [i for i in positions if self.type_index[i] >= 0]


def apply_rules(
    candidates: Sequence[CatalogueEntry],
    *,
    context: str | None,
    history: Sequence[PastDecision],
    now: dt.datetime,
    rules: RuleConfig,
) -> Eligibility:
    """Filter ``candidates`` by the frequency cap, the context and the no-repeat window.

    history: the manager's past decisions with a nudge, any order, at least as far back as
        ``rules.history_window``; ``now`` and ``decided_at`` must both be timezone-aware.
    """
    if not candidates:
        return Eligibility((), ReasonCode.NO_CANDIDATES)
    cap_start = now - rules.frequency_window
    if sum(1 for past in history if past.decided_at > cap_start) >= rules.frequency_cap:
        return Eligibility((), ReasonCode.FREQUENCY_CAP)
    in_context = [c for c in candidates if context is None or context in c.contexts]
    if not in_context:
        return Eligibility((), ReasonCode.NO_CONTEXT_MATCH)
    repeat_start = now - rules.no_repeat_window
    recent = {past.nudge_id for past in history if past.decided_at > repeat_start}
    eligible = tuple(c for c in in_context if c.nudge_id not in recent)
    if not eligible:
        return Eligibility((), ReasonCode.ALL_RECENTLY_SHOWN)
    return Eligibility(eligible, None)
