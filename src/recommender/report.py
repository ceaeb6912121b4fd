"""Evaluation artifacts: PNG plots, CSV/JSON tables and one self-contained HTML report.

Everything written here is aggregate and privacy-safe: pseudonymous org ids, nudge types,
learner names and numbers; no manager ids, names or catalogue text; segment and calibration
tables come already suppressed (groups under 5 managers blanked).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from recommender.evaluation import Evaluation


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def figures(evaluation: Evaluation) -> dict[str, bytes]:
    """PNG bytes of the evaluation plots, by file name."""
    from recommender import plots

    out = {"policy_values.png": _png(plots.plot_policy_values(evaluation.policy_values))}
    if evaluation.qini:
        out["qini_curves.png"] = _png(plots.plot_qini_curves(evaluation.qini))
    if evaluation.calibration["suppressed"].eq(False).any():
        out["calibration.png"] = _png(plots.plot_calibration(evaluation.calibration))
    return out


def selection_table(model: Any) -> pd.DataFrame:
    """The estimator's held-out causal loss per candidate (empty if unavailable)."""
    report = getattr(model, "selection_report_", None)
    return report.reset_index() if isinstance(report, pd.DataFrame) else pd.DataFrame()


def write_artifacts(
    folder: Path,
    evaluation: Evaluation,
    model: Any,
    single_table: pd.DataFrame,
    pngs: Mapping[str, bytes],
) -> None:
    """Tables (CSV), metrics (JSON) and plots (PNG) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plots").mkdir(exist_ok=True)
    for name, png in pngs.items():
        (folder / "plots" / name).write_bytes(png)
    evaluation.policy_values.to_csv(folder / "policy_values.csv", index=False)
    evaluation.differences.to_csv(folder / "policy_differences.csv", index=False)
    evaluation.overlap.to_csv(folder / "overlap.csv", index=False)
    evaluation.calibration.to_csv(folder / "calibration.csv", index=False)
    evaluation.segments.to_csv(folder / "segments.csv", index=False)
    single_table.to_csv(folder / "single_type_values_train.csv", index=False)
    selection_table(model).to_csv(folder / "selection_report.csv", index=False)
    if evaluation.truth is not None:
        evaluation.truth.to_csv(folder / "truth_policy_values.csv", index=False)
    (folder / "metrics.json").write_text(
        json.dumps(evaluation.metrics, indent=1, sort_keys=True), encoding="utf-8"
    )


def _table(frame: pd.DataFrame, digits: int = 4) -> str:
    if frame.empty:
        return "<p><em>none</em></p>"
    return frame.to_html(
        index=False,
        float_format=lambda v: f"{v:.{digits}g}",
        na_rep="–",
        border=0,
        classes="t",
        escape=True,
    )


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table.t{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.t td,table.t th{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}
table.t th{background:#f5f5f5}img{max-width:100%}.note{color:#666;font-size:.9em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
"""


def render_html(
    summary: Mapping[str, Any],
    evaluation: Evaluation,
    model: Any,
    single_table: pd.DataFrame,
    pngs: Mapping[str, bytes],
    gate: Mapping[str, str] | None,
) -> str:
    """One self-contained HTML page (plots inlined as base64 PNG)."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Nudge ranker evaluation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Nudge ranker: evaluation report</h1>",
        "<p class='note'>Evaluated off-policy on a later time window than training. Values are "
        "the ranking objective (weighted sum of outcome changes, each divided by its SD in the "
        "training window) per manager-period; intervals are 95% bootstrap percentile "
        "intervals. Groups under 5 managers are suppressed.</p>",
        "<h2>Run</h2><dl>",
    ]
    for key, value in summary.items():
        parts.append(f"<dt>{esc(str(key))}</dt><dd>{esc(str(value))}</dd>")
    parts.append("</dl>")
    parts.append("<h2>Policy values (evaluation window)</h2>")
    parts.append(_table(evaluation.policy_values))
    if "policy_values.png" in pngs:
        parts.append(_img(pngs["policy_values.png"], "policy values"))
    parts.append("<h2>Learned policy vs the others (paired DR difference)</h2>")
    parts.append(_table(evaluation.differences))
    parts.append("<h2>Overlap diagnostics</h2>")
    parts.append(_table(evaluation.overlap))
    if evaluation.truth is not None:
        parts.append("<h2>Simulated data: true policy values</h2>")
        parts.append(
            "<p class='note'>From the simulation's ground truth (evaluation only). NPV = "
            "(V(policy) - V(random)) / (V(oracle) - V(random)).</p>"
        )
        parts.append(_table(evaluation.truth))
        pehe = {k: v for k, v in evaluation.metrics.items() if k.startswith("pehe_")}
        parts.append(_table(pd.DataFrame({"metric": list(pehe), "value": list(pehe.values())})))
    parts.append("<h2>Uplift (Qini) curves per type</h2>")
    parts.append(
        _table(
            pd.DataFrame(
                {
                    "nudge_type": list(evaluation.qini_coefficients),
                    "qini_coefficient": list(evaluation.qini_coefficients.values()),
                }
            )
        )
    )
    if "qini_curves.png" in pngs:
        parts.append(_img(pngs["qini_curves.png"], "qini curves"))
    parts.append("<h2>Calibration: predicted vs DR-estimated effect by decile</h2>")
    parts.append(_table(evaluation.calibration))
    if "calibration.png" in pngs:
        parts.append(_img(pngs["calibration.png"], "calibration"))
    parts.append("<h2>Share of decisions of the learned policy</h2>")
    parts.append(
        _table(
            pd.DataFrame(
                {
                    "action": list(evaluation.chosen_share),
                    "share": list(evaluation.chosen_share.values()),
                }
            )
        )
    )
    parts.append("<h2>Segments (evaluation window)</h2>")
    parts.append(_table(evaluation.segments))
    parts.append("<h2>Best single type (chosen on the training window, SNIPS)</h2>")
    parts.append(_table(single_table))
    parts.append("<h2>Estimator selection (held-out causal loss, training window)</h2>")
    parts.append(_table(selection_table(model)))
    if gate:
        parts.append("<h2>Promotion gate</h2><dl>")
        for key, value in gate.items():
            parts.append(f"<dt>{esc(key)}</dt><dd>{esc(value)}</dd>")
        parts.append("</dl>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
