"""Input validation, feature encoding and LightGBM helpers shared by the uplift learners."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from recommender.uplift.config import FORBIDDEN_USER_PARAMS, min_leaf_rows

JSONScalar = str | int | float | bool


class ModelIntegrityError(Exception):
    """A saved uplift model is missing, corrupt, tampered with or from incompatible versions."""


@dataclass(frozen=True)
class FeatureSpec:
    """How raw features become the float32 matrix the boosters see.

    names: column names in model order (``x0, x1, ...`` for numpy input).
    categories: for categorical columns, the levels in code order; a value maps to its index
        in this list at fit *and* predict time, unknown levels and missing values to NaN.
    from_frame: whether the model was fitted on a pandas DataFrame.
    """

    names: tuple[str, ...]
    categories: dict[str, list[JSONScalar]] = field(default_factory=dict)
    from_frame: bool = True

    @property
    def categorical_indices(self) -> list[int]:
        """Positions of the categorical columns in ``names``."""
        return [i for i, name in enumerate(self.names) if name in self.categories]

    @classmethod
    def from_data(cls, X: Any) -> FeatureSpec:
        """Infer the spec from training features (DataFrame or 2-D numeric array)."""
        if isinstance(X, pd.DataFrame):
            if X.shape[1] == 0:
                raise ValueError("X has no columns")
            names = tuple(str(c) for c in X.columns)
            if len(set(names)) != len(names):
                raise ValueError("X has duplicate column names")
            categories: dict[str, list[JSONScalar]] = {}
            for name, col in zip(names, X.columns, strict=True):
                series = X[col]
                if isinstance(series.dtype, pd.CategoricalDtype):
                    levels = list(series.dtype.categories)
                elif pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(
                    series.dtype
                ):
                    continue
                elif pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(
                    series.dtype
                ):
                    levels = sorted({str(v) for v in series.dropna()})
                else:
                    raise ValueError(
                        f"X column {name!r} has unsupported dtype {series.dtype}; use numeric, "
                        "bool, categorical or string columns"
                    )
                categories[name] = [_json_scalar(v, name) for v in levels]
            return cls(names=names, categories=categories, from_frame=True)
        arr = _as_numeric_2d(X)
        return cls(names=tuple(f"x{i}" for i in range(arr.shape[1])), from_frame=False)

    def transform(self, X: Any) -> np.ndarray:
        """Encode features: array of shape (n, n_features), float32, categoricals as codes."""
        if isinstance(X, pd.DataFrame):
            cols = [str(c) for c in X.columns]
            missing = [n for n in self.names if n not in cols]
            if missing:
                raise ValueError(f"X is missing feature columns {missing}")
            extra = [c for c in cols if c not in self.names]
            if extra:
                raise ValueError(f"X has columns unseen at fit: {extra}")
            by_name = {str(c): c for c in X.columns}
            out = np.empty((len(X), len(self.names)), dtype=np.float32)
            for j, name in enumerate(self.names):
                series = X[by_name[name]]
                if name in self.categories:
                    levels = self.categories[name]
                    values = series
                    string_levels = all(isinstance(level, str) for level in levels)
                    if string_levels and not isinstance(series.dtype, pd.CategoricalDtype):
                        values = series.astype(object).where(series.isna(), series.astype(str))
                    # Map by value, never by the caller's category codes; unknown -> missing.
                    values = values.astype(object).where(values.isin(levels), None)
                    codes = pd.Categorical(values, categories=levels).codes.astype(np.float32)
                    codes[codes < 0] = np.nan
                    out[:, j] = codes
                else:
                    try:
                        out[:, j] = pd.to_numeric(series, errors="raise").to_numpy(
                            dtype=np.float32, na_value=np.nan
                        )
                    except (ValueError, TypeError) as exc:
                        raise ValueError(f"X column {name!r} must be numeric: {exc}") from exc
            return out
        if self.categories:
            raise ValueError(
                "the model was fitted on a DataFrame with categorical columns "
                f"{sorted(self.categories)}; pass a DataFrame with the same columns"
            )
        arr = _as_numeric_2d(X)
        if arr.shape[1] != len(self.names):
            raise ValueError(f"X has {arr.shape[1]} features, the model expects {len(self.names)}")
        return arr.astype(np.float32)


def _json_scalar(value: Any, column: str) -> JSONScalar:
    """A category level as a plain JSON scalar (so categories survive the JSON spec)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | bool | int | float):
        return value
    raise ValueError(
        f"X column {column!r} has category level {value!r} of type {type(value).__name__}; "
        "only str, int, float or bool levels are supported"
    )


def _as_numeric_2d(X: Any) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError("X has no columns")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(
            f"numpy X must be numeric, got dtype {arr.dtype}; pass a DataFrame for categoricals"
        )
    if np.isinf(arr.astype(np.float64)).any():
        raise ValueError("X contains infinite values")
    return arr


