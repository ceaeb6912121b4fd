"""POST /v1/events: idempotency, validation against the decision, durability across restarts."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from httpx import Response

from tests.serving.conftest import H1, ORG_1, AppFactory, rank


def post_event(client: TestClient, **body: object) -> Response:
    return client.post("/v1/events", json=body, headers=H1)


def test_event_replay_is_acknowledged_and_stored_once(client: TestClient) -> None:
    event_id = rank(client).json()["event_id"]
    first = post_event(client, event_id=event_id, type="delivered")
    replay = post_event(client, event_id=event_id, type="delivered")
    assert first.status_code == replay.status_code == 200
    assert first.json()["duplicate"] is False and replay.json()["duplicate"] is True
    assert first.json()["received_at"] == replay.json()["received_at"]
    store = client.app.state.store  # type: ignore[attr-defined]
    assert store.count_events(ORG_1, event_id) == 1
    post_event(client, event_id=event_id, type="opened")
    assert store.count_events(ORG_1, event_id) == 2


def test_idempotency_key_dedupes_and_conflicts_on_reuse(client: TestClient) -> None:
    event_id = rank(client).json()["event_id"]
    body = {"event_id": event_id, "type": "rated", "rating": 4, "idempotency_key": "k-1"}
    assert post_event(client, **body).json()["duplicate"] is False
    assert post_event(client, **body).json()["duplicate"] is True
    again = post_event(client, event_id=event_id, type="rated", rating=2, idempotency_key="k-2")
    assert again.json()["duplicate"] is False  # a new rating
    reuse = post_event(client, event_id=event_id, type="opened", idempotency_key="k-1")
    assert reuse.status_code == 409
    assert reuse.json()["detail"][0]["loc"] == ["body", "idempotency_key"]


def test_unknown_event_id_is_404(client: TestClient) -> None:
    response = post_event(client, event_id=str(uuid.uuid4()), type="opened")
    assert response.status_code == 404


def test_rating_rules_are_field_level_422(client: TestClient) -> None:
    event_id = rank(client).json()["event_id"]
    for body, field in (
        ({"type": "rated"}, "rating"),
        ({"type": "rated", "rating": 6}, "rating"),
        ({"type": "opened", "rating": 3}, "rating"),
        ({"type": "clicked"}, "type"),
    ):
        response = post_event(client, event_id=event_id, **body)
        assert response.status_code == 422, body
        assert field in response.json()["detail"][0]["loc"]
    bad_id = post_event(client, event_id="not-a-uuid", type="opened")
    assert bad_id.json()["detail"][0]["loc"] == ["body", "event_id"]


def test_event_must_name_the_served_nudge(client: TestClient) -> None:
    body = rank(client).json()
    wrong = post_event(client, event_id=body["event_id"], type="opened", nudge_id="g-deleg-x")
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "nudge_id"]
    right = post_event(
        client, event_id=body["event_id"], type="opened", nudge_id=body["chosen_nudge_id"]
    )
    assert right.status_code == 200


def test_events_of_a_decision_without_a_nudge_are_409(make_client: AppFactory) -> None:
    with make_client(frequency_cap=1) as client:
        rank(client)
        capped = rank(client).json()
        assert capped["reason_code"] == "frequency_cap"
        response = post_event(client, event_id=capped["event_id"], type="delivered")
    assert response.status_code == 409


def test_decisions_and_events_survive_a_restart(make_client: AppFactory) -> None:
    with make_client() as client:
        event_id = rank(client).json()["event_id"]
        post_event(client, event_id=event_id, type="delivered")
    with make_client() as restarted:  # a new app on the same SQLite file
        replay = post_event(restarted, event_id=event_id, type="delivered")
        assert replay.json()["duplicate"] is True
        opened = post_event(restarted, event_id=event_id, type="opened")
        assert opened.json()["duplicate"] is False
        store = restarted.app.state.store  # type: ignore[attr-defined]
        assert store.count_events(ORG_1, event_id) == 2
