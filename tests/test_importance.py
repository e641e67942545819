"""Tests of pgbook.importance: chapter 5, importance sampling and the IS policy gradient."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_power, random_theta, relative_error
from pgbook import gradients as G
from pgbook import importance as I
from pgbook import mdp as M
from pgbook import policies
from pgbook.montecarlo import mean_ci


def _dist(K, seed, alpha=1.0):
    return np.random.default_rng(seed).dirichlet(alpha * np.ones(K))


pq_cases = st.tuples(st.integers(1, 8), st.integers(0, 10_000), st.sampled_from([0.2, 1.0, 5.0]))
mdp_cases = st.tuples(
    st.integers(1, 4), st.integers(2, 3), st.sampled_from([0.0, 0.5, 0.9]), st.integers(0, 10_000)
)

# The support counterexample of the chapter: q cannot draw outcome 2, where p f = 2.
P_SUP = np.array([0.5, 0.3, 0.2])
Q_SUP = np.array([0.6, 0.4, 0.0])
F_SUP = np.array([1.0, 2.0, 10.0])


# ---------------------------------------------------------------------------------------------
# The identity, its support condition, its variance
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-is-identity", how="property")
@settings(max_examples=60, deadline=None)
@given(pq_cases)
def test_is_identity_exact(c):
    """E_q[(p/q) f] = E_p[f] for random full-support p, q, f; the unweighted E_q[f] differs."""
    K, seed, alpha = c
    p, q = _dist(K, seed, alpha), _dist(K, seed + 1, alpha)
    f = np.random.default_rng(seed + 2).standard_normal(K)
    assert I.is_expectation(f, p, q) == pytest.approx(float(p @ f), abs=1e-12)
    # the weighted sum computed independently in torch
    w = torch.tensor(p) / torch.tensor(q)
    assert float((torch.tensor(q) * w * torch.tensor(f)).sum()) == pytest.approx(float(p @ f), abs=1e-12)


def test_is_identity_needs_the_weights():
    """Deliberately wrong variant: without the weights, E_q[f] misses E_p[f]."""
    p, q = _dist(5, 1), _dist(5, 2)
    f = np.arange(5.0)
    assert abs(float(q @ f) - float(p @ f)) > 0.1
    assert I.is_expectation(f, p, q) == pytest.approx(float(p @ f), abs=1e-12)


@pytest.mark.claim("eq-is-identity", how="Monte Carlo")
def test_is_identity_monte_carlo():
    """n = 200 000 draws from q (seed 0): the 99.9% CI of the weighted mean contains E_p[f]; unweighted does not."""
    p, q = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.4, 0.3, 0.2, 0.1])
    f = np.array([1.0, -2.0, 3.0, 5.0])
    ci = mean_ci(I.is_samples(f, p, q, 200_000, seed=0), level=0.999)
    assert ci.contains(float(p @ f))
    assert_power(ci, abs(float(p @ f)))
    x = np.random.default_rng(0).choice(4, size=200_000, p=q)
    assert not mean_ci(f[x], level=0.999).contains(float(p @ f))


@pytest.mark.claim("eq-is-support-limit", how="exact")
def test_support_failure_exact():
    """With q = 0 where p f != 0 the estimator's mean is sum_{q>0} p f, not E_p[f]; zeros of f there are harmless."""
    limit = I.is_expectation(F_SUP, P_SUP, Q_SUP)
    assert limit == pytest.approx(0.5 * 1.0 + 0.3 * 2.0, abs=1e-15)
    assert float(P_SUP @ F_SUP) - limit == pytest.approx(0.2 * 10.0, abs=1e-15)
    # the condition needed is q > 0 where p f != 0, not where p > 0
    f0 = np.array([1.0, 2.0, 0.0])
    assert I.is_expectation(f0, P_SUP, Q_SUP) == pytest.approx(float(P_SUP @ f0), abs=1e-15)
    assert I.kl_divergence(P_SUP, Q_SUP) == np.inf and I.chi2_divergence(P_SUP, Q_SUP) == np.inf
    assert I.ess_fraction(P_SUP, Q_SUP) == 0.0


@pytest.mark.claim("eq-is-support-limit", how="Monte Carlo")
def test_support_failure_monte_carlo():
    """n = 100 000 draws (seed 1): the 99.9% CI contains sum_{q>0} p f and excludes E_p[f]."""
    ci = mean_ci(I.is_samples(F_SUP, P_SUP, Q_SUP, 100_000, seed=1), level=0.999)
    assert ci.contains(I.is_expectation(F_SUP, P_SUP, Q_SUP))
    assert_power(ci, abs(I.is_expectation(F_SUP, P_SUP, Q_SUP)))
    assert not ci.contains(float(P_SUP @ F_SUP))


def _variance_formula(f, p, q, mean):
    """The right side of eq-is-variance with the given mean: sum_{q>0} p^2 f^2 / q - mean^2."""
    pos = q > 0
    return float(np.sum(p[pos] ** 2 * f[pos] ** 2 / q[pos]) - mean**2)


def _variance_by_enumeration(f, p, q):
    """The variance of the values p f / q that q can draw, with probabilities q (numpy.cov)."""
    pos = q > 0
    wf = p[pos] / q[pos] * f[pos]
    return float(np.cov(wf, aweights=q[pos], bias=True)) if pos.sum() > 1 else 0.0


@pytest.mark.claim("eq-is-variance", how="property")
@settings(max_examples=60, deadline=None)
@given(pq_cases, st.integers(0, 7))
def test_is_variance_formula(c, n_holes):
    """Var_q[w f] = sum_{q>0} p^2 f^2 / q - (sum_{q>0} p f)^2 equals the enumerated variance, with or without support."""
    K, seed, alpha = c
    p, q = _dist(K, seed, alpha), _dist(K, seed + 1, alpha)
    holes = np.random.default_rng(seed + 3).choice(K, size=min(n_holes, K - 1), replace=False)
    q[holes] = 0.0  # q cannot draw these outcomes (n_holes = 0: full support)
    q /= q.sum()
    f = np.random.default_rng(seed + 2).standard_normal(K)
    direct = _variance_by_enumeration(f, p, q)
    second = float(np.sum(p[q > 0] ** 2 * f[q > 0] ** 2 / q[q > 0]))
    tol = 1e-10 * (1.0 + second)  # the difference of moments cancels: round-off relative to the second moment
    assert _variance_formula(f, p, q, I.is_expectation(f, p, q)) == pytest.approx(direct, abs=tol)
    assert I.is_variance(f, p, q) == pytest.approx(direct, rel=1e-9, abs=tol)
    assert I.is_variance(f, p, q) >= 0.0  # the centred form needs no clamp


