"""Tests of pgbook.baselines: reward-to-go and baselines (chapter 4), all exact by enumeration."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import random_theta
from pgbook import baselines as B
from pgbook import gradients, policies
from pgbook import mdp as M

#: (S, A, H, gamma, seed): small enough to enumerate all (S A)^H trajectories quickly.
CASES = [(2, 2, 3, 0.9, 0), (3, 2, 3, 0.5, 1), (2, 3, 3, 0.99, 2), (3, 2, 4, 0.9, 3), (1, 3, 3, 0.7, 4)]

small = st.tuples(
    st.integers(1, 3), st.integers(2, 3), st.integers(1, 3), st.sampled_from([0.0, 0.5, 0.9, 0.99]), st.integers(0, 10_000)
)


def _case(S, A, gamma, seed):
    return M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed)


def _grad_JH(mdp, theta, H):
    """Central differences of the exact finite-horizon return (backward DP, no enumeration)."""
    return gradients.finite_difference_gradient(lambda th: M.finite_horizon_return(mdp, policies.probs(th), H), theta)


def _golden_min(f, lo, hi, iters=200):
    """Golden-section minimisation of a unimodal scalar function on [lo, hi]."""
    r = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - r * (b - a), a + r * (b - a)
    for _ in range(iters):
        if f(c) < f(d):
            b = d
        else:
            a = c
        c, d = b - r * (b - a), a + r * (b - a)
    return (a + b) / 2


# ---------------------------------------------------------------------------------------------
# Causality and the reward-to-go estimator
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-rtg-causality", how="enumeration")
@pytest.mark.parametrize("S,A,H,gamma,seed", CASES)
def test_past_rewards_do_not_correlate_with_later_scores(S, A, H, gamma, seed):
    """E[gamma^l r_l grad log pi(a_t|s_t)] = 0 for every l < t, and is not 0 for l >= t (exact)."""
    mdp, theta = _case(S, A, gamma, seed)
    C = B.reward_score_correlations(mdp, theta, H)
    norms = np.linalg.norm(C.reshape(H, H, -1), axis=2)
    past = np.tril(np.ones((H, H), bool), -1).T  # [l, t] with l < t
    assert norms[past].max(initial=0.0) < 1e-14
    assert norms[~past].max() > 1e-3
    # The full-return mean is the sum of all C[l, t] and equals grad J_H.
    np.testing.assert_allclose(C.sum(axis=(0, 1)), _grad_JH(mdp, theta, H), atol=1e-9)


@pytest.mark.claim("err-causality-argument", "rem-rtg-dependence", how="enumeration")
def test_past_rewards_depend_on_later_actions_yet_scores_have_zero_conditional_mean():
    """r_0 and a_1 are dependent (Cov(r_0, 1[a_1=k]) != 0), while E[score_1 | s_0, a_0, s_1] = 0 for every history."""
    mdp = B.payback_mdp(1.0, 0.9)  # r_0 = +-1 decides s_1, and the policy differs between s_1 = 1 and 2
    theta = np.array([[0.0, 0.0], [2.0, -2.0], [-2.0, 2.0]])
    pi = policies.probs(theta)
    traj = M.enumerate_trajectories(mdp, pi, 2)
    r0 = traj.rewards[:, 0]
    a1_is_0 = (traj.actions[:, 1] == 0).astype(float)
    cov = traj.prob @ (r0 * a1_is_0) - (traj.prob @ r0) * (traj.prob @ a1_is_0)
    assert abs(cov) > 0.1
    scores = policies.score(theta)[traj.states[:, 1], traj.actions[:, 1]].reshape(len(traj.prob), -1)
    hist = traj.states[:, 0] * 100 + traj.actions[:, 0] * 10 + traj.states[:, 1]
    for h in np.unique(hist):
        sel = hist == h
        if traj.prob[sel].sum() == 0:  # an impossible history (deterministic transitions)
            continue
        cond = traj.prob[sel] @ scores[sel] / traj.prob[sel].sum()
        assert np.abs(cond).max() < 1e-14


@pytest.mark.claim("eq-rtg-same-mean", "eq-advantage-form", how="finite difference")
@pytest.mark.parametrize("S,A,H,gamma,seed", CASES)
def test_estimators_have_the_same_mean(S, A, H, gamma, seed):
    """Full return, reward-to-go and exact-advantage estimators all average (exactly) to grad J_H."""
    mdp, theta = _case(S, A, gamma, seed)
    grad = _grad_JH(mdp, theta, H)
    for est in ("full_return", "reward_to_go", "advantage"):
        np.testing.assert_allclose(B.estimator_moments(mdp, theta, H, est).mean, grad, atol=1e-9)


@pytest.mark.claim("err-pg-no-discount", "eq-rtg-same-mean", how="exact")
@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_reward_to_go_without_discount_weights_is_not_the_gradient(gamma):
    """The notes' literal sum_t grad log pi * R_t (no gamma^t) has a mean different from grad J_H when gamma < 1."""
    mdp, theta = _case(3, 2, gamma, 3)
    grad = _grad_JH(mdp, theta, 3)
    wrong = B.estimator_moments(mdp, theta, 3, "reward_to_go_no_discount").mean
    assert np.abs(wrong - grad).max() > 1e-3


