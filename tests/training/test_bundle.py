"""The serving bundle: EffectModel behaviour, integrity checks, privacy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender.bundle import RankerBundle, load_effect_model, write_manifest
from recommender.constants import MIN_GROUP_SIZE
from recommender.effect_model import EffectModel, EffectPrediction
from recommender.uplift import ModelIntegrityError


@pytest.fixture
def bundle_copy(sample_bundle_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(sample_bundle_dir, target)
    return target


def test_bundle_satisfies_the_effect_model_protocol(sample_bundle_dir):
    bundle: EffectModel = RankerBundle(sample_bundle_dir, version="7")
    assert bundle.version == "7"
    assert len(bundle.nudge_types) > 0
    assert bundle.outcome_names == ("delta_360", "delta_360_targeted", "delta_engagement")


def test_predict_is_numpy_with_consistent_shapes_and_score(sample_bundle_dir, sample_prepared):
    prepared, model, _ = sample_prepared
    bundle = RankerBundle(sample_bundle_dir, version="1")
    X = prepared.evaluation.X[:7]
    pred = bundle.predict(X)
    assert isinstance(pred, EffectPrediction)
    n_types, n_out = len(bundle.nudge_types), len(bundle.outcome_names)
    assert pred.effect.shape == pred.effect_std.shape == (7, n_types, n_out)
    assert pred.score.shape == (7, n_types)
    np.testing.assert_allclose(pred.effect, model.predict_effects(X), rtol=1e-6, atol=1e-9)
    expected = (pred.effect * (bundle.weights / bundle.scales)).sum(axis=2)
    np.testing.assert_allclose(pred.score, expected, rtol=1e-9)
    assert bundle.predict(X[0]).score.shape == (1, n_types)
    with pytest.raises(ValueError, match="rows must have shape"):
        bundle.predict(X[:, :3])


def test_snapshot_rows_are_answered_from_load_time_predictions(sample_bundle_dir, sample_prepared):
    _, model, _ = sample_prepared
    bundle = RankerBundle(sample_bundle_dir, version="1", precompute_snapshot=True)
    assert bundle._snapshot_index
    rows = bundle._snapshot_X[:5]
    cached = bundle.predict(rows)
    np.testing.assert_allclose(cached.effect, model.predict_effects(rows), rtol=1e-6, atol=1e-9)
    # A row that is not in the snapshot (changed feature) is predicted live, not looked up.
    changed = rows[:1].copy()
    changed[0, 0] += 1.0
    live = bundle.predict(np.vstack([rows[:1], changed]))
    np.testing.assert_allclose(
        live.effect, model.predict_effects(np.vstack([rows[:1], changed])), rtol=1e-6, atol=1e-9
    )


def test_manager_row_is_tenant_scoped(sample_bundle_dir, sample_prepared):
    prepared, _, _ = sample_prepared
    bundle = RankerBundle(sample_bundle_dir, version="1")
    snapshot = prepared.periods.snapshot()
    org, manager = str(snapshot["org_id"].iloc[0]), str(snapshot["manager_id"].iloc[0])
    row = bundle.manager_row(org, manager)
    assert row is not None and row.shape == (bundle.n_features,)
    other_org = next(o for o in bundle.spec.categories["org_id"] if o != org)
    assert bundle.manager_row(other_org, manager) is None
    assert bundle.manager_row(org, "m-unknown") is None


def test_catalogue_is_the_orgs_own_plus_global_without_text(sample_bundle_dir):
    bundle = RankerBundle(sample_bundle_dir, version="1")
    org = bundle.spec.categories["org_id"][0]
    entries = bundle.catalogue(org)
    assert entries and {e.org_id for e in entries} <= {org, "global"}
    assert not hasattr(entries[0], "text")
    assert bundle.catalogue("org-unknown") == ()


def test_encode_of_a_new_manager_names_the_bad_field(sample_bundle_dir):
    bundle = RankerBundle(sample_bundle_dir, version="1")
    profile = {
        "org_id": bundle.spec.categories["org_id"][0],
        "function": bundle.spec.categories["function"][0],
        "level": "middle",
        "region": bundle.spec.categories["region"][0],
        "tenure_months": 24,
        "team_size": 7,
        "openness": 50,
        "conscientiousness": 50,
        "extraversion": 50,
        "agreeableness": 50,
        "neuroticism": 50,
    }
    row = bundle.encode(profile)
    assert bundle.predict(row[None, :]).score.shape == (1, len(bundle.nudge_types))
    with pytest.raises(ValueError, match=r"^level: "):
        bundle.encode({**profile, "level": "ceo"})


def test_reason_quotes_only_groups_of_at_least_five(sample_bundle_dir, sample_prepared):
    prepared, _, _ = sample_prepared
    bundle = RankerBundle(sample_bundle_dir, version="1")
    snapshot = prepared.periods.snapshot()
    X = prepared.spec.encode_frame(snapshot)
    for i in range(0, len(snapshot), max(1, len(snapshot) // 20)):
        org = str(snapshot["org_id"].iloc[i])
        for nudge_type in bundle.available_types(org):
            text = bundle.reason(org, X[i], nudge_type)
            assert text.endswith(".")
            for number in re.findall(r"Among (\d+) managers", text):
                assert int(number) >= MIN_GROUP_SIZE
    segments = json.loads((sample_bundle_dir / "segments.json").read_text())
    assert all(s["n_managers"] >= MIN_GROUP_SIZE for s in segments)


def test_tampered_file_is_refused(bundle_copy):
    path = next((bundle_copy / "uplift").rglob("*.txt"))
    path.write_text(path.read_text() + "\n")
    with pytest.raises(ModelIntegrityError, match="SHA-256 mismatch"):
        load_effect_model(str(bundle_copy))


def test_missing_or_extra_file_is_refused(bundle_copy):
    (bundle_copy / "extra.json").write_text("{}")
    with pytest.raises(ModelIntegrityError, match="unexpected file"):
        RankerBundle(bundle_copy, version="1")
    (bundle_copy / "extra.json").unlink()
    (bundle_copy / "segments.json").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        RankerBundle(bundle_copy, version="1")


def test_package_version_mismatch_is_refused(bundle_copy):
    meta_path = bundle_copy / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["versions"]["lightgbm"] = "0.1.0"
    meta_path.write_text(json.dumps(meta))
    write_manifest(bundle_copy)  # consistent hashes: only the version check can object
    with pytest.raises(ModelIntegrityError, match=r"lightgbm 0\.1\.0"):
        RankerBundle(bundle_copy, version="1")


def test_bundle_holds_no_free_text(sample_bundle_dir, sample_dir):
    nudges = pd.read_parquet(sample_dir / "nudges.parquet")
    competencies = pd.read_parquet(sample_dir / "competencies.parquet")
    blob = "\n".join(
        p.read_text(errors="ignore") for p in sample_bundle_dir.rglob("*") if p.is_file()
    )
    for text in nudges["text"]:
        assert str(text) not in blob
    for name in competencies["name"]:
        assert f'"{name}"' not in blob
