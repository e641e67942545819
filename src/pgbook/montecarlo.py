"""Monte Carlo checks with a stated confidence interval.

Used by every chapter that samples: a Monte Carlo check in this book always reports its sample
size, its seed and a confidence interval, and fails when the exact value lies outside it. It also
states its power: :meth:`MeanCI.detectable_bias` is the smallest bias of the sampled quantity that
the check would detect (the interval would exclude the exact value) with probability 0.99.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from ._validate import as_float_array, check_real

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
        """Elementwise: does the interval contain ``value``? (``value`` broadcasts against ``mean``.)"""
        v = as_float_array(value, "value")
        try:
            np.broadcast_shapes(v.shape, np.shape(self.mean))
        except ValueError:
            raise ValueError(f"value must broadcast against the mean's shape {np.shape(self.mean)}, got {v.shape}") from None
        return np.abs(v - self.mean) <= self.half_width

    def detectable_bias(self, power: float = 0.99) -> np.ndarray:
        """Elementwise: the smallest bias ``delta`` the check detects with probability ``power``.

        If the samples' mean were ``exact + delta``, the interval would miss ``exact`` when the
        sample mean lands more than ``half_width`` from it; with standard error ``se =
        half_width / z_level`` (normal approximation) that happens with probability at least
        ``power`` once ``|delta| >= half_width + z_power se``. So ``delta = half_width (1 +
        z_power / z_level)``, with ``z_power`` the one-sided normal quantile of ``power``.
        """
        power = check_real(power, "power", 0.5, 1.0, high_open=True)
        z_level = NormalDist().inv_cdf(0.5 + self.level / 2.0)
        return self.half_width * (1.0 + NormalDist().inv_cdf(power) / z_level)


def mean_ci(samples, level: float = 0.99) -> MeanCI:
    """Mean of ``samples`` along axis 0 with a ``level`` two-sided normal confidence interval.

    Half-width ``z * std / sqrt(n)`` with ``z`` the normal quantile (2.576 for 0.99). With
    several components, use a Bonferroni-corrected ``level`` if all must hold jointly.
    """
    x = as_float_array(samples, "samples")
    if x.ndim == 0 or x.shape[0] < 2:
        raise ValueError(f"samples must have at least 2 rows along axis 0, got shape {x.shape}")
    level = check_real(level, "level", 0.0, 1.0, low_open=True, high_open=True)
    n = x.shape[0]
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    return MeanCI(x.mean(axis=0), z * x.std(axis=0, ddof=1) / np.sqrt(n), n, level)
