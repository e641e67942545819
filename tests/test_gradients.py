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

from helpers import GRADIENT_CASES, assert_power, case, random_theta, relative_error
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
    """REINFORCE mean over n = 200,000 episodes of 60 steps (seed 1): every entry in its 99.9% joint CI; detects a 5% bias."""
    mdp, theta = case(3, 2, 0.8, 11)
    exact = G.policy_gradient(mdp, theta)
    grads = G.reinforce_gradients(mdp, theta, 200_000, horizon=60, seed=1)  # truncation: 0.8^60 < 2e-6
    k = exact.size
    ci = mean_ci(grads.reshape(len(grads), -1), level=1 - 0.001 / k)  # Bonferroni over k entries
    assert np.all(ci.contains(exact.ravel())), (ci.mean, exact.ravel(), ci.half_width)
    assert_power(ci, np.abs(exact).max())
    # the same interval excludes the gradient of a slightly different policy
    other = G.policy_gradient(mdp, theta + 0.3 * random_theta(3, 2, 99))
    assert not np.all(ci.contains(other.ravel()))


@pytest.mark.claim("eq-pg-log-trick", how="enumeration")
@pytest.mark.parametrize("estimator", ["reward_to_go", "full_return"])
@pytest.mark.parametrize("S, A, gamma, seed", [(2, 2, 0.9, 0), (3, 2, 0.8, 11), (2, 3, 0.5, 4)])
def test_reinforce_estimators_are_unbiased_exactly(estimator, S, A, gamma, seed):
    """Both REINFORCE estimators, averaged over every trajectory of horizon 4 with its probability, equal central differences of J_4."""
    mdp, theta = case(S, A, gamma, seed)
    H = 4
    tr = M.enumerate_trajectories(mdp, policies.probs(theta), H)
    est = G.reinforce_estimates(theta, tr.states, tr.actions, tr.rewards, gamma, estimator)
    mean = np.einsum("n,nxy->xy", tr.prob, est)
    fd = G.finite_difference_gradient(lambda th: M.finite_horizon_return(mdp, policies.probs(th), H), theta)
    assert relative_error(mean, fd) < 1e-7
    # a 5% biased estimator would fail by far
    assert relative_error(1.05 * mean, fd) > 1e-2


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
    """E[R(tau)|s_1,a_1] = E[r_0|s_1,a_1] + gamma Q^(3)(s_1,a_1) exactly, and differs from Q^(3)."""
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


# ---------------------------------------------------------------------------------------------
# The finite horizon and the truncation bound (lem-pg-finite-horizon, eq-pg-tail-bound)
# ---------------------------------------------------------------------------------------------

TAIL_CASES = [(2, 2, 0.9, 0), (3, 2, 0.5, 1), (4, 3, 0.99, 2), (3, 4, 0.9, 3)]


@pytest.mark.claim("lem-pg-finite-horizon", how="finite difference")
@pytest.mark.parametrize("S, A, gamma, seed", TAIL_CASES)
@pytest.mark.parametrize("H", [1, 3, 10])
def test_finite_horizon_lemma(S, A, gamma, seed, H):
    """sum_t gamma^t E[score_t Q^(H-t)] = central differences of the exact J_H (backward DP); Q^pi in its place is not."""
    mdp, theta = case(S, A, gamma, seed)
    lemma = G.finite_horizon_policy_gradient(mdp, theta, H)
    fd = G.finite_difference_gradient(lambda th: M.finite_horizon_return(mdp, policies.probs(th), H), theta)
    assert relative_error(lemma, fd) <= 1e-7
    # power: the infinite-horizon Q^pi in place of the truncated Q^(H-t) gives another vector
    pi = policies.probs(theta)
    P_pi, Q_inf, marginal, wrong = M.policy_transition_matrix(mdp, pi), M.action_values(mdp, pi), mdp.p0, 0.0
    for t in range(H):
        wrong = wrong + gamma**t * np.einsum("s,sa,saxy,sa->xy", marginal, pi, policies.score(theta), Q_inf)
        marginal = marginal @ P_pi
    assert relative_error(wrong, fd) > 1e-4  # 1000 times the tolerance above


