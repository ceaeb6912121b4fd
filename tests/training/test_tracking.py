"""Tracking setup is computed at call time; the training entry fails fast on a bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from recommender.tracking import artifact_root, data_fingerprint, tracking_uri

ROOT = Path(__file__).resolve().parents[2]


def test_default_tracking_uri_is_the_projects_sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert artifact_root(tracking_uri()) == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_env_variable_overrides_the_tracking_uri(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking_uri() == "http://mlflow.internal:5000"
    assert artifact_root(tracking_uri()) is None


def test_fingerprint_has_hashes_and_counts_but_no_content(tmp_path):
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "managers.parquet")
    frame = data_fingerprint(tmp_path, {"managers": 2, "nudges": 0})
    assert list(frame.columns) == ["table", "file", "rows", "bytes", "sha256"]
    assert frame.loc[0, "rows"] == 2 and len(frame.loc[0, "sha256"]) == 64
    assert frame.loc[1, "file"] == ""


def test_training_entry_reports_a_bad_config_key_and_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluation:\n  n_bootstrp: 10\n")
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "training" / "train.py"),
            "--data",
            str(tmp_path),
            "--config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert f"{bad}: evaluation.n_bootstrp: unknown key" in proc.stderr


def test_configure_leaves_no_mlflow_variables_in_the_environment(tmp_path, monkeypatch):
    import os

    from recommender import tracking

    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a.db'}")
    first = tracking.configure("exp-a")
    assert "MLFLOW_EXPERIMENT_ID" not in os.environ
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'a.db'}"
    # A second store in the same process gets its own experiment, not the first one's id.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'b.db'}")
    tracking.configure("exp-b")
    tracking.configure("exp-b-again")
    assert first
