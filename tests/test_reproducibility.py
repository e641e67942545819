"""Tests of pgbook.reproducibility.bound: the printed bound of a round-off-level error (all chapters)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgbook.reproducibility import bound


def test_bound_prints_the_tolerance_not_the_digits():
    """Any error below the tolerance prints the same text; the sign does not matter."""
    assert bound(3.7e-15, 1e-12) == bound(-9.9e-13, 1e-12) == bound(0.0, 1e-12) == "< 1e-12"
    assert bound(np.float32(2e-7), 1e-5) == bound(torch.tensor(-2e-7), 1e-5) == "< 1e-5"


@pytest.mark.parametrize("error", [1e-12, 2e-12, 0.05, math.inf, math.nan])
def test_bound_fails_when_the_error_is_not_below(error):
    """An error at or above the bound, or NaN, raises AssertionError with the value."""
    with pytest.raises(AssertionError, match="not below 1e-12"):
        bound(error, 1e-12)


@pytest.mark.parametrize("tol", [0, -1e-12, math.inf, math.nan, True, "1e-12", 2.5e-7, 1.5e-12])
def test_bound_rejects_a_bad_tolerance(tol):
    with pytest.raises(ValueError, match="tol"):
        bound(0.0, tol)