@pytest.mark.claim("lem-pg-finite-horizon", how="autograd")
@pytest.mark.parametrize("S, A, gamma, seed", TAIL_CASES)
def test_finite_horizon_lemma_autograd(S, A, gamma, seed):
    """The lemma equals torch autograd through the exact J_H, and J_H in torch equals the numpy DP."""
    mdp, theta = case(S, A, gamma, seed)
    for H in (1, 4, 25):
        assert relative_error(G.finite_horizon_policy_gradient(mdp, theta, H), G.autograd_finite_horizon_gradient(mdp, theta, H)) <= 1e-10
        t = torch.tensor(theta, dtype=torch.float64)
        assert abs(float(G.finite_horizon_return_torch(mdp, t, H)) - M.finite_horizon_return(mdp, policies.probs(theta), H)) < 1e-12


@pytest.mark.claim("eq-pg-tail-bound", how="exact")
@pytest.mark.parametrize("S, A, gamma, seed", TAIL_CASES)
def test_gradient_tail_is_the_difference(S, A, gamma, seed):
    """gradient_tail = policy_gradient - finite_horizon_policy_gradient (exact, where the difference is resolvable)."""
    mdp, theta = case(S, A, gamma, seed)
    full = G.policy_gradient(mdp, theta)
    for H in (1, 2, 5, 8):
        tail = G.gradient_tail(mdp, theta, H)
        assert np.abs(tail - (full - G.finite_horizon_policy_gradient(mdp, theta, H))).max() < 1e-12 * np.abs(full).max()
        assert np.linalg.norm(tail) > 0


@pytest.mark.claim("eq-pg-tail-bound", "thm-policy-gradient", how="exact")
@pytest.mark.parametrize("S, A, gamma, seed", GRADIENT_CASES)
def test_tail_bound_holds_on_random_mdps(S, A, gamma, seed):
    """||grad J - grad J_H|| <= gamma^H Psi r_max (sqrt(H)/(1-gamma) + 1/(1-gamma)^2) <= (H+1) gamma^H Psi r_max / (1-gamma)^2."""
    mdp, theta = case(S, A, gamma, seed)
    psi, r_max = G.score_norm_max(theta), np.abs(mdp.R).max()
    for H in (1, 2, 5, 10, 20, 50, 200):
        err = np.linalg.norm(G.gradient_tail(mdp, theta, H))
        bound = G.gradient_tail_bound(gamma, H, r_max, psi)
        assert err <= bound
        assert bound <= (H + 1) * gamma**H * psi * r_max / (1 - gamma) ** 2 * (1 + 1e-12)


@pytest.mark.claim("rem-pg-tail-factor", "eq-pg-tail-bound", how="exact")
def test_bound_without_sqrt_h_fails():
    """Skip-cycle MDP: ||grad J - grad J_H|| exceeds gamma^H Psi r_max/(1-gamma)^2 (both exact computations); eq-pg-tail-bound holds."""
    mdp, theta = G.skip_cycle_mdp([1, -1, -1, 1], 0.1), np.zeros((4, 2))
    psi = G.score_norm_max(theta)
    assert abs(psi - 1 / np.sqrt(2)) < 1e-15
    H = 9
    direct = G.policy_gradient(mdp, theta) - G.finite_horizon_policy_gradient(mdp, theta, H)
    tail = G.gradient_tail(mdp, theta, H)
    assert np.linalg.norm(direct - tail) < 1e-4 * np.linalg.norm(tail)
    no_sqrt = 0.1**H * psi / (1 - 0.1) ** 2
    assert np.linalg.norm(direct) > 1.2 * no_sqrt and np.linalg.norm(tail) > 1.2 * no_sqrt
    assert np.linalg.norm(tail) < G.gradient_tail_bound(0.1, H, 1.0, psi)
    # with 8 states the ratio grows past 2, and the bound still holds
    mdp8, theta8 = G.skip_cycle_mdp([1, -1, -1, -1, -1, 1, 1, 1], 0.1), np.zeros((8, 2))
    ratios = [np.linalg.norm(G.gradient_tail(mdp8, theta8, h) / 0.1**h) / (psi / 0.81) for h in range(1, 101)]
    assert max(ratios) > 2
    for h, r in zip(range(1, 101), ratios):
        assert r * psi / 0.81 < G.gradient_tail_bound(0.1, h, 1.0, psi) / 0.1**h


