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
