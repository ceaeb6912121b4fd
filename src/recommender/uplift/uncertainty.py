"""Uncertainty of predicted effects from the spread of the cross-fit fold models.

Each of the F fold models is fitted on all training rows except one fold, which is exactly a
delete-a-group jackknife. The grouped jackknife variance of the averaged prediction is
(F - 1) / F * sum_k (tau_k(x) - mean_k tau_k(x))^2. It measures how much tau(x) moves when a
different part of the training data is used (estimation variance of the learners); it does not
include bias, and with few folds (default 3) it is itself noisy: read it as a scale, not as a
calibrated posterior. The per-treatment mean effect adds its own standard error (AIPW).
"""

from __future__ import annotations

import numpy as np


def jackknife_std(fold_values: np.ndarray) -> np.ndarray:
    """Grouped jackknife standard deviation over axis 0 (F fold models) -> shape fold_values[0]."""
    F = fold_values.shape[0]
    if F < 2:
        return np.zeros(fold_values.shape[1:])
    centred = fold_values - fold_values.mean(axis=0, keepdims=True)
    return np.sqrt((F - 1) / F * (centred**2).sum(axis=0))


def shrunk_std(fold_std: np.ndarray, shrinkage: float, mean_se: np.ndarray) -> np.ndarray:
    """Std of tau_s = mean + lambda (tau - mean): sqrt(lambda^2 fold_std^2 + se(mean)^2).

    fold_std: (n, K) jackknife std of tau(x); mean_se: (K,) standard error of the mean effect.
    Treats the two parts as independent (the mean is estimated from all rows).
    """
    return np.sqrt((shrinkage * fold_std) ** 2 + mean_se[None, :] ** 2)
