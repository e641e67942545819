"""Shared test fixtures: random instances of the kinds the book's claims quantify over."""

from __future__ import annotations

import numpy as np

from pgbook.mdp import random_mdp

#: (S, A, gamma, seed) cases for the exact-gradient checks: >= 20 MDPs, S <= 6, A <= 4,
#: gamma in {0.5, 0.9, 0.99}.
GRADIENT_CASES = [
    (S, A, gamma, seed)
    for seed, (S, A) in enumerate([(1, 2), (2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (6, 2)])
    for gamma in (0.5, 0.9, 0.99)
]


def random_theta(S: int, A: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return scale * np.random.default_rng(10_000 + seed).standard_normal((S, A))


def relative_error(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def case(S, A, gamma, seed):
    return random_mdp(S, A, gamma, seed), random_theta(S, A, seed)


def assert_power(ci, scale, rel: float = 0.05, power: float = 0.99):
    """The Monte Carlo check behind ``ci`` detects, with probability ``power``, any bias of at least
    ``rel * scale`` in every component (``scale``: the size of the estimated quantity, e.g. the largest
    |entry| of the exact vector). Returns the detectable relative bias, for the test's docstring."""
    detectable = float(np.max(ci.detectable_bias(power))) / float(scale)
    assert detectable <= rel, f"the check detects only biases of {detectable:.1%} of the scale or more (needs <= {rel:.0%})"
    return detectable