def as_label(value: Any) -> JSONScalar:
    """A treatment label as a plain Python scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, str | int | float | bool):
        raise ValueError(f"treatment label {value!r} must be a str or int")
    return value


def validate_treatment(
    treatment: Any, n: int, control: Any, min_rows: int
) -> tuple[tuple[JSONScalar, ...], np.ndarray]:
    """Check labels; return (treatments excluding control sorted, arm codes (n,) with 0=control)."""
    values = pd.Series(np.asarray(treatment, dtype=object).ravel())
    if np.asarray(treatment, dtype=object).ndim != 1:
        raise ValueError("treatment must be 1-D (n_samples,)")
    if len(values) != n:
        raise ValueError(f"treatment has {len(values)} rows, X has {n}")
    if values.isna().any():
        raise ValueError("treatment contains missing labels")
    labels = [as_label(v) for v in pd.unique(values)]
    if control not in labels:
        raise ValueError(f"no control rows: treatment has no row labelled {control!r}")
    others = [v for v in labels if v != control]
    if not others:
        raise ValueError("treatment has only control rows; at least one treatment is needed")
    try:
        treatments = tuple(sorted(others))
    except TypeError:
        treatments = tuple(sorted(others, key=str))
    counts = values.value_counts()
    for label in (control, *treatments):
        if int(counts[label]) < min_rows:
            raise ValueError(
                f"treatment {label!r} has {int(counts[label])} rows; at least {min_rows} are "
                "needed (n_folds x rows per fold)"
            )
    codes = {label: i for i, label in enumerate((control, *treatments))}
    arm = values.map(codes).to_numpy(dtype=np.int64)
    return treatments, arm


def validate_outcomes(y: Any, n: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Outcomes as float64 array (n, n_outcomes) plus their names."""
    if isinstance(y, pd.DataFrame):
        names = tuple(str(c) for c in y.columns)
        arr = y.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(y, pd.Series):
        names = (str(y.name) if y.name is not None else "y",)
        arr = y.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        arr = np.asarray(y, dtype=np.float64)
        names = ("y",) if arr.ndim == 1 else tuple(f"y{i}" for i in range(arr.shape[1]))
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"y must have shape (n,) or (n, n_outcomes), got {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"y has {arr.shape[0]} rows, X has {n}")
    if not np.isfinite(arr).all():
        bad = np.where(~np.isfinite(arr).all(axis=0))[0]
        raise ValueError(
            f"y contains NaN or infinite values in outcome(s) {[names[i] for i in bad]}"
        )
    return arr, names


def validate_propensity(propensity: Any, n: int) -> np.ndarray | None:
    """Logged propensities (n,) in (0, 1], or None."""
    if propensity is None:
        return None
    arr = np.asarray(propensity, dtype=np.float64).ravel()
    if arr.shape[0] != n:
        raise ValueError(f"propensity has {arr.shape[0]} rows, X has {n}")
    if not np.isfinite(arr).all() or (arr <= 0).any() or (arr > 1).any():
        raise ValueError("propensity must be finite and in (0, 1] for every row")
    return arr


def stage_params(
    base: dict[str, Any],
    user: dict[str, Any] | None,
    n_rows: int,
    stage: str,
    seed: int,
    num_threads: int = 1,
) -> dict[str, Any]:
    """LightGBM parameters for one booster: stage defaults, row-scaled leaf size, user overrides."""
    params = dict(base)
    params["min_data_in_leaf"] = min_leaf_rows(n_rows, stage)
    params["seed"] = seed
    params["num_threads"] = num_threads
    if user:
        params.update(user)
    return params


def check_user_params(user: dict[str, Any] | None) -> None:
    """Reject LightGBM parameters the estimator owns."""
    if user is None:
        return
    if not isinstance(user, dict):
        raise ValueError("lgbm_params must be a dict or None")
    bad = sorted(FORBIDDEN_USER_PARAMS & set(user))
    if bad:
        raise ValueError(f"lgbm_params may not set {bad}; the estimator sets them per stage")


def fit_booster(
    rows: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    n_rounds: int,
    reference: lgb.Dataset,
) -> lgb.Booster:
    """Fit one booster on ``rows`` (increasing indices into the reference's rows), labels y.

    y: (len(rows),). The Dataset is a row subset of the already binned ``reference`` (binned
    data copied: no re-binning of raw features, no copy of the raw matrix).
    """
    rows = np.asarray(rows)
    if rows.size > 1 and not (np.diff(rows) > 0).all():
        raise ValueError("rows must be strictly increasing (labels follow their order)")
    # A list: ``subset`` sorts its indices in Python, which is slow on a numpy array.
    data = reference.subset(rows.tolist(), params=reference.params).construct()
    data.set_label(np.asarray(y, dtype=np.float64))
    return lgb.train(params, data, num_boost_round=n_rounds)


def make_reference(
    X: np.ndarray, categorical: Sequence[int], max_bin: int, seed: int, num_threads: int = 1
) -> lgb.Dataset:
    """Bin the full training matrix once; every booster's Dataset is a row subset of it."""
    ref = lgb.Dataset(
        X,
        label=np.zeros(X.shape[0]),
        categorical_feature=list(categorical),
        free_raw_data=True,
        params={
            "verbosity": -1,
            "max_bin": max_bin,
            "seed": seed,
            "min_data_per_group": 50,
            "num_threads": num_threads,
        },
    )
    return ref.construct()
