"""Closed loop: the trained ranker served through the real ranking API against the simulator,
its logged decisions fed back into training, round after round (issue #5).

Modules: ``serve`` (the API driven in-process, decisions read back from the event store),
``values`` (true policy values from simulation ground truth; evaluation only), ``run``
(``run_loop``: rounds, retraining, promotion gate, MLflow logging, table and plot).
"""

from recommender.closed_loop.run import LoopResult, format_table, loop_train_config, run_loop
from recommender.closed_loop.serve import Exploration, ServingHarness
from recommender.closed_loop.values import RoundDecisions, true_values

__all__ = [
    "Exploration",
    "LoopResult",
    "RoundDecisions",
    "ServingHarness",
    "format_table",
    "loop_train_config",
    "run_loop",
    "true_values",
]