@pytest.mark.claim("eq-is-variance", how="enumeration")
def test_is_variance_support_counterexample_exact():
    """On the support counterexample Var_q[w f] = 8/75 exactly; subtracting (E_p f)^2 gives -622/75, clamping gives 0."""
    p = [Fraction(1, 2), Fraction(3, 10), Fraction(1, 5)]
    q = [Fraction(3, 5), Fraction(2, 5), Fraction(0)]
    f = [Fraction(1), Fraction(2), Fraction(10)]
    drawn = [x for x in range(3) if q[x] > 0]
    value = {x: p[x] / q[x] * f[x] for x in drawn}
    mean_q = sum(q[x] * value[x] for x in drawn)  # E_q[w f] = sum_{q>0} p f
    var_enum = sum(q[x] * (value[x] - mean_q) ** 2 for x in drawn)  # by enumeration of q's support
    second = sum(p[x] ** 2 * f[x] ** 2 / q[x] for x in drawn)
    assert mean_q == sum(p[x] * f[x] for x in drawn) == Fraction(11, 10)
    assert var_enum == Fraction(8, 75)
    assert second - mean_q**2 == var_enum  # eq-is-variance, exactly
    assert I.is_variance(F_SUP, P_SUP, Q_SUP) == pytest.approx(8 / 75, abs=1e-15)
    assert _variance_formula(F_SUP, P_SUP, Q_SUP, I.is_expectation(F_SUP, P_SUP, Q_SUP)) == pytest.approx(8 / 75, abs=1e-14)
    # deliberately wrong variants: minus (E_p f)^2, as the equation once read, and that value clamped at 0
    mean_p = sum(p[x] * f[x] for x in range(3))
    wrong = second - mean_p**2
    assert wrong == Fraction(-622, 75)
    assert _variance_formula(F_SUP, P_SUP, Q_SUP, float(P_SUP @ F_SUP)) == pytest.approx(-622 / 75, abs=1e-13)
    assert abs(float(wrong) - I.is_variance(F_SUP, P_SUP, Q_SUP)) > 8
    assert abs(max(float(wrong), 0.0) - I.is_variance(F_SUP, P_SUP, Q_SUP)) > 0.1


@pytest.mark.claim("eq-is-variance", how="Monte Carlo")
def test_is_variance_support_counterexample_monte_carlo():
    """n = 100 000 draws (seed 1): the 99.9% CI of mean (w f - E_q[w f])^2 contains 8/75, excludes 0 and the MSE."""
    samples = I.is_samples(F_SUP, P_SUP, Q_SUP, 100_000, seed=1)
    ci = mean_ci((samples - I.is_expectation(F_SUP, P_SUP, Q_SUP)) ** 2, level=0.999)
    assert ci.contains(I.is_variance(F_SUP, P_SUP, Q_SUP))
    assert_power(ci, I.is_variance(F_SUP, P_SUP, Q_SUP))
    assert not ci.contains(0.0)  # the clamped (E_p f)^2 version
    # centring at E_p f instead gives the mean squared error, variance + bias^2 = 8/75 + 4
    assert not ci.contains(I.is_variance(F_SUP, P_SUP, Q_SUP) + (float(P_SUP @ F_SUP) - 1.1) ** 2)


@pytest.mark.claim("eq-is-variance", how="Monte Carlo")
def test_is_variance_monte_carlo():
    """n = 1 000 000 draws (seed 2): the 99.9% CI of the mean of (w f)^2 contains Var_q[w f] + (E_q[w f])^2 (power: a 5% bias)."""
    p, q = _dist(6, 3), _dist(6, 4)
    f = np.linspace(-1.0, 2.0, 6)
    second = I.is_variance(f, p, q) + I.is_expectation(f, p, q) ** 2
    ci = mean_ci(I.is_samples(f, p, q, 1_000_000, seed=2) ** 2, level=0.999)
    assert ci.contains(second)
    assert_power(ci, second)
    # deliberately wrong variant: the variance without weights, Var_q[f] + (E_p f)^2, is excluded
    assert not ci.contains(float(q @ f**2 - (q @ f) ** 2) + float(p @ f) ** 2)


@pytest.mark.claim("err-is-weight-variance", "thm-is-kl-variance", how="property")
@settings(max_examples=80, deadline=None)
@given(pq_cases)
def test_weight_variance_bounded_below_by_kl(c):
    """Var_q[w] = chi2(p||q) >= exp(KL(p||q)) - 1, so ESS/n = 1/E_q[w^2] <= exp(-KL)."""
    K, seed, alpha = c
    p, q = _dist(K, seed, alpha), _dist(K, seed + 1, alpha)
    kl, chi2 = I.kl_divergence(p, q), I.chi2_divergence(p, q)
    assert I.is_variance(np.ones(K), p, q) == pytest.approx(chi2, rel=1e-9, abs=1e-12)
    assert chi2 >= np.expm1(kl) - 1e-12 * (1 + chi2)
    assert I.ess_fraction(p, q) <= np.exp(-kl) * (1 + 1e-12)


@pytest.mark.claim("thm-is-kl-variance", how="exact")
def test_kl_matches_torch():
    """kl_divergence agrees with torch.distributions.kl_divergence of two Categoricals."""
    p, q = _dist(7, 5), _dist(7, 6)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(probs=torch.tensor(p)), torch.distributions.Categorical(probs=torch.tensor(q))
    )
    assert I.kl_divergence(p, q) == pytest.approx(float(ref), rel=1e-12)
    # the bound is not an equality: strict for p != q
    assert I.chi2_divergence(p, q) > np.expm1(I.kl_divergence(p, q)) + 1e-3


@pytest.mark.claim("thm-is-kl-variance", how="Monte Carlo")
def test_kish_ess_monte_carlo():
    """n = 100 000 draws (seed 3): the 99.9% CI of mean w^2 contains 1 + chi2, and Kish ESS/n matches 1/(1 + chi2)."""
    p, q = _dist(5, 7), _dist(5, 8)
    w = I.is_samples(np.ones(5), p, q, 100_000, seed=3)
    ci = mean_ci(w**2, level=0.999)
    assert ci.contains(1 + I.chi2_divergence(p, q))
    assert_power(ci, 1 + I.chi2_divergence(p, q))
    # Kish ESS/n = mean(w)^2 / mean(w^2): interval arithmetic on the two 99.9% CIs brackets its limit
    m1 = mean_ci(w, level=0.999)
    assert I.effective_sample_size(w) / w.size == pytest.approx(float(m1.mean**2 / ci.mean), rel=1e-12)
    low, high = m1.low**2 / ci.high, m1.high**2 / ci.low
    assert low <= I.ess_fraction(p, q) <= high


def test_effective_sample_size_extremes():
    """Kish ESS is n for equal weights and 1 for a single non-zero weight."""
    assert I.effective_sample_size(np.full(10, 0.3)) == pytest.approx(10.0)
    assert I.effective_sample_size(np.array([0.0, 0.0, 4.0])) == pytest.approx(1.0)


