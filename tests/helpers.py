"""Small shared test constants (import them; fixtures live in the conftest files)."""

from __future__ import annotations

FAST_CONFIG = """
seed: 0
model:
  params: {n_estimators: 20, n_jobs: 1}
evaluation:
  n_bootstrap: 50
  q_model_estimators: 20
"""
"""A training config that fits in seconds on data/sample (few trees, small bootstrap)."""
