"""Monte Carlo checks with a stated confidence interval.

Used by every chapter that samples: a Monte Carlo check in this book always reports its sample
size, its seed and a confidence interval, and fails when the exact value lies outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ._validate import as_float_array

__all__ = ["MeanCI", "mean_ci"]


@dataclass(frozen=True)
class MeanCI:
    """A sample mean with a normal-approximation confidence interval (elementwise)."""

    mean: np.ndarray
    half_width: np.ndarray
    n: int
    level: float

    @property
    def low(self) -> np.ndarray:
        return self.mean - self.half_width

    @property
    def high(self) -> np.ndarray:
        return self.mean + self.half_width

    def contains(self, value) -> np.ndarray:
        """Elementwise: does the interval contain ``value``?"""
        return np.abs(np.asarray(value) - self.mean) <= self.half_width


def mean_ci(samples, level: float = 0.99) -> MeanCI:
    """Mean of ``samples`` along axis 0 with a ``level`` two-sided normal confidence interval.

    Half-width ``z * std / sqrt(n)`` with ``z`` the normal quantile (2.576 for 0.99). With
    several components, use a Bonferroni-corrected ``level`` if all must hold jointly.
    """
    x = as_float_array(samples, "samples")
    if x.ndim == 0 or x.shape[0] < 2:
        raise ValueError(f"samples must have at least 2 rows along axis 0, got shape {x.shape}")
    if not (0.0 < level < 1.0):
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    n = x.shape[0]
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    return MeanCI(x.mean(axis=0), z * x.std(axis=0, ddof=1) / np.sqrt(n), n, level)