@pytest.mark.claim("err-is-weight-variance", "rem-is-zero-variance", how="property")
@settings(max_examples=40, deadline=None)
@given(pq_cases)
def test_zero_variance_proposal(c):
    """For f > 0, q* = p f / E_p f gives Var_{q*}[w f] = 0 < Var_p[f], although KL(p||q*) > 0."""
    K, seed, _ = c
    if K < 2:
        return
    p = _dist(K, seed)
    f = np.random.default_rng(seed).uniform(0.5, 3.0, K)
    q_star = p * f / (p @ f)
    assert I.is_variance(f, p, q_star) == pytest.approx(0.0, abs=1e-12)
    assert I.is_expectation(f, p, q_star) == pytest.approx(float(p @ f), abs=1e-12)
    assert I.kl_divergence(p, q_star) > 0
    assert I.is_variance(f, p, p) >= I.is_variance(f, p, q_star)


def _gaussian_weight_second_moment(sigma):
    """E_q[(p/q)^2] for p = N(0, 1), q = N(0, sigma^2), as a symbolic integral."""
    x = sp.symbols("x", real=True)
    p = sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)
    q = sp.exp(-(x**2) / (2 * sigma**2)) / (sigma * sp.sqrt(2 * sp.pi))
    return sp.integrate(sp.powsimp(sp.simplify(p**2 / q)), (x, -sp.oo, sp.oo))


@pytest.mark.claim("err-is-infinite-variance", "rem-is-gauss-infinite-variance", how="sympy")
def test_gaussian_weights_infinite_variance():
    """p = N(0,1), q = N(0, s^2): E_q[w^2] = s^2/sqrt(2 s^2 - 1) for s^2 > 1/2 and infinite otherwise; KL finite."""
    v, u = sp.symbols("v u", positive=True)
    s_big = sp.sqrt(sp.Rational(1, 2) + v)  # any sigma^2 > 1/2
    m = _gaussian_weight_second_moment(s_big)
    assert sp.simplify(m - s_big**2 / sp.sqrt(2 * s_big**2 - 1)) == 0
    s_small = sp.sqrt(sp.Rational(1, 2) / (1 + u))  # any sigma^2 < 1/2
    assert _gaussian_weight_second_moment(s_small) == sp.oo
    assert _gaussian_weight_second_moment(1 / sp.sqrt(2)) == sp.oo
    # KL(p || q) = log sigma + 1/(2 sigma^2) - 1/2 is finite for every sigma > 0
    x, s = sp.symbols("x", real=True), sp.symbols("sigma", positive=True)
    logp = -(x**2) / 2 - sp.log(sp.sqrt(2 * sp.pi))
    logq = -(x**2) / (2 * s**2) - sp.log(s * sp.sqrt(2 * sp.pi))
    kl = sp.integrate(sp.exp(logp) * sp.expand(logp - logq), (x, -sp.oo, sp.oo))
    assert sp.simplify(kl - (sp.log(s) + 1 / (2 * s**2) - sp.Rational(1, 2))) == 0


# ---------------------------------------------------------------------------------------------
# Trajectory-level ratios
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-is-traj-ratio", how="enumeration")
@pytest.mark.parametrize("S, A, H, seed", [(2, 2, 5, 0), (3, 2, 4, 1), (2, 3, 4, 2)])
def test_trajectory_ratio_is_product_of_policy_ratios(S, A, H, seed):
    """p(tau; pi)/p(tau; pi_old) over every trajectory equals prod_t pi/pi_old: p0 and P cancel."""
    mdp = M.random_mdp(S, A, 0.9, seed)
    pi, pi_old = policies.probs(random_theta(S, A, seed)), policies.probs(random_theta(S, A, seed + 50))
    new, old = M.enumerate_trajectories(mdp, pi, H), M.enumerate_trajectories(mdp, pi_old, H)
    np.testing.assert_array_equal(new.states, old.states)
    rho = I.trajectory_ratio(pi, pi_old, old.states, old.actions)
    np.testing.assert_allclose(rho, new.prob / old.prob, rtol=1e-12)
    np.testing.assert_allclose(np.log(rho), new.log_policy - old.log_policy, atol=1e-12)
    np.testing.assert_allclose(new.log_dynamics, old.log_dynamics, atol=0)


def test_trajectory_ratio_fails_when_dynamics_differ():
    """Deliberately wrong variant: with different transition kernels the dynamics do not cancel."""
    m1, m2 = M.random_mdp(2, 2, 0.9, 0), M.random_mdp(2, 2, 0.9, 1)
    pi, pi_old = policies.probs(random_theta(2, 2, 0)), policies.probs(random_theta(2, 2, 1))
    new, old = M.enumerate_trajectories(m1, pi, 4), M.enumerate_trajectories(m2, pi_old, 4)
    rho = I.trajectory_ratio(pi, pi_old, old.states, old.actions)
    assert relative_error(rho, new.prob / old.prob) > 0.1


@pytest.mark.claim("eq-is-traj-kl", how="enumeration")
@pytest.mark.parametrize("S, A, H, seed", [(2, 2, 5, 3), (3, 2, 4, 4)])
def test_trajectory_kl_is_sum_of_policy_kls(S, A, H, seed):
    """KL between trajectory distributions equals sum_t E_{s_t ~ pi}[KL(pi(.|s_t) || pi_old(.|s_t))]."""
    mdp = M.random_mdp(S, A, 0.9, seed)
    pi, pi_old = policies.probs(random_theta(S, A, seed)), policies.probs(random_theta(S, A, seed + 50))
    new, old = M.enumerate_trajectories(mdp, pi, H), M.enumerate_trajectories(mdp, pi_old, H)
    kl_traj = I.kl_divergence(new.prob, old.prob)
    kl_states = np.array([I.kl_divergence(pi[s], pi_old[s]) for s in range(S)])
    assert kl_traj == pytest.approx(float(I.finite_visits(mdp, pi, H, 1.0) @ kl_states), rel=1e-10)
    # and hence ESS/n of the trajectory weights is at most exp(-KL_traj)
    assert I.ess_fraction(new.prob, old.prob) <= np.exp(-kl_traj)


# The chapter's trajectory-KL example: 2 states, 2 actions, gamma = 0.9, a nearby old policy.
def _chapter_traj_kl_case():
    mdp = M.random_mdp(2, 2, 0.9, seed=0)
    theta_a = np.random.default_rng(2).standard_normal((2, 2))
    theta_b = theta_a + 0.5 * np.random.default_rng(3).standard_normal((2, 2))
    return mdp, policies.probs(theta_a), policies.probs(theta_b)


def _traj_kl_cases():
    yield _chapter_traj_kl_case()
    for S, A, seed in ((3, 2, 4), (2, 3, 5)):
        mdp = M.random_mdp(S, A, 0.9, seed)
        yield mdp, policies.probs(random_theta(S, A, seed)), policies.probs(random_theta(S, A, seed + 50))


