"""Multi-treatment uplift on LightGBM: S/T/X/DR learners chosen by a held-out causal loss.

Modules: ``config`` (stage defaults), ``base`` (validation, feature encoding, booster helpers),
``propensity``, ``learners``, ``selection`` (losses, blending, shrinkage), ``uncertainty``,
``estimator`` (``MultiTreatmentUplift``), ``serialization`` and ``synthetic`` (test problems).
"""

from recommender.uplift.base import ModelIntegrityError
from recommender.uplift.estimator import MultiTreatmentUplift
from recommender.uplift.serialization import load_uplift, save_uplift

__all__ = ["ModelIntegrityError", "MultiTreatmentUplift", "load_uplift", "save_uplift"]
