"""API keys and tenant isolation: the organisation comes from the key, never from the body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.serving.conftest import H1, H2, KEY_1, rank


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong-key"},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {KEY_1}"},
    ],
)
def test_requests_without_a_valid_key_are_401(client: TestClient, headers: dict[str, str]) -> None:
    for response in (
        rank(client, headers=headers),
        client.post("/v1/events", json={"event_id": "0" * 32, "type": "opened"}, headers=headers),
        client.get("/v1/model", headers=headers),
    ):
        assert response.status_code == 401
        assert response.json()["detail"][0]["type"] == "unauthorized"


def test_bearer_token_is_accepted_like_the_header(client: TestClient) -> None:
    response = rank(client, headers={"Authorization": f"Bearer {KEY_1}"})
    assert response.status_code == 200


def test_ops_endpoints_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_manager_of_another_org_is_404_like_a_nonexistent_one(client: TestClient) -> None:
    other_org = rank(client, headers=H1, manager_id="m2-001")
    nonexistent = rank(client, headers=H1, manager_id="m9-999")
    assert other_org.status_code == nonexistent.status_code == 404
    assert other_org.json() == nonexistent.json()
    assert rank(client, headers=H2, manager_id="m1-001").status_code == 404
    assert rank(client, headers=H2, manager_id="m2-001").status_code == 200


def test_nudge_of_another_org_is_404_like_a_nonexistent_one(client: TestClient) -> None:
    other_org = rank(client, headers=H1, candidates=["n2-rec-a"])
    nonexistent = rank(client, headers=H1, candidates=["n9-none"])
    assert other_org.status_code == nonexistent.status_code == 404
    assert other_org.json()["detail"][0]["msg"] == nonexistent.json()["detail"][0]["msg"]
    reverse = rank(client, headers=H2, manager_id="m2-001", candidates=["n1-rec-a"])
    assert reverse.status_code == 404
    shared = rank(client, headers=H2, manager_id="m2-001", candidates=["g-fb"])
    assert shared.status_code == 200  # global nudges serve every org


def test_org_2_never_sees_org_1_nudges(client: TestClient) -> None:
    body = rank(client, headers=H2, manager_id="m2-002", k=20).json()
    assert {i["nudge_id"] for i in body["items"]} == {
        "n2-rec-a",
        "n2-coach-a",
        "n2-fb-a",
        "g-deleg",
        "g-fb",
    }


def test_events_of_another_org_are_404_both_ways(client: TestClient) -> None:
    event_1 = rank(client, headers=H1).json()["event_id"]
    event_2 = rank(client, headers=H2, manager_id="m2-001").json()["event_id"]
    for event_id, headers in ((event_1, H2), (event_2, H1)):
        response = client.post(
            "/v1/events", json={"event_id": event_id, "type": "opened"}, headers=headers
        )
        assert response.status_code == 404
        assert response.json()["detail"][0]["msg"] == "unknown event_id"
    own = client.post("/v1/events", json={"event_id": event_1, "type": "opened"}, headers=H1)
    assert own.status_code == 200
