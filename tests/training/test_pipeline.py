"""End-to-end training on data/sample with MLflow in tmp_path (slow: real fits and MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from recommender.bundle import RankerBundle, load_effect_model
from recommender.config import ConfigError
from recommender.pipeline import TrainResult, run_promote, run_train
from recommender.registry import CANDIDATE, CHAMPION, log_ranker
from recommender.uplift import ModelIntegrityError

NAME = "nudge-ranker"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        mp.chdir(folder)
        yield folder
    mlflow.set_tracking_uri("")


@pytest.fixture(scope="module")
def trained(tracking: Path, sample_dir: Path, fast_config_path: Path) -> TrainResult:
    return run_train(sample_dir, fast_config_path, show_progress=False)


def test_bad_config_fails_before_reading_data(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  params: {n_trees: 5}\n")
    with pytest.raises(ConfigError, match=r"model\.params\.n_trees: unknown key"):
        run_train(tmp_path / "no-such-folder", bad, show_progress=False)


def test_train_logs_run_metrics_artifacts_and_registers(trained, tracking):
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    metrics = run.data.metrics
    for key in (
        "value_learned_dr",
        "value_learned_dr_ci_low",
        "value_logging_on_policy",
        "value_best_single_type_snips",
        "npv_learned",
        "pehe_mean",
        "n_eval_rows",
    ):
        assert key in metrics, key
    tags = run.data.tags
    assert tags["org_ids"] and tags["data_window"] and tags["model_version"] == trained.version
    assert run.data.params["split.cutoff"]
    artifacts = {f.path for f in client.list_artifacts(trained.run_id, "evaluation")}
    assert "evaluation/report.html" in artifacts
    plots = {f.path for f in client.list_artifacts(trained.run_id, "evaluation/plots")}
    assert "evaluation/plots/policy_values.png" in plots
    assert run.inputs.dataset_inputs, "dataset fingerprint logged with log_input"
    versions = client.get_registered_model(NAME).aliases
    assert str(versions[CANDIDATE]) == trained.version
    assert str(versions[CHAMPION]) == trained.version  # first run: champion too
    version = client.get_model_version(NAME, trained.version)
    assert version.tags["gate.decision"] == "promoted"


def test_load_effect_model_matches_the_pyfunc(trained, tracking, sample_prepared):
    prepared, _, _ = sample_prepared
    bundle = load_effect_model(f"models:/{NAME}@{CHAMPION}")
    assert bundle.version == trained.version
    X = prepared.evaluation.X[:20]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/{trained.version}")
    out = pyfunc.predict(pd.DataFrame(X, columns=list(bundle.spec.names)))
    scores = out[[f"score__{t}" for t in bundle.nudge_types]].to_numpy()
    np.testing.assert_allclose(bundle.predict(X).score, scores, rtol=1e-9)


def test_tampered_registered_model_is_refused(trained, tracking, tmp_path):
    local = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{NAME}/{trained.version}", dst_path=str(tmp_path)
        )
    )
    objective = next(local.rglob("objective.json"))
    data = json.loads(objective.read_text())
    data["weights"][0] = 100.0
    objective.write_text(json.dumps(data))
    with pytest.raises(ModelIntegrityError, match=r"objective\.json: SHA-256 mismatch"):
        load_effect_model(str(local))


def test_promote_refuses_a_worse_candidate_and_tags_both(
    trained, tracking, sample_dir, fast_config_path, tmp_path
):
    champion = load_effect_model(f"models:/{NAME}@{CHAMPION}")
    # Construct a worse candidate: same model, objective weights negated (ranks worst first).
    folder = tmp_path / "bundle"
    import shutil

    shutil.copytree(champion._folder, folder)
    objective = json.loads((folder / "objective.json").read_text())
    objective["weights"] = [-w for w in objective["weights"]]
    (folder / "objective.json").write_text(json.dumps(objective))
    from recommender.bundle import write_manifest

    write_manifest(folder)
    run = MlflowClient().get_run(trained.run_id)
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    with mlflow.start_run():
        mlflow.log_param("split.cutoff", run.data.params["split.cutoff"])
        _, worse_version = log_ranker(folder, NAME, champion.predict.__self__._snapshot_X, {})
    # The gate judges every model on the config's objective, so this one ranks worst first.
    decision = run_promote(sample_dir, fast_config_path, version=worse_version, show_progress=False)
    client = MlflowClient()
    assert str(client.get_registered_model(NAME).aliases[CHAMPION]) == trained.version
    verdict = "promoted" if decision.promoted else "refused"
    candidate_tags = client.get_model_version(NAME, worse_version).tags
    assert candidate_tags["gate.candidate_version"] == worse_version
    assert candidate_tags["gate.decision"] == verdict
    # The champion keeps its own promotion record and gains the challenge beside it.
    champion_tags = client.get_model_version(NAME, trained.version).tags
    assert champion_tags["gate.decision"] == "promoted"
    assert champion_tags[f"gate.challenged_by.v{worse_version}.decision"] == verdict
    assert not decision.promoted


def test_no_free_text_in_logged_params_and_artifacts(trained, tracking, sample_dir, tmp_path):
    nudges = pd.read_parquet(sample_dir / "nudges.parquet")
    run = MlflowClient().get_run(trained.run_id)
    local = Path(mlflow.artifacts.download_artifacts(run_id=trained.run_id, dst_path=str(tmp_path)))
    blob = json.dumps(run.data.params) + json.dumps(run.data.tags)
    blob += "\n".join(p.read_text(errors="ignore") for p in local.rglob("*") if p.is_file())
    for text in nudges["text"]:
        assert str(text) not in blob
    assert isinstance(load_effect_model(f"models:/{NAME}/{trained.version}"), RankerBundle)
