"""write_simulation: layout, byte-identical output, atomicity, and the loader's verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recommender.constants import TABLES
from recommender.simulation import (
    SimulatedOrganisation,
    SimulationConfig,
    simulate_organisation,
    write_simulation,
)
from recommender.simulation import writer as writer_module

SAMPLE_CONFIG = SimulationConfig(n_managers=400, n_orgs=2, years=3.0, seed=7)
"""What data/sample/README.md says the committed sample was generated with."""


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_writes_six_tables_and_the_truth(
    small_org: SimulatedOrganisation, tmp_path: Path, fmt: Any
) -> None:
    paths = write_simulation(small_org, tmp_path / "out", fmt=fmt)
    expected = [tmp_path / "out" / f"{t}.{fmt}" for t in TABLES]
    assert paths == [*expected, tmp_path / "out" / "truth" / "ground_truth.parquet"]
    assert all(p.is_file() for p in paths)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [p.name for p in expected] + ["truth"]
    )
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_writes_byte_identical_files(
    small_org: SimulatedOrganisation, small_config: SimulationConfig, tmp_path: Path, fmt: Any
) -> None:
    write_simulation(small_org, tmp_path / "a", fmt=fmt)
    write_simulation(simulate_organisation(small_config), tmp_path / "b", fmt=fmt)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_another_seed_writes_different_files(tmp_path: Path) -> None:
    for seed in (1, 2):
        config = SimulationConfig(n_managers=50, n_orgs=1, years=1.0, seed=seed)
        write_simulation(simulate_organisation(config), tmp_path / str(seed))
    a, b = _files(tmp_path / "1"), _files(tmp_path / "2")
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in ("managers.parquet", "feedback_360.parquet"))


def test_failure_midway_leaves_no_folder_behind(
    small_org: SimulatedOrganisation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = writer_module._write_frame
    calls = {"n": 0}

    def flaky(frame: pd.DataFrame, path: Path, fmt: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real(frame, path, fmt)

    monkeypatch.setattr(writer_module, "_write_frame", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_simulation(small_org, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_failure_while_overwriting_keeps_the_previous_output(
    small_org: SimulatedOrganisation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_simulation(small_org, out)
    before = _files(out)

    def broken(frame: pd.DataFrame, path: Path, fmt: str) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("crash")

    monkeypatch.setattr(writer_module, "_write_frame", broken)
    with pytest.raises(RuntimeError, match="crash"):
        write_simulation(small_org, out, fmt="csv")
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_replaces_outputs_and_keeps_other_files(
    small_org: SimulatedOrganisation, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    write_simulation(small_org, out, fmt="csv")
    (out / "README.md").write_text("how this was made\n")
    write_simulation(small_org, out, fmt="parquet")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"{t}.parquet" for t in TABLES] + ["README.md", "truth"])
    assert (out / "README.md").read_text() == "how this was made\n"


def test_rejects_unknown_format_and_a_file_as_folder(
    small_org: SimulatedOrganisation, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"^fmt:"):
        write_simulation(small_org, tmp_path / "out", fmt="xlsx")  # type: ignore[arg-type]
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="out_dir"):
        write_simulation(small_org, tmp_path / "file")


def test_truth_reads_back_unchanged(
    small_org: SimulatedOrganisation, small_parquet_dir: Path
) -> None:
    truth = pd.read_parquet(small_parquet_dir / "truth" / "ground_truth.parquet")
    for column in ("period_start", "period_end"):
        truth[column] = pd.to_datetime(truth[column]).astype("datetime64[ns]")
    truth["manager_id"] = truth["manager_id"].astype("str")
    truth["nudge_type"] = truth["nudge_type"].astype("str")
    pd.testing.assert_frame_equal(truth, small_org.ground_truth)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_written_data_passes_the_loader_and_round_trips(
    small_org: SimulatedOrganisation, tmp_path: Path, fmt: Any
) -> None:
    data = pytest.importorskip("recommender.data")
    write_simulation(small_org, tmp_path / "out", fmt=fmt)
    dataset = data.load_dataset(tmp_path / "out")
    for name, frame in dataset.tables().items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), small_org.tables[name])


def test_committed_sample_passes_the_loader_and_matches_its_documented_command(
    sample_dir: Path,
) -> None:
    data = pytest.importorskip("recommender.data")
    dataset = data.load_dataset(sample_dir)
    regenerated = simulate_organisation(SAMPLE_CONFIG)
    for name, frame in dataset.tables().items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), regenerated.tables[name])
    readme = (sample_dir / "README.md").read_text()
    assert "--managers 400 --orgs 2 --years 3 --seed 7" in readme
    assert (sample_dir / "truth" / "ground_truth.parquet").is_file()
    total = sum(p.stat().st_size for p in sample_dir.rglob("*") if p.is_file())
    assert total < 2_000_000
