"""pgbook.montecarlo: the confidence interval's coverage and the power it states (all chapters)."""

from __future__ import annotations

import numpy as np
import pytest

from pgbook.montecarlo import mean_ci


def _exclusion_rate(bias, n=200, repeats=4000, seed=0):
    """Share of ``repeats`` samples of N(bias, 1) whose 99% interval (mean_ci) excludes 0."""
    x = np.random.default_rng(seed).standard_normal((repeats, n)) + bias
    return float(np.mean([not mean_ci(row, level=0.99).contains(0.0) for row in x]))


def test_detectable_bias_is_detected_with_the_stated_power():
    """A bias of detectable_bias() is caught (CI excludes the truth) in >= 98.5% of 4000 repeats; half of it in far fewer."""
    x = np.random.default_rng(1).standard_normal(200)
    x = (x - x.mean()) / x.std(ddof=1)  # sample std exactly 1, as the repeats below have on average
    delta = float(mean_ci(x, level=0.99).detectable_bias(0.99))
    assert delta * np.sqrt(200) == pytest.approx(2.5758293 + 2.3263479)  # (z_0.995 + z_0.99) standard errors
    assert _exclusion_rate(delta) >= 0.985
    assert _exclusion_rate(delta / 2) < 0.6  # so it is the smallest such bias, not a loose upper bound


def test_coverage_of_the_interval():
    """Without bias the 99% interval contains the truth in about 99% of 4000 repeats."""
    assert 0.985 <= 1 - _exclusion_rate(0.0) <= 0.995


@pytest.mark.parametrize("power", [0.4, 1.0, 1.5])
def test_detectable_bias_rejects_a_bad_power(power):
    ci = mean_ci(np.zeros((3, 1)) + [[0.0], [1.0], [2.0]])
    with pytest.raises(ValueError, match="power"):
        ci.detectable_bias(power)
