"""Evaluation figures: right number of series/points, saved as PNG, no pyplot state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from recommender import evaluation_metrics as em
from recommender import ope, plots


def _saved_png(fig: Figure, path: Path) -> bool:
    fig.savefig(path)
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _errorbar_points(fig: Figure) -> list[int]:
    ax = fig.axes[0]
    return [len(c.lines[0].get_xdata()) for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_plot_policy_values_draws_one_point_per_row(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, k = 300, 3
    actions = rng.integers(0, k, n)
    rewards = rng.normal(size=n)
    policies = {"uniform": ope.uniform_policy(n, k), "none": ope.no_nudge_policy(n, k)}
    df = ope.evaluate_policies(
        policies, rewards, actions, np.full(n, 1 / k), q_hat=np.zeros((n, k)), n_bootstrap=20
    )
    fig = plots.plot_policy_values(df)
    assert isinstance(fig, Figure)
    points = _errorbar_points(fig)
    assert len(points) == df["estimator"].nunique() == 4
    assert sum(points) == len(df)
    assert _saved_png(fig, tmp_path / "values.png")


def test_plot_qini_curves_draws_model_and_random_line_per_curve(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    treated = rng.random(200) < 0.5
    rewards = x * treated + rng.normal(size=200)
    curves = {
        "model": em.qini_curve(x, rewards, treated),
        "noise": em.qini_curve(rng.normal(size=200), rewards, treated),
    }
    fig = plots.plot_qini_curves(curves)
    assert len(fig.axes[0].get_lines()) == 4
    assert len(plots.plot_qini_curves(curves, show_random=False).axes[0].get_lines()) == 2
    assert _saved_png(fig, tmp_path / "qini.png")


def test_plot_calibration_skips_suppressed_deciles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    table = em.calibration_by_decile(rng.normal(size=500), rng.normal(size=500))
    table.loc[[0, 1], ["mean_predicted", "mean_observed", "ci_low", "ci_high"]] = np.nan
    fig = plots.plot_calibration(table)
    assert _errorbar_points(fig) == [8]
    assert _saved_png(fig, tmp_path / "calibration.png")


def test_plot_values_over_rounds_draws_one_line_per_policy(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "round": [0, 1, 2] * 3,
            "policy": ["learned"] * 3 + ["uniform"] * 3 + ["none"] * 3,
            "value": np.arange(9, dtype=float),
        }
    )
    df["ci_low"], df["ci_high"] = df["value"] - 0.5, df["value"] + 0.5
    fig = plots.plot_values_over_rounds(df)
    assert len(fig.axes[0].get_lines()) == 3
    assert _saved_png(fig, tmp_path / "rounds.png")


def test_plots_reject_frames_without_required_columns() -> None:
    with pytest.raises(ValueError, match="missing columns"):
        plots.plot_policy_values(pd.DataFrame({"policy": ["a"]}))
    with pytest.raises(ValueError, match="missing columns"):
        plots.plot_values_over_rounds(pd.DataFrame({"round": [0]}))
    with pytest.raises(ValueError, match="curves"):
        plots.plot_qini_curves({})


def test_plots_do_not_register_pyplot_figures() -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.plot_values_over_rounds(pd.DataFrame({"round": [0], "policy": ["a"], "value": [1.0]}))
    assert plt.get_fignums() == before