@pytest.mark.claim("rem-pg-tail-factor", how="exact")
def test_tail_ratio_levels_off_on_a_mixing_mdp():
    """For one MDP with positive transitions, ||grad J - grad J_H|| / gamma^H converges, while the bound / gamma^H grows like sqrt(H)."""
    mdp = M.random_mdp(4, 3, 0.9, 3)
    theta = np.random.default_rng(4).standard_normal((4, 3))
    level = [np.linalg.norm(G.gradient_tail(mdp, theta, H)) / 0.9**H for H in (50, 100, 200, 400)]
    assert np.ptp(level) < 1e-9 * level[0]
    grow = [G.gradient_tail_bound(0.9, H, 1.0, 1.0) / 0.9**H for H in (50, 400)]
    assert grow[1] > 1.3 * grow[0]


def test_tail_functions_reject_bad_input():
    """finite-horizon, tail and bound functions raise ValueError naming the argument."""
    mdp = M.random_mdp(2, 2, 0.9, 0)
    theta = np.zeros((2, 2))
    with pytest.raises(ValueError, match="mdp"):
        G.finite_horizon_policy_gradient("mdp", theta, 2)
    with pytest.raises(ValueError, match="horizon"):
        G.finite_horizon_policy_gradient(mdp, theta, 0)
    with pytest.raises(ValueError, match="theta"):
        G.autograd_finite_horizon_gradient(mdp, np.zeros((3, 2)), 2)
    with pytest.raises(ValueError, match="theta must be a torch.Tensor"):
        G.finite_horizon_return_torch(mdp, theta, 2)
    with pytest.raises(ValueError, match="horizon"):
        G.gradient_tail(mdp, theta, 1.5)
    with pytest.raises(ValueError, match="theta"):
        G.score_norm_max(np.array([np.nan]))
    with pytest.raises(ValueError, match="gamma"):
        G.gradient_tail_bound(1.0, 3, 1.0, 1.0)
    with pytest.raises(ValueError, match="horizon"):
        G.gradient_tail_bound(0.9, 0, 1.0, 1.0)
    with pytest.raises(ValueError, match="r_max"):
        G.gradient_tail_bound(0.9, 3, -1.0, 1.0)
    with pytest.raises(ValueError, match="score_max"):
        G.gradient_tail_bound(0.9, 3, 1.0, float("nan"))
    with pytest.raises(ValueError, match="rewards"):
        G.skip_cycle_mdp([1, 2], 0.9)
    with pytest.raises(ValueError, match="gamma"):
        G.skip_cycle_mdp([1, 2, 3], -0.1)


@pytest.mark.claim("eq-pg-tail-bound", how="exact")
def test_gradient_tail_bound_is_the_stated_formula():
    """gradient_tail_bound against values worked by hand: gamma^H Psi r_max (sqrt(H)/(1-gamma) + 1/(1-gamma)^2)."""
    assert G.gradient_tail_bound(0.5, 4, 3.0, 2.0) == pytest.approx(0.0625 * 6.0 * (2.0 / 0.5 + 4.0), rel=1e-15)  # 3.0
    assert G.gradient_tail_bound(0.9, 9, 1.0, 1.0) == pytest.approx(0.9**9 * (3.0 / 0.1 + 100.0), rel=1e-13)
    assert G.gradient_tail_bound(0.5, 4, 3.0, 2.0) == pytest.approx(3.0, rel=1e-15)
