"""Project-wide test fixtures: paths to the committed sample data."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The repository root."""
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The committed simulated sample organisation (data/sample)."""
    return PROJECT_ROOT / "data" / "sample"
