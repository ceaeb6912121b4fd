"""Seeded synthetic logged-bandit data for the OPE tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest


@dataclass(frozen=True)
class LoggedBandit:
    """Logged decisions of a known stochastic logging policy with known true mean rewards.

    true_mean: (n, n_actions) expected reward of every action; logging_probs: (n, n_actions);
    actions, logging_propensity, rewards: (n,).
    """

    true_mean: np.ndarray
    logging_probs: np.ndarray
    actions: np.ndarray
    logging_propensity: np.ndarray
    rewards: np.ndarray

    @property
    def n(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.true_mean.shape[1])


def make_logged_bandit(
    n: int, n_actions: int = 3, seed: int = 0, noise: float = 1.0
) -> LoggedBandit:
    """Context x ~ N(0, 1); action a has mean reward 0.2 * a * x + 0.1 * a; softmax logger."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    arms = np.arange(n_actions)
    true_mean = 0.2 * x[:, None] * arms[None, :] + 0.1 * arms[None, :]
    logits = 0.5 * x[:, None] * (arms[None, :] - arms.mean())
    logging_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    actions = (u > np.cumsum(logging_probs, axis=1)).sum(axis=1)
    rewards = true_mean[np.arange(n), actions] + noise * rng.normal(size=n)
    return LoggedBandit(
        true_mean, logging_probs, actions, logging_probs[np.arange(n), actions], rewards
    )


@pytest.fixture(scope="module")
def logged_bandit() -> LoggedBandit:
    """2000 logged rounds, 3 actions (0 = control), seeded."""
    return make_logged_bandit(2000)


@pytest.fixture(scope="module")
def bandit_factory() -> Callable[..., LoggedBandit]:
    """The generator itself, for tests that need several sizes or seeds."""
    return make_logged_bandit
