"""Model lifecycle: atomic swaps under load, bad reloads, registry outages, the fallback."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recommender.model_lifecycle import ModelHolder, ModelValidationError, validate_model
from tests.serving.conftest import H1, ORG_1, AppFactory, FakeEffectModel, FakeRegistry, rank


def refresh(client: TestClient) -> str:
    poller = client.app.state.poller  # type: ignore[attr-defined]
    return str(client.portal.call(poller.refresh))  # type: ignore[union-attr]


def expected_scores(version: str, manager_id: str = "m1-001") -> dict[str, float]:
    model = FakeEffectModel(version)
    row = model.manager_row(ORG_1, manager_id)
    assert row is not None
    score = model.predict(row[None, :]).score[0]
    return {t: float(s) for t, s in zip(model.nudge_types, score, strict=True)}


def test_model_swap_under_concurrent_load_fails_no_request(
    make_client: AppFactory, registry: FakeRegistry
) -> None:
    scores = {v: expected_scores(v) for v in ("1", "2")}
    results: list[tuple[int, str | None, bool]] = []
    stop = threading.Event()

    def hammer(client: TestClient) -> None:
        while not stop.is_set():
            response = rank(client, k=20)
            body = response.json() if response.status_code == 200 else {}
            version = body.get("model_version")
            consistent = version is not None and all(
                item["score"] == pytest.approx(scores[version][item["nudge_type"]])
                for item in body["items"]
            )
            results.append((response.status_code, version, consistent))

    with make_client(frequency_cap=100_000) as client:
        threads = [threading.Thread(target=hammer, args=(client,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        while len(results) < 20:
            stop.wait(0.01)
        registry.publish("2")
        assert refresh(client) == "loaded"
        seen = len(results)
        while len(results) < seen + 20:
            stop.wait(0.01)
        stop.set()
        for thread in threads:
            thread.join()
        info = client.get("/v1/model", headers=H1).json()
    assert {status for status, _, _ in results} == {200}
    assert all(consistent for _, _, consistent in results)  # never a mix of two models
    versions = Counter(version for _, version, _ in results)
    assert set(versions) == {"1", "2"} and info["version"] == "2"


def test_corrupt_model_on_reload_keeps_the_old_one_serving(
    make_client: AppFactory, registry: FakeRegistry
) -> None:
    with make_client() as client:
        registry.publish("2", ValueError("checksum mismatch in booster file"))
        assert refresh(client) == "failed"
        invalid = FakeEffectModel("3")
        invalid.nudge_types = ("recognition", "none")  # type: ignore[misc]  # fails validation
        registry.publish("3", invalid)
        assert refresh(client) == "failed"
        ready = client.get("/readyz")
        served = rank(client)
        metrics = client.get("/metrics").text
    assert ready.status_code == 200 and ready.json()["model_version"] == "1"
    assert served.status_code == 200 and served.json()["model_version"] == "1"
    assert 'nudge_model_refreshes_total{outcome="failed"} 2.0' in metrics
    assert 'nudge_model_info{fallback="false",version="1"} 1.0' in metrics


def test_unreachable_registry_keeps_serving_and_unchanged_alias_is_not_reloaded(
    make_client: AppFactory, registry: FakeRegistry
) -> None:
    with make_client() as client:
        loads = registry.loads
        assert refresh(client) == "unchanged"
        assert registry.loads == loads  # resolved the alias, did not download again
        registry.reachable = False
        assert refresh(client) == "failed"
        assert rank(client).json()["model_version"] == "1"


def test_slow_load_times_out_without_blocking_requests(
    make_client: AppFactory, registry: FakeRegistry
) -> None:
    release = threading.Event()
    original = registry.load

    def slow_load(uri: str) -> tuple[str, FakeEffectModel]:
        release.wait(5)
        return original(uri)

    with make_client(model_timeout_seconds=0.2) as client:
        registry.publish("2")
        client.app.state.poller.load_model = slow_load  # type: ignore[attr-defined]
        assert refresh(client) == "timeout"
        assert refresh(client) == "busy"  # the abandoned load still runs: no pile-up
        assert rank(client).json()["model_version"] == "1"
        release.set()


def test_no_model_serves_the_declared_fallback_uniformly(
    make_client: AppFactory, registry: FakeRegistry, catalogue_csv: object
) -> None:
    registry.reachable = False
    with make_client(fallback_catalogue=catalogue_csv, holdout_share=0.1) as client:
        ready = client.get("/readyz")
        body = rank(client, manager_id="any-manager", k=20, context="before_1on1").json()
        info = client.get("/v1/model", headers=H1).json()
        registry.reachable = True
        assert refresh(client) == "loaded"
        after = rank(client).json()
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "fallback": True, "model_version": "fallback"}
    assert body["fallback"] is True and body["model_version"] == "fallback"
    assert body["policy"].startswith("uniform")
    if not body["control"]:
        probabilities = [item["probability"] for item in body["items"]]
        assert len(probabilities) == 3  # before_1on1 in org-01 + global
        np.testing.assert_allclose(probabilities, 1 / 3)
        assert all(item["score"] is None and item["effects"] is None for item in body["items"])
    assert info["fallback"] is True and info["metrics"] is None
    assert after["fallback"] is False and after["model_version"] == "1"


def test_no_model_and_no_fallback_is_not_ready(
    make_client: AppFactory, registry: FakeRegistry
) -> None:
    registry.reachable = False
    with make_client() as client:
        ready = client.get("/readyz")
        response = rank(client)
        model = client.get("/v1/model", headers=H1)
        health = client.get("/healthz")
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert response.status_code == 503 and model.status_code == 503
    assert health.status_code == 200


def test_model_info_reports_version_and_metrics(client: TestClient) -> None:
    info = client.get("/v1/model", headers=H1).json()
    assert info["version"] == "1" and info["fallback"] is False
    assert info["metrics"]["policy_value_dr"] == pytest.approx(0.031)
    assert info["outcome_names"] == ["delta_360", "delta_360_targeted", "delta_engagement"]


def test_validate_model_names_the_problem() -> None:
    model = FakeEffectModel("1")
    validate_model("1", model, ["org-01"])  # type: ignore[arg-type]
    model.nudge_types = ("recognition", "none")  # type: ignore[misc]
    with pytest.raises(ModelValidationError, match="nudge_types"):
        validate_model("1", model, [])  # type: ignore[arg-type]


def test_holder_swaps_by_one_assignment() -> None:
    holder = ModelHolder()
    assert not holder.ready and holder.current is None
    first = holder.install("1", FakeEffectModel("1"))  # type: ignore[arg-type]
    assert holder.current is first and holder.ready
    holder.install("2", FakeEffectModel("2"))  # type: ignore[arg-type]
    assert holder.current is not first and first.version == "1"