@pytest.mark.claim("eq-rtg-same-mean", how="exact")
def test_enumerated_mean_matches_autograd_of_the_exact_return():
    """For a long horizon the reward-to-go mean approaches the infinite-horizon autograd gradient (tail <= gamma^H bound)."""
    mdp, theta = _case(2, 2, 0.5, 0)
    H = 8
    mean = B.estimator_moments(mdp, theta, H, "reward_to_go").mean
    full = gradients.autograd_policy_gradient(mdp, theta)
    # |grad J - grad J_H| is bounded by the gradient of the ignored tail, O(H gamma^H max|R| / (1-gamma)^2)
    tail = (H + 1) * mdp.gamma**H * np.abs(mdp.R).max() / (1 - mdp.gamma) ** 2 * 2
    assert np.abs(mean - full).max() < tail
    assert np.abs(B.estimator_moments(mdp, theta, 2, "reward_to_go").mean - full).max() > np.abs(mean - full).max()


# ---------------------------------------------------------------------------------------------
# Variance of reward-to-go
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("err-variance-reduction", "prop-rtg-variance", how="enumeration")
@pytest.mark.parametrize("S,A,H,gamma,seed", CASES)
def test_variance_difference_decomposition(S, A, H, gamma, seed):
    """Var_full - Var_rtg = E||g_past||^2 + 2 E<g_rtg, g_past> with g_past = g_full - g_rtg, E g_past = 0."""
    mdp, theta = _case(S, A, gamma, seed)
    prob, g_full = B.estimator_samples(mdp, theta, H, "full_return")
    _, g_rtg = B.estimator_samples(mdp, theta, H, "reward_to_go")
    past = (g_full - g_rtg).reshape(len(prob), -1)
    rtg = g_rtg.reshape(len(prob), -1)
    assert np.abs(prob @ past).max() < 1e-13
    rhs = prob @ (past**2).sum(1) + 2 * prob @ (rtg * past).sum(1)
    lhs = B.estimator_moments(mdp, theta, H, "full_return").variance - B.estimator_moments(mdp, theta, H, "reward_to_go").variance
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


@pytest.mark.claim("err-variance-reduction", "prop-rtg-variance", how="exact")
@pytest.mark.parametrize("rho,gamma", [(1.0, 0.9), (1.0, 0.3), (0.5, 0.99), (2.0, 0.5), (-1.0, 0.9)])
@pytest.mark.parametrize("seed", [0, 1])
def test_payback_mdp_closed_form(rho, gamma, seed):
    """In the payback MDP (H = 2), Var_full - Var_rtg = (1 - 2 gamma kappa) E||grad log pi(a_1|s_1)||^2 exactly."""
    mdp = B.payback_mdp(rho, gamma)
    theta = random_theta(3, 2, seed)
    pi = policies.probs(theta)
    diff = B.estimator_moments(mdp, theta, 2, "full_return").variance - B.estimator_moments(mdp, theta, 2, "reward_to_go").variance
    e_w1 = sum(pi[0, a] * (pi[1 + a] * B.score_sq_norms(theta)[1 + a]).sum() for a in range(2))
    np.testing.assert_allclose(diff, (1 - 2 * gamma * rho) * e_w1, rtol=1e-10)
    assert (diff < 0) == (gamma * rho > 0.5)


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-baseline-unbiased", how="property")
@settings(max_examples=25, deadline=None)
@given(small)
def test_any_state_baseline_leaves_the_mean_unchanged(c):
    """For random b(s) and b_t(s) the reward-to-go estimator's exact mean is still grad J_H."""
    S, A, H, gamma, seed = c
    mdp, theta = _case(S, A, gamma, seed)
    rng = np.random.default_rng(seed)
    grad = B.estimator_moments(mdp, theta, H, "reward_to_go").mean
    np.testing.assert_allclose(grad, _grad_JH(mdp, theta, H), atol=1e-9)
    for b in (5 * rng.standard_normal(S), 5 * rng.standard_normal((H, S))):
        np.testing.assert_allclose(B.estimator_moments(mdp, theta, H, "reward_to_go", b).mean, grad, atol=1e-12)


@pytest.mark.claim("eq-baseline-unbiased", how="exact")
def test_action_dependent_baseline_in_a_trajectory_is_biased():
    """Counter-check: subtracting b(s_t, a_t) instead of b(s_t) moves the enumerated mean away from grad J_H."""
    mdp, theta = _case(3, 2, 0.9, 3)
    H = 3
    pi = policies.probs(theta)
    traj = M.enumerate_trajectories(mdp, pi, H)
    scores = policies.score(theta)[traj.states, traj.actions]
    G = B.reward_to_go(traj.rewards, mdp.gamma)
    b = np.random.default_rng(0).standard_normal((3, 2))
    w = mdp.gamma ** np.arange(H) * (G - b[traj.states, traj.actions])
    mean = np.einsum("n,nt,ntxy->xy", traj.prob, w, scores)
    assert np.abs(mean - _grad_JH(mdp, theta, H)).max() > 1e-3


