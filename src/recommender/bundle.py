"""The trained model bundle the ranking service scores with (implements ``EffectModel``).

A bundle is a folder:

- ``uplift/``: the uplift estimator (LightGBM native text + spec JSON, via ``save_uplift``)
- ``feature_spec.json``: feature order and category codes (the one feature spec)
- ``objective.json``: outcome weights and training-window scales of the ranking score
- ``snapshot.npz``: latest encoded feature row per active manager (pseudonymous ids only)
- ``catalogue.json``: the nudge catalogue without its text
- ``segments.json``: evidence for reasons (groups under 5 managers left out)
- ``meta.json``: format and package versions, nudge types, outcomes, data window
- ``manifest.json``: SHA-256 of every other file

Loading verifies every hash, that no file is missing or added, and the package versions; any
mismatch raises ``ModelIntegrityError``. ``predict`` is numpy-only (no pandas on the hot path).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recommender.constants import MIN_GROUP_SIZE, TRAITS
from recommender.effect_model import CatalogueEntry, EffectPrediction
from recommender.features import FeatureSpec
from recommender.tracking import file_sha256

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BUNDLE_ARTIFACT = "bundle"
"""Name of the bundle directory among the pyfunc model's artifacts."""

TRAIT_BAND_EDGES = (33.0, 67.0)
TRAIT_BAND_LABELS = ("low", "mid", "high")


def _integrity_error() -> type[Exception]:
    from recommender.uplift import ModelIntegrityError

    return ModelIntegrityError


def package_versions() -> dict[str, str]:
    """Versions that must match between training and serving."""
    import lightgbm
    import sklearn

    import recommender

    return {
        "recommender": recommender.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lightgbm": lightgbm.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def check_versions(saved: Mapping[str, str]) -> None:
    """Refuse a bundle saved with another major.minor of lightgbm or numpy, or another format."""
    current = package_versions()
    for name in ("lightgbm", "numpy"):
        if name not in saved:
            raise _integrity_error()(f"bundle meta lacks the {name} version")
        if _major_minor(saved[name]) != _major_minor(current[name]):
            raise _integrity_error()(
                f"bundle was saved with {name} {saved[name]}, this environment has "
                f"{current[name]}; retrain or install the matching version"
            )


def write_manifest(folder: Path) -> dict[str, str]:
    """Hash every file under ``folder`` (except the manifest) into ``manifest.json``."""
    hashes = {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps({"sha256": hashes}, indent=1), encoding="utf-8")
    return hashes


def verify_manifest(folder: Path) -> None:
    """Raise ``ModelIntegrityError`` unless every file matches ``manifest.json`` exactly."""
    error = _integrity_error()
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise error(f"{manifest}: manifest missing; not a model bundle")
    try:
        expected: dict[str, str] = json.loads(manifest.read_text(encoding="utf-8"))["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{manifest}: unreadable manifest ({exc})") from None
    present = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != MANIFEST
    }
    missing = sorted(set(expected) - present)
    if missing:
        raise error(f"{folder}: bundle file(s) missing: {missing}")
    extra = sorted(present - set(expected))
    if extra:
        raise error(f"{folder}: unexpected file(s) in bundle: {extra}")
    for name, digest in expected.items():
        if file_sha256(folder / name) != digest:
            raise error(f"{folder / name}: SHA-256 mismatch (file corrupted or tampered with)")


def trait_band(value: float) -> str | None:
    """Band label of a 0-100 trait score (same edges as the evaluation's trait bands)."""
    if not np.isfinite(value):
        return None
    if value < TRAIT_BAND_EDGES[0]:
        return TRAIT_BAND_LABELS[0]
    if value < TRAIT_BAND_EDGES[1]:
        return TRAIT_BAND_LABELS[1]
    return TRAIT_BAND_LABELS[2]


_DIMENSION_TEXT = {
    "function": "in {value}",
    "level": "at {value} level",
    **{f"{trait}_band": f"with {{value}} {trait}" for trait in TRAITS},
}


@dataclass(frozen=True)
class _Evidence:
    n_managers: int
    effect: tuple[float, ...]
    score: float


