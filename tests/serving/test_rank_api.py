"""POST /v1/rank over HTTP: probabilities, rules, features, bad inputs."""

from __future__ import annotations

from collections import Counter

import pytest
from fastapi.testclient import TestClient

from recommender.constants import CONTEXTS, GLOBAL_ORG
from tests.serving.conftest import CATALOGUE, H1, ORG_1, AppFactory, rank

ORG_1_NUDGES = {e.nudge_id for e in CATALOGUE[ORG_1] + CATALOGUE[GLOBAL_ORG]}


def test_rank_returns_valid_probabilities_and_logs_the_chosen_one(client: TestClient) -> None:
    response = rank(client, k=20)
    assert response.status_code == 200
    body = response.json()
    items = body["items"]
    assert {i["nudge_id"] for i in items} == ORG_1_NUDGES  # k >= candidates: all of them
    assert sum(i["probability"] for i in items) == pytest.approx(1.0, abs=1e-9)
    assert items[0]["chosen"] and not any(i["chosen"] for i in items[1:])
    assert body["chosen_nudge_id"] == items[0]["nudge_id"]
    assert body["model_version"] == "1" and body["fallback"] is False
    assert [i["score"] for i in items[1:]] == sorted((i["score"] for i in items[1:]), reverse=True)
    assert set(items[0]["effects"]) == {"delta_360", "delta_360_targeted", "delta_engagement"}
    assert all(i["reason"].endswith(".") for i in items)

    stored = client.app.state.store.get_decision(ORG_1, body["event_id"])  # type: ignore[attr-defined]
    logged = {nudge_id: probability for nudge_id, _type, probability in stored["candidates"]}
    assert logged[body["chosen_nudge_id"]] == items[0]["probability"]
    assert sum(logged.values()) == pytest.approx(1.0, abs=1e-9)
    assert stored["model_version"] == "1" and stored["policy"].startswith("softmax")
    chosen_type = items[0]["nudge_type"]
    same_type = sum(i["probability"] for i in items if i["nudge_type"] == chosen_type)
    assert stored["propensity"] == pytest.approx(same_type)


def test_rank_returns_top_k_with_the_served_nudge_first(client: TestClient) -> None:
    body = rank(client, k=2).json()
    assert len(body["items"]) == 2 and body["items"][0]["chosen"]


def test_rank_samples_from_the_logged_probabilities(make_client: AppFactory) -> None:
    with make_client(policy="epsilon_greedy", epsilon=0.6, frequency_cap=1000) as client:
        candidates = ["n1-rec-a", "n1-coach-a", "n1-fb-a"]
        bodies = [rank(client, candidates=candidates, k=3).json() for _ in range(240)]
    probabilities = {i["nudge_id"]: i["probability"] for i in bodies[0]["items"]}
    counts = Counter(b["chosen_nudge_id"] for b in bodies)
    for nudge_id, p in probabilities.items():
        assert counts[nudge_id] / 240 == pytest.approx(p, abs=0.1)


def test_rank_with_candidates_restricts_the_choice(client: TestClient) -> None:
    body = rank(client, candidates=["n1-rec-b", "g-deleg"], k=5).json()
    assert {i["nudge_id"] for i in body["items"]} == {"n1-rec-b", "g-deleg"}


def test_rank_context_keeps_only_matching_nudges(client: TestClient) -> None:
    body = rank(client, context="weekly_planning", k=20).json()
    ids = {i["nudge_id"] for i in body["items"]}
    assert ids == {"n1-coach-b", "n1-deleg-a", "g-deleg"}


def test_rank_without_a_context_match_is_empty_with_a_reason(client: TestClient) -> None:
    response = rank(client, candidates=["n1-rec-b"], context="performance_review")
    assert response.status_code == 200
    body = response.json()
    assert body["items"] == [] and body["reason_code"] == "no_context_match"
    assert body["chosen_nudge_id"] is None and body["control"] is False


def test_rank_respects_the_frequency_cap(make_client: AppFactory) -> None:
    with make_client(frequency_cap=2, frequency_window_hours=24) as client:
        assert rank(client).json()["items"]
        assert rank(client).json()["items"]
        capped = rank(client).json()
        other_manager = rank(client, manager_id="m1-002").json()
    assert capped["items"] == [] and capped["reason_code"] == "frequency_cap"
    assert other_manager["items"]


def test_rank_never_repeats_a_nudge_within_the_window(make_client: AppFactory) -> None:
    with make_client(no_repeat_hours=48) as client:
        candidates = ["n1-rec-a", "n1-coach-a"]
        first = rank(client, candidates=candidates).json()["chosen_nudge_id"]
        second = rank(client, candidates=candidates).json()
        third = rank(client, candidates=candidates).json()
    assert {first, second["chosen_nudge_id"]} == set(candidates)
    assert second["items"][0]["probability"] == 1.0
    assert third["items"] == [] and third["reason_code"] == "all_recently_shown"


