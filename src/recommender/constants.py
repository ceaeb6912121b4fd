"""Names shared by every part of the project: tables, the control arm, outcomes, vocabularies."""

from __future__ import annotations

from typing import Final

TABLES: Final = ("competencies", "managers", "feedback_360", "engagement", "nudges", "deliveries")

CONTROL: Final = "none"
"""Treatment label of the control arm: no nudge in the period."""

GLOBAL_ORG: Final = "global"
"""``nudges.org_id`` of catalogue entries available to every organisation."""

OUTCOMES: Final = ("delta_360", "delta_360_targeted", "delta_engagement")
"""Outcome columns: change to the next wave of the overall 360 score (1-5 scale), of the 360
score on the competencies the nudge type targets, and of team engagement (0-100 scale)."""

RATER_ROLES: Final = ("self", "manager", "peer", "direct_report")
LEVELS: Final = ("first_line", "middle", "senior")
TRAITS: Final = ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism")
CONTEXTS: Final = (
    "before_1on1",
    "before_feedback_conversation",
    "team_meeting",
    "after_meeting",
    "weekly_planning",
    "performance_review",
)

MIN_GROUP_SIZE: Final = 5
"""Aggregates over fewer managers than this are suppressed wherever they are shown."""
