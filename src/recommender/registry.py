"""MLflow model: the pyfunc wrapper of a bundle, registration, aliases and the promotion gate.

Registered name ``nudge-ranker`` (configurable); every new version gets alias ``candidate``;
the gate moves ``champion`` only when the candidate's DR policy value on the evaluation window
is not significantly worse (paired bootstrap interval of the difference entirely below 0) than
the current champion's nor than the best single type's. The decision and its numbers are
written as tags on both versions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.models
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.model import PythonModel

from recommender import ope
from recommender.bundle import BUNDLE_ARTIFACT, RankerBundle, package_versions
from recommender.evaluation import EvalContext, greedy_policy, model_action_scores

CANDIDATE = "candidate"
CHAMPION = "champion"


class RankerPyfunc(PythonModel):
    """pyfunc face of a bundle: encoded feature rows in, scores and effects out.

    Input: DataFrame with the feature spec's columns (floats, categoricals as codes).
    Output: DataFrame with ``score__<type>`` and ``effect__<type>__<outcome>`` columns.
    """

    def load_context(self, context: Any) -> None:
        """Verify and load the bundle artifact."""
        self.bundle = RankerBundle(Path(context.artifacts[BUNDLE_ARTIFACT]), version="pyfunc")

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Scores (n, n_types) and effects (n, n_types, n_outcomes) as flat columns."""
        names = list(self.bundle.spec.names)
        rows = model_input[names].to_numpy(dtype=np.float64)
        return prediction_frame(self.bundle, rows)


def prediction_frame(bundle: RankerBundle, rows: np.ndarray) -> pd.DataFrame:
    """Flat DataFrame of ``bundle.predict(rows)`` (the pyfunc output)."""
    pred = bundle.predict(rows)
    data: dict[str, np.ndarray] = {}
    for t, nudge_type in enumerate(bundle.nudge_types):
        data[f"score__{nudge_type}"] = pred.score[:, t]
    for t, nudge_type in enumerate(bundle.nudge_types):
        for k, outcome in enumerate(bundle.outcome_names):
            data[f"effect__{nudge_type}__{outcome}"] = pred.effect[:, t, k]
    return pd.DataFrame(data)


_MODEL_SCRIPT = """import mlflow.models
from recommender.registry import RankerPyfunc

mlflow.models.set_model(RankerPyfunc())
"""


def log_ranker(
    bundle_dir: Path, registered_model: str, example_rows: np.ndarray, tags: dict[str, str]
) -> tuple[str, str]:
    """Log the bundle as a pyfunc model in the active run, register it, tag the version and
    point alias ``candidate`` at it. Returns (model_uri, version)."""
    bundle = RankerBundle(bundle_dir, version="local")
    example = pd.DataFrame(example_rows[:5], columns=list(bundle.spec.names))
    signature = mlflow.models.infer_signature(example, prediction_frame(bundle, example_rows[:5]))
    versions = package_versions()
    # Models from code: MLflow stores this two-line script instead of a pickled object.
    script = bundle_dir.parent / "ranker_model.py"
    script.write_text(_MODEL_SCRIPT, encoding="utf-8")
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(script),
        input_example=example,
        artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
        signature=signature,
        pip_requirements=[
            f"lightgbm=={versions['lightgbm']}",
            f"numpy=={versions['numpy']}",
            f"scikit-learn=={versions['scikit-learn']}",
            f"mlflow=={mlflow.__version__}",
            f"pandas=={pd.__version__}",
        ],
        registered_model_name=registered_model,
        metadata={"recommender_version": versions["recommender"]},
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered_model, version, key, value)
    client.set_registered_model_alias(registered_model, CANDIDATE, version)
    return f"models:/{registered_model}/{version}", version


