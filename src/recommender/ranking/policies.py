"""Exploration policies: exact choice probabilities over the eligible candidates.

Every policy maps scores of shape (n,) to probabilities of shape (n,) that are all finite,
non-negative and sum to 1 (to float64 rounding, renormalised). The served nudge is sampled from
them and its probability is logged, so later training and off-policy evaluation stay unbiased.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

PolicyName = Literal["softmax", "epsilon_greedy", "uniform"]


class ExplorationPolicy(Protocol):
    """Maps candidate scores to the probability of serving each candidate."""

    @property
    def name(self) -> str:
        """Stable name with parameters, logged with every decision (e.g. ``softmax(t=0.1)``)."""
        ...

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities, shape (n,), for scores of shape (n,), n >= 1; higher score is better."""
        ...


def _normalise(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return p / p.sum()


def _check_scores(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores must have shape (n,) with n >= 1, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return scores


@dataclass(frozen=True)
class Uniform:
    """Every candidate with probability 1/n (the fallback when no model is loaded)."""

    @property
    def name(self) -> str:
        return "uniform"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        n = _check_scores(scores).size
        return np.full(n, 1.0 / n)


@dataclass(frozen=True)
class EpsilonGreedy:
    """Best score with probability 1 - epsilon (split evenly between ties), plus epsilon/n each.

    epsilon: share of probability spread uniformly over the candidates, in [0, 1].
    """

    epsilon: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")

    @property
    def name(self) -> str:
        return f"epsilon_greedy(eps={self.epsilon:g})"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        scores = _check_scores(scores)
        best = scores == scores.max()
        p = np.full(scores.size, self.epsilon / scores.size)
        p[best] += (1.0 - self.epsilon) / best.sum()
        return _normalise(p)


@dataclass(frozen=True)
class Softmax:
    """Softmax of score / temperature, mixed with uniform: (1 - epsilon) softmax + epsilon / n.

    temperature: in score units (> 0); smaller is greedier.
    epsilon: uniform floor in [0, 1]; > 0 keeps every candidate's probability >= epsilon / n.
    """

    temperature: float = 0.1
    epsilon: float = 0.05

    def __post_init__(self) -> None:
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")

    @property
    def name(self) -> str:
        return f"softmax(t={self.temperature:g},eps={self.epsilon:g})"

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        scores = _check_scores(scores)
        z = np.exp((scores - scores.max()) / self.temperature)
        p = (1.0 - self.epsilon) * z / z.sum() + self.epsilon / scores.size
        return _normalise(p)


def make_policy(name: PolicyName, *, epsilon: float, temperature: float) -> ExplorationPolicy:
    """Build the policy called ``name`` with its parameters."""
    if name == "softmax":
        return Softmax(temperature=temperature, epsilon=epsilon)
    if name == "epsilon_greedy":
        return EpsilonGreedy(epsilon=epsilon)
    if name == "uniform":
        return Uniform()
    raise ValueError(f"unknown policy {name!r}: use softmax, epsilon_greedy or uniform")


class Sampler:
    """Thread-safe source of uniform draws: seeded (reproducible) or OS entropy (default).

    seed: None draws from ``random.SystemRandom`` (os.urandom); an int uses a PCG64 generator.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._lock = threading.Lock()
        self._generator = np.random.Generator(np.random.PCG64(seed)) if seed is not None else None
        self._system = random.SystemRandom()

    def uniform(self) -> float:
        """One draw from U[0, 1)."""
        if self._generator is None:
            return self._system.random()
        with self._lock:
            return float(self._generator.random())

    def choice(self, probabilities: np.ndarray) -> int:
        """Index drawn with ``probabilities`` (shape (n,), sum 1); zero-probability never drawn."""
        cumulative = np.cumsum(probabilities)
        index = int(np.searchsorted(cumulative, self.uniform() * cumulative[-1], side="right"))
        index = min(index, cumulative.size - 1)
        while probabilities[index] <= 0.0:  # only reachable through float rounding at the end
            index -= 1
        return index