class RankerBundle:
    """A verified, loaded model bundle; satisfies ``recommender.effect_model.EffectModel``."""

    def __init__(self, folder: Path, version: str, *, precompute_snapshot: bool = False) -> None:
        folder = Path(folder)
        verify_manifest(folder)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise _integrity_error()(
                f"bundle format {meta.get('format_version')} is not {FORMAT_VERSION}"
            )
        check_versions(meta.get("versions", {}))
        from recommender.uplift import load_uplift

        self._folder = folder
        self._version = str(version)
        self.meta: dict[str, Any] = meta
        self.model = load_uplift(folder / "uplift")
        self.spec = FeatureSpec.from_dict(
            json.loads((folder / "feature_spec.json").read_text(encoding="utf-8"))
        )
        objective = json.loads((folder / "objective.json").read_text(encoding="utf-8"))
        self._outcomes = tuple(str(o) for o in self.model.outcome_names_)
        if tuple(objective["outcome_names"]) != self._outcomes:
            raise _integrity_error()("objective outcomes do not match the model's outcomes")
        self.weights = np.asarray(objective["weights"], dtype=np.float64)
        self.scales = np.asarray(objective["scales"], dtype=np.float64)
        self._coef = self.weights / self.scales
        self._types = tuple(str(t) for t in self.model.treatments_)
        with np.load(folder / "snapshot.npz", allow_pickle=False) as snap:
            self._snapshot_X = np.asarray(snap["X"], dtype=np.float64)
            orgs = snap["org_id"].astype(str)
            managers = snap["manager_id"].astype(str)
        self._rows = {
            (str(o), str(m)): i for i, (o, m) in enumerate(zip(orgs, managers, strict=True))
        }
        entries = json.loads((folder / "catalogue.json").read_text(encoding="utf-8"))
        self._catalogue: dict[str, list[CatalogueEntry]] = {}
        self._global: list[CatalogueEntry] = []
        for item in entries:
            entry = CatalogueEntry(
                nudge_id=str(item["nudge_id"]),
                org_id=str(item["org_id"]),
                nudge_type=str(item["nudge_type"]),
                competency_id=item.get("competency_id"),
                contexts=frozenset(item.get("contexts", [])),
            )
            if entry.org_id == "global":
                self._global.append(entry)
            else:
                self._catalogue.setdefault(entry.org_id, []).append(entry)
        self._orgs = set(self.spec.categories.get("org_id", ()))
        segments = json.loads((folder / "segments.json").read_text(encoding="utf-8"))
        self._evidence: dict[tuple[str, str, str, str], _Evidence] = {}
        for item in segments:
            if int(item["n_managers"]) < MIN_GROUP_SIZE:
                continue
            key = (str(item["org_id"]), item["dimension"], item["segment"], item["nudge_type"])
            self._evidence[key] = _Evidence(
                int(item["n_managers"]), tuple(item["effect"]), float(item["score"])
            )
        self._index = {name: j for j, name in enumerate(self.spec.names)}
        # Snapshot features are fixed until the next training, so for serving their predictions
        # are computed once here (one batched pass) and ranking a known manager is a lookup, not
        # hundreds of single-row booster calls.
        self._snapshot_index: dict[bytes, int] = {}
        if precompute_snapshot:
            self._snapshot_prediction = self._predict_uncached(self._snapshot_X)
            for i, row in enumerate(self._snapshot_X):
                self._snapshot_index.setdefault(row.tobytes(), i)

    # ------------------------------------------------------------------ EffectModel
    @property
    def version(self) -> str:
        """Registry version of the loaded model."""
        return self._version

    @property
    def nudge_types(self) -> tuple[str, ...]:
        """Types scored, in the order of axis 1 of ``predict``."""
        return self._types

    @property
    def outcome_names(self) -> tuple[str, ...]:
        """Outcomes, in the order of axis 2 of ``predict``."""
        return self._outcomes

    @property
    def n_features(self) -> int:
        """Length of an encoded row."""
        return len(self.spec.names)

    def catalogue(self, org_id: str) -> tuple[CatalogueEntry, ...]:
        """The org's own nudges plus the global ones (none for an org unseen at training)."""
        if org_id not in self._orgs:
            return ()
        return (*self._catalogue.get(org_id, ()), *self._global)

    def manager_row(self, org_id: str, manager_id: str) -> np.ndarray | None:
        """Snapshot row (n_features,) of a manager of ``org_id``; None if unknown there."""
        index = self._rows.get((org_id, manager_id))
        if index is None:
            return None
        return self._snapshot_X[index].copy()

    def encode(self, features: Mapping[str, object]) -> np.ndarray:
        """Encode a new manager's raw features (ValueError naming the field)."""
        return self.spec.encode_mapping(features)

    def predict(self, rows: np.ndarray) -> EffectPrediction:
        """Effects (n, n_types, n_outcomes), their SD, and the score (n, n_types).

        Rows that are snapshot rows are answered from the predictions made at load.
        """
        X = np.asarray(rows, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"rows must have shape (n, {self.n_features}), got {X.shape}")
        cached = (
            [self._snapshot_index.get(row.tobytes()) for row in X] if self._snapshot_index else []
        )
        if cached and all(i is not None for i in cached):
            index = np.asarray(cached, dtype=np.intp)
            snapshot = self._snapshot_prediction
            return EffectPrediction(
                effect=snapshot.effect[index],
                effect_std=snapshot.effect_std[index],
                score=snapshot.score[index],
            )
        return self._predict_uncached(X)

    def _predict_uncached(self, X: np.ndarray) -> EffectPrediction:
        if len(X) == 0:
            shape = (0, len(self._types), len(self._outcomes))
            return EffectPrediction(np.zeros(shape), np.zeros(shape), np.zeros(shape[:2]))
        effect, std = self.model.predict_effects_with_std(X)
        effect = np.asarray(effect, dtype=np.float64)
        return EffectPrediction(
            effect=effect,
            effect_std=np.asarray(std, dtype=np.float64),
            score=effect @ self._coef,
        )

    def reason(self, org_id: str, row: np.ndarray, nudge_type: str) -> str:
        """A sentence from the strongest evidence among similar managers (groups >= 5 only)."""
        best: tuple[str, str, _Evidence] | None = None
        for dimension, value in self._segments_of(row):
            evidence = self._evidence.get((org_id, dimension, value, nudge_type))
            if evidence is not None and (best is None or evidence.score > best[2].score):
                best = (dimension, value, evidence)
        label = nudge_type.replace("_", " ")
        if best is None or best[2].score <= 0:
            return (
                f"Suggested because {label} nudges are expected to help managers with a "
                "profile like yours."
            )
        dimension, value, evidence = best
        who = _DIMENSION_TEXT.get(dimension, "like you").format(value=value.replace("_", " "))
        parts = []
        for name, effect in zip(self._outcomes, evidence.effect, strict=True):
            if name == "delta_360":
                parts.append(f"{effect:+.2f} on their 360 score")
            elif name == "delta_engagement":
                parts.append(f"{effect:+.1f} points of team engagement")
        gains = " and ".join(parts) if parts else "better results"
        return (
            f"Among {evidence.n_managers} managers {who}, {label} nudges are expected to bring "
            f"{gains} by the next survey."
        )

    # ------------------------------------------------------------------ helpers
    def available_types(self, org_id: str) -> tuple[str, ...]:
        """Scored types with at least one catalogue entry for ``org_id``."""
        types = {entry.nudge_type for entry in self.catalogue(org_id)}
        return tuple(t for t in self._types if t in types)

    def _segments_of(self, row: np.ndarray) -> list[tuple[str, str]]:
        out = []
        for dimension in ("function", "level"):
            j = self._index.get(dimension)
            if j is None or not np.isfinite(row[j]):
                continue
            values = self.spec.categories[dimension]
            code = int(row[j])
            if 0 <= code < len(values):
                out.append((dimension, values[code]))
        for trait in TRAITS:
            j = self._index.get(trait)
            band = trait_band(float(row[j])) if j is not None else None
            if band is not None:
                out.append((f"{trait}_band", band))
        return out


