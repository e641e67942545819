"""Chapter 2: the policy gradient theorem, checked four independent ways.

theorem (exact eta and Q from linear solves)  =  central differences of the exact J
                                               =  torch autograd through the exact J
                                               =  sympy, symbolically (2 states, 2 actions)
and the sampled REINFORCE estimator converges to it (Monte Carlo, stated CI).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import GRADIENT_CASES, case, random_theta, relative_error
from pgbook import gradients as G
from pgbook import mdp as M
from pgbook import policies
from pgbook.montecarlo import mean_ci


def test_enough_cases():
    """The issue asks for >= 20 random MDPs with S <= 6, A <= 4, gamma in {0.5, 0.9, 0.99}."""
    assert len(GRADIENT_CASES) >= 20
    assert {c[2] for c in GRADIENT_CASES} == {0.5, 0.9, 0.99}
    assert max(c[0] for c in GRADIENT_CASES) <= 6 and max(c[1] for c in GRADIENT_CASES) <= 4


@pytest.mark.claim("eq-pg-visitation", "thm-policy-gradient", how="finite difference")
@pytest.mark.parametrize("S, A, gamma, seed", GRADIENT_CASES)
def test_theorem_equals_finite_differences(S, A, gamma, seed):
    """policy_gradient equals central differences of the exact J to <= 1e-7 relative error."""
    mdp, theta = case(S, A, gamma, seed)
    fd = G.finite_difference_gradient(lambda th: G.expected_return_of_theta(mdp, th), theta)
    assert relative_error(G.policy_gradient(mdp, theta), fd) <= 1e-7


@pytest.mark.claim("eq-pg-visitation", "thm-policy-gradient", how="autograd")
@pytest.mark.parametrize("S, A, gamma, seed", GRADIENT_CASES)
def test_theorem_equals_autograd(S, A, gamma, seed):
    """policy_gradient equals torch autograd through the differentiable exact J to <= 1e-10."""
    mdp, theta = case(S, A, gamma, seed)
    assert relative_error(G.policy_gradient(mdp, theta), G.autograd_policy_gradient(mdp, theta)) <= 1e-10


def test_a_wrong_weighting_fails_the_same_check():
    """Power: weighting states by the normalised d (missing 1/(1-gamma)) fails the check above."""
    mdp, theta = case(4, 3, 0.9, 3)
    pi = policies.probs(theta)
    wrong = np.einsum(
        "s,sa,saxy,sa->xy",
        M.discounted_state_distribution(mdp, pi),
        pi,
        policies.score(theta),
        M.action_values(mdp, pi),
    )
    assert relative_error(wrong, G.autograd_policy_gradient(mdp, theta)) > 0.5


@pytest.mark.claim("eq-pg-theorem", "rem-pg-no-discount", "err-pg-no-discount", how="enumeration")
@pytest.mark.parametrize("S, A, gamma, seed, H", [(2, 2, 0.9, 0, 4), (3, 2, 0.5, 1, 3), (2, 3, 0.99, 2, 3)])
def test_q_form_by_enumeration(S, A, gamma, seed, H):
    """E[sum_t gamma^t grad log pi(a_t|s_t) Q_t(s_t, a_t)] (all trajectories) = differences of J_H."""
    mdp, theta = case(S, A, gamma, seed)
    pi = policies.probs(theta)
    tr = M.enumerate_trajectories(mdp, pi, H)
    Q = M.finite_horizon_action_values(mdp, pi, H)
    weights = gamma ** np.arange(H) * Q[np.arange(H), tr.states, tr.actions]
    grad = np.einsum("n,nxy->xy", tr.prob, policies.weighted_score_sum(theta, tr.states, tr.actions, weights))
    fd = G.finite_difference_gradient(lambda th: M.finite_horizon_return(mdp, policies.probs(th), H), theta)
    assert relative_error(grad, fd) < 1e-7
    # The notes' PPO section drops gamma^t: that is not the gradient of J_H.
    no_discount = np.einsum(
        "n,nxy->xy",
        tr.prob,
        policies.weighted_score_sum(theta, tr.states, tr.actions, Q[np.arange(H), tr.states, tr.actions]),
    )
    if gamma < 0.99:
        assert relative_error(no_discount, fd) > 1e-2


@pytest.mark.claim("eq-pg-theorem", "thm-policy-gradient", how="Monte Carlo")
def test_reinforce_converges_to_exact_gradient():
    """REINFORCE mean over n = 40,000 episodes (seed 1): every entry in its 99.9% joint CI."""
    mdp, theta = case(3, 2, 0.8, 11)
    exact = G.policy_gradient(mdp, theta)
    grads = G.reinforce_gradients(mdp, theta, 40_000, horizon=150, seed=1)
    k = exact.size
    ci = mean_ci(grads.reshape(len(grads), -1), level=1 - 0.001 / k)  # Bonferroni over k entries
    assert np.all(ci.contains(exact.ravel())), (ci.mean, exact.ravel(), ci.half_width)
    # Power: the same interval excludes the gradient of a slightly different policy.
    other = G.policy_gradient(mdp, theta + 0.3 * random_theta(3, 2, 99))
    assert not np.all(ci.contains(other.ravel()))


@pytest.mark.claim("eq-pg-log-trick", how="Monte Carlo")
def test_full_return_estimator_is_unbiased_too():
    """The R(tau) sum_t grad log pi estimator (n = 40,000, seed 2) also covers the exact gradient."""
    mdp, theta = case(3, 2, 0.8, 11)
    exact = G.policy_gradient(mdp, theta)
    grads = G.reinforce_gradients(mdp, theta, 40_000, horizon=150, seed=2, estimator="full_return")
    ci = mean_ci(grads.reshape(len(grads), -1), level=1 - 0.001 / exact.size)
    assert np.all(ci.contains(exact.ravel()))


@pytest.mark.claim("thm-policy-gradient", how="sympy")
def test_sympy_two_state_theorem():
    """Symbolically (logits, rewards and gamma as symbols): dJ/dtheta - theorem cancels to 0."""
    from pgbook.symbolic import theorem_minus_derivative, two_state_mdp

    ex = two_state_mdp()
    for s in range(2):
        for a in range(2):
            assert theorem_minus_derivative(ex, s, a) == 0


def test_sympy_check_can_fail():
    """Power: the same symbolic comparison with Q replaced by r (dropping the future) is not 0."""
    import sympy as sp

    from pgbook.symbolic import two_state_mdp

    ex = two_state_mdp()
    derivative = ex.d_dtheta(ex.J, 0, 0)
    wrong = sum(
        ex.eta[s] * ex.pi[s, a] * ex.d_dtheta(sp.log(ex.pi[s, a]), 0, 0) * ex.r[s, a] for s in range(2) for a in range(2)
    )
    assert sp.cancel(sp.together(derivative - wrong)) != 0


def test_finite_difference_gradient_of_quadratic():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(G.finite_difference_gradient(lambda y: (y**2).sum(), x), 2 * x, atol=1e-8)
    jac = G.finite_difference_gradient(lambda y: y.ravel() ** 2, x)
    assert jac.shape == (4, 2, 2)


def test_bad_input():
    mdp = M.random_mdp(2, 2, 0.9, 0)
    with pytest.raises(ValueError, match="theta must have shape"):
        G.policy_gradient(mdp, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="theta contains NaN"):
        G.policy_gradient(mdp, np.array([[0.0, np.inf], [0, 0]]))
    with pytest.raises(ValueError, match="eps"):
        G.finite_difference_gradient(lambda y: 0.0, np.zeros(2), eps=0)
    with pytest.raises(ValueError, match="theta must be a torch.Tensor"):
        G.expected_return_torch(mdp, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="theta must have shape"):
        G.expected_return_torch(mdp, torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="estimator"):
        G.reinforce_gradients(mdp, np.zeros((2, 2)), 10, 5, 0, estimator="nope")
    with pytest.raises(ValueError, match="n_episodes"):
        G.reinforce_gradients(mdp, np.zeros((2, 2)), 0, 5, 0)


@pytest.mark.claim("rem-return-given-sa", "err-return-given-sa", how="enumeration")
def test_expected_return_given_state_action_is_not_q():
    """E[R(tau)|s_1,a_1] = E[r_0|s_1,a_1] + gamma Q_1(s_1,a_1) exactly, and differs from Q_1."""
    mdp, theta = case(2, 2, 0.9, 0)
    pi = policies.probs(theta)
    H = 4
    tr = M.enumerate_trajectories(mdp, pi, H)
    returns = tr.discounted_return(mdp.gamma)
    Q = M.finite_horizon_action_values(mdp, pi, H)
    for s in range(2):
        for a in range(2):
            mask = (tr.states[:, 1] == s) & (tr.actions[:, 1] == a)
            w = tr.prob[mask] / tr.prob[mask].sum()
            conditional = w @ returns[mask]
            assert abs(conditional - (w @ tr.rewards[mask, 0] + mdp.gamma * Q[1, s, a])) < 1e-12
            assert abs(conditional - Q[1, s, a]) > 0.1


@pytest.mark.parametrize("S, A, gamma, seed", GRADIENT_CASES[::4])
def test_exercise_softmax_form(S, A, gamma, seed):
    """Exercise ex-ch02-softmax-form: dJ/dtheta[s, a] = eta(s) pi(a|s) A(s, a) for the softmax policy."""
    mdp, theta = case(S, A, gamma, seed)
    pi = policies.probs(theta)
    simplified = M.discounted_visits(mdp, pi)[:, None] * pi * M.advantage_values(mdp, pi)
    assert relative_error(simplified, G.autograd_policy_gradient(mdp, theta)) < 1e-10
