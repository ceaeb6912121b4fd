"""The declared contracts: one schema per table, parse kinds, keys and the privacy screen."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from recommender.constants import TABLES, TRAITS
from recommender.schemas import SCHEMAS, column_kind, key_columns, looks_like_personal_data


def test_there_is_one_schema_per_table_in_contract_order() -> None:
    assert tuple(SCHEMAS) == TABLES
    assert all(schema.name == name for name, schema in SCHEMAS.items())


def test_every_column_declares_how_to_parse_it() -> None:
    kinds = {"string", "int", "float", "date", "timestamp", "bool"}
    for schema in SCHEMAS.values():
        for column in schema.columns:
            assert column_kind(schema, column) in kinds


def test_keys_are_declared_once_in_the_schemas() -> None:
    assert key_columns(SCHEMAS["feedback_360"]) == (
        "manager_id",
        "wave_date",
        "competency_id",
        "rater_role",
    )
    assert key_columns(SCHEMAS["deliveries"]) == ("delivery_id",)
    assert all(key_columns(schema) for schema in SCHEMAS.values())


def test_managers_schema_has_every_trait() -> None:
    assert set(TRAITS) <= set(SCHEMAS["managers"].columns)


def test_schema_rejects_out_of_range_score_lazily() -> None:
    frame = pd.DataFrame(
        {
            "manager_id": pd.Series(["m1", "m2"], dtype="str"),
            "wave_date": pd.to_datetime(["2023-01-01", "2023-01-01"]).as_unit("ns"),
            "competency_id": pd.Series(["c1", "c1"], dtype="str"),
            "rater_role": pd.Series(["self", "boss"], dtype="str"),
            "score": [7.0, 3.0],
            "n_raters": pd.Series([1, 2], dtype="int64"),
        }
    )

    with pytest.raises(pa.errors.SchemaErrors) as caught:
        SCHEMAS["feedback_360"].validate(frame, lazy=True)

    failures = caught.value.failure_cases
    assert set(zip(failures["column"], failures["index"], strict=True)) == {
        ("score", 0),
        ("rater_role", 1),
    }


@pytest.mark.parametrize(
    "column",
    ["name", "email", "E-Mail", "First Name", "last_name", "manager_name", "comments", "phone"],
)
def test_personal_data_column_names_are_recognised(column: str) -> None:
    assert looks_like_personal_data(column)


@pytest.mark.parametrize("column", ["cost_centre", "nudge_name", "competency_label", "team"])
def test_harmless_column_names_are_not_flagged(column: str) -> None:
    assert not looks_like_personal_data(column)