def write_bundle(
    folder: Path,
    model: Any,
    spec: FeatureSpec,
    objective: Mapping[str, Any],
    snapshot_org: Sequence[str],
    snapshot_manager: Sequence[str],
    snapshot_X: np.ndarray,
    catalogue: Sequence[Mapping[str, Any]],
    segments: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> Path:
    """Write a bundle folder (see module docstring) and its manifest; returns the folder."""
    from recommender.uplift import save_uplift

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    save_uplift(model, folder / "uplift")
    (folder / "feature_spec.json").write_text(json.dumps(spec.to_dict(), indent=1), "utf-8")
    (folder / "objective.json").write_text(json.dumps(dict(objective), indent=1), "utf-8")
    np.savez(
        folder / "snapshot.npz",
        org_id=np.asarray(list(snapshot_org), dtype=str),
        manager_id=np.asarray(list(snapshot_manager), dtype=str),
        X=np.asarray(snapshot_X, dtype=np.float64),
    )
    safe_catalogue = [
        {
            "nudge_id": str(item["nudge_id"]),
            "org_id": str(item["org_id"]),
            "nudge_type": str(item["nudge_type"]),
            "competency_id": None
            if item.get("competency_id") is None
            else str(item["competency_id"]),
            "contexts": sorted(str(c) for c in item.get("contexts", ())),
        }
        for item in catalogue
    ]
    (folder / "catalogue.json").write_text(json.dumps(safe_catalogue, indent=1), "utf-8")
    safe_segments = [dict(s) for s in segments if int(s["n_managers"]) >= MIN_GROUP_SIZE]
    (folder / "segments.json").write_text(json.dumps(safe_segments, indent=1), "utf-8")
    full_meta = {
        **dict(meta),
        "format_version": FORMAT_VERSION,
        "versions": package_versions(),
    }
    (folder / "meta.json").write_text(json.dumps(full_meta, indent=1, default=str), "utf-8")
    write_manifest(folder)
    return folder


def _resolve_version(model_uri: str) -> str:
    """Registry version behind ``models:/name@alias`` or ``models:/name/3``; else the URI."""
    if not model_uri.startswith("models:/"):
        return model_uri
    from mlflow import MlflowClient

    ref = model_uri.removeprefix("models:/")
    client = MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return str(client.get_model_version_by_alias(name, alias).version)
    name, _, version = ref.partition("/")
    if version.isdigit():
        return version
    return ref


def find_bundle_dir(model_dir: Path) -> Path:
    """The bundle folder inside a downloaded pyfunc model (or the folder itself)."""
    model_dir = Path(model_dir)
    if (model_dir / MANIFEST).is_file():
        return model_dir
    candidate = model_dir / "artifacts" / BUNDLE_ARTIFACT
    if (candidate / MANIFEST).is_file():
        return candidate
    raise _integrity_error()(f"{model_dir}: no model bundle found (manifest missing)")


def load_effect_model(
    model_uri: str, dst_path: Path | None = None, *, precompute_snapshot: bool = False
) -> RankerBundle:
    """Download a registered ranker (e.g. ``models:/nudge-ranker@champion``), verify it, load it.

    precompute_snapshot: predict every snapshot manager once at load (what serving wants: a
    known manager is then ranked by lookup); costs one batched prediction pass.

    Uses the current MLflow tracking/registry URI (``recommender.tracking.configure`` or
    ``MLFLOW_TRACKING_URI``). A local folder path is accepted too. Raises ``ModelIntegrityError``
    on a corrupted, tampered or version-mismatched bundle.
    """
    local = Path(model_uri)
    if local.exists():
        return RankerBundle(
            find_bundle_dir(local), version=local.name, precompute_snapshot=precompute_snapshot
        )
    import mlflow

    from recommender.tracking import tracking_uri

    if not mlflow.is_tracking_uri_set():
        mlflow.set_tracking_uri(tracking_uri())
    version = _resolve_version(model_uri)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, dst_path=None if dst_path is None else str(dst_path)
    )
    return RankerBundle(
        find_bundle_dir(Path(path)), version=version, precompute_snapshot=precompute_snapshot
    )
