"""MLflow tracking setup and privacy-safe run metadata (tracking URI, experiment, fingerprint).

Nothing happens at import: the project path and the tracking URI are computed when called.
Default store: ``sqlite:///<project>/mlflow.db`` with artifacts in ``<project>/mlartifacts``;
``MLFLOW_TRACKING_URI`` overrides it (a ``sqlite:///<dir>/x.db`` URI keeps its artifacts in
``<dir>/mlartifacts``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

_DEFAULT_DB = "mlflow.db"
_ARTIFACT_DIR = "mlartifacts"


def project_root(start: Path | None = None) -> Path:
    """Closest folder at or above ``start`` (default: the working directory) with a
    ``pyproject.toml``; the working directory itself when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the project's SQLite store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{project_root() / _DEFAULT_DB}"


def artifact_root(uri: str) -> str | None:
    """Artifact location for new experiments: ``<db folder>/mlartifacts`` for SQLite stores,
    None (MLflow's default) for anything else."""
    if uri.startswith("sqlite:///"):
        db_path = Path(uri.removeprefix("sqlite:///"))
        return (db_path.parent / _ARTIFACT_DIR).resolve().as_uri()
    return None


_MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
"""Variables MLflow's ``set_*`` functions write into ``os.environ`` as a side effect."""


def configure(experiment: str) -> str:
    """Point MLflow at ``tracking_uri()`` and make sure ``experiment`` exists; returns its id.

    Under ``mlflow run`` (``MLFLOW_RUN_ID`` set by the launcher) the launcher's experiment is
    used. MLflow's setters also write ``MLFLOW_*`` variables into the process environment; they
    are restored afterwards so a later call, or a child process, does not inherit a stale store or
    experiment id.
    """
    import mlflow

    before = {name: os.environ.get(name) for name in _MLFLOW_ENV}
    launched_in = (before["MLFLOW_EXPERIMENT_ID"] or "").strip()
    under_mlflow_run = bool(os.environ.get("MLFLOW_RUN_ID")) and bool(launched_in)
    uri = tracking_uri()
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        if under_mlflow_run:
            experiment_id = launched_in
        else:
            existing = mlflow.get_experiment_by_name(experiment)
            if existing is not None:
                experiment_id = str(existing.experiment_id)
            else:
                experiment_id = str(
                    mlflow.create_experiment(experiment, artifact_location=artifact_root(uri))
                )
        mlflow.set_experiment(experiment_id=experiment_id)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return experiment_id


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(folder: Path, row_counts: Mapping[str, int]) -> pd.DataFrame:
    """One row per input file: table, file name, rows, bytes, SHA-256 (no content, no paths).

    row_counts: table -> rows after loading. The frame is what ``mlflow.log_input`` records.
    """
    rows = []
    for table, n_rows in row_counts.items():
        files = sorted(folder.glob(f"{table}.*"))
        path = files[0] if files else None
        rows.append(
            {
                "table": table,
                "file": path.name if path else "",
                "rows": int(n_rows),
                "bytes": int(path.stat().st_size) if path else 0,
                "sha256": file_sha256(path) if path else "",
            }
        )
    return pd.DataFrame(rows)


def fingerprint_digest(fingerprint: pd.DataFrame) -> str:
    """Short digest of the whole input (changes when any file's bytes change)."""
    joined = "|".join(
        f"{t}:{h}" for t, h in zip(fingerprint["table"], fingerprint["sha256"], strict=True)
    )
    return hashlib.sha256(joined.encode()).hexdigest()[:16]
