"""Schemathesis fuzzing of the whole API in-process: no 500s, responses match the OpenAPI.

Slow (hundreds of generated requests): ``pytest -m slow tests/serving/test_openapi_fuzz.py``.
Drives schemathesis through its Python API (its ``from_fixture`` pytest helper does not work with
pytest 9: it reads the removed ``Function._nodeid``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from serving.app import create_app  # noqa: E402
from tests.serving.conftest import H1, FakeRegistry, make_settings  # noqa: E402

EXAMPLES_PER_OPERATION = 150


def test_api_conforms_to_its_openapi(tmp_path: Path) -> None:
    registry = FakeRegistry()
    app = create_app(
        make_settings(tmp_path, holdout_share=0.1, frequency_cap=1_000_000),
        registry.load,
        resolve_version=registry.resolve,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            # Which explicit features are valid is the model's business (EffectModel.encode),
            # not the schema's: a 422 naming the feature is the documented answer there.
            with_features = isinstance(case.body, dict) and case.body.get("features") is not None
            excluded = [checks.positive_data_acceptance] if with_features else []
            case.call_and_validate(headers=dict(H1), excluded_checks=excluded)

        run()
