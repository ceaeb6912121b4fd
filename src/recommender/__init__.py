"""Nudge recommender: causal multi-treatment uplift for leadership nudges.

Modules, one concern each:

- ``schemas`` / ``data``: the six input tables' contracts, validation and loading.
- ``simulation``: a simulated organisation with known true effects (for tests, demos, benchmarks).
- ``uplift``: the multi-treatment uplift estimator family on LightGBM.
- ``ope``: off-policy value estimators with bootstrap intervals.
"""

__version__ = "0.1.0"
