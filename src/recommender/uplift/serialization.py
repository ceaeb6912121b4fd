"""Save and load a fitted ``MultiTreatmentUplift`` without pickle.

Layout of a model folder::

    spec.json                   class, versions, params, features and categories, treatments,
                                outcomes, chosen weights/shrinkage, mean effects, reports,
                                booster index and the SHA-256 of every booster file
    boosters/<name>.txt         LightGBM native text models

Only boosters the predictions need are saved (learners with a positive weight where lambda > 0,
propensity models when the X-learner is used). ``spec.json`` carries the SHA-256 of its own
canonical content (``integrity.spec_sha256``), so edits are detected. This is an integrity check
against corruption and accidental edits, not a signature against a deliberate attacker.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import sklearn

import recommender
from recommender.uplift.base import FeatureSpec, ModelIntegrityError
from recommender.uplift.estimator import MultiTreatmentUplift
from recommender.uplift.learners import FoldLearner

FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
BOOSTER_DIR = "boosters"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(spec: dict[str, Any]) -> bytes:
    body = {k: v for k, v in spec.items() if k != "integrity"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _versions() -> dict[str, str]:
    return {
        "recommender": recommender.__version__,
        "lightgbm": lgb.__version__,
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "pandas": pd.__version__,
    }


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _needed(model: MultiTreatmentUplift) -> tuple[list[dict[str, float]], bool]:
    """Per outcome the learners whose boosters predictions need, and whether propensity is."""
    needed = []
    for name in model.outcome_names_:
        chosen = model.chosen_[name]
        weights = chosen["weights"] if chosen["shrinkage"] > 0 else {}
        needed.append({c: w for c, w in weights.items() if w > 0})
    return needed, any("x" in w for w in needed)


def _report_records(report: pd.DataFrame) -> list[list[Any]]:
    return [
        [str(cand), str(outcome), str(metric), None if pd.isna(v) else float(v)]
        for cand, row in report.iterrows()
        for (outcome, metric), v in row.items()
    ]


def _report_from_records(records: list[list[Any]], outcomes: tuple[str, ...]) -> pd.DataFrame:
    long = pd.DataFrame(records, columns=["candidate", "outcome", "metric", "value"])
    wide = long.pivot_table(
        index="candidate", columns=["outcome", "metric"], values="value", dropna=False, sort=False
    )
    order = list(dict.fromkeys(long["candidate"]))
    cols = list(dict.fromkeys(zip(long["outcome"], long["metric"], strict=True)))
    wide = wide.reindex(index=order, columns=pd.MultiIndex.from_tuples(cols))
    wide.index.name = "candidate"
    wide.columns.names = ["outcome", "metric"]
    return wide.astype(np.float64)


def save_uplift(model: MultiTreatmentUplift, folder: str | Path) -> Path:
    """Write a fitted model to ``folder`` (must not exist or be empty); returns the folder.

    Written atomically: into a temporary sibling folder, then renamed.
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model, "chosen_")
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / BOOSTER_DIR).mkdir()
        files: dict[str, str] = {}
        index: list[dict[str, Any]] = []

        def write(name: str, booster: lgb.Booster) -> str:
            rel = f"{BOOSTER_DIR}/{name}.txt"
            data = booster.model_to_string(num_iteration=-1).encode()
            (tmp / rel).write_bytes(data)
            files[rel] = _sha256(data)
            return rel

        needed, need_propensity = _needed(model)
        for o, learners in enumerate(needed):
            for c in learners:
                for k, fold_learner in enumerate(model.learners_[o][c]):
                    for key, booster in fold_learner.boosters.items():
                        rel = write(f"o{o}_{c}_f{k}_{key}", booster)
                        index.append(
                            {"outcome": o, "learner": c, "fold": k, "key": key, "file": rel}
                        )
        propensity_files = (
            [write(f"propensity_f{k}", b) for k, b in enumerate(model.propensity_models_)]
            if need_propensity
            else []
        )
        params = model.get_params()
        params["learners"] = list(params["learners"])
        overlap = model.overlap_report_.reset_index()
        spec: dict[str, Any] = {
            "class": type(model).__name__,
            "format_version": FORMAT_VERSION,
            "versions": _versions(),
            "params": params,
            "features": {
                "names": list(model.feature_spec_.names),
                "categories": model.feature_spec_.categories,
                "from_frame": model.feature_spec_.from_frame,
            },
            "control": model.control,
            "treatments": list(model.treatments_),
            "outcome_names": list(model.outcome_names_),
            "n_folds": int(model.n_folds_),
            "chosen": model.chosen_,
            "mean_effect": model.mean_effect_.tolist(),
            "mean_effect_se": model.mean_effect_se_.tolist(),
            "selection_report": _report_records(model.selection_report_),
            "overlap_report": {
                "columns": [str(c) for c in overlap.columns],
                "data": [
                    [v.item() if isinstance(v, np.generic) else v for v in row]
                    for row in overlap.itertuples(index=False)
                ],
            },
            "boosters": index,
            "propensity_boosters": propensity_files,
        }
        spec["integrity"] = {"files": files, "spec_sha256": _sha256(_canonical(spec))}
        (tmp / SPEC_FILE).write_text(json.dumps(spec, indent=1, sort_keys=True))
        if folder.exists():
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _read_spec(folder: Path) -> dict[str, Any]:
    path = folder / SPEC_FILE
    if not path.is_file():
        raise ModelIntegrityError(f"{path}: missing")
    try:
        spec = json.loads(path.read_text())
        expected = spec["integrity"]["spec_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ModelIntegrityError(f"{path}: corrupt spec ({exc})") from exc
    if _sha256(_canonical(spec)) != expected:
        raise ModelIntegrityError(f"{path}: content does not match its SHA-256 (edited?)")
    if spec.get("class") != MultiTreatmentUplift.__name__:
        raise ModelIntegrityError(
            f"{path}: class {spec.get('class')!r} is not MultiTreatmentUplift"
        )
    if spec.get("format_version") != FORMAT_VERSION:
        raise ModelIntegrityError(
            f"{path}: format_version {spec.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    saved = spec["versions"]["lightgbm"]
    if _major_minor(saved) != _major_minor(lgb.__version__):
        raise ModelIntegrityError(
            f"{path}: saved with lightgbm {saved}, running {lgb.__version__} "
            "(major.minor must match)"
        )
    return spec


def _read_booster(folder: Path, rel: str, files: dict[str, str]) -> lgb.Booster:
    path = folder / rel
    if rel not in files:
        raise ModelIntegrityError(f"{path}: not listed in the spec's file hashes")
    if not path.is_file():
        raise ModelIntegrityError(f"{path}: missing")
    data = path.read_bytes()
    if _sha256(data) != files[rel]:
        raise ModelIntegrityError(f"{path}: SHA-256 mismatch (tampered or corrupt)")
    try:
        return lgb.Booster(model_str=data.decode())
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise ModelIntegrityError(f"{path}: not a valid LightGBM model ({exc})") from exc


def load_uplift(folder: str | Path) -> MultiTreatmentUplift:
    """Load and verify a model written by ``save_uplift``.

    Raises ``ModelIntegrityError`` naming the file and the problem when the spec or a booster
    is missing, corrupt or altered, or the lightgbm major.minor version differs.
    """
    folder = Path(folder)
    spec = _read_spec(folder)
    files = spec["integrity"]["files"]
    params = dict(spec["params"])
    params["learners"] = tuple(params["learners"])
    model = MultiTreatmentUplift(**params)
    K = len(spec["treatments"])
    outcomes = tuple(spec["outcome_names"])
    learners: list[dict[str, list[FoldLearner]]] = [{} for _ in outcomes]
    grouped: dict[tuple[int, str, int], dict[str, lgb.Booster]] = {}
    for entry in spec["boosters"]:
        key = (int(entry["outcome"]), str(entry["learner"]), int(entry["fold"]))
        grouped.setdefault(key, {})[entry["key"]] = _read_booster(folder, entry["file"], files)
    n_folds = int(spec["n_folds"])
    for (o, c, k), boosters in sorted(grouped.items()):
        folds = learners[o].setdefault(c, [])
        if len(folds) != k:
            raise ModelIntegrityError(f"{folder / SPEC_FILE}: booster index incomplete for {c}")
        folds.append(FoldLearner(c, boosters, K))
    for o, per_learner in enumerate(learners):
        for c, folds in per_learner.items():
            if len(folds) != n_folds:
                raise ModelIntegrityError(
                    f"{folder / SPEC_FILE}: outcome {o} learner {c} has {len(folds)} folds, "
                    f"expected {n_folds}"
                )
    features = spec["features"]
    model.feature_spec_ = FeatureSpec(
        names=tuple(features["names"]),
        categories={k: list(v) for k, v in features["categories"].items()},
        from_frame=bool(features["from_frame"]),
    )
    model.n_features_in_ = len(model.feature_spec_.names)
    if model.feature_spec_.from_frame:
        model.feature_names_in_ = np.asarray(model.feature_spec_.names, dtype=object)
    model.n_folds_ = n_folds
    model.treatments_ = tuple(spec["treatments"])
    model.outcome_names_ = outcomes
    model.learners_ = learners
    model.propensity_models_ = [
        _read_booster(folder, rel, files) for rel in spec["propensity_boosters"]
    ]
    model.mean_effect_ = np.asarray(spec["mean_effect"], dtype=np.float64)
    model.mean_effect_se_ = np.asarray(spec["mean_effect_se"], dtype=np.float64)
    model.chosen_ = spec["chosen"]
    model.selection_report_ = _report_from_records(spec["selection_report"], outcomes)
    ov = spec["overlap_report"]
    model.overlap_report_ = pd.DataFrame(ov["data"], columns=ov["columns"]).set_index("arm")
    return model