@pytest.mark.claim("eq-is-traj-kl", "rem-is-traj-kl-growth", how="enumeration")
def test_trajectory_kl_increments_by_enumeration():
    """KL_H - KL_{H-1}, both by enumeration of all trajectories, is k_{H-1} = E_{s_{H-1} ~ pi}[KL(pi || pi_old)]."""
    for mdp, pi, pi_old in _traj_kl_cases():
        k = I.trajectory_kl_increments(mdp, pi, pi_old, 5)
        previous = 0.0
        for h in range(1, 6):
            kl_h = I.kl_divergence(M.enumerate_trajectories(mdp, pi, h).prob, M.enumerate_trajectories(mdp, pi_old, h).prob)
            assert kl_h - previous == pytest.approx(k[h - 1], abs=1e-12)
            assert kl_h == pytest.approx(k[:h].sum(), rel=1e-11)
            previous = kl_h


@pytest.mark.claim("rem-is-traj-kl-growth", how="exact")
def test_trajectory_kl_grows_linearly_only_asymptotically():
    """H min k <= KL_H <= H max k; KL_H = H rate + C + o(1) with C != 0; neither H k_0 nor H rate is exact."""
    for i, (mdp, pi, pi_old) in enumerate(_traj_kl_cases()):
        kl_state = np.array([I.kl_divergence(pi[s], pi_old[s]) for s in range(mdp.n_states)])
        k = I.trajectory_kl_increments(mdp, pi, pi_old, 400)
        KL = np.cumsum(k)
        H = np.arange(1, 401)
        assert np.all(H * kl_state.min() <= KL * (1 + 1e-12)) and np.all(KL <= H * kl_state.max() * (1 + 1e-12))
        rate = I.trajectory_kl_rate(mdp, pi, pi_old)
        d = I.stationary_distribution(mdp, pi)
        assert rate == pytest.approx(float(d @ kl_state), rel=1e-12)
        assert abs(k[-1] - rate) < 1e-12  # k_t -> rate (geometrically: the chain is positive, hence aperiodic)
        offset = KL[-1] - 400 * rate
        assert abs((KL[199] - 200 * rate) - offset) < 1e-10  # KL_H - H rate is constant for large H
        # deliberately wrong variants: exact linearity, KL_H = H k_0 or KL_H = H rate
        assert abs(offset) > 1e-3
        assert np.max(np.abs(KL[:6] - H[:6] * k[0])) > 1e-2
        if i == 0:  # the chapter's numbers
            assert abs(offset) > 0.1 and abs(KL[5] - 6 * k[0]) > 0.5


@pytest.mark.claim("rem-is-traj-kl-growth", how="enumeration")
def test_trajectory_kl_exactly_linear_from_stationary_start():
    """With p0 = d_inf the state distribution never changes, and the enumerated KL_H equals H * rate exactly."""
    for mdp, pi, pi_old in _traj_kl_cases():
        d = I.stationary_distribution(mdp, pi)
        stat = M.MDP(mdp.P, mdp.R, d, mdp.gamma)
        rate = I.trajectory_kl_rate(mdp, pi, pi_old)
        for h in range(1, 6):
            kl_h = I.kl_divergence(M.enumerate_trajectories(stat, pi, h).prob, M.enumerate_trajectories(stat, pi_old, h).prob)
            assert kl_h == pytest.approx(h * rate, rel=1e-11)
        np.testing.assert_allclose(I.trajectory_kl_increments(stat, pi, pi_old, 50), rate, rtol=1e-11)


def test_stationary_distribution():
    """d P_pi = d, sum d = 1, p0 P_pi^t -> d; a chain with two closed classes raises ValueError."""
    mdp, pi, _ = _chapter_traj_kl_case()
    d = I.stationary_distribution(mdp, pi)
    P_pi = M.policy_transition_matrix(mdp, pi)
    np.testing.assert_allclose(d @ P_pi, d, atol=1e-14)
    assert d.sum() == pytest.approx(1.0, abs=1e-14) and np.all(d > 0)
    np.testing.assert_allclose(mdp.p0 @ np.linalg.matrix_power(P_pi, 200), d, atol=1e-12)
    # a periodic chain (0 <-> 1) still has a unique stationary distribution
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 0] = 1.0
    np.testing.assert_allclose(I.stationary_distribution(M.MDP(P, np.zeros((2, 1)), np.eye(2)[0], 0.9), np.ones((2, 1))), 0.5)
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0  # two absorbing states
    with pytest.raises(ValueError, match="no unique stationary distribution"):
        I.stationary_distribution(M.MDP(P, np.zeros((2, 1)), np.eye(2)[0], 0.9), np.ones((2, 1)))


