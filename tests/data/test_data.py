"""load_dataset: valid exports load with normalised dtypes; every kind of bad input is reported
with file, column, row and rule, all at once, and nothing is returned."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recommender.cli import app
from recommender.constants import TABLES
from recommender.data import (
    MAX_LISTED_ROWS,
    Dataset,
    DataValidationError,
    Violation,
    load_dataset,
)
from recommender.schemas import SCHEMAS
from tests.data.tiny_export import Tables, valid_tables, write_csv, write_parquet


def _violations(folder: Path) -> list[Violation]:
    with pytest.raises(DataValidationError) as caught:
        load_dataset(folder)
    return caught.value.violations


def _keys(violations: list[Violation]) -> set[tuple[str, str | None, int | None, str]]:
    return {(v.file, v.column, v.row, v.rule) for v in violations}


# ------------------------------------------------------------------------------ valid data


def test_valid_csv_loads_every_table_in_contract_order(csv_dir: Path) -> None:
    dataset = load_dataset(csv_dir)

    assert isinstance(dataset, Dataset)
    assert dataset.folder == csv_dir
    assert tuple(dataset.tables()) == TABLES
    assert {name: len(frame) for name, frame in dataset.tables().items()} == {
        "competencies": 4,
        "managers": 3,
        "feedback_360": 20,
        "engagement": 4,
        "nudges": 3,
        "deliveries": 5,
    }
    assert dataset.notes == ()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_loaded_tables_satisfy_their_schema_including_dtypes(
    fmt: str, csv_dir: Path, parquet_dir: Path
) -> None:
    dataset = load_dataset(csv_dir if fmt == "csv" else parquet_dir)

    for name, frame in dataset.tables().items():
        SCHEMAS[name].validate(frame)
        assert list(frame.columns) == list(SCHEMAS[name].columns)
        assert isinstance(frame.index, pd.RangeIndex)


def test_csv_and_parquet_give_identical_frames(csv_dir: Path, parquet_dir: Path) -> None:
    from_csv, from_parquet = load_dataset(csv_dir), load_dataset(parquet_dir)

    for name in TABLES:
        pd.testing.assert_frame_equal(from_csv.tables()[name], from_parquet.tables()[name])


def test_normalised_dtypes_match_the_plan(csv_dir: Path) -> None:
    dataset = load_dataset(csv_dir)
    deliveries, managers = dataset.deliveries, dataset.managers

    assert deliveries["manager_id"].dtype == "str"
    assert deliveries["delivered_at"].dtype == "datetime64[ns]"
    assert deliveries["delivered_at"].iloc[2] == pd.Timestamp("2023-03-03 10:30:00")
    assert deliveries["opened"].dtype == "boolean"
    assert deliveries["rating"].dtype == "Int64"
    assert deliveries["propensity"].dtype == "float64"
    assert managers["team_size"].dtype == "int64"
    assert managers["hire_date"].dtype == "datetime64[ns]"
    assert (managers["hire_date"] == managers["hire_date"].dt.normalize()).all()
    control = deliveries[deliveries["delivery_id"] == "d2"].iloc[0]
    assert pd.isna(control["nudge_id"])
    assert pd.isna(control["opened"]) and pd.isna(control["rating"])


def test_timestamps_with_offsets_are_converted_to_naive_utc(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["deliveries"].loc[0, "delivered_at"] = "2023-03-02T11:00:00+02:00"
    tables["deliveries"].loc[1, "delivered_at"] = "2023-03-02 09:00:00"

    deliveries = load_dataset(write_csv(tables, tmp_path)).deliveries

    assert deliveries["delivered_at"].iloc[0] == pd.Timestamp("2023-03-02 09:00:00")
    assert deliveries["delivered_at"].iloc[1] == pd.Timestamp("2023-03-02 09:00:00")


def test_dataset_is_frozen(csv_dir: Path) -> None:
    dataset = load_dataset(csv_dir)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.folder = Path("elsewhere")  # type: ignore[misc]


def test_extra_columns_are_dropped_and_noted_not_errors(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["managers"]["cost_centre"] = "cc1"

    dataset = load_dataset(write_csv(tables, tmp_path))

    assert "cost_centre" not in dataset.managers.columns
    assert [(n.file, n.column, n.rule) for n in dataset.notes] == [
        ("managers.csv", "cost_centre", "extra_column")
    ]


def test_csv_accepts_whole_floats_and_common_booleans(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["deliveries"].loc[0, ["opened", "acted", "rating"]] = ["1", "TRUE", "4.0"]
    tables["managers"].loc[0, "team_size"] = "6.0"

    dataset = load_dataset(write_csv(tables, tmp_path))

    assert dataset.deliveries.loc[0, "rating"] == 4
    assert bool(dataset.deliveries.loc[0, "acted"]) is True
    assert dataset.managers.loc[0, "team_size"] == 6


# ------------------------------------------------------------------------------ bad values

Mutation = Callable[[Tables], None]


def _set(table: str, row: int, column: str, value: str) -> Mutation:
    def mutate(tables: Tables) -> None:
        tables[table].loc[row, column] = value

    return mutate


def _copy_row(table: str, source: int, target: int) -> Mutation:
    def mutate(tables: Tables) -> None:
        tables[table].iloc[target] = tables[table].iloc[source]

    return mutate


def _add_column(table: str, column: str) -> Mutation:
    def mutate(tables: Tables) -> None:
        tables[table][column] = "x"

    return mutate


def _drop_column(table: str, column: str) -> Mutation:
    def mutate(tables: Tables) -> None:
        del tables[table][column]

    return mutate


FB, MG, DL, NG = "feedback_360.csv", "managers.csv", "deliveries.csv", "nudges.csv"
FB_KEY = "manager_id, wave_date, competency_id, rater_role"

# (id, mutation, expected (file, column, 1-based row, rule)); fixture row i is row i + 1
BAD_VALUES: list[tuple[str, Mutation, tuple[str, str | None, int | None, str]]] = [
    ("text_in_float", _set("feedback_360", 2, "score", "abc"), (FB, "score", 3, "type")),
    ("fraction_in_int", _set("managers", 1, "team_size", "2.5"), (MG, "team_size", 2, "type")),
    ("bad_date", _set("managers", 0, "hire_date", "2023-13-01"), (MG, "hire_date", 1, "type")),
    ("short_date", _set("managers", 0, "hire_date", "2023"), (MG, "hire_date", 1, "type")),
    (
        "bad_timestamp",
        _set("deliveries", 4, "delivered_at", "soon"),
        (DL, "delivered_at", 5, "type"),
    ),
    ("bad_bool", _set("deliveries", 0, "opened", "maybe"), (DL, "opened", 1, "type")),
    ("null_level", _set("managers", 2, "level", ""), (MG, "level", 3, "not_null")),
    ("blank_number", _set("feedback_360", 0, "score", " "), (FB, "score", 1, "not_null")),
    (
        "blank_id",
        _set("engagement", 0, "manager_id", "  "),
        ("engagement.csv", "manager_id", 1, "not_null"),
    ),
    ("score_high", _set("feedback_360", 1, "score", "7"), (FB, "score", 2, "range")),
    ("score_low", _set("feedback_360", 1, "score", "0.5"), (FB, "score", 2, "range")),
    ("n_raters_zero", _set("feedback_360", 0, "n_raters", "0"), (FB, "n_raters", 1, "range")),
    (
        "engagement_high",
        _set("engagement", 1, "engagement", "101"),
        ("engagement.csv", "engagement", 2, "range"),
    ),
    ("trait_negative", _set("managers", 0, "openness", "-1"), (MG, "openness", 1, "range")),
    ("team_size_zero", _set("managers", 0, "team_size", "0"), (MG, "team_size", 1, "range")),
    ("tenure_high", _set("managers", 0, "tenure_months", "601"), (MG, "tenure_months", 1, "range")),
    ("propensity_zero", _set("deliveries", 0, "propensity", "0"), (DL, "propensity", 1, "range")),
    (
        "propensity_above_one",
        _set("deliveries", 0, "propensity", "1.2"),
        (DL, "propensity", 1, "range"),
    ),
    ("rating_six", _set("deliveries", 3, "rating", "6"), (DL, "rating", 4, "range")),
    (
        "weight_zero",
        _set("competencies", 0, "weight", "0"),
        ("competencies.csv", "weight", 1, "range"),
    ),
    ("unknown_level", _set("managers", 0, "level", "ceo"), (MG, "level", 1, "allowed_values")),
    (
        "unknown_role",
        _set("feedback_360", 0, "rater_role", "boss"),
        (FB, "rater_role", 1, "allowed_values"),
    ),
    (
        "unknown_context",
        _set("nudges", 0, "contexts", "before_1on1;lunch"),
        (NG, "contexts", 1, "allowed_values"),
    ),
    (
        "empty_context_tag",
        _set("nudges", 0, "contexts", "before_1on1;"),
        (NG, "contexts", 1, "allowed_values"),
    ),
    (
        "control_label_as_type",
        _set("nudges", 1, "nudge_type", "none"),
        (NG, "nudge_type", 2, "allowed_values"),
    ),
    ("duplicate_360_row", _copy_row("feedback_360", 4, 5), (FB, FB_KEY, 6, "duplicate_key")),
    (
        "duplicate_manager",
        _set("managers", 1, "manager_id", "m1"),
        (MG, "manager_id", 2, "duplicate_key"),
    ),
    (
        "duplicate_delivery",
        _set("deliveries", 4, "delivery_id", "d1"),
        (DL, "delivery_id", 5, "duplicate_key"),
    ),
    (
        "unknown_manager",
        _set("engagement", 3, "manager_id", "m9"),
        ("engagement.csv", "manager_id", 4, "foreign_key"),
    ),
    (
        "unknown_competency",
        _set("feedback_360", 0, "competency_id", "zz"),
        (FB, "competency_id", 1, "foreign_key"),
    ),
    ("unknown_nudge", _set("deliveries", 0, "nudge_id", "n-x"), (DL, "nudge_id", 1, "foreign_key")),
    ("unknown_nudge_org", _set("nudges", 1, "org_id", "o-z"), (NG, "org_id", 2, "foreign_key")),
    (
        "unknown_nudge_competency",
        _set("nudges", 0, "competency_id", "zz"),
        (NG, "competency_id", 1, "foreign_key"),
    ),
    (
        "competency_of_other_org",
        _set("feedback_360", 16, "competency_id", "a-c1"),
        (FB, "competency_id", 17, "same_org"),
    ),
    (
        "nudge_competency_other_org",
        _set("nudges", 0, "competency_id", "b-c1"),
        (NG, "competency_id", 1, "same_org"),
    ),
    (
        "nudge_of_other_org",
        _set("deliveries", 0, "nudge_id", "b-n1"),
        (DL, "nudge_id", 1, "same_org"),
    ),
    (
        "org_without_model",
        _set("managers", 2, "org_id", "o-c"),
        (MG, "org_id", 3, "org_without_competencies"),
    ),
    (
        "weights_not_one",
        _set("competencies", 0, "weight", "0.4"),
        ("competencies.csv", "weight", None, "weights_sum"),
    ),
    (
        "left_before_hired",
        _set("managers", 0, "leave_date", "2022-12-31"),
        (MG, "leave_date", 1, "date_order"),
    ),
    (
        "wave_before_hire",
        _set("engagement", 2, "wave_date", "2023-01-15"),
        ("engagement.csv", "wave_date", 3, "outside_employment"),
    ),
    (
        "360_before_hire",
        _set("feedback_360", 0, "wave_date", "2022-06-01"),
        (FB, "wave_date", 1, "outside_employment"),
    ),
    (
        "delivered_after_leave",
        _set("deliveries", 3, "delivered_at", "2024-01-01T00:00:00Z"),
        (DL, "delivered_at", 4, "outside_employment"),
    ),
    (
        "acted_not_opened",
        _set("deliveries", 2, "acted", "true"),
        (DL, "acted", 3, "acted_without_opened"),
    ),
    ("control_opened", _set("deliveries", 1, "opened", "false"), (DL, "opened", 2, "control_row")),
    ("control_rated", _set("deliveries", 1, "rating", "3"), (DL, "rating", 2, "control_row")),
    ("sent_without_opened", _set("deliveries", 0, "opened", ""), (DL, "opened", 1, "not_null")),
    (
        "global_with_competency",
        _set("nudges", 2, "competency_id", "a-c1"),
        (NG, "competency_id", 3, "global_competency"),
    ),
    (
        "own_nudge_without_competency",
        _set("nudges", 0, "competency_id", ""),
        (NG, "competency_id", 1, "not_null"),
    ),
    (
        "missing_column",
        _drop_column("feedback_360", "score"),
        (FB, "score", None, "missing_column"),
    ),
    (
        "personal_data_column",
        _add_column("managers", "email"),
        (MG, "email", None, "personal_data"),
    ),
    (
        "free_text_column",
        _add_column("deliveries", "comment"),
        (DL, "comment", None, "personal_data"),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=i) for i, m, e in BAD_VALUES],
)
def test_bad_input_is_reported_with_file_column_row_and_rule(
    tmp_path: Path, mutate: Mutation, expected: tuple[str, str | None, int | None, str]
) -> None:
    tables = valid_tables()
    mutate(tables)

    violations = _violations(write_csv(tables, tmp_path))

    assert expected in _keys(violations), "\n".join(v.line() for v in violations)


def test_type_error_is_not_also_reported_as_missing(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["feedback_360"].loc[2, "score"] = "abc"

    violations = _violations(write_csv(tables, tmp_path))

    assert _keys(violations) == {(FB, "score", 3, "type")}
    assert violations[0].detail == "must be a number, got 'abc'"


def test_report_line_names_file_column_row_line_and_value(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["feedback_360"].loc[16, "score"] = "7"

    with pytest.raises(DataValidationError) as caught:
        load_dataset(write_csv(tables, tmp_path))
    lines = caught.value.report().splitlines()

    assert lines[0].startswith(f"{tmp_path}: 1 violation(s) in 1 file(s)")
    assert lines[1].strip() == (
        "feedback_360.csv: column 'score', row 17 (line 18): must be between 1 and 5, "
        "got 7.0 [range]"
    )
    assert str(caught.value) == caught.value.report()


def test_parquet_rows_are_reported_without_csv_lines(tmp_path: Path) -> None:
    folder = write_parquet(valid_tables(), tmp_path)
    frame = pd.read_parquet(folder / "feedback_360.parquet")
    frame.loc[1, "score"] = 7.0
    frame.to_parquet(folder / "feedback_360.parquet", index=False)

    with pytest.raises(DataValidationError) as caught:
        load_dataset(folder)

    assert caught.value.report().splitlines()[1].strip() == (
        "feedback_360.parquet: column 'score', row 2: must be between 1 and 5, got 7.0 [range]"
    )


def test_parquet_with_wrong_physical_type_gets_row_level_message(tmp_path: Path) -> None:
    folder = write_parquet(valid_tables(), tmp_path)
    frame = pd.read_parquet(folder / "managers.parquet")
    frame["team_size"] = frame["team_size"].astype(str)
    frame.loc[2, "team_size"] = "four"
    frame.to_parquet(folder / "managers.parquet", index=False)

    assert _keys(_violations(folder)) == {("managers.parquet", "team_size", 3, "type")}


def test_duplicate_key_message_points_at_the_first_occurrence(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["feedback_360"].iloc[5] = tables["feedback_360"].iloc[4]

    (violation,) = _violations(write_csv(tables, tmp_path))

    assert violation.line() == (
        f"feedback_360.csv: columns ({FB_KEY}), row 6 (line 7): duplicate key, "
        "(manager_id='m1', wave_date=2023-09-01, competency_id='a-c1', rater_role='self') "
        "repeats row 5 (line 6) [duplicate_key]"
    )


def test_rule_failing_on_many_rows_is_summarised_in_one_violation(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["feedback_360"]["score"] = "9"

    (violation,) = _violations(write_csv(tables, tmp_path))

    assert (violation.file, violation.column, violation.rule) == (FB, "score", "range")
    assert violation.count == 20 and violation.row == 1
    assert violation.detail.count("got 9.0") == MAX_LISTED_ROWS
    assert violation.detail.endswith("and 10 more")
    assert violation.line().startswith("feedback_360.csv: column 'score', 20 rows: must be")


def test_several_errors_in_several_tables_are_all_reported(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["feedback_360"].loc[0, "score"] = "abc"
    tables["managers"].loc[1, "level"] = "ceo"
    tables["deliveries"].loc[2, "acted"] = "true"
    folder = write_csv(tables, tmp_path)
    (folder / "engagement.csv").unlink()

    with pytest.raises(DataValidationError) as caught:
        load_dataset(folder)

    assert _keys(caught.value.violations) == {
        (FB, "score", 1, "type"),
        (MG, "level", 2, "allowed_values"),
        (DL, "acted", 3, "acted_without_opened"),
        ("engagement.*", None, None, "missing_file"),
    }
    assert caught.value.report().splitlines()[0].startswith(f"{folder}: 4 violation(s)")
    assert len(caught.value.report().splitlines()) == 5


# ------------------------------------------------------------------------------ bad files


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    assert _keys(_violations(tmp_path / "nope")) == {
        (str(tmp_path / "nope"), None, None, "missing_folder")
    }


def test_a_file_instead_of_a_folder_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    path.write_bytes(b"PK")
    assert _keys(_violations(path)) == {(str(path), None, None, "not_a_folder")}


def test_missing_table_file_is_reported(csv_dir: Path) -> None:
    (csv_dir / "nudges.csv").unlink()
    assert _keys(_violations(csv_dir)) == {("nudges.*", None, None, "missing_file")}


def test_both_csv_and_parquet_for_one_table_is_ambiguous(csv_dir: Path) -> None:
    pd.read_csv(csv_dir / "engagement.csv").to_parquet(csv_dir / "engagement.parquet")
    assert _keys(_violations(csv_dir)) == {("engagement.*", None, None, "ambiguous_file")}


def test_corrupt_parquet_is_reported_naming_the_file(parquet_dir: Path) -> None:
    (parquet_dir / "managers.parquet").write_bytes(b"not a parquet file at all")

    violations = _violations(parquet_dir)

    assert ("managers.parquet", None, None, "unreadable_file") in _keys(violations)


def test_ragged_csv_is_reported_with_its_line(csv_dir: Path) -> None:
    path = csv_dir / "engagement.csv"
    path.write_text(path.read_text() + "m1,2023-10-01,70,5,extra\n")

    (violation,) = _violations(csv_dir)

    assert (violation.file, violation.rule) == ("engagement.csv", "unreadable_file")
    assert "first bad line: 6" in violation.detail


def test_non_utf8_csv_is_reported(csv_dir: Path) -> None:
    path = csv_dir / "nudges.csv"
    path.write_bytes(path.read_bytes().replace(b"Be specific.", b"Be sp\xe9cific."))
    assert _keys(_violations(csv_dir)) == {("nudges.csv", None, None, "unreadable_file")}


@pytest.mark.parametrize(
    "content", ["", "nudge_id,org_id,nudge_type,competency_id,contexts,text\n"]
)
def test_empty_table_is_reported(csv_dir: Path, content: str) -> None:
    (csv_dir / "nudges.csv").write_text(content)

    violations = _violations(csv_dir)

    assert ("nudges.csv", None, None, "empty_table") in _keys(violations)


def test_duplicate_header_column_is_reported(csv_dir: Path) -> None:
    path = csv_dir / "engagement.csv"
    lines = path.read_text().splitlines()
    lines = [line + "," + line.split(",")[2] for line in lines]
    path.write_text("\n".join(lines) + "\n")

    violations = _violations(csv_dir)

    assert ("engagement.csv", "engagement", None, "duplicate_column") in _keys(violations)


def test_missing_column_hints_at_a_case_mismatch(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["managers"] = tables["managers"].rename(columns={"region": "Region"})

    (violation,) = _violations(write_csv(tables, tmp_path))

    assert violation.rule == "missing_column"
    assert "found 'Region'" in violation.detail


def test_report_never_builds_one_object_per_failing_row(tmp_path: Path) -> None:
    tables = valid_tables()
    rows = pd.concat([tables["feedback_360"]] * 50, ignore_index=True)
    tables["feedback_360"] = rows  # 1000 rows, 980 duplicated keys

    violations = _violations(write_csv(tables, tmp_path))

    assert len(violations) == 1
    assert violations[0].count == 980


# ------------------------------------------------------------------------------ CLI


def test_cli_validate_prints_ok_and_row_counts_for_valid_data(csv_dir: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(csv_dir)])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"OK {csv_dir}")
    assert "feedback_360" in result.stdout and " 20 rows" in result.stdout


def test_cli_validate_exits_1_listing_every_violation(tmp_path: Path) -> None:
    tables = valid_tables()
    tables["feedback_360"].loc[16, "score"] = "7"
    tables["managers"].loc[0, "level"] = "ceo"

    result = CliRunner().invoke(app, ["validate", str(write_csv(tables, tmp_path))])

    assert result.exit_code == 1
    assert "2 violation(s)" in result.stderr
    assert "feedback_360.csv: column 'score', row 17 (line 18)" in result.stderr
    assert "managers.csv: column 'level', row 1 (line 2)" in result.stderr
    assert "OK" not in result.stdout


# ------------------------------------------------------------------------------ sample data


def test_sample_data_loads_cleanly(sample_dir: Path) -> None:
    if not any(sample_dir.glob("managers.*")):
        pytest.skip("data/sample/ not generated yet")

    dataset = load_dataset(sample_dir)

    assert all(len(frame) > 0 for frame in dataset.tables().values())


# ------------------------------------------------------------------------------ scale


@pytest.mark.slow
def test_one_million_feedback_rows_load_and_a_bad_value_is_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tables = valid_tables()
    n_managers = 25_000  # x 5 waves x 2 competencies x 4 rater roles = 1,000,000 rows
    ids = np.char.add("g", np.arange(n_managers).astype(str))
    clones = pd.concat([tables["managers"].iloc[[0]]] * n_managers, ignore_index=True)
    clones["manager_id"] = ids
    tables["managers"] = pd.concat([tables["managers"], clones], ignore_index=True)
    waves = np.array([f"2023-{m:02d}-01" for m in range(2, 12, 2)])
    grid = pd.MultiIndex.from_product(
        [ids, waves, ["a-c1", "a-c2"], ["self", "manager", "peer", "direct_report"]]
    ).to_frame(index=False, name=["manager_id", "wave_date", "competency_id", "rater_role"])
    grid["score"] = np.round(rng.uniform(1, 5, len(grid)), 2).astype(str)
    grid["n_raters"] = rng.integers(1, 8, len(grid)).astype(str)
    grid.loc[123_456, "score"] = "oops"
    tables["feedback_360"] = grid
    assert len(grid) == 1_000_000
    folder = write_csv(tables, tmp_path)

    violations = _violations(folder)

    assert _keys(violations) == {(FB, "score", 123_457, "type")}