def _brute_state_variance(theta, Q, s, b):
    """tr Cov of the vectors score[s, a] (Q[s, a] - b), a ~ pi(.|s), from the explicit vectors."""
    pi = policies.probs(theta)
    g = policies.score(theta)[s] * (Q[s] - b)[:, None, None]
    mean = np.einsum("a,axy->xy", pi[s], g)
    return float(np.einsum("a,axy->", pi[s], (g - mean) ** 2))


@pytest.mark.claim("err-optimal-baseline", "thm-optimal-baseline", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", [(3, 2, 0.9, 0), (4, 3, 0.5, 1), (5, 4, 0.99, 2), (2, 5, 0.9, 3)])
def test_optimal_baseline_minimises_the_exact_variance(S, A, gamma, seed):
    """b* from the formula equals the golden-section minimiser of the brute-force variance, state by state."""
    mdp, theta = _case(S, A, gamma, seed)
    Q = M.action_values(mdp, policies.probs(theta))
    b_star = B.optimal_baseline(mdp, theta)
    for s in range(S):
        lo, hi = Q[s].min() - 1, Q[s].max() + 1
        b_num = _golden_min(lambda b: _brute_state_variance(theta, Q, s, b), lo, hi)
        assert abs(b_num - b_star[s]) < 1e-6 * max(1.0, abs(b_star[s]))
    # The vectorised variance agrees with the brute-force one.
    b = np.random.default_rng(seed).standard_normal(S)
    got = B.state_estimator_variance(mdp, theta, b)
    want = [_brute_state_variance(theta, Q, s, b[s]) for s in range(S)]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.claim("thm-optimal-baseline", how="property")
@settings(max_examples=30, deadline=None)
@given(st.tuples(st.integers(1, 5), st.integers(2, 4), st.sampled_from([0.5, 0.9, 0.99]), st.integers(0, 10_000)))
def test_variance_is_the_quadratic_around_the_optimum(c):
    """Var_s(b) = Var_s(b*) + E_a||grad log pi||^2 (b - b*)^2 for random b: V is optimal only if it equals b*."""
    S, A, gamma, seed = c
    mdp, theta = _case(S, A, gamma, seed)
    pi = policies.probs(theta)
    b_star = B.optimal_baseline(mdp, theta)
    Ew = (pi * B.score_sq_norms(theta)).sum(1)
    b = b_star + np.random.default_rng(seed).standard_normal(S)
    np.testing.assert_allclose(
        B.state_estimator_variance(mdp, theta, b),
        B.state_estimator_variance(mdp, theta, b_star) + Ew * (b - b_star) ** 2,
        rtol=1e-9,
        atol=1e-11,
    )
    V = M.state_values(mdp, pi)
    excess = B.state_estimator_variance(mdp, theta, V) - B.state_estimator_variance(mdp, theta, b_star)
    assert np.all(excess >= -1e-11)
    np.testing.assert_allclose(excess, Ew * (V - b_star) ** 2, rtol=1e-8, atol=1e-11)


@pytest.mark.claim("eq-optimal-baseline-gap", how="property")
@settings(max_examples=30, deadline=None)
@given(st.tuples(st.integers(1, 5), st.integers(2, 4), st.sampled_from([0.5, 0.9, 0.99]), st.integers(0, 10_000)))
def test_gap_between_optimal_baseline_and_value(c):
    """b*(s) - V(s) = Cov_pi(w, A) / E_pi[w] with w = ||grad log pi||^2; zero for the uniform policy."""
    S, A, gamma, seed = c
    mdp, theta = _case(S, A, gamma, seed)
    pi = policies.probs(theta)
    w = B.score_sq_norms(theta)
    Adv = M.advantage_values(mdp, pi)
    Ew = (pi * w).sum(1)
    cov = (pi * w * Adv).sum(1) - Ew * (pi * Adv).sum(1)
    gap = B.optimal_baseline(mdp, theta) - M.state_values(mdp, pi)
    np.testing.assert_allclose(gap, cov / Ew, rtol=1e-9, atol=1e-11)
    uniform = np.zeros((S, A))
    np.testing.assert_allclose(
        B.optimal_baseline(mdp, uniform), M.state_values(mdp, policies.probs(uniform)), rtol=1e-12, atol=1e-12
    )


@pytest.mark.claim("cor-optimal-baseline-two-actions", how="property")
@settings(max_examples=30, deadline=None)
@given(st.tuples(st.integers(1, 5), st.sampled_from([0.5, 0.9, 0.99]), st.integers(0, 10_000), st.sampled_from([0.3, 1.0, 3.0])))
def test_two_actions_optimal_baseline_swaps_the_weights(c):
    """With two actions b*(s) = pi(2|s) Q(s,1) + pi(1|s) Q(s,2) and the per-state variance at b* is zero."""
    S, gamma, seed, scale = c
    mdp = M.random_mdp(S, 2, gamma, seed)
    theta = random_theta(S, 2, seed, scale)
    pi = policies.probs(theta)
    Q = M.action_values(mdp, pi)
    b_star = B.optimal_baseline(mdp, theta)
    np.testing.assert_allclose(b_star, pi[:, 1] * Q[:, 0] + pi[:, 0] * Q[:, 1], rtol=1e-10, atol=1e-12)
    var0 = B.state_estimator_variance(mdp, theta, np.zeros(S))
    assert np.all(np.abs(B.state_estimator_variance(mdp, theta, b_star)) <= 1e-10 * (1 + var0))
    V = M.state_values(mdp, pi)
    # V weights Q by pi itself: V - b* = (pi_1 - pi_2)(Q_1 - Q_2), leaving 2 pi_1 pi_2 (V - b*)^2.
    np.testing.assert_allclose(V - b_star, (pi[:, 0] - pi[:, 1]) * (Q[:, 0] - Q[:, 1]), atol=1e-11)
    np.testing.assert_allclose(
        B.state_estimator_variance(mdp, theta, V), 2 * pi[:, 0] * pi[:, 1] * (V - b_star) ** 2, rtol=1e-7, atol=1e-11
    )


@pytest.mark.claim("err-optimal-baseline", "eq-optimal-baseline-gap", how="exact")
def test_value_is_not_the_optimal_baseline_on_random_mdps():
    """On 20 random MDPs with non-uniform policies, b* differs from V in every case and V leaves more variance."""
    for seed in range(20):
        mdp, theta = _case(3, 3, 0.9, seed)
        V = M.state_values(mdp, policies.probs(theta))
        b_star = B.optimal_baseline(mdp, theta)
        assert np.abs(b_star - V).max() > 1e-3
        assert np.all(B.state_estimator_variance(mdp, theta, V) >= B.state_estimator_variance(mdp, theta, b_star))


@pytest.mark.claim("rem-trajectory-baseline", how="finite difference")
@pytest.mark.parametrize("time_dependent", [True, False])
def test_trajectory_optimal_baseline_is_a_minimum(time_dependent):
    """The least-squares b minimises the enumerated trajectory variance: zero gradient (central differences), and it is not V_t."""
    mdp, theta = _case(3, 2, 0.9, 0)
    H = 3
    b = B.trajectory_optimal_baseline(mdp, theta, H, time_dependent=time_dependent)

    def var(x):
        return B.estimator_moments(mdp, theta, H, "reward_to_go", x).variance

    fd = gradients.finite_difference_gradient(var, b, eps=1e-4)
    assert np.abs(fd).max() < 1e-7
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert var(b + 0.1 * rng.standard_normal(b.shape)) > var(b)
    V, _ = B.finite_horizon_values(mdp, policies.probs(theta), H)
    assert var(V if time_dependent else V[0]) > var(b) + 1e-3


# ---------------------------------------------------------------------------------------------
# Advantage form
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("err-advantage-definition", "eq-advantage-one-sample", how="enumeration")
@pytest.mark.parametrize("S,A,H,gamma,seed", CASES)
def test_return_minus_value_is_a_one_sample_advantage_estimate(S, A, H, gamma, seed):
    """E[G_t - V_t(s_t) | s_t, a_t] = A_t(s_t, a_t) exactly, while its conditional variance is positive."""
    mdp, theta = _case(S, A, gamma, seed)
    pi = policies.probs(theta)
    traj = M.enumerate_trajectories(mdp, pi, H)
    G = B.reward_to_go(traj.rewards, mdp.gamma)
    V, Q = B.finite_horizon_values(mdp, pi, H)
    for t in range(H):
        est = G[:, t] - V[t, traj.states[:, t]]
        cond = B.conditional_expectation(traj, est, t, S, A)
        np.testing.assert_allclose(cond, Q[t] - V[t][:, None], atol=1e-12)
        if t < H - 1:
            cond_sq = B.conditional_expectation(traj, est**2, t, S, A)
            assert (cond_sq - cond**2).max() > 1e-3


def test_finite_horizon_values_tend_to_infinite_horizon_ones():
    """V_0 and Q_0 of horizon H approach V^pi and Q^pi within gamma^H max|R| / (1 - gamma)."""
    mdp, theta = _case(3, 2, 0.8, 1)
    pi = policies.probs(theta)
    V, Q = B.finite_horizon_values(mdp, pi, 60)
    bound = mdp.gamma**60 * np.abs(mdp.R).max() / (1 - mdp.gamma)
    assert np.abs(V[0] - M.state_values(mdp, pi)).max() <= bound
    assert np.abs(Q[0] - M.action_values(mdp, pi)).max() <= bound
    np.testing.assert_allclose(float(mdp.p0 @ V[0]), M.finite_horizon_return(mdp, pi, 60), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs_raise():
    """Every public function rejects malformed input with a ValueError naming the argument."""
    mdp, theta = _case(2, 2, 0.9, 0)
    pi = policies.probs(theta)
    with pytest.raises(ValueError, match="rewards"):
        B.reward_to_go(np.zeros((2, 0)), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        B.reward_to_go(np.zeros(3), 1.5)
    with pytest.raises(ValueError, match="mdp"):
        B.finite_horizon_values("mdp", pi, 3)
    with pytest.raises(ValueError, match="horizon"):
        B.finite_horizon_values(mdp, pi, 0)
    with pytest.raises(ValueError, match="pi"):
        B.finite_horizon_values(mdp, pi * 2, 3)
    with pytest.raises(ValueError, match="estimator"):
        B.estimator_samples(mdp, theta, 2, "bogus")
    with pytest.raises(ValueError, match="theta"):
        B.estimator_moments(mdp, np.zeros((3, 2)), 2)
    with pytest.raises(ValueError, match="baseline"):
        B.estimator_moments(mdp, theta, 2, "reward_to_go", np.zeros(3))
    with pytest.raises(ValueError, match="baseline"):
        B.estimator_moments(mdp, theta, 2, "full_return", np.zeros(2))
    with pytest.raises(ValueError, match="horizon"):
        B.reward_score_correlations(mdp, theta, -1)
    traj = M.enumerate_trajectories(mdp, pi, 2)
    with pytest.raises(ValueError, match="traj"):
        B.conditional_expectation("traj", np.zeros(16), 0, 2, 2)
    with pytest.raises(ValueError, match="values"):
        B.conditional_expectation(traj, np.zeros(3), 0, 2, 2)
    with pytest.raises(ValueError, match="t must"):
        B.conditional_expectation(traj, np.zeros(16), 2, 2, 2)
    with pytest.raises(ValueError, match="n_states"):
        B.conditional_expectation(traj, np.zeros(16), 0, 1, 2)
    with pytest.raises(ValueError, match="theta"):
        B.score_sq_norms(np.array([np.nan]))
    with pytest.raises(ValueError, match="b must"):
        B.state_estimator_variance(mdp, theta, np.zeros(3))
    with pytest.raises(ValueError, match="Q"):
        B.state_estimator_variance(mdp, theta, np.zeros(2), Q=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mdp"):
        B.optimal_baseline(None, theta)
    with pytest.raises(ValueError, match="theta"):
        B.optimal_baseline(mdp, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Q"):
        B.optimal_baseline(mdp, theta, Q=np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="estimator"):
        B.trajectory_optimal_baseline(mdp, theta, 2, estimator="full_return")
    with pytest.raises(ValueError, match="time_dependent"):
        B.trajectory_optimal_baseline(mdp, theta, 2, time_dependent=1)
    with pytest.raises(ValueError, match="rho"):
        B.payback_mdp(float("nan"), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        B.payback_mdp(1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pi, Q",
    [
        ((Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)), (0, 4, 8)),  # the worked example
        ((Fraction(1, 8), Fraction(3, 8), Fraction(1, 2)), (-2, 5, 1)),
        ((Fraction(3, 5), Fraction(1, 5), Fraction(1, 5)), (7, -1, 3)),
    ],
)
def test_exercise_three_action_baseline(pi, Q):
    """Exercise ex-ch04-three-actions: b* and Var_s at 0, V, b* from exact rational arithmetic, no w-formula."""
    A = len(pi)
    Q = [Fraction(x) for x in Q]
    scores = [[int(a == j) - pi[j] for j in range(A)] for a in range(A)]  # rows of eq-softmax-score

    def var(b):  # tr Cov of score_a (Q_a - b), a ~ pi, by its definition
        vecs = [[x * (Q[a] - b) for x in scores[a]] for a in range(A)]
        mean = [sum(pi[a] * vecs[a][j] for a in range(A)) for j in range(A)]
        return sum(pi[a] * sum(x * x for x in vecs[a]) for a in range(A)) - sum(m * m for m in mean)

    # Var(b) is a quadratic alpha b^2 + beta b + gamma: three exact values determine it and its minimiser.
    v0, v1, v2 = var(0), var(1), var(2)
    alpha, beta = (v2 - 2 * v1 + v0) / 2, (4 * v1 - v2 - 3 * v0) / 2
    b_star = -beta / (2 * alpha)
    V = sum(p * q for p, q in zip(pi, Q))
    one_state = M.random_mdp(1, A, 0.9, seed=0)
    theta = np.log(np.array([[float(p) for p in pi]]))
    Q_arr = np.array([[float(q) for q in Q]])
    assert abs(B.optimal_baseline(one_state, theta, Q=Q_arr)[0] - float(b_star)) < 1e-12
    got = B.state_estimator_variance(one_state, theta, np.array([[0.0], [float(V)], [float(b_star)]]), Q=Q_arr)[:, 0]
    assert np.allclose(got, [float(var(0)), float(var(V)), float(var(b_star))], rtol=1e-12, atol=1e-12)
    assert var(b_star) < var(V)  # with three actions V is not the minimiser here
    if pi == (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)):
        hand = (Fraction(21, 5), Fraction(109, 8), Fraction(7, 2), Fraction(13, 5))  # the solution's numbers
        assert (b_star, var(0), var(V), var(b_star)) == hand


# ---------------------------------------------------------------------------------------------
# A baseline per coordinate (prop-coordinate-baseline)
# ---------------------------------------------------------------------------------------------


def _brute_coordinate_variance(theta, Q, s, b_vec):
    """tr Cov of the vectors score[s, a] * (Q[s, a] - b) with b = b_vec in row s (zero-score rows: any b)."""
    pi = policies.probs(theta)
    full = policies.score(theta)[s]  # (A, S, A): the whole table, every row
    b = np.zeros(theta.shape)
    b[s] = b_vec
    g = full * (Q[s][:, None, None] - b[None])
    mean = np.einsum("a,axy->xy", pi[s], g)
    return float(np.einsum("a,axy->", pi[s], (g - mean) ** 2)), mean


@pytest.mark.claim("prop-coordinate-baseline", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", [(3, 3, 0.9, 0), (4, 4, 0.5, 1), (2, 5, 0.99, 2), (3, 2, 0.9, 3)])
def test_coordinate_baseline_minimises_each_coordinate(S, A, gamma, seed):
    """b°_i from the formula = golden-section minimiser of the brute-force variance in coordinate i; unbiased; beats b*."""
    mdp, theta = _case(S, A, gamma, seed)
    pi = policies.probs(theta)
    Q, V = M.action_values(mdp, pi), M.state_values(mdp, pi)
    b_coord = B.coordinate_optimal_baseline(mdp, theta)
    b_star = B.optimal_baseline(mdp, theta)
    rng = np.random.default_rng(seed)
    for s in range(S):
        # unbiased: the mean with any per-coordinate baseline is E[score Q]
        _, mean0 = _brute_coordinate_variance(theta, Q, s, np.zeros(A))
        _, mean_b = _brute_coordinate_variance(theta, Q, s, 10 * rng.standard_normal(A))
        np.testing.assert_allclose(mean_b, mean0, atol=1e-12)
        for i in range(A):  # the variance is separable: minimise coordinate i with the others at b°

            def f(x, s=s, i=i):
                b = b_coord[s].copy()
                b[i] = x
                return _brute_coordinate_variance(theta, Q, s, b)[0]

            b_num = _golden_min(f, Q[s].min() - 1, Q[s].max() + 1)
            assert abs(b_num - b_coord[s, i]) < 1e-6 * max(1.0, abs(b_coord[s, i]))
    # the vectorised variance agrees with the brute force, for random and for scalar baselines
    b = rng.standard_normal((S, A))
    got = B.coordinate_baseline_variance(mdp, theta, b)
    np.testing.assert_allclose(got, [_brute_coordinate_variance(theta, Q, s, b[s])[0] for s in range(S)], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        B.coordinate_baseline_variance(mdp, theta, np.repeat(b_star[:, None], A, axis=1)),
        B.state_estimator_variance(mdp, theta, b_star),
        rtol=1e-10,
        atol=1e-13,
    )
    # b* is the omegabar-weighted average of b°, the gap is sum_i omegabar_i (b* - b°_i)^2, and the softmax closed form
    c = np.einsum("sa,sai->si", pi, np.stack([policies.score(theta)[s, :, s, :] for s in range(S)]) ** 2)
    np.testing.assert_allclose((c * b_coord).sum(1) / c.sum(1), b_star, rtol=1e-10, atol=1e-12)
    gap = B.state_estimator_variance(mdp, theta, b_star) - B.coordinate_baseline_variance(mdp, theta, b_coord)
    np.testing.assert_allclose(gap, (c * (b_star[:, None] - b_coord) ** 2).sum(1), rtol=1e-8, atol=1e-12)
    closed = V[:, None] + (1 - 2 * pi) / (1 - pi) * (Q - V[:, None])
    np.testing.assert_allclose(b_coord, closed, rtol=1e-10, atol=1e-11)
    if A == 2:  # two actions: every coordinate's baseline is b*, nothing to gain
        np.testing.assert_allclose(b_coord, np.repeat(b_star[:, None], 2, axis=1), rtol=1e-10, atol=1e-11)
    else:  # the wrong claim "b* is optimal among all baselines" fails: b° is strictly better in every state
        assert np.all(gap > 1e-3)


@pytest.mark.claim("prop-coordinate-baseline", "thm-optimal-baseline", how="property")
@settings(max_examples=30, deadline=None)
@given(st.tuples(st.integers(1, 4), st.integers(2, 5), st.sampled_from([0.5, 0.9, 0.99]), st.integers(0, 10_000)))
def test_coordinate_baseline_variance_is_a_separable_quadratic(c):
    """Var_s(b) = Var_s(b°) + sum_i omegabar_i (b_i - b°_i)^2 for random vectors b, so Var_s(b°) <= Var_s(b*) <= Var_s(V)."""
    S, A, gamma, seed = c
    mdp, theta = _case(S, A, gamma, seed)
    pi = policies.probs(theta)
    b_coord = B.coordinate_optimal_baseline(mdp, theta)
    cw = np.einsum("sa,sai->si", pi, np.stack([policies.score(theta)[s, :, s, :] for s in range(S)]) ** 2)
    b = b_coord + np.random.default_rng(seed).standard_normal((S, A))
    base = B.coordinate_baseline_variance(mdp, theta, b_coord)
    np.testing.assert_allclose(
        B.coordinate_baseline_variance(mdp, theta, b), base + (cw * (b - b_coord) ** 2).sum(1), rtol=1e-9, atol=1e-11
    )
    var_star = B.state_estimator_variance(mdp, theta, B.optimal_baseline(mdp, theta))
    var_V = B.state_estimator_variance(mdp, theta, M.state_values(mdp, pi))
    assert np.all(base <= var_star + 1e-11) and np.all(var_star <= var_V + 1e-11)


@pytest.mark.claim("prop-coordinate-baseline", "thm-optimal-baseline", how="exact")
def test_exercise_three_action_coordinate_baseline():
    """The review's exercise, exactly: Var_s(b°) = 4/3 < Var_s(b*) = 13/5 < Var_s(V) = 7/2, minimisers found independently."""
    pi, Q = (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)), (Fraction(0), Fraction(4), Fraction(8))
    A = 3
    scores = [[int(a == j) - pi[j] for j in range(A)] for a in range(A)]

    def coord_var(i, x):  # variance of coordinate i of score_a (Q_a - x), a ~ pi, by its definition
        vals = [scores[a][i] * (Q[a] - x) for a in range(A)]
        m = sum(p * v for p, v in zip(pi, vals))
        return sum(p * (v - m) ** 2 for p, v in zip(pi, vals))

    b_coord = []
    for i in range(A):  # each coordinate's variance is a quadratic: three exact values give its minimiser
        v0, v1, v2 = coord_var(i, 0), coord_var(i, 1), coord_var(i, 2)
        alpha, beta = (v2 - 2 * v1 + v0) / 2, (4 * v1 - v2 - 3 * v0) / 2
        b_coord.append(-beta / (2 * alpha))
    var_coord = sum(coord_var(i, b_coord[i]) for i in range(A))
    assert tuple(b_coord) == (3, Fraction(11, 3), Fraction(19, 3)) and var_coord == Fraction(4, 3)
    # the package's exact functions agree with this independent computation ...
    b_star_pkg, b_coord_pkg = B.exact_optimal_baselines(pi, Q)
    assert b_coord_pkg == tuple(b_coord) and b_star_pkg == Fraction(21, 5)
    assert B.exact_state_variance(pi, Q, b_coord_pkg) == var_coord
    assert [B.exact_state_variance(pi, Q, b) for b in (0, 3, b_star_pkg)] == [Fraction(109, 8), Fraction(7, 2), Fraction(13, 5)]
    # ... and with the floating-point functions
    one_state = M.random_mdp(1, A, 0.9, seed=0)
    theta = np.log(np.array([[float(p) for p in pi]]))
    Q_arr = np.array([[float(q) for q in Q]])
    np.testing.assert_allclose(B.coordinate_optimal_baseline(one_state, theta, Q=Q_arr)[0], [float(x) for x in b_coord], rtol=1e-12)
    got = B.coordinate_baseline_variance(one_state, theta, np.array([[[float(x) for x in b_coord]]]), Q=Q_arr)
    assert abs(got[0, 0] - 4 / 3) < 1e-12
    # wrong version: b* optimal among all baselines would need Var_s(b°) >= Var_s(b*)
    assert var_coord < Fraction(13, 5) < Fraction(7, 2)


# ---------------------------------------------------------------------------------------------
# Sampled returns in place of Q (prop-sampled-baseline)
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("prop-sampled-baseline", how="enumeration")
@pytest.mark.parametrize("S,A,H,gamma,seed", [(3, 3, 3, 0.9, 5), (2, 2, 4, 0.5, 1), (2, 3, 3, 0.99, 2)])
def test_sampled_return_adds_a_baseline_free_term(S, A, H, gamma, seed):
    """Var[score (G_t - b) | s_t] = Var_s(b; Q_t) + E_a[w Var(G_t|s,a)] for every b, so the same b minimises both."""
    mdp, theta = _case(S, A, gamma, seed)
    pi = policies.probs(theta)
    V, Q = B.finite_horizon_values(mdp, pi, H)
    traj = M.enumerate_trajectories(mdp, pi, H)
    G = B.reward_to_go(traj.rewards, gamma)
    rng = np.random.default_rng(seed)
    for t in range(H):
        cm = B.conditional_expectation(traj, G[:, t], t, S, A)
        extra = (pi * B.score_sq_norms(theta) * (B.conditional_expectation(traj, G[:, t] ** 2, t, S, A) - cm**2)).sum(1)
        scalars = np.vstack([np.zeros(S), V[t], 5 * rng.standard_normal((6, S))])
        vectors = 5 * rng.standard_normal((6, S, A))
        gap_s = B.sampled_state_variance(mdp, theta, H, t, scalars) - B.state_estimator_variance(mdp, theta, scalars, Q=Q[t])
        gap_v = B.sampled_state_variance(mdp, theta, H, t, vectors, per_coordinate=True) - B.coordinate_baseline_variance(
            mdp, theta, vectors, Q=Q[t]
        )
        np.testing.assert_allclose(gap_s, np.broadcast_to(extra, gap_s.shape), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(gap_v, np.broadcast_to(extra, gap_v.shape), rtol=1e-9, atol=1e-11)
        if t < H - 1:
            assert extra.max() > 1e-3  # the sampled return really adds variance
        # the minimiser of the *sampled* variance (golden section, state by state) is b*_t from Q_t
        b_star = B.optimal_baseline(mdp, theta, Q=Q[t])
        for s in range(S):

            def f(x, s=s):
                b = b_star.copy()
                b[s] = x
                return B.sampled_state_variance(mdp, theta, H, t, b)[s]

            assert abs(_golden_min(f, Q[t, s].min() - 1, Q[t, s].max() + 1, iters=80) - b_star[s]) < 1e-5
        # wrong version: with a Q that is not E[G_t | s, a] (the infinite-horizon Q^pi), the gap depends on b
        if t == 0:
            wrong = B.sampled_state_variance(mdp, theta, H, t, scalars) - B.state_estimator_variance(mdp, theta, scalars)
            assert np.ptp(wrong, axis=0).max() > 1e-2


def test_sampled_state_variance_against_a_direct_enumeration():
    """sampled_state_variance for one (t, s, b) equals a loop over trajectories with the whole score table."""
    mdp, theta = _case(3, 3, 0.9, 7)
    H, t, s = 3, 1, 2
    b = np.array([0.3, -1.0, 2.0])
    traj = M.enumerate_trajectories(mdp, policies.probs(theta), H)
    G = B.reward_to_go(traj.rewards, mdp.gamma)[:, t]
    sel = traj.states[:, t] == s
    p = traj.prob[sel] / traj.prob[sel].sum()
    vecs = np.array([policies.score(theta)[s, a].ravel() * (g - b[s]) for a, g in zip(traj.actions[sel, t], G[sel])])
    want = float(p @ ((vecs - p @ vecs) ** 2).sum(1))
    assert abs(B.sampled_state_variance(mdp, theta, H, t, b)[s] - want) < 1e-12
    bc = np.random.default_rng(0).standard_normal((3, 3))
    vecs = np.array([(policies.score(theta)[s, a] * (g - bc)).ravel() for a, g in zip(traj.actions[sel, t], G[sel])])
    want = float(p @ ((vecs - p @ vecs) ** 2).sum(1))
    assert abs(B.sampled_state_variance(mdp, theta, H, t, bc, per_coordinate=True)[s] - want) < 1e-12


def test_new_functions_reject_bad_input():
    """The per-coordinate, sampled and exact functions raise ValueError naming the argument."""
    mdp, theta = _case(2, 3, 0.9, 0)
    with pytest.raises(ValueError, match="mdp"):
        B.coordinate_optimal_baseline("mdp", theta)
    with pytest.raises(ValueError, match="Q"):
        B.coordinate_optimal_baseline(mdp, theta, Q=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="b must"):
        B.coordinate_baseline_variance(mdp, theta, np.zeros(2))
    with pytest.raises(ValueError, match="theta"):
        B.coordinate_baseline_variance(mdp, np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="horizon"):
        B.sampled_state_variance(mdp, theta, 0, 0, np.zeros(2))
    with pytest.raises(ValueError, match="t must"):
        B.sampled_state_variance(mdp, theta, 2, 2, np.zeros(2))
    with pytest.raises(ValueError, match="b must"):
        B.sampled_state_variance(mdp, theta, 2, 0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="b must"):
        B.sampled_state_variance(mdp, theta, 2, 0, np.zeros(2), per_coordinate=True)
    with pytest.raises(ValueError, match="per_coordinate"):
        B.sampled_state_variance(mdp, theta, 2, 0, np.zeros(2), per_coordinate=1)
    with pytest.raises(ValueError, match="pi"):
        B.exact_state_variance([0.5, 0.5], [0, 1], 0)
    with pytest.raises(ValueError, match="pi"):
        B.exact_optimal_baselines([Fraction(1, 2), Fraction(1, 3)], [0, 1])
    with pytest.raises(ValueError, match="Q"):
        B.exact_optimal_baselines([Fraction(1, 2), Fraction(1, 2)], [0, 1, 2])
    with pytest.raises(ValueError, match="b must"):
        B.exact_state_variance([Fraction(1, 2), Fraction(1, 2)], [0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="b must"):
        B.exact_state_variance([Fraction(1, 2), Fraction(1, 2)], [0, 1], 0.5)