def test_finite_visits_by_enumeration():
    """finite_visits(pi, H, c) equals sum_tau prob(tau) sum_t c^t 1[s_t = s] over every trajectory."""
    mdp = M.random_mdp(3, 2, 0.7, 5)
    pi = policies.probs(random_theta(3, 2, 5))
    traj = M.enumerate_trajectories(mdp, pi, 4)
    for c in (1.0, 0.7):
        enum = np.zeros(3)
        np.add.at(enum, traj.states.ravel(), (traj.prob[:, None] * c ** np.arange(4)).ravel())
        np.testing.assert_allclose(I.finite_visits(mdp, pi, 4, c), enum, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# The importance-weighted policy gradient of the notes
# ---------------------------------------------------------------------------------------------


def _score_sum_enumeration(mdp, theta, theta_old, H, discount):
    """E_{tau ~ pi_old}[sum_t c^t r_t grad log pi_theta(a_t|s_t) A_old(s_t, a_t)], by enumeration."""
    pi, pi_old = policies.probs(theta), policies.probs(theta_old)
    traj = M.enumerate_trajectories(mdp, pi_old, H)
    ratio = I.per_step_ratios(pi, pi_old, traj.states, traj.actions)
    A_old = M.advantage_values(mdp, pi_old)[traj.states, traj.actions]
    w = traj.prob[:, None] * discount ** np.arange(H) * ratio * A_old
    return np.einsum("nt,ntxy->xy", w, policies.score(theta)[traj.states, traj.actions])


@pytest.mark.claim("eq-is-pg-notes", how="enumeration")
@pytest.mark.parametrize("S, A, H, seed", [(2, 2, 5, 0), (3, 2, 4, 1)])
def test_is_gradient_trajectory_form_equals_state_form(S, A, H, seed):
    """The notes' expectation over pi_old trajectories, enumerated, equals the state-sum of is_policy_gradient."""
    mdp = M.random_mdp(S, A, 0.8, seed)
    theta, theta_old = random_theta(S, A, seed), random_theta(S, A, seed + 50)
    for discount_states, c in ((True, 0.8), (False, 1.0)):
        enum = _score_sum_enumeration(mdp, theta, theta_old, H, c)
        exact = I.is_policy_gradient(mdp, theta, theta_old, horizon=H, discount_states=discount_states)
        np.testing.assert_allclose(exact, enum, atol=1e-13)
    # the truncated state weights converge to the infinite-horizon ones at rate gamma^H
    full = I.is_policy_gradient(mdp, theta, theta_old)
    trunc = I.is_policy_gradient(mdp, theta, theta_old, horizon=200)
    np.testing.assert_allclose(trunc, full, atol=1e-12)


@pytest.mark.claim("eq-is-pg-notes", how="finite difference")
@pytest.mark.parametrize("S, A, gamma, seed", [(2, 2, 0.5, 0), (4, 3, 0.9, 1), (5, 2, 0.99, 2)])
def test_is_gradient_is_gradient_of_surrogate(S, A, gamma, seed):
    """g_IS(theta; theta_old) = grad_theta sum_s eta_old(s) sum_a pi_theta(a|s) A_old(s, a), by central differences."""
    mdp = M.random_mdp(S, A, gamma, seed)
    theta, theta_old = random_theta(S, A, seed), random_theta(S, A, seed + 50)
    pi_old = policies.probs(theta_old)
    eta_old, A_old = M.discounted_visits(mdp, pi_old), M.advantage_values(mdp, pi_old)

    def surrogate(x):
        return float(np.sum(eta_old[:, None] * policies.probs(x) * A_old))

    fd = G.finite_difference_gradient(surrogate, theta)
    assert relative_error(I.is_policy_gradient(mdp, theta, theta_old), fd) < 1e-7


@pytest.mark.claim("eq-is-pg-notes", "thm-is-pg-at-old", how="Monte Carlo")
def test_sampled_is_gradient_concentrates_on_g_is_not_on_grad_j():
    """20 000 pi_old episodes of 80 steps (seed 3), 99.9% Bonferroni CI: contains g_IS, excludes grad J(theta)."""
    mdp = M.random_mdp(3, 2, 0.8, 1)
    theta_old = random_theta(3, 2, 7)
    theta = theta_old + 0.7 * np.random.default_rng(8).standard_normal((3, 2))
    samples = I.is_gradient_samples(mdp, theta, theta_old, 20_000, 80, seed=3)
    ci = mean_ci(samples, level=1 - 0.001 / 6)
    assert ci.contains(I.is_policy_gradient(mdp, theta, theta_old)).all()
    assert not ci.contains(G.policy_gradient(mdp, theta)).any()
    assert_power(ci, np.abs(I.is_policy_gradient(mdp, theta, theta_old)).max())
    # at theta = theta_old the same estimator is unbiased for grad J
    at_old = mean_ci(I.is_gradient_samples(mdp, theta_old, theta_old, 20_000, 80, seed=4), level=1 - 0.001 / 6)
    assert at_old.contains(G.policy_gradient(mdp, theta_old)).all()


@pytest.mark.claim("thm-is-pg-at-old", how="property")
@settings(max_examples=40, deadline=None)
@given(mdp_cases)
def test_is_gradient_equals_policy_gradient_at_theta_old(c):
    """g_IS(theta_old; theta_old) = grad J(theta_old) (policy gradient theorem, exact) on random MDPs."""
    S, A, gamma, seed = c
    mdp = M.random_mdp(S, A, gamma, seed)
    theta_old = random_theta(S, A, seed, scale=2.0)
    exact = G.policy_gradient(mdp, theta_old)
    np.testing.assert_allclose(I.is_policy_gradient(mdp, theta_old, theta_old), exact, atol=1e-10)


@pytest.mark.claim("thm-is-pg-at-old", how="autograd")
@pytest.mark.parametrize("S, A, gamma, seed", [(2, 2, 0.5, 0), (4, 3, 0.9, 1), (6, 4, 0.99, 2)])
def test_is_gradient_at_theta_old_matches_autograd(S, A, gamma, seed):
    """At theta = theta_old, g_IS equals torch autograd of the exactly solved J."""
    mdp = M.random_mdp(S, A, gamma, seed)
    theta_old = random_theta(S, A, seed)
    auto = G.autograd_policy_gradient(mdp, theta_old)
    assert relative_error(I.is_policy_gradient(mdp, theta_old, theta_old), auto) < 1e-9


@pytest.mark.claim("err-is-gradient-equality", "err-is-clip-premise", "err-is-offline-reuse", "thm-is-pg-at-old", how="exact")
@pytest.mark.parametrize("S, A, gamma, seed", [(2, 2, 0.5, 0), (3, 2, 0.9, 1), (4, 3, 0.9, 2), (5, 2, 0.99, 3)])
def test_gap_is_first_order_in_distance(S, A, gamma, seed):
    """Away from theta_old the gap is c eps + O(eps^2) with c > 0: g_IS != grad J (eps = 1e-4, 1e-3, 0.5)."""
    mdp = M.random_mdp(S, A, gamma, seed)
    theta_old = random_theta(S, A, seed)
    u = np.random.default_rng(seed).standard_normal((S, A))
    u /= np.linalg.norm(u)

    def slope(eps):
        return np.linalg.norm(I.is_gradient_gap(mdp, theta_old + eps * u, theta_old).gap) / eps

    c1, c2 = slope(1e-4), slope(1e-3)
    assert c1 > 1e-3 * np.linalg.norm(G.policy_gradient(mdp, theta_old)) + 1e-6
    assert abs(c1 - c2) < 0.02 * c1
    # the slope is ||D u|| with D = hess L - hess J at theta_old (thm-is-pg-at-old (ii))
    assert c1 == pytest.approx(np.linalg.norm(I.is_gradient_gap_derivative(mdp, theta_old) @ u.ravel()), rel=1e-3)
    gap = I.is_gradient_gap(mdp, theta_old + 0.5 * u, theta_old).gap
    assert np.linalg.norm(gap) > 1e-4


# The chapter's example for thm-is-pg-at-old: 3 states, 2 actions, gamma = 0.8.
def _chapter_gap_case():
    mdp = M.random_mdp(3, 2, 0.8, seed=1)
    theta_old = np.random.default_rng(7).standard_normal((3, 2))
    u = np.random.default_rng(8).standard_normal((3, 2))
    return mdp, theta_old, u / np.linalg.norm(u)


def _gap_cases():
    yield _chapter_gap_case()
    for S, A, gamma, seed in ((2, 2, 0.5, 0), (4, 3, 0.9, 1), (5, 2, 0.99, 2)):
        u = np.random.default_rng(seed + 100).standard_normal((S, A))
        yield M.random_mdp(S, A, gamma, seed), random_theta(S, A, seed), u / np.linalg.norm(u)


def _logit_shifts(S, A):
    """The S directions that add 1 to every logit of one state."""
    for s in range(S):
        shift = np.zeros((S, A))
        shift[s] = 1.0
        yield shift


def _gap(mdp, theta, theta_old):
    return I.is_policy_gradient(mdp, theta, theta_old) - G.policy_gradient(mdp, theta)


@pytest.mark.claim("thm-is-pg-at-old", how="finite difference")
def test_gap_derivative_is_jacobian_of_exact_gap():
    """D = hess L - hess J (autograd) equals central differences of g_IS - grad J at theta_old; symmetric, shifts in its kernel."""
    for mdp, theta_old, _ in _gap_cases():
        S, A = theta_old.shape
        D = I.is_gradient_gap_derivative(mdp, theta_old)
        fd = G.finite_difference_gradient(lambda th: _gap(mdp, th, theta_old), theta_old).reshape(S * A, S * A)
        assert relative_error(D, fd) < 1e-7
        np.testing.assert_allclose(D, D.T, atol=1e-12)
        for shift in _logit_shifts(S, A):
            np.testing.assert_allclose(D @ shift.ravel(), 0.0, atol=1e-12)
        sv = np.linalg.svd(D, compute_uv=False)
        assert np.all(sv[S * (A - 1):] < 1e-12 * sv[0])  # rank <= S(A - 1)
        # deliberately wrong variant: the Hessian of L alone (forgetting that grad J moves too)
        hess_J = G.finite_difference_gradient(lambda th: G.policy_gradient(mdp, th), theta_old).reshape(S * A, S * A)
        assert relative_error(D + hess_J, fd) > 0.05


@pytest.mark.claim("thm-is-pg-at-old", how="exact")
def test_gap_is_eps_D_u_plus_second_order():
    """||gap(theta_old + eps u)/eps - D u|| falls tenfold per decade of eps; wrong slopes (hess L u, 1.1 D u, 0) do not."""
    for mdp, theta_old, u in _gap_cases():
        S, A = theta_old.shape
        D = I.is_gradient_gap_derivative(mdp, theta_old)
        Du = D @ u.ravel()
        hess_J = G.finite_difference_gradient(lambda th: G.policy_gradient(mdp, th), theta_old).reshape(S * A, S * A)
        wrong = {"hess L u": (D + hess_J) @ u.ravel(), "1.1 D u": 1.1 * Du, "0 (second order)": 0.0 * Du}
        eps = [1e-2, 1e-3, 1e-4]
        quotients = [_gap(mdp, theta_old + e * u, theta_old).ravel() / e for e in eps]
        err = np.array([np.linalg.norm(g - Du) for g in quotients]) / np.linalg.norm(Du)
        assert np.all(np.abs(err[:-1] / err[1:] - 10) < 1.0), err  # the remainder is O(eps^2)
        assert err[-1] < 1e-3
        for name, slope in wrong.items():
            assert np.linalg.norm(quotients[-1] - slope) > 0.05 * np.linalg.norm(Du), name
        # log-log slope 1, not 2
        norms = [np.linalg.norm(g) * e for g, e in zip(quotients, eps)]
        assert np.log(norms[0] / norms[2]) / np.log(eps[0] / eps[2]) == pytest.approx(1.0, abs=0.01)


@pytest.mark.claim("thm-is-pg-at-old", how="exact")
def test_gap_is_zero_along_logit_shifts():
    """Adding a constant to one state's logits leaves pi unchanged: the gap is 0 at every eps, not just to first order."""
    for mdp, theta_old, u in _gap_cases():
        S, A = theta_old.shape
        for shift in _logit_shifts(S, A):
            for eps in (1e-3, 1.0, 5.0):
                np.testing.assert_allclose(_gap(mdp, theta_old + eps * shift, theta_old), 0.0, atol=1e-12)
        # deliberately wrong variant: a generic direction gives a non-zero gap
        assert np.linalg.norm(_gap(mdp, theta_old + 1e-3 * u, theta_old)) > 1e-7


@pytest.mark.claim("thm-is-pg-at-old", how="autograd")
def test_gap_derivative_on_the_chapter_mdp():
    """On the chapter's MDP, D has rank S(A-1) = 3 and norm ~0.48: the gap is first order in every policy-moving direction."""
    mdp, theta_old, u = _chapter_gap_case()
    D = I.is_gradient_gap_derivative(mdp, theta_old)
    sv = np.linalg.svd(D, compute_uv=False)
    assert sv[0] > 0.4 and sv[2] > 5e-5 and np.all(sv[3:] < 1e-12)
    assert np.linalg.norm(D @ u.ravel()) > 0.2
    # D vanishes when the per-step correction is exact (prop-is-pg-exact-cases): the wrong claim "D = 0" fails above
    for exact_mdp in (mdp.with_gamma(0.0), _action_blind(mdp, 5)):
        np.testing.assert_allclose(I.is_gradient_gap_derivative(exact_mdp, theta_old), 0.0, atol=1e-12)


@pytest.mark.claim("err-is-gradient-equality", "err-is-state-shift", "eq-is-pg-gap", how="finite difference")
@pytest.mark.parametrize("S, A, gamma, seed", [(2, 2, 0.5, 0), (4, 3, 0.9, 1), (5, 2, 0.99, 2)])
def test_gap_decomposition(S, A, gamma, seed):
    """state_shift and advantage_shift equal central differences of their defining sums; they add to the gap."""
    mdp = M.random_mdp(S, A, gamma, seed)
    theta, theta_old = random_theta(S, A, seed), random_theta(S, A, seed + 50)
    pi, pi_old = policies.probs(theta), policies.probs(theta_old)
    eta, eta_old = M.discounted_visits(mdp, pi), M.discounted_visits(mdp, pi_old)
    A_new, A_old = M.advantage_values(mdp, pi), M.advantage_values(mdp, pi_old)
    res = I.is_gradient_gap(mdp, theta, theta_old)

    def fd(weights, adv):
        return G.finite_difference_gradient(lambda x: float(np.sum(weights[:, None] * policies.probs(x) * adv)), theta)

    assert relative_error(res.state_shift, fd(eta_old - eta, A_old)) < 1e-6
    assert relative_error(res.advantage_shift, fd(eta, A_old - A_new)) < 1e-6
    np.testing.assert_allclose(res.exact_gradient, G.autograd_policy_gradient(mdp, theta), atol=1e-10)
    np.testing.assert_allclose(res.state_shift + res.advantage_shift, res.gap, atol=1e-12)
    # both sources are present on a generic MDP
    assert np.linalg.norm(res.state_shift) > 1e-4 and np.linalg.norm(res.advantage_shift) > 1e-4


def _action_blind(mdp, seed):
    """The same rewards, but a next-state distribution that depends on s only, not on a."""
    M_s = np.random.default_rng(seed).dirichlet(np.ones(mdp.n_states), size=mdp.n_states)
    P = np.repeat(M_s[:, None, :], mdp.n_actions, axis=1)
    return M.MDP(P, mdp.R, mdp.p0, mdp.gamma)


@pytest.mark.claim("err-is-unbiased", "prop-is-pg-exact-cases", how="property")
@settings(max_examples=40, deadline=None)
@given(mdp_cases)
def test_gap_vanishes_when_actions_do_not_move_the_state(c):
    """gamma = 0, or P(.|s, a) independent of a: g_IS(theta; theta_old) = grad J(theta) for all theta."""
    S, A, gamma, seed = c
    theta, theta_old = random_theta(S, A, seed, 2.0), random_theta(S, A, seed + 50, 2.0)
    for mdp in (_action_blind(M.random_mdp(S, A, gamma, seed), seed), M.random_mdp(S, A, 0.0, seed)):
        res = I.is_gradient_gap(mdp, theta, theta_old)
        np.testing.assert_allclose(res.gap, 0.0, atol=1e-10)
        np.testing.assert_allclose(res.state_shift, 0.0, atol=1e-10)


def test_gap_does_not_vanish_on_a_generic_mdp():
    """Deliberately wrong variant of prop-is-pg-exact-cases: with action-dependent P and gamma > 0, the gap is not 0."""
    mdp = M.random_mdp(3, 2, 0.9, 0)
    res = I.is_gradient_gap(mdp, random_theta(3, 2, 0, 2.0), random_theta(3, 2, 50, 2.0))
    assert np.linalg.norm(res.gap) > 1e-2


@pytest.mark.claim("err-is-unbiased", "eq-is-pg-trajectory", how="finite difference")
@pytest.mark.parametrize("S, A, H, gamma, seed", [(2, 2, 5, 0.9, 0), (3, 2, 4, 0.8, 1), (2, 3, 4, 0.99, 2)])
def test_trajectory_ratio_gradient_is_exact(S, A, H, gamma, seed):
    """E_old[rho(tau) R(tau) sum_t score] equals central differences of the exact J_H(theta); per-step ratios do not."""
    mdp = M.random_mdp(S, A, gamma, seed)
    theta, theta_old = random_theta(S, A, seed), random_theta(S, A, seed + 50)
    fd = G.finite_difference_gradient(lambda x: M.finite_horizon_return(mdp, policies.probs(x), H), theta)
    assert relative_error(I.trajectory_is_gradient(mdp, theta, theta_old, H), fd) < 1e-7
    # deliberately wrong variant: the per-step-ratio form with the finite-horizon state weights
    per_step = I.is_policy_gradient(mdp, theta, theta_old, horizon=H)
    assert relative_error(per_step, fd) > 1e-2


def _fork_mdp(gamma):
    """s0 (visited only at t = 0) leads to s1 or s2, both absorbing; the chapter's discount-slip example."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = 1.0
    R = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
    return M.MDP(P, R, np.eye(3)[0], gamma)


_SLIP_CASES = {"fork": lambda: _fork_mdp(0.9), "random-3x2": lambda: M.random_mdp(3, 2, 0.9, 0),
               "random-4x3": lambda: M.random_mdp(4, 3, 0.8, 1)}


@pytest.mark.claim("err-is-discount", "err-pg-no-discount", "rem-is-discount-slip", how="exact")
@pytest.mark.parametrize("name", sorted(_SLIP_CASES))
def test_dropping_gamma_t_rescales_each_state(name):
    """At theta_old, state weights without gamma^t rescale state s's block of grad J by etabar_T(s)/eta(s)."""
    mdp = _SLIP_CASES[name]()
    theta_old = random_theta(mdp.n_states, mdp.n_actions, 0, 2.0)
    exact = G.policy_gradient(mdp, theta_old)
    T = 200
    literal = I.is_policy_gradient(mdp, theta_old, theta_old, horizon=T, discount_states=False)
    kept = I.is_policy_gradient(mdp, theta_old, theta_old, horizon=T, discount_states=True)
    pi_old = policies.probs(theta_old)
    scale = I.finite_visits(mdp, pi_old, T, 1.0) / M.discounted_visits(mdp, pi_old)
    np.testing.assert_allclose(literal, scale[:, None] * exact, atol=1e-9)
    np.testing.assert_allclose(kept, exact, atol=1e-8)
    cos = float(literal.ravel() @ exact.ravel() / np.linalg.norm(literal) / np.linalg.norm(exact))
    # the scale is not constant, so the direction changes (visibly on the fork, slightly on fast-mixing MDPs)
    assert np.ptp(scale) > 1.0
    assert 0 < cos < (0.97 if name == "fork" else 1 - 1e-6)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_distributions_raise():
    """Every p, q function names the argument that is not a distribution or has the wrong shape."""
    p, q, f = np.array([0.5, 0.5]), np.array([0.3, 0.7]), np.array([1.0, 2.0])
    for fn in (I.importance_weights, I.kl_divergence, I.chi2_divergence, I.ess_fraction):
        with pytest.raises(ValueError, match="p must sum to 1"):
            fn(np.array([0.5, 0.6]), q)
        with pytest.raises(ValueError, match="q has negative"):
            fn(p, np.array([1.2, -0.2]))
        with pytest.raises(ValueError, match="q must have shape"):
            fn(p, np.array([0.2, 0.3, 0.5]))
        with pytest.raises(ValueError, match="p contains NaN"):
            fn(np.array([np.nan, 0.5]), q)
        with pytest.raises(ValueError, match="p must have at least one"):
            fn(np.array([]), np.array([]))
    for fn in (I.is_expectation, I.is_variance):
        with pytest.raises(ValueError, match="f must have shape"):
            fn(np.ones(3), p, q)
        with pytest.raises(ValueError, match="p must have 1 dimension"):
            fn(f, np.eye(2) / 2, q)
    with pytest.raises(ValueError, match="n must be an integer"):
        I.is_samples(f, p, q, 0, seed=0)
    with pytest.raises(ValueError, match="weights must be non-negative"):
        I.effective_sample_size(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="weights are all zero"):
        I.effective_sample_size(np.zeros(3))
    with pytest.raises(ValueError, match="at least one weight"):
        I.effective_sample_size(np.array([]))


def test_bad_trajectory_inputs_raise():
    """per_step_ratios / trajectory_ratio reject bad policies, indices and zero behaviour probabilities."""
    pi = np.array([[0.5, 0.5], [0.2, 0.8]])
    states, actions = np.array([[0, 1]]), np.array([[1, 0]])
    with pytest.raises(ValueError, match="pi_old must sum to 1"):
        I.per_step_ratios(pi, np.array([[0.5, 0.6], [0.5, 0.5]]), states, actions)
    with pytest.raises(ValueError, match="pi_old must have shape"):
        I.trajectory_ratio(pi, np.ones((3, 2)) / 2, states, actions)
    with pytest.raises(ValueError, match="states must be integers"):
        I.per_step_ratios(pi, pi, np.array([[0, 2]]), actions)
    with pytest.raises(ValueError, match="actions must be integers"):
        I.per_step_ratios(pi, pi, states, np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="same shape"):
        I.per_step_ratios(pi, pi, states, np.array([1, 0]))
    with pytest.raises(ValueError, match="probability 0"):
        I.trajectory_ratio(pi, np.array([[1.0, 0.0], [0.2, 0.8]]), states, actions)
    with pytest.raises(ValueError, match="pi must have 2 dimension"):
        I.per_step_ratios(np.ones(2) / 2, pi, states, actions)


def test_bad_gradient_inputs_raise():
    """The policy-gradient functions reject wrong theta shapes, NaN, bad horizons and discounts."""
    mdp = M.random_mdp(2, 2, 0.9, 0)
    good = np.zeros((2, 2))
    for fn in (I.is_policy_gradient, I.is_gradient_gap):
        with pytest.raises(ValueError, match="theta must have shape"):
            fn(mdp, np.zeros((3, 2)), good)
        with pytest.raises(ValueError, match="theta_old contains NaN"):
            fn(mdp, good, np.array([[np.nan, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="needs a finite horizon"):
        I.is_policy_gradient(mdp, good, good, discount_states=False)
    with pytest.raises(ValueError, match="discount_states must be a bool"):
        I.is_policy_gradient(mdp, good, good, horizon=3, discount_states=1)
    with pytest.raises(ValueError, match="horizon must be an integer"):
        I.is_policy_gradient(mdp, good, good, horizon=0)
    with pytest.raises(ValueError, match="discount must lie in"):
        I.finite_visits(mdp, np.full((2, 2), 0.5), 3, 1.5)
    with pytest.raises(ValueError, match="pi must sum to 1"):
        I.finite_visits(mdp, np.full((2, 2), 0.6), 3, 0.5)
    with pytest.raises(ValueError, match="n_episodes must be an integer"):
        I.is_gradient_samples(mdp, good, good, 0, 5, seed=0)
    with pytest.raises(ValueError, match="horizon must be an integer"):
        I.is_gradient_samples(mdp, good, good, 5, -1, seed=0)
    with pytest.raises(ValueError, match="theta_old must have shape"):
        I.trajectory_is_gradient(mdp, good, np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="horizon=30 gives"):
        I.trajectory_is_gradient(mdp, good, good, 30)
    with pytest.raises(ValueError, match="theta_old must have shape"):
        I.is_gradient_gap_derivative(mdp, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="theta_old contains NaN"):
        I.is_gradient_gap_derivative(mdp, np.array([[np.nan, 0.0], [0.0, 0.0]]))
    half = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="pi_old must be positive wherever pi is"):
        I.trajectory_kl_increments(mdp, half, np.array([[1.0, 0.0], [0.5, 0.5]]), 3)
    with pytest.raises(ValueError, match="pi_old must be positive wherever pi is"):
        I.trajectory_kl_rate(mdp, half, np.array([[1.0, 0.0], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="horizon must be an integer"):
        I.trajectory_kl_increments(mdp, half, half, 0)
    with pytest.raises(ValueError, match="pi_old must sum to 1"):
        I.trajectory_kl_increments(mdp, half, np.full((2, 2), 0.6), 3)
    with pytest.raises(ValueError, match="pi must have shape"):
        I.stationary_distribution(mdp, np.full((3, 2), 0.5))


# --------------------------------------------------------------------------------------------
# Exercises
# --------------------------------------------------------------------------------------------


def test_exercise_gaussian_ess():
    """Exercise ex-ch05-gaussian-ess: p, q Gaussians of equal width: E_q[w^2] = exp(D^2/s^2), KL = D^2/(2 s^2)."""
    x = sp.Symbol("x", real=True)
    mp, mq = sp.symbols("mu_p mu_q", real=True)
    s = sp.Symbol("sigma", positive=True)

    def density(m):
        return sp.exp(-((x - m) ** 2) / (2 * s**2)) / (s * sp.sqrt(2 * sp.pi))

    p, q = density(mp), density(mq)
    second = sp.integrate(sp.powsimp(sp.simplify(p**2 / q)), (x, -sp.oo, sp.oo), conds="none")
    assert sp.simplify(second - sp.exp((mp - mq) ** 2 / s**2)) == 0
    log_ratio = sp.expand(sp.expand_log(sp.log(p) - sp.log(q), force=True))
    kl = sp.integrate(p * log_ratio, (x, -sp.oo, sp.oo), conds="none")
    assert sp.simplify(kl - (mp - mq) ** 2 / (2 * s**2)) == 0
    # so n_eff / n -> exp(-2 KL), strictly below the bound exp(-KL) of thm-is-kl-variance when mu_p != mu_q
    assert sp.simplify(1 / second - sp.exp(-2 * kl)) == 0


def _snis_mean_by_counts(p, q, f, n):
    """E[sum_i w_i f_i / sum_i w_i] over n draws from q (three outcomes): a sum over multinomial counts."""
    w = I.importance_weights(p, q)
    k = np.array([(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)])
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    prob = np.exp(log_fact[n] - log_fact[k].sum(axis=1) + k @ np.log(q))
    assert abs(prob.sum() - 1.0) < 1e-9
    return float(prob @ (k @ (w * f) / (k @ w)))


def _snis_mean_by_tuples(p, q, f, n):
    """The same mean by brute force over all 3^n ordered samples."""
    w = I.importance_weights(p, q)
    idx = np.array(np.meshgrid(*[np.arange(3)] * n, indexing="ij")).reshape(n, -1).T
    prob = np.prod(q[idx], axis=1)
    return float(prob @ ((w[idx] * f[idx]).sum(axis=1) / w[idx].sum(axis=1)))


@pytest.mark.parametrize("seed", [2, 3, 4, 5, 6, 7])
def test_exercise_self_normalised_bias(seed):
    """Exercise ex-ch05-self-normalised: E[mu_SN] = E_q f at n = 1; n * bias -> -E_q[w^2 (f - E_p f)] as O(1/n)."""
    rng = np.random.default_rng(seed)
    p, q, f = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3)), rng.standard_normal(3)
    mu = p @ f
    w = I.importance_weights(p, q)
    c = -np.sum(q * w**2 * (f - mu))
    for n in range(1, 7):
        assert abs(_snis_mean_by_counts(p, q, f, n) - _snis_mean_by_tuples(p, q, f, n)) < 1e-12
    assert abs(_snis_mean_by_tuples(p, q, f, 1) - q @ f) < 1e-12  # n = 1: the unweighted mean
    assert abs(q @ f - mu) > 1e-3  # ... which is biased: the check can fail
    err = {n: abs(n * (_snis_mean_by_counts(p, q, f, n) - mu) - c) for n in (200, 400)}
    assert err[400] < 0.6 * err[200] and err[400] < 0.02 * abs(c)
