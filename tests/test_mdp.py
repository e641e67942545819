"""Unit and property tests of pgbook.mdp: the exact tabular engine (chapters 0–2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_power, random_theta
from pgbook import mdp as M
from pgbook import policies


def _policy(S, A, seed):
    return policies.probs(random_theta(S, A, seed))


small_cases = st.tuples(
    st.integers(1, 5), st.integers(1, 4), st.sampled_from([0.0, 0.3, 0.9, 0.99]), st.integers(0, 10_000)
)


@pytest.mark.claim("eq-bellman-v", how="property")
@settings(max_examples=40, deadline=None)
@given(small_cases)
def test_state_values_equal_truncated_series(c):
    """V from the linear solve equals the series sum_t gamma^t P_pi^t r_pi, summed forward."""
    S, A, gamma, seed = c
    mdp = M.random_mdp(S, A, gamma, seed)
    pi = _policy(S, A, seed)
    P_pi = M.policy_transition_matrix(mdp, pi)
    r_pi = (pi * mdp.R).sum(1)
    V_series, term = np.zeros(S), r_pi.copy()
    for _ in range(4000):
        V_series += term
        term = gamma * P_pi @ term
    V = M.state_values(mdp, pi)
    np.testing.assert_allclose(V, V_series, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(V, r_pi + gamma * P_pi @ V, rtol=1e-12, atol=1e-12)


@pytest.mark.claim("eq-q-from-v", "eq-advantage", how="property")
@settings(max_examples=40, deadline=None)
@given(small_cases)
def test_q_and_advantage(c):
    """Q = R + gamma P V satisfies V = sum_a pi Q, so E_{a~pi} A(s, a) = 0 in every state."""
    S, A, gamma, seed = c
    mdp = M.random_mdp(S, A, gamma, seed)
    pi = _policy(S, A, seed)
    V, Q, Adv = M.state_values(mdp, pi), M.action_values(mdp, pi), M.advantage_values(mdp, pi)
    np.testing.assert_allclose((pi * Q).sum(1), V, atol=1e-11)
    np.testing.assert_allclose(Adv, Q - V[:, None], atol=1e-12)
    np.testing.assert_allclose((pi * Adv).sum(1), 0.0, atol=1e-11)


@pytest.mark.claim("eq-visitation", how="property")
@settings(max_examples=40, deadline=None)
@given(small_cases)
def test_visitation_is_discounted_sum_of_state_marginals(c):
    """eta(s) = sum_t gamma^t Pr(s_t = s), computed by pushing the state distribution forward."""
    S, A, gamma, seed = c
    mdp = M.random_mdp(S, A, gamma, seed)
    pi = _policy(S, A, seed)
    P_pi = M.policy_transition_matrix(mdp, pi)
    marginal, eta = mdp.p0.copy(), np.zeros(S)
    for t in range(4000):
        eta += gamma**t * marginal
        marginal = marginal @ P_pi
    np.testing.assert_allclose(M.discounted_visits(mdp, pi), eta, rtol=1e-9, atol=1e-12)
    d = M.discounted_state_distribution(mdp, pi)
    assert abs(d.sum() - 1.0) < 1e-10 and np.all(d >= 0)
    np.testing.assert_allclose(d, (1 - gamma) * eta, rtol=1e-9, atol=1e-12)


@pytest.mark.claim("eq-objective", how="Monte Carlo")
def test_objective_matches_monte_carlo_returns():
    """J = p0 . V lies in the 99.9% CI of 40,000 sampled discounted returns (seed 0)."""
    from pgbook.montecarlo import mean_ci

    mdp = M.random_mdp(3, 2, 0.9, 7)
    pi = _policy(3, 2, 7)
    H = 250  # 0.9**250 * max|R| / (1 - 0.9) < 1e-10: truncation is far below the MC error
    _, _, rewards = M.sample_trajectories(mdp, pi, 40_000, H, seed=0)
    ci = mean_ci(rewards @ mdp.gamma ** np.arange(H), level=0.999)
    J = M.expected_return(mdp, pi)
    assert ci.contains(J), (J, ci.mean, ci.half_width)
    # the same interval rejects the value of a different policy: the check has power
    assert not ci.contains(M.expected_return(mdp, _policy(3, 2, 8)))
    assert ci.half_width < 0.05
    assert_power(ci, abs(J))  # detects a bias of 5% of J with probability 0.99


@pytest.mark.claim("eq-objective", how="exact")
def test_objective_is_limit_of_finite_horizon_objective():
    """J = p0 . V equals the finite-horizon J_H (backward DP, no linear solve) as H grows."""
    mdp = M.random_mdp(4, 3, 0.9, 3)
    pi = _policy(4, 3, 3)
    assert abs(M.finite_horizon_return(mdp, pi, 400) - M.expected_return(mdp, pi)) < 1e-12


def test_random_mdp_is_seeded_and_valid():
    a, b = M.random_mdp(3, 2, 0.9, 5), M.random_mdp(3, 2, 0.9, 5)
    np.testing.assert_array_equal(a.P, b.P)
    assert not np.array_equal(a.P, M.random_mdp(3, 2, 0.9, 6).P)
    assert a.n_states == 3 and a.n_actions == 2 and np.all(a.P > 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(P=np.ones((2, 2, 3)) / 3), "P must have shape"),
        (dict(P=np.full((2, 2, 2), 0.6)), "P must sum to 1"),
        (dict(P=np.array([[[1.5, -0.5]] * 2] * 2)), "P has negative"),
        (dict(R=np.zeros((2, 3))), "R must have shape"),
        (dict(R=np.array([[0.0, np.nan], [0, 0]])), "R contains NaN"),
        (dict(p0=np.array([0.5, 0.6])), "p0 must sum to 1"),
        (dict(p0=np.array([1.0])), "p0 must have shape"),
        (dict(gamma=1.0), "gamma must lie in"),
        (dict(gamma=-0.1), "gamma must lie in"),
        (dict(gamma=float("nan")), "gamma must lie in"),
    ],
)
def test_mdp_rejects_bad_input(kwargs, match):
    base = dict(P=np.full((2, 2, 2), 0.5), R=np.zeros((2, 2)), p0=np.array([0.5, 0.5]), gamma=0.9)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        M.MDP(**base)


def test_policy_validation():
    mdp = M.random_mdp(2, 3, 0.5, 0)
    with pytest.raises(ValueError, match="pi must have shape"):
        M.state_values(mdp, np.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match="pi must sum to 1"):
        M.action_values(mdp, np.full((2, 3), 0.3))
    with pytest.raises(ValueError, match="pi has negative"):
        M.expected_return(mdp, np.array([[1.2, -0.2, 0.0], [1, 0, 0]]))
    with pytest.raises(ValueError, match="pi contains NaN"):
        M.discounted_visits(mdp, np.array([[np.nan, 0.5, 0.5], [1, 0, 0]]))


def test_other_bad_input():
    mdp = M.random_mdp(2, 2, 0.5, 0)
    pi = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="n_states"):
        M.random_mdp(0, 2, 0.5, 0)
    with pytest.raises(ValueError, match="gamma"):
        M.random_mdp(2, 2, 1.5, 0)
    with pytest.raises(ValueError, match="seed"):
        M.random_mdp(2, 2, 0.5, 0.5)
    with pytest.raises(ValueError, match="horizon"):
        M.enumerate_trajectories(mdp, pi, 0)
    with pytest.raises(ValueError, match="max_trajectories"):
        M.enumerate_trajectories(mdp, pi, 30)
    with pytest.raises(ValueError, match="n_episodes"):
        M.sample_trajectories(mdp, pi, -1, 5, 0)
    with pytest.raises(ValueError, match="horizon"):
        M.finite_horizon_return(mdp, pi, 2.5)


def test_sampler_marginals_match_exact_state_distribution():
    """The vectorised sampler's state marginals at t = 3 lie in 99.9% CIs of the exact ones."""
    from pgbook.montecarlo import mean_ci

    mdp = M.random_mdp(3, 2, 0.9, 1)
    pi = _policy(3, 2, 1)
    states, actions, _ = M.sample_trajectories(mdp, pi, 50_000, 4, seed=3)
    P_pi = M.policy_transition_matrix(mdp, pi)
    exact = mdp.p0 @ np.linalg.matrix_power(P_pi, 3)
    ci = mean_ci(np.eye(3)[states[:, 3]], level=1 - 0.001 / 3)
    assert np.all(ci.contains(exact))
    ci_a = mean_ci(np.eye(2)[actions[states[:, 0] == 0, 0]], level=1 - 0.001 / 2)
    assert np.all(ci_a.contains(pi[0]))
