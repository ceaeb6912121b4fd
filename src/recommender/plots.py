"""Evaluation figures (matplotlib).

Every function builds a standalone ``matplotlib.figure.Figure`` attached to the Agg canvas
inside the function (no pyplot, no global backend switch, nothing shown), so it is safe in
tests, servers and training jobs. Save with ``fig.savefig(path)``; log with
``mlflow.log_figure(fig, "name.png")``. matplotlib is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _new_figure(width: float = 7.0, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _require(df: pd.DataFrame, columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing columns {missing}")


def _yerr(df: pd.DataFrame) -> np.ndarray:
    est = df["estimate"].to_numpy(dtype=float)
    low = df["ci_low"].to_numpy(dtype=float)
    high = df["ci_high"].to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([est - low, high - est]), nan=0.0).clip(min=0)


def plot_policy_values(df: pd.DataFrame, title: str = "Estimated policy value") -> Figure:
    """Point estimates with interval error bars, one series per estimator.

    df: output of ``ope.evaluate_policies`` (columns policy, estimator, estimate, ci_low,
    ci_high). Policies on the x axis in order of first appearance; estimators side by side.
    One errorbar container per estimator, one point per row of ``df``.
    """
    _require(df, ["policy", "estimator", "estimate", "ci_low", "ci_high"], "df")
    if df.empty:
        raise ValueError("df must not be empty")
    fig = _new_figure()
    ax = fig.add_subplot()
    policies = list(dict.fromkeys(df["policy"]))
    estimators = list(dict.fromkeys(df["estimator"]))
    position = {p: i for i, p in enumerate(policies)}
    width = 0.7
    step = width / max(len(estimators), 1)
    for j, est in enumerate(estimators):
        sub = df[df["estimator"] == est]
        x = np.array([position[p] for p in sub["policy"]]) - width / 2 + step * (j + 0.5)
        ax.errorbar(
            x,
            sub["estimate"].to_numpy(dtype=float),
            yerr=_yerr(sub),
            fmt="o",
            capsize=3,
            label=str(est),
        )
    ax.set_xticks(range(len(policies)), [str(p) for p in policies], rotation=20, ha="right")
    ax.set_ylabel("value per decision (reward units)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="estimator")
    return fig


def plot_qini_curves(
    curves: Mapping[str, pd.DataFrame],
    title: str = "Uplift (Qini) curves",
    show_random: bool = True,
) -> Figure:
    """One line per curve (from ``evaluation_metrics.qini_curve``), plus its dashed random line.

    curves: mapping label -> frame with columns fraction, incremental_gain (and random_gain,
    else the straight line to the curve's last point is drawn). Lines: ``len(curves)`` times 2
    with ``show_random``, else ``len(curves)``.
    """
    if not curves:
        raise ValueError("curves must contain at least one curve")
    fig = _new_figure()
    ax = fig.add_subplot()
    for label, curve in curves.items():
        _require(curve, ["fraction", "incremental_gain"], f"curves[{label!r}]")
        x = curve["fraction"].to_numpy(dtype=float)
        y = curve["incremental_gain"].to_numpy(dtype=float)
        (line,) = ax.plot(x, y, label=str(label))
        if show_random:
            rand = (
                curve["random_gain"].to_numpy(dtype=float)
                if "random_gain" in curve.columns
                else x * (y[-1] if y.size else 0.0)
            )
            ax.plot(x, rand, linestyle="--", color=line.get_color(), alpha=0.6, label="_random")
    ax.set_xlabel("fraction targeted (by predicted uplift)")
    ax.set_ylabel("incremental gain per unit (reward units)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_calibration(df: pd.DataFrame, title: str = "Calibration of predicted effects") -> Figure:
    """Mean DR-estimated effect (with interval) vs mean predicted effect per decile.

    df: output of ``evaluation_metrics.calibration_by_decile``; suppressed deciles (NaN) are
    not drawn. Draws one errorbar series and the diagonal ``y = x`` reference line.
    """
    _require(df, ["mean_predicted", "mean_observed", "ci_low", "ci_high"], "df")
    shown = df.dropna(subset=["mean_predicted", "mean_observed"])
    fig = _new_figure(5.5, 5.0)
    ax = fig.add_subplot()
    est = shown["mean_observed"].to_numpy(dtype=float)
    yerr = np.nan_to_num(
        np.vstack(
            [
                est - shown["ci_low"].to_numpy(dtype=float),
                shown["ci_high"].to_numpy(dtype=float) - est,
            ]
        ),
        nan=0.0,
    ).clip(min=0)
    ax.errorbar(
        shown["mean_predicted"].to_numpy(dtype=float),
        est,
        yerr=yerr,
        fmt="o",
        capsize=3,
        label="decile",
    )
    values = np.r_[shown["mean_predicted"].to_numpy(dtype=float), est]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="perfect calibration")
    ax.set_xlabel("mean predicted effect")
    ax.set_ylabel("mean DR-estimated effect")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_values_over_rounds(
    df: pd.DataFrame, title: str = "Policy value over rounds", value_col: str = "value"
) -> Figure:
    """One line per policy of ``value_col`` against ``round`` (closed-loop simulation).

    df: columns round, policy, value (and optionally ci_low, ci_high, drawn as shaded bands).
    """
    _require(df, ["round", "policy", value_col], "df")
    if df.empty:
        raise ValueError("df must not be empty")
    has_ci = {"ci_low", "ci_high"} <= set(df.columns)
    fig = _new_figure()
    ax = fig.add_subplot()
    for policy in dict.fromkeys(df["policy"]):
        sub = df[df["policy"] == policy].sort_values("round")
        x = sub["round"].to_numpy(dtype=float)
        (line,) = ax.plot(x, sub[value_col].to_numpy(dtype=float), marker="o", label=str(policy))
        if has_ci:
            ax.fill_between(
                x,
                sub["ci_low"].to_numpy(dtype=float),
                sub["ci_high"].to_numpy(dtype=float),
                color=line.get_color(),
                alpha=0.15,
            )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rounds are whole numbers
    ax.set_xlabel("round")
    ax.set_ylabel(f"{value_col} (reward units)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
