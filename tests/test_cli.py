"""The command line: every command has help, bad options fail with a clear message."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from recommender.cli import app

runner = CliRunner()


def test_top_level_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("simulate", "validate", "demo"):
        assert command in result.output


COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_simulate_rejects_unknown_format(tmp_path) -> None:
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--format", "xlsx"])
    assert result.exit_code == 2
    assert "--format" in result.output
    assert not (tmp_path / "x").exists()


def test_export_deliveries_refuses_missing_store_without_creating_it(tmp_path) -> None:
    missing = tmp_path / "absent.db"
    result = runner.invoke(
        app, ["export-deliveries", "--out", str(tmp_path / "out"), "--db", str(missing)]
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert not missing.exists()
    assert not (tmp_path / "out").exists()


def test_train_with_a_misspelt_config_key_fails_naming_it(tmp_path, sample_dir) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("split:\n  eval_fractoin: 0.3\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(sample_dir), "--config", str(config)])
    assert result.exit_code == 1
    assert "split.eval_fractoin" in result.output
    assert "Traceback" not in result.output


def test_train_on_a_missing_folder_reports_it_without_a_traceback(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "absent")])
    assert result.exit_code == 1
    assert "folder does not exist" in result.output
