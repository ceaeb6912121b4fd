"""Experiment review for analysts: pull runs, model versions and their evaluation from MLflow.

What ``notebooks/02-experiment-review.ipynb`` shows comes from here: candidate vs champion
policy values with intervals, Qini coefficients and curves, the segment table (groups under
``MIN_GROUP_SIZE`` managers never shown), and the promotion gate's decision, numbers and
reason (tags on the model versions). Everything read is what ``recommender.pipeline`` logged:
aggregate, pseudonymous, privacy-safe. Nothing happens at import.

Policy values are the ranking objective (weighted sum of standardised outcome changes) per
manager-period on the run's evaluation window; intervals are bootstrap percentile intervals.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recommender.constants import MIN_GROUP_SIZE

EXPERIMENT = "nudge-recommender"
MODEL_NAME = "nudge-ranker"
CANDIDATE = "candidate"
CHAMPION = "champion"

REVIEW_CONFIG = """
seed: {seed}
model:
  params: {{n_estimators: {trees}, n_jobs: 1}}
evaluation:
  n_bootstrap: 100
  q_model_estimators: 30
"""
"""Small training config for the self-contained review (seconds on ``data/sample``)."""


# --------------------------------------------------------------------------- store


def _client() -> Any:
    import mlflow

    from recommender import tracking

    uri = tracking.tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def count_runs(experiment: str = EXPERIMENT) -> int:
    """Finished runs in ``experiment`` of the current tracking store (0 if it does not exist;
    a missing SQLite file is not created)."""
    from recommender import tracking

    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return 0
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return 0
    return len(client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'"))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence MLflow's log lines, warnings and progress bars (they go to stderr)."""
    import warnings

    names = ("mlflow", "alembic", "lightgbm")
    levels = {name: logging.getLogger(name).level for name in names}
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def ensure_review_store(sample: Path, experiment: str = EXPERIMENT) -> str:
    """The tracking URI to review: the configured store (``MLFLOW_TRACKING_URI`` or the
    project's ``mlflow.db``) when ``experiment`` has runs there; otherwise a temporary SQLite
    store (``MLFLOW_TRACKING_URI`` is set to it for this process) where two small models are
    trained on ``sample``: the first becomes champion, the second is the candidate the gate
    compares with it.
    """
    from recommender import tracking

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if count_runs(experiment) > 0:
        return tracking.tracking_uri()
    from recommender.pipeline import run_train

    folder = Path(tempfile.mkdtemp(prefix="experiment-review-"))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    # MLflow keeps the last store's experiment and registry in os.environ: drop them.
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    for seed, trees in ((0, 30), (1, 60)):
        config = folder / f"review-{seed}.yaml"
        text = REVIEW_CONFIG.format(seed=seed, trees=trees)
        config.write_text(text + f"tracking: {{experiment: {experiment}}}\n", encoding="utf-8")
        with _quiet():
            run_train(Path(sample), config, promote=True, show_progress=False)
    return uri


# --------------------------------------------------------------------------- runs and versions


def list_runs(experiment: str = EXPERIMENT, filter_string: str = "") -> pd.DataFrame:
    """One row per run (newest first): name, start, the tags an analyst filters by
    (``org_ids``, ``data_window``, ``model_version``, ``gate.decision``) and headline metrics.

    filter_string: MLflow search syntax, e.g. ``"tags.org_ids LIKE '%org-01%'"``.
    """
    client = _client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame()
    runs = client.search_runs(
        [found.experiment_id], filter_string, order_by=["attributes.start_time DESC"]
    )
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        rows.append(
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "start": pd.Timestamp(run.info.start_time, unit="ms"),
                "org_ids": tags.get("org_ids"),
                "data_window": tags.get("data_window"),
                "eval_window": tags.get("eval_window"),
                "model_version": tags.get("model_version"),
                "gate": tags.get("gate.decision"),
                "learned_dr": metrics.get("value_learned_dr"),
                "learned_minus_logging": metrics.get("dr_diff_learned_minus_logging"),
                "eval_rounds": metrics.get("eval_rounds"),
            }
        )
    return pd.DataFrame(rows)


