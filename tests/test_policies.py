"""Tests of pgbook.policies: the tabular softmax policy and its score (chapters 1–2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import random_theta
from pgbook import policies
from pgbook.gradients import finite_difference_gradient


@pytest.mark.claim("eq-softmax-score", how="finite difference")
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 10_000))
def test_score_matches_finite_differences(S, A, seed):
    """The analytic score equals central differences of log pi (the Jacobian, all (s, a))."""
    theta = random_theta(S, A, seed, scale=2.0)
    fd = finite_difference_gradient(policies.log_probs, theta)
    np.testing.assert_allclose(policies.score(theta), fd, atol=1e-9)


@pytest.mark.claim("eq-softmax-score", how="autograd")
def test_score_matches_autograd():
    """The analytic score equals torch autograd of Categorical(logits=theta).log_prob."""
    theta = random_theta(3, 4, 1, scale=3.0)
    t = torch.tensor(theta, requires_grad=True)
    jac = torch.autograd.functional.jacobian(
        lambda x: torch.stack(
            [torch.distributions.Categorical(logits=x).log_prob(torch.full((x.shape[0],), a)) for a in range(x.shape[1])],
            dim=1,
        ),
        t,
    )
    np.testing.assert_allclose(policies.score(theta), jac.numpy(), atol=1e-12)


def test_probs_are_stable_for_huge_logits():
    theta = np.array([[1000.0, 0.0, -1000.0], [5e300, 5e300, 0.0]])
    pi = policies.probs(theta)
    assert np.all(np.isfinite(pi))
    np.testing.assert_allclose(pi.sum(1), 1.0)
    np.testing.assert_allclose(pi[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(policies.log_probs(theta)[0, 1], -1000.0)


def test_weighted_score_sum_matches_dense_score():
    theta = random_theta(3, 2, 4)
    rng = np.random.default_rng(0)
    states, actions, w = rng.integers(0, 3, (5, 4)), rng.integers(0, 2, (5, 4)), rng.standard_normal((5, 4))
    dense = policies.score(theta)
    expected = np.einsum("nt,ntxy->nxy", w, dense[states, actions])
    np.testing.assert_allclose(policies.weighted_score_sum(theta, states, actions, w), expected, atol=1e-14)


def test_sample_actions_frequencies():
    """Sampled action frequencies lie in 99.9% CIs around pi (n = 100,000, seed 0)."""
    from pgbook.montecarlo import mean_ci

    theta = random_theta(2, 3, 2)
    a = policies.sample_actions(theta, np.zeros(100_000, dtype=int), seed=0)
    ci = mean_ci(np.eye(3)[a], level=1 - 0.001 / 3)
    assert np.all(ci.contains(policies.probs(theta)[0]))


def test_bad_input():
    with pytest.raises(ValueError, match="theta must have 2 dimension"):
        policies.probs(np.zeros(3))
    with pytest.raises(ValueError, match="theta contains NaN"):
        policies.score(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="theta must have shape"):
        policies.log_probs(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="states must be integers"):
        policies.sample_actions(np.zeros((2, 2)), np.array([0, 2]), seed=0)
    with pytest.raises(ValueError, match="same shape"):
        policies.weighted_score_sum(np.zeros((2, 2)), np.zeros((2, 3), int), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="actions must be integers"):
        policies.weighted_score_sum(np.zeros((2, 2)), np.zeros((1, 3), int), np.full((1, 3), 2))
    with pytest.raises(ValueError, match="weights must have shape"):
        policies.weighted_score_sum(np.zeros((2, 2)), np.zeros((1, 3), int), np.zeros((1, 3), int), np.ones((1, 2)))