def alias_version(name: str, alias: str) -> str | None:
    """Version behind ``name@alias``, or None when the alias (or model) does not exist."""
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the promotion gate (differences are candidate minus reference, DR, reward
    units per manager-period, paired bootstrap interval)."""

    promoted: bool
    reason: str
    candidate_version: str
    champion_version: str | None
    vs_champion: ope.PolicyValue | None
    vs_best_single: ope.PolicyValue
    best_single_type: str

    def tags(self) -> dict[str, str]:
        """Flat string tags for both model versions."""
        out = {
            "gate.decision": "promoted" if self.promoted else "refused",
            "gate.reason": self.reason,
            "gate.candidate_version": self.candidate_version,
            "gate.champion_version": self.champion_version or "",
            "gate.best_single_type": self.best_single_type,
        }
        for label, diff in (
            ("vs_champion", self.vs_champion),
            ("vs_best_single", self.vs_best_single),
        ):
            if diff is None:
                continue
            out[f"gate.{label}.estimate"] = f"{diff.estimate:.6g}"
            out[f"gate.{label}.ci_low"] = f"{diff.ci_low:.6g}"
            out[f"gate.{label}.ci_high"] = f"{diff.ci_high:.6g}"
            out[f"gate.{label}.n"] = str(diff.n)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        return out


def bundle_scores(bundle: RankerBundle, rows: pd.DataFrame, context: EvalContext) -> np.ndarray:
    """Action scores (n, n_actions) of ``bundle`` on the context's rows, encoded with the
    bundle's own feature spec (columns it does not know are missing)."""
    frame = rows.copy()
    for name in bundle.spec.names:
        if name not in frame.columns:
            frame[name] = np.nan
    X = bundle.spec.encode_frame(frame)
    score = bundle.predict(X).score
    return model_action_scores(score, bundle.nudge_types, context.action_names)


def gate(
    context: EvalContext,
    candidate: RankerBundle,
    champion: RankerBundle | None,
    best_single_type: str,
    n_bootstrap: int,
    confidence: float,
    clip: float,
    seed: int,
) -> GateDecision:
    """Decide whether ``candidate`` may become champion on the evaluation ``context``."""
    from recommender.evaluation import single_type_policy

    rows = context.rows
    propensity = np.clip(context.propensity, clip, 1.0)
    cand_pi = greedy_policy(bundle_scores(candidate, rows, context), context.mask)
    best_pi = single_type_policy(context.action_names.index(best_single_type), context.mask)

    def diff(reference: np.ndarray) -> ope.PolicyValue:
        return ope.dr_value_difference(
            cand_pi,
            reference,
            context.rewards,
            context.actions,
            propensity,
            q_hat=context.q_hat,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=seed,
            weight_cap=1.0 / clip,
        )

    vs_best = diff(best_pi)
    vs_champion = None
    if champion is not None:
        champ_pi = greedy_policy(bundle_scores(champion, rows, context), context.mask)
        vs_champion = diff(champ_pi)
    worse_best = ope.is_significantly_worse(vs_best)
    worse_champion = vs_champion is not None and ope.is_significantly_worse(vs_champion)
    if worse_champion:
        reason = "significantly worse than the current champion"
    elif worse_best:
        reason = "significantly worse than the best single type"
    elif champion is None:
        reason = "no champion yet; not worse than the best single type"
    else:
        reason = "not significantly worse than the champion nor the best single type"
    return GateDecision(
        promoted=not (worse_best or worse_champion),
        reason=reason,
        candidate_version=candidate.version,
        champion_version=None if champion is None else champion.version,
        vs_champion=vs_champion,
        vs_best_single=vs_best,
        best_single_type=best_single_type,
    )


def apply_decision(name: str, decision: GateDecision) -> None:
    """Tag the candidate with the decision (``gate.*``), the champion with the challenge
    (``gate.challenged_by.v<candidate>.*``), and move ``champion`` if promoted."""
    client = MlflowClient()
    tags = decision.tags()
    for key, value in tags.items():
        client.set_model_version_tag(name, decision.candidate_version, key, value)
    champion = decision.champion_version
    if champion and champion != decision.candidate_version:
        # The champion keeps the record of its own promotion; this challenge is kept beside it.
        prefix = f"gate.challenged_by.v{decision.candidate_version}."
        for key, value in tags.items():
            client.set_model_version_tag(name, champion, prefix + key.removeprefix("gate."), value)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, decision.candidate_version)
