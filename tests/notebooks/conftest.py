"""Fixtures for executing the analyst notebooks with this virtualenv's ipykernel."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

KERNEL_NAME = "python3"


@pytest.fixture
def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Kernel name ``python3`` resolving to the interpreter running the tests.

    A throwaway kernelspec in ``tmp_path`` is put first on ``JUPYTER_PATH`` for this test
    only, so a ``python3`` spec registered elsewhere on the machine (user or system) cannot
    shadow it and nothing is registered globally.
    """
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test venv)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("NUDGE_DATA_DIR", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    yield KERNEL_NAME