def model_versions(name: str = MODEL_NAME) -> pd.DataFrame:
    """One row per registered version (newest first): aliases, run, data digest and the gate
    tags (``gate.decision``, ``gate.reason``, differences with their intervals)."""
    client = _client()
    versions = client.search_model_versions(f"name = '{name}'")
    aliases: dict[str, list[str]] = {}
    with contextlib.suppress(Exception):
        for alias, version in client.get_registered_model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags = dict(mv.tags)
        rows.append(
            {
                "version": str(mv.version),
                "aliases": ", ".join(sorted(aliases.get(str(mv.version), []))),
                "run_id": mv.run_id,
                "data_digest": tags.get("data_digest"),
                "eval_window": tags.get("eval_window"),
                **{k: v for k, v in sorted(tags.items()) if k.startswith("gate.")},
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Pair:
    """The two versions under review (``champion`` None when there is none yet)."""

    candidate: str
    candidate_run: str
    champion: str | None
    champion_run: str | None


def review_pair(name: str = MODEL_NAME) -> Pair:
    """Candidate = the newest version (alias ``candidate``); champion = alias ``champion``.

    When the newest version was promoted it is both; the champion it replaced (the
    ``gate.champion_version`` tag) is then shown as the reference instead.
    """
    from mlflow.exceptions import MlflowException

    client = _client()

    def by_alias(alias: str) -> Any:
        try:
            return client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None

    candidate = by_alias(CANDIDATE)
    if candidate is None:
        raise LookupError(f"model {name!r} has no version with alias {CANDIDATE!r}")
    champion = by_alias(CHAMPION)
    if champion is not None and champion.version == candidate.version:
        previous = candidate.tags.get("gate.champion_version")
        champion = client.get_model_version(name, previous) if previous else None
    return Pair(
        candidate=str(candidate.version),
        candidate_run=str(candidate.run_id),
        champion=None if champion is None else str(champion.version),
        champion_run=None if champion is None else str(champion.run_id),
    )


# --------------------------------------------------------------------------- artifacts


def _artifact(run_id: str, path: str) -> Path:
    import mlflow

    _client()
    with _quiet():
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))


def read_table(run_id: str, name: str) -> pd.DataFrame:
    """An evaluation table of a run (``evaluation/<name>.csv``)."""
    return pd.read_csv(_artifact(run_id, f"evaluation/{name}.csv"))


def plot_png(run_id: str, name: str) -> bytes:
    """PNG bytes of an evaluation plot of a run (``evaluation/plots/<name>.png``)."""
    return _artifact(run_id, f"evaluation/plots/{name}.png").read_bytes()


def report_html_path(run_id: str) -> Path:
    """Local copy of the run's self-contained HTML evaluation report."""
    return _artifact(run_id, "evaluation/report.html")


# --------------------------------------------------------------------------- comparisons


def policy_values(pair: Pair, estimator: str = "dr") -> pd.DataFrame:
    """Policy values of both versions' runs, one row per (model, policy): estimate, ci_low,
    ci_high, n (rounds of the evaluation window). ``estimator``: dr, snips or ips (the logging
    policy is always its on-policy mean)."""
    parts = []
    for label, run_id in (("candidate", pair.candidate_run), ("champion", pair.champion_run)):
        if run_id is None:
            continue
        table = read_table(run_id, "policy_values")
        keep = (table["estimator"] == estimator) | (table["policy"] == "logging")
        table = table.loc[keep].copy()
        table.insert(0, "model", label)
        table.insert(1, "version", pair.candidate if label == "candidate" else pair.champion)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def plot_policy_values(values: pd.DataFrame) -> Any:
    """Point-and-interval chart of ``policy_values`` (policies on y, one colour per model)."""
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(values["policy"]))
    models = list(dict.fromkeys(values["model"]))
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(policies) + 1.2))
    for m, model in enumerate(models):
        rows = values.loc[values["model"] == model].set_index("policy")
        offset = (m - (len(models) - 1) / 2) * 0.25
        for p, policy in enumerate(policies):
            if policy not in rows.index:
                continue
            row = rows.loc[policy]
            y = p + offset
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=f"C{m}", lw=2)
            ax.plot(row["estimate"], y, "o", color=f"C{m}", label=model if p == 0 else None)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_yticks(range(len(policies)), policies)
    ax.set_xlabel("policy value (objective units per manager-period), 95% interval")
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