def test_holdout_records_a_control_decision_without_items(make_client: AppFactory) -> None:
    with make_client(holdout_share=0.5) as client:
        bodies = [rank(client, manager_id=f"m1-00{1 + i % 5}").json() for i in range(40)]
        controls = [b for b in bodies if b["control"]]
        assert 5 < len(controls) < 35
        stored = client.app.state.store.get_decision(  # type: ignore[attr-defined]
            ORG_1, controls[0]["event_id"]
        )
    assert all(b["items"] == [] and b["reason_code"] == "holdout" for b in controls)
    assert all(b["holdout_probability"] == 0.5 for b in bodies)
    assert stored["kind"] == "control" and stored["propensity"] == 0.5
    assert stored["chosen_nudge_id"] is None and len(stored["candidates"]) == 8


def test_rank_scores_a_new_manager_from_explicit_features(client: TestClient) -> None:
    features = {"level": "middle", "team_size": 7, "tenure_months": 30, "openness": 61.5}
    response = rank(client, manager_id="m1-new-777", features=features)
    assert response.status_code == 200
    assert response.json()["items"][0]["score"] is not None


def test_rank_rejects_invalid_features_naming_the_field(client: TestClient) -> None:
    features = {"level": "middle", "team_size": "many", "tenure_months": 30}
    response = rank(client, manager_id="m1-new-777", features=features)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "features", "team_size"]
    missing = rank(client, manager_id="m1-new-777", features={"team_size": 3})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "features", "level"]


def test_rank_of_an_unknown_manager_without_features_is_404(client: TestClient) -> None:
    response = rank(client, manager_id="m1-999")
    assert response.status_code == 404
    assert response.json()["detail"][0]["loc"] == ["body", "manager_id"]


def test_rank_lists_unknown_candidate_ids(client: TestClient) -> None:
    response = rank(client, candidates=["n1-rec-a", "nope-1", "nope-2"])
    assert response.status_code == 404
    item = response.json()["detail"][0]
    assert item["loc"] == ["body", "candidates"] and item["unknown"] == ["nope-1", "nope-2"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 21}, "k"),
        ({"k": "three"}, "k"),
        ({"context": "lunch"}, "context"),
        ({"candidates": []}, "candidates"),
        ({"candidates": ["bad id with spaces"]}, "candidates"),
        ({"manager_id": ""}, "manager_id"),
        ({"manager_id": None}, "manager_id"),
        ({"org_id": "org-02"}, "org_id"),
        ({"features": {"level": [1, 2]}}, "features"),
    ],
)
def test_rank_rejects_bad_input_with_field_level_422(
    client: TestClient, body: dict[str, object], field: str
) -> None:
    response = rank(client, **body)
    assert response.status_code == 422
    details = response.json()["detail"]
    assert any(field in d["loc"] for d in details), details
    assert all("input" not in d for d in details)  # submitted values are never echoed


def test_rank_rejects_a_missing_manager_and_malformed_json(client: TestClient) -> None:
    missing = client.post("/v1/rank", json={"k": 2}, headers=H1)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "manager_id"]
    broken = client.post(
        "/v1/rank", content=b'{"manager_id": ', headers={**H1, "content-type": "application/json"}
    )
    assert broken.status_code == 422


def test_body_too_large_is_413(make_client: AppFactory) -> None:
    with make_client(max_body_bytes=1024) as client:
        big = rank(client, candidates=["n1-rec-a"] * 200)
        streamed = client.post(
            "/v1/rank",
            content=iter([b'{"manager_id": "m1-001", "candidates": [', b'"x",' * 400, b'"y"]}']),
            headers={**H1, "content-type": "application/json"},
        )
    assert big.status_code == 413 and streamed.status_code == 413
    assert big.json()["detail"][0]["type"] == "too_large"


def test_every_context_of_the_vocabulary_is_accepted(client: TestClient) -> None:
    for context in CONTEXTS:
        assert rank(client, context=context).status_code == 200


def test_unexpected_errors_become_a_500_without_internals(client: TestClient) -> None:
    model = client.app.state.holder.current.model  # type: ignore[attr-defined]

    def broken(*_args: object) -> None:
        raise RuntimeError("secret internals m1-001 /srv/path")

    model.predict = broken
    response = rank(client)
    assert response.status_code == 500
    text = response.text
    assert "secret" not in text and "RuntimeError" not in text
    assert response.json()["detail"][0]["type"] == "internal_error"
