"""save_uplift / load_uplift: exact round trip, and refusal of tampered or mismatched models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recommender.uplift import ModelIntegrityError, MultiTreatmentUplift, load_uplift, save_uplift
from recommender.uplift.serialization import SPEC_FILE, _canonical, _sha256
from recommender.uplift.synthetic import UpliftProblem, make_uplift_problem


@pytest.fixture
def saved(tmp_path: Path, strong_model: MultiTreatmentUplift) -> Path:
    return save_uplift(strong_model, tmp_path / "model")


def _rewrite_spec(folder: Path, edit: dict[str, object], rehash: bool) -> None:
    spec = json.loads((folder / SPEC_FILE).read_text())
    spec.update(edit)
    if rehash:
        spec["integrity"]["spec_sha256"] = _sha256(_canonical(spec))
    (folder / SPEC_FILE).write_text(json.dumps(spec))


def test_round_trip_predicts_exactly_the_same(
    saved: Path, strong_problem: UpliftProblem, strong_model: MultiTreatmentUplift
) -> None:
    loaded = load_uplift(saved)
    X = strong_problem.X
    before = strong_model.predict_effects_with_std(X)
    after = loaded.predict_effects_with_std(X)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1], after[1])
    assert loaded.treatments_ == strong_model.treatments_
    assert loaded.outcome_names_ == strong_model.outcome_names_
    assert loaded.chosen_ == strong_model.chosen_
    assert loaded.get_params() == strong_model.get_params()
    assert loaded.selection_report_.equals(strong_model.selection_report_)
    assert loaded.overlap_report_.equals(strong_model.overlap_report_)


def test_saved_folder_holds_text_boosters_and_versioned_spec(saved: Path) -> None:
    spec = json.loads((saved / SPEC_FILE).read_text())
    assert spec["class"] == "MultiTreatmentUplift"
    assert set(spec["versions"]) >= {"recommender", "lightgbm", "numpy", "sklearn"}
    assert spec["features"]["categories"] == {"segment": ["a", "b", "c", "d"]}
    files = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*.txt"))
    assert files == sorted(spec["integrity"]["files"])
    assert all((saved / f).read_text().startswith("tree\nversion=") for f in files), (
        "LightGBM native text format"
    )


def test_tampered_booster_is_refused_naming_the_file(saved: Path) -> None:
    booster = sorted((saved / "boosters").glob("*.txt"))[0]
    booster.write_text(booster.read_text().replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(ModelIntegrityError, match=rf"{booster.name}: SHA-256 mismatch"):
        load_uplift(saved)


def test_missing_booster_is_refused(saved: Path) -> None:
    booster = sorted((saved / "boosters").glob("*.txt"))[-1]
    booster.unlink()
    with pytest.raises(ModelIntegrityError, match=rf"{booster.name}: missing"):
        load_uplift(saved)


def test_edited_spec_is_refused(saved: Path) -> None:
    spec = json.loads((saved / SPEC_FILE).read_text())
    name = spec["outcome_names"][0]
    spec["chosen"][name]["shrinkage"] = 0.0
    (saved / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelIntegrityError, match=r"spec\.json: content does not match"):
        load_uplift(saved)


def test_corrupt_or_missing_spec_is_refused(saved: Path) -> None:
    (saved / SPEC_FILE).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="corrupt spec"):
        load_uplift(saved)
    (saved / SPEC_FILE).unlink()
    with pytest.raises(ModelIntegrityError, match=r"spec\.json: missing"):
        load_uplift(saved)


def test_lightgbm_version_mismatch_is_refused(saved: Path) -> None:
    spec = json.loads((saved / SPEC_FILE).read_text())
    versions = dict(spec["versions"], lightgbm="3.3.5")
    _rewrite_spec(saved, {"versions": versions}, rehash=True)
    with pytest.raises(ModelIntegrityError, match=r"lightgbm 3\.3\.5"):
        load_uplift(saved)


def test_valid_looking_but_corrupt_booster_text_is_refused(saved: Path) -> None:
    spec = json.loads((saved / SPEC_FILE).read_text())
    rel = sorted(spec["integrity"]["files"])[0]
    (saved / rel).write_text("garbage")
    spec["integrity"]["files"][rel] = _sha256(b"garbage")
    spec["integrity"]["spec_sha256"] = _sha256(_canonical(spec))
    (saved / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(ModelIntegrityError, match="not a valid LightGBM model"):
        load_uplift(saved)


def test_save_refuses_non_empty_folder_and_unfitted_model(
    saved: Path, tmp_path: Path, strong_model: MultiTreatmentUplift
) -> None:
    with pytest.raises(FileExistsError):
        save_uplift(strong_model, saved)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save_uplift(MultiTreatmentUplift(), tmp_path / "other")


def test_collapsed_model_saves_without_boosters(tmp_path: Path, fast: dict[str, Any]) -> None:
    p = make_uplift_problem(n=3000, n_treatments=3, effect_sd=0.0, noise_sd=3.0, seed=3)
    m = MultiTreatmentUplift(**fast).fit(p.X, p.treatment, p.y)
    assert m.chosen_["y0"]["shrinkage"] == 0.0
    loaded = load_uplift(save_uplift(m, tmp_path / "flat"))
    assert not list((tmp_path / "flat" / "boosters").glob("*.txt"))
    np.testing.assert_array_equal(loaded.predict_effects(p.X), m.predict_effects(p.X))
