"""Prometheus metrics per app, OpenAPI contract, and settings that fail fast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.settings import ServeSettings, SettingsError, hash_api_key, load_settings
from tests.serving.conftest import H1, AppFactory, rank


def test_metrics_expose_requests_latency_errors_decisions_and_model(client: TestClient) -> None:
    event_id = rank(client).json()["event_id"]
    client.post("/v1/events", json={"event_id": event_id, "type": "opened"}, headers=H1)
    rank(client, headers={})  # 401
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'nudge_http_requests_total{method="POST",route="/v1/rank",status="200"} 1.0' in text
    assert 'nudge_http_requests_total{method="POST",route="/v1/rank",status="401"} 1.0' in text
    assert 'nudge_http_request_duration_seconds_count{method="POST",route="/v1/rank"} 2.0' in text
    assert "nudge_http_errors_total" in text
    assert 'nudge_decisions_total{fallback="false",kind="nudge"} 1.0' in text
    assert 'nudge_events_total{duplicate="false",type="opened"} 1.0' in text
    assert 'nudge_model_info{fallback="false",version="1"} 1.0' in text
    assert "m1-001" not in text and event_id not in text  # no ids in metrics


def test_each_app_has_its_own_registry(make_client: AppFactory) -> None:
    with make_client() as first:
        rank(first)
    with make_client() as second:
        text = second.get("/metrics").text
    assert 'route="/v1/rank"' not in text


def test_openapi_has_stable_operation_ids_and_security(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operations = {
        op["operationId"]: (path, method)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }
    assert operations["rank"] == ("/v1/rank", "post")
    assert operations["report_event"] == ("/v1/events", "post")
    assert operations["get_model"] == ("/v1/model", "get")
    assert {"healthz", "readyz", "metrics"} <= set(operations)
    assert spec["paths"]["/v1/rank"]["post"]["security"]
    assert "ApiKeyHeader" in spec["components"]["securitySchemes"]


def test_no_cors_headers_are_sent(client: TestClient) -> None:
    response = client.options(
        "/v1/rank",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_settings_fail_fast_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUDGE_API_KEYS", f"{hash_api_key('k')}=org-01")
    monkeypatch.setenv("NUDGE_EPSILON", "1.5")
    with pytest.raises(SettingsError, match="NUDGE_EPSILON"):
        load_settings()
    monkeypatch.setenv("NUDGE_EPSILON", "0.1")
    monkeypatch.setenv("NUDGE_POLICY", "thompson")
    with pytest.raises(SettingsError, match="NUDGE_POLICY"):
        load_settings()
    monkeypatch.delenv("NUDGE_POLICY")
    assert load_settings().epsilon == 0.1


def test_settings_require_hashed_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUDGE_API_KEYS", raising=False)
    monkeypatch.delenv("NUDGE_API_KEYS_FILE", raising=False)
    with pytest.raises(SettingsError, match="NUDGE_API_KEYS"):
        load_settings()
    monkeypatch.setenv("NUDGE_API_KEYS", "plaintext-key=org-01")
    with pytest.raises(SettingsError, match="SHA-256"):
        load_settings()
    monkeypatch.setenv("NUDGE_API_KEYS", f"{hash_api_key('k')}=global")
    with pytest.raises(SettingsError, match="org id"):
        load_settings()


def test_settings_read_a_json_or_yaml_key_file(tmp_path: Path) -> None:
    json_file = tmp_path / "keys.json"
    json_file.write_text(json.dumps({hash_api_key("a"): "org-01"}))
    yaml_file = tmp_path / "keys.yaml"
    yaml_file.write_text(f"{hash_api_key('b')}: org-02\n")
    assert ServeSettings(api_keys_file=json_file).tenants() == {hash_api_key("a"): "org-01"}
    assert ServeSettings(api_keys_file=yaml_file).tenants() == {hash_api_key("b"): "org-02"}
    with pytest.raises(SettingsError, match="NUDGE_API_KEYS_FILE"):
        load_settings(api_keys_file=tmp_path / "missing.json")


def test_settings_refuse_a_missing_fallback_catalogue(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="NUDGE_FALLBACK_CATALOGUE"):
        load_settings(api_keys=f"{hash_api_key('k')}=org-01", fallback_catalogue=tmp_path / "x")
