"""Chapter 1: trajectory probabilities and the log-derivative trick, by exhaustive enumeration.

Every expectation here is an exact finite sum over all (S*A)^H trajectories of a tiny MDP; the
gradients are compared with central finite differences of the exactly enumerated objective.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import random_theta, relative_error
from pgbook import mdp as M
from pgbook import policies
from pgbook.gradients import finite_difference_gradient

CASES = [(2, 2, 0.9, 0, 4), (3, 2, 0.5, 1, 3), (2, 3, 0.99, 2, 3), (1, 3, 0.7, 3, 4)]


def _traj(mdp, theta, H):
    return M.enumerate_trajectories(mdp, policies.probs(theta), H)


@pytest.mark.claim("eq-traj-prob", how="enumeration")
@pytest.mark.parametrize("S, A, gamma, seed, H", CASES)
def test_trajectory_probabilities_sum_to_one_and_give_J(S, A, gamma, seed, H):
    """Enumerated p(tau) sum to 1, and sum_tau p(tau) R(tau) equals J_H from backward DP."""
    mdp, theta = M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed)
    tr = _traj(mdp, theta, H)
    assert len(tr.prob) == (S * A) ** H
    assert abs(tr.prob.sum() - 1.0) < 1e-12
    J_enum = tr.prob @ tr.discounted_return(gamma)
    assert abs(J_enum - M.finite_horizon_return(mdp, policies.probs(theta), H)) < 1e-12
    # the marginal of s_1 is p0 P_pi: the product is the Markov chain's law
    pi = policies.probs(theta)
    marg = np.bincount(tr.states[:, 1], weights=tr.prob, minlength=S)
    np.testing.assert_allclose(marg, mdp.p0 @ M.policy_transition_matrix(mdp, pi), atol=1e-13)


@pytest.mark.claim("eq-log-traj-split", how="finite difference")
@pytest.mark.parametrize("S, A, gamma, seed, H", CASES)
def test_log_probability_splits_and_dynamics_part_is_constant(S, A, gamma, seed, H):
    """log p = log p0 + sum log pi + sum log P, and the dynamics part has zero theta-derivative."""
    mdp, theta = M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed)
    tr = _traj(mdp, theta, H)
    np.testing.assert_allclose(tr.log_policy + tr.log_dynamics, np.log(tr.prob), atol=1e-12)
    d_dyn = finite_difference_gradient(lambda th: _traj(mdp, th, H).log_dynamics, theta)
    assert np.max(np.abs(d_dyn)) == 0.0


@pytest.mark.claim("eq-grad-log-traj", how="finite difference")
@pytest.mark.parametrize("S, A, gamma, seed, H", CASES)
def test_grad_log_trajectory_is_sum_of_scores(S, A, gamma, seed, H):
    """grad log p(tau; theta) (central differences) equals sum_t grad log pi(a_t|s_t) for every tau."""
    mdp, theta = M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed)
    tr = _traj(mdp, theta, H)
    fd = finite_difference_gradient(lambda th: np.log(_traj(mdp, th, H).prob), theta)
    scores = policies.weighted_score_sum(theta, tr.states, tr.actions)
    np.testing.assert_allclose(scores, fd, atol=1e-8)


@pytest.mark.claim("eq-log-derivative-trick", how="finite difference")
def test_log_derivative_trick():
    """grad p(tau) = p(tau) grad log p(tau) for every trajectory: differences of the enumerated p(tau) against p(tau) times the policy's score sum."""
    mdp, theta = M.random_mdp(2, 2, 0.9, 5), random_theta(2, 2, 5)
    tr = _traj(mdp, theta, 3)
    d_p = finite_difference_gradient(lambda th: _traj(mdp, th, 3).prob, theta)
    # grad log p(tau) from the policy alone (eq-grad-log-traj), not from differences of log p: the
    # identity f' = f (log f)' holds for any positive f, so only an independent grad log p tests p
    grad_log_p = policies.weighted_score_sum(theta, tr.states, tr.actions)
    np.testing.assert_allclose(d_p, tr.prob[:, None, None] * grad_log_p, atol=1e-10)


@pytest.mark.claim("eq-pg-log-trick", how="enumeration")
@pytest.mark.parametrize("S, A, gamma, seed, H", CASES)
def test_gradient_is_expected_return_times_score(S, A, gamma, seed, H):
    """sum_tau p R sum_t grad log pi equals central differences of the exact J_H (rel. 1e-7)."""
    mdp, theta = M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed)
    tr = _traj(mdp, theta, H)
    scores = policies.weighted_score_sum(theta, tr.states, tr.actions)
    grad_enum = np.einsum("n,n,nxy->xy", tr.prob, tr.discounted_return(gamma), scores)
    fd = finite_difference_gradient(lambda th: M.finite_horizon_return(mdp, policies.probs(th), H), theta)
    assert relative_error(grad_enum, fd) < 1e-7
    # Power: dropping the dynamics would not matter, but dropping the weight R(tau) would.
    wrong = np.einsum("n,nxy->xy", tr.prob, scores)
    assert relative_error(wrong, fd) > 0.1


