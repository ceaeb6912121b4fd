"""Training configuration: a strict pydantic model loaded from YAML.

Unknown keys, wrong types and out-of-range values fail at start with ``ConfigError`` naming the
file and the dotted key (``split.eval_fraction``), before any data is read.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recommender.constants import OUTCOMES


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """Time split: train on earlier manager-periods, evaluate on later ones."""

    eval_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    """Share of distinct period-start dates (the latest) that form the evaluation window."""
    eval_start: dt.date | None = None
    """Explicit first day of the evaluation window; overrides ``eval_fraction`` when set."""


class ObjectiveConfig(_Strict):
    """Ranking score: weighted sum of outcomes, each divided by its SD in the training window."""

    weights: dict[str, float] = Field(
        default_factory=lambda: {
            "delta_360": 1.0,
            "delta_360_targeted": 0.5,
            "delta_engagement": 1.0,
        }
    )

    @field_validator("weights")
    @classmethod
    def _known_outcomes(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcome(s) {unknown}; expected a subset of {list(OUTCOMES)}")
        if not value or all(weight == 0 for weight in value.values()):
            raise ValueError("at least one outcome needs a non-zero weight")
        return value


class ModelConfig(_Strict):
    """Estimator settings forwarded to ``MultiTreatmentUplift`` (keys checked at start)."""

    params: dict[str, Any] = Field(default_factory=dict)
    """Constructor arguments of ``MultiTreatmentUplift``; unknown names fail at start."""
    use_logged_propensity: bool = True
    """Pass the logging policy's propensities to the estimator (else it fits its own)."""


class EvaluationConfig(_Strict):
    """Off-policy evaluation on the later window."""

    n_bootstrap: int = Field(default=500, ge=50, le=20_000)
    ci_level: float = Field(default=0.95, gt=0.5, lt=1.0)
    propensity_clip: float = Field(default=0.01, gt=0.0, lt=0.5)
    """Propensities below this are clipped in IPS/DR weights."""
    q_model_estimators: int = Field(default=200, ge=10, le=5_000)
    """Boosting rounds of the training-window reward model used as q_hat in DR."""


class PromotionConfig(_Strict):
    """Registry names and the promotion gate."""

    registered_model: str = Field(default="nudge-ranker", min_length=1)
    auto_promote: bool = True
    """Run the promotion gate at the end of training."""


class TrackingConfig(_Strict):
    """MLflow experiment; the tracking URI comes from MLFLOW_TRACKING_URI (see ``tracking``)."""

    experiment: str = Field(default="nudge-recommender", min_length=1)


class TrainConfig(_Strict):
    """Everything a training run needs besides the data folder."""

    seed: int = 0
    split: SplitConfig = SplitConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    model: ModelConfig = ModelConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    promotion: PromotionConfig = PromotionConfig()
    tracking: TrackingConfig = TrackingConfig()

    def flat(self) -> dict[str, str]:
        """Config as dotted keys -> strings, for ``mlflow.log_params``."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, item in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), item)
            else:
                out[prefix] = str(value)

        walk("", self.model_dump(mode="json"))
        return out


def _format_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = "<config>") -> TrainConfig:
    """Validate a config mapping; ``ConfigError`` names ``source`` and each bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: <root>: expected a mapping, got {type(data).__name__}")
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_error(source, error)) from None


def load_config(path: Path | None) -> TrainConfig:
    """Load and validate a YAML config; ``None`` gives the defaults."""
    if path is None:
        return TrainConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    return parse_config(data, source=str(path))