def qini_coefficients(pair: Pair) -> pd.DataFrame:
    """Qini coefficient per nudge type (rows) for candidate and champion (columns); higher
    means the model ranks managers who gain from that type first."""
    client = _client()
    columns = {}
    for label, run_id in (("candidate", pair.candidate_run), ("champion", pair.champion_run)):
        if run_id is None:
            continue
        metrics = client.get_run(run_id).data.metrics
        columns[label] = {
            k.removeprefix("qini_"): v for k, v in metrics.items() if k[:5] == "qini_"
        }
    return pd.DataFrame(columns).rename_axis("nudge_type").sort_index()


def segment_table(run_id: str, min_group: int = MIN_GROUP_SIZE) -> pd.DataFrame:
    """Who gains: per segment (function, level, trait bands) managers, observed reward and the
    DR gain of the learned policy over no nudge, each with its interval.

    Segments under ``min_group`` managers (and those blanked to protect them) show no numbers;
    this holds even if the logged table were not suppressed.
    """
    table = read_table(run_id, "segments")
    blank = table["suppressed"].astype(bool) | (table["n_units"].fillna(0) < min_group)
    values = [c for c in table.columns if c.endswith(("_mean", "_ci_low", "_ci_high"))]
    table.loc[blank, values] = np.nan
    display = table["n_units_display"].astype(str)
    table["managers"] = np.where(
        blank & ~display.str.contains("<|suppressed"), "suppressed", display
    )
    table.loc[blank, "n_units"] = np.nan
    out = table[["dimension", "segment", "managers"]].copy()
    for name, column in (
        ("reward", "reward"),
        ("gain_vs_no_nudge", "dr_gain_learned_vs_none"),
        ("share_nudged", "nudged_by_learned"),
    ):
        out[name] = table[f"{column}_mean"]
        if name != "share_nudged":
            out[f"{name}_ci_low"] = table[f"{column}_ci_low"]
            out[f"{name}_ci_high"] = table[f"{column}_ci_high"]
    return out


# --------------------------------------------------------------------------- gate


@dataclass(frozen=True)
class GateSummary:
    """The promotion gate's decision on a version, from its registry tags.

    Differences are candidate minus reference, DR policy value in objective units per
    manager-period on the candidate's evaluation window, with paired bootstrap intervals.
    """

    version: str
    decision: str
    reason: str
    champion_version: str | None
    best_single_type: str
    differences: pd.DataFrame

    def explain(self) -> str:
        """Plain-language account of the decision and its numbers."""
        lines = [f"Version {self.version}: {self.decision} — {self.reason}."]
        for row in self.differences.itertuples(index=False):
            worse = row.ci_high < 0
            verdict = (
                "significantly worse"
                if worse
                else "significantly better"
                if row.ci_low > 0
                else "not significantly different"
            )
            lines.append(
                f"  vs {row.reference}: {row.estimate:+.4f} "
                f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}] over {row.n:,} manager-periods "
                f"-> {verdict}."
            )
        lines.append(
            "Rule: promote unless the interval of a difference lies entirely below 0 "
            "(not worse than the champion nor than giving everyone the best single type)."
        )
        return "\n".join(lines)


def gate_summary(version: str, name: str = MODEL_NAME) -> GateSummary:
    """Read the gate tags of ``version``; ``LookupError`` if the gate never ran on it."""
    tags = dict(_client().get_model_version(name, version).tags)
    if "gate.decision" not in tags:
        raise LookupError(f"version {version} of {name!r} has no gate.* tags")
    rows = []
    for label, reference in (
        ("vs_champion", f"champion v{tags.get('gate.champion_version')}"),
        ("vs_best_single", f"best single type ({tags.get('gate.best_single_type')})"),
    ):
        if f"gate.{label}.estimate" not in tags:
            continue
        rows.append(
            {
                "reference": reference,
                "estimate": float(tags[f"gate.{label}.estimate"]),
                "ci_low": float(tags[f"gate.{label}.ci_low"]),
                "ci_high": float(tags[f"gate.{label}.ci_high"]),
                "n": int(tags[f"gate.{label}.n"]),
            }
        )
    return GateSummary(
        version=str(version),
        decision=tags["gate.decision"],
        reason=tags.get("gate.reason", ""),
        champion_version=tags.get("gate.champion_version") or None,
        best_single_type=tags.get("gate.best_single_type", ""),
        differences=pd.DataFrame(rows, columns=["reference", "estimate", "ci_low", "ci_high", "n"]),
    )