@pytest.mark.claim("eq-traj-ratio", how="enumeration")
@pytest.mark.parametrize("S, A, gamma, seed, H", CASES)
def test_trajectory_ratio_is_product_of_policy_ratios(S, A, gamma, seed, H):
    """p(tau; theta) / p(tau; theta_old) equals prod_t pi_theta / pi_old: dynamics cancel."""
    mdp = M.random_mdp(S, A, gamma, seed)
    theta, theta_old = random_theta(S, A, seed), random_theta(S, A, seed + 100)
    new, old = _traj(mdp, theta, H), _traj(mdp, theta_old, H)
    pi, pi_old = policies.probs(theta), policies.probs(theta_old)
    product = np.prod(pi[new.states, new.actions] / pi_old[new.states, new.actions], axis=1)
    np.testing.assert_allclose(new.prob / old.prob, product, rtol=1e-12)


@pytest.mark.parametrize("S, A, gamma, seed", [(2, 2, 0.9, 0), (3, 2, 0.5, 1), (4, 3, 0.99, 2)])
def test_exercise_horizon_bound(S, A, gamma, seed):
    """Exercise ex-ch01-horizon: |J - J_H| <= gamma^H max|r| / (1 - gamma), and it is not slack by 1e6."""
    mdp, theta = M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed)
    pi = policies.probs(theta)
    J = M.expected_return(mdp, pi)
    for H in (1, 5, 20, 60):
        bound = gamma**H * np.max(np.abs(mdp.R)) / (1 - gamma)
        err = abs(J - M.finite_horizon_return(mdp, pi, H))
        assert err <= bound + 1e-12
        if H == 1:
            assert err > 1e-6 * bound


@pytest.mark.claim("err-traj-product-index", how="enumeration")
def test_notes_product_is_the_law_of_a_longer_sequence():
    """The notes' prod_{t=0}^{T} pi P(s_{t+1}|.) is the law of (tau, a_T, s_{T+1}); summed out it is p(tau)."""
    mdp, theta = M.random_mdp(2, 2, 0.9, 0), random_theta(2, 2, 0)
    pi = policies.probs(theta)
    T = 2  # the notes' tau = (s_0, a_0, s_1, a_1, s_2)
    full = M.enumerate_trajectories(mdp, pi, T + 1)  # (s_0, a_0, ..., s_T, a_T)
    s, a = full.states, full.actions
    # the notes' literal product, one column per value of the extra s_{T+1}
    literal = full.prob[:, None] * mdp.P[s[:, T], a[:, T], :]
    assert abs(literal.sum() - 1.0) < 1e-12  # a distribution over the LONGER sequence
    # summing out (a_T, s_{T+1}) leaves the law of tau = (s_0, a_0, ..., s_T)
    law_of_tau: dict = {}
    for row, mass in zip(np.concatenate([s, a[:, :T]], axis=1), literal.sum(axis=1)):
        key = tuple(row)
        law_of_tau[key] = law_of_tau.get(key, 0.0) + mass
    prefix = M.enumerate_trajectories(mdp, pi, T)  # (s_0, a_0, ..., s_{T-1}, a_{T-1})
    for row, mass in zip(np.concatenate([s, a[:, :T]], axis=1), literal.sum(axis=1)):
        pre = np.all(prefix.states == row[:T], axis=1) & np.all(prefix.actions == row[T + 1 :], axis=1)
        expected = prefix.prob[pre][0] * mdp.P[row[T - 1], row[-1], row[T]]
        assert abs(law_of_tau[tuple(row)] - expected) < 1e-14
    # and the literal product for a single tau is strictly smaller than p(tau): it is not p(tau)
    assert np.all(literal.max(axis=1) < full.prob)


@pytest.mark.claim("err-infinite-product", how="enumeration")
def test_every_single_infinite_trajectory_has_probability_zero():
    """max_tau p(tau) over horizon-H prefixes decays geometrically: an infinite product is 0 for each tau."""
    mdp, theta = M.random_mdp(2, 2, 0.9, 1), random_theta(2, 2, 1)
    pi = policies.probs(theta)
    largest = [M.enumerate_trajectories(mdp, pi, H).prob.max() for H in range(1, 8)]
    ratios = np.array(largest[1:]) / np.array(largest[:-1])
    assert np.all(ratios < 1.0) and largest[-1] < 0.05
    bound = np.max(pi) * np.max(mdp.P)  # each extra step multiplies by at most max pi * max P
    assert np.all(ratios <= bound + 1e-12) and bound < 1
