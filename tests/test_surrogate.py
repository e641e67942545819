"""Chapter 6: the CPI surrogate, its gradient, the performance difference lemma, the TRPO bound, the
discount pitfall (:mod:`pgbook.surrogate`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_power
from pgbook import mdp as M
from pgbook import policies
from pgbook import surrogate as S
from pgbook.clipping import LinearSoftmaxPolicy
from pgbook.gradients import (
    autograd_policy_gradient,
    expected_return_of_theta,
    expected_return_torch,
    finite_difference_gradient,
    policy_gradient,
)
from pgbook.montecarlo import mean_ci


#: (S, A, gamma, seed): 8 shapes x 3 discount factors = 24 random (MDP, gamma, theta_old) cases.
SHAPES = [(1, 2), (2, 2), (3, 2), (2, 4), (4, 3), (5, 4), (6, 4), (6, 2)]
CASES = [(nS, nA, gamma, seed) for seed, (nS, nA) in enumerate(SHAPES) for gamma in (0.5, 0.9, 0.99)]


def make_case(nS, nA, gamma, seed):
    mdp = M.random_mdp(nS, nA, gamma, seed)
    theta_old = np.random.default_rng(500 + seed).standard_normal((nS, nA))
    return mdp, theta_old


def rel_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def fd_grad_J(mdp, theta):
    return finite_difference_gradient(lambda x: expected_return_of_theta(mdp, x), theta)


# ------------------------------------------------------------------------------------------------
# The central test
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("err-cpi-approximation", "thm-cpi-gradient-match", "rem-cpi-not-approximation", how="finite difference")
def test_cpi_gradient_equals_finite_difference_of_J_at_theta_old():
    """grad L^CPI(theta_old) = central differences of the exact J at theta_old, 24 random cases, <= 1e-7 relative."""
    assert len(CASES) >= 20
    worst = 0.0
    for nS, nA, gamma, seed in CASES:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        err = rel_err(S.cpi_gradient(mdp, theta_old, theta_old), fd_grad_J(mdp, theta_old))
        worst = max(worst, err)
        assert err <= 1e-7, (nS, nA, gamma, seed, err)
    assert worst > 0.0  # the two computations are genuinely independent (not the same numbers)


@pytest.mark.claim("err-cpi-approximation", "thm-cpi-gradient-match", "rem-cpi-not-approximation", how="finite difference")
def test_wrong_surrogates_fail_the_same_check():
    """Without 1/(1-gamma), with uniform or with undiscounted state weights, the surrogate's gradient is not grad J."""
    for nS, nA, gamma, seed in CASES:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        pi_old = policies.probs(theta_old)
        fd = fd_grad_J(mdp, theta_old)
        d_old = M.discounted_state_distribution(mdp, pi_old)
        # (a) the expectation over d_old without the 1/(1 - gamma) factor: off by exactly gamma.
        err_no_factor = rel_err(S.surrogate_gradient(mdp, theta_old, theta_old, d_old), fd)
        assert err_no_factor == pytest.approx(gamma, rel=1e-6)
        assert err_no_factor > 1e-7
        if nS == 1:
            continue  # one state: every state weighting is the same weighting
        # (b) uniform state weights, (c) the undiscounted time average over episodes of length 1000, both
        # with the 1/(1 - gamma) factor kept. The check tolerates 1e-7; these miss it by >= 1e-4 (three
        # orders of magnitude). At gamma = 0.99 (c) is closest: on these fast-mixing random MDPs both
        # weightings are then near the stationary distribution.
        uniform = np.full(nS, 1.0 / (nS * (1.0 - gamma)))
        assert rel_err(S.surrogate_gradient(mdp, theta_old, theta_old, uniform), fd) > 1e-4
        mu = S.time_averaged_state_distribution(mdp, pi_old, 1000) / (1.0 - gamma)
        assert rel_err(S.surrogate_gradient(mdp, theta_old, theta_old, mu), fd) > 1e-4


@pytest.mark.claim("eq-cpi-grad", how="finite difference")
def test_cpi_gradient_formula_at_any_theta():
    """The analytic grad L^CPI(theta) matches central differences of L^CPI and torch autograd at theta != theta_old."""
    for nS, nA, gamma, seed in CASES[::2]:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        theta = theta_old + 0.7 * np.random.default_rng(seed).standard_normal(theta_old.shape)
        g = S.cpi_gradient(mdp, theta, theta_old)
        fd = finite_difference_gradient(lambda x: S.cpi_objective(mdp, x, theta_old), theta)
        assert rel_err(g, fd) < 1e-7
        t = torch.tensor(theta, requires_grad=True)
        S.cpi_objective_torch(mdp, t, theta_old).backward()
        assert rel_err(g, t.grad.numpy()) < 1e-10


@pytest.mark.claim("err-cpi-taylor", "err-cpi-reuse", "prop-cpi-taylor", how="finite difference")
def test_gradients_differ_away_from_theta_old():
    """Away from theta_old, grad L^CPI != grad J; the gap grows linearly with the distance (first-order agreement only)."""
    for nS, nA, gamma, seed in CASES:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        direction = np.random.default_rng(seed + 1).standard_normal(theta_old.shape)
        direction /= np.linalg.norm(direction)
        gaps = []
        for step in (1e-2, 2e-2, 0.5):
            theta = theta_old + step * direction
            gaps.append(rel_err(S.cpi_gradient(mdp, theta, theta_old), policy_gradient(mdp, theta)))
        if nS == 1:
            # one state: L^CPI + J_old = J exactly (the state distribution cannot shift)
            assert max(gaps) < 1e-10
            continue
        assert gaps[2] > 1e-4
        # linear growth: doubling a small step doubles the gap (within 10 %)
        assert gaps[1] / gaps[0] == pytest.approx(2.0, rel=0.1)


# ------------------------------------------------------------------------------------------------
# Performance difference lemma and what L^CPI is a Taylor expansion of
# ------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    nS=st.integers(1, 6),
    nA=st.integers(2, 4),
    gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 3.0]),
)
@pytest.mark.claim("eq-cpi-pdl", how="property")
def test_performance_difference_lemma(nS, nA, gamma, seed, scale):
    """J(theta) - J(theta_old) = sum_s eta_theta(s) sum_a pi_theta(a|s) A_old(s,a), exactly (random MDPs, hypothesis)."""
    mdp = M.random_mdp(nS, nA, gamma, seed)
    rng = np.random.default_rng(seed)
    theta_old = rng.standard_normal((nS, nA))
    theta = theta_old + scale * rng.standard_normal((nS, nA))
    lhs = expected_return_of_theta(mdp, theta) - expected_return_of_theta(mdp, theta_old)
    assert S.performance_difference(mdp, theta, theta_old) == pytest.approx(lhs, abs=1e-9 * (1 + abs(lhs)) / (1 - gamma))


@pytest.mark.claim("eq-cpi-pdl", how="exact")
def test_cpi_is_pdl_with_the_old_visitation():
    """L^CPI differs from the lemma only by the state weights; with S = 1 they coincide, with S > 1 they do not."""
    mdp1 = M.random_mdp(1, 3, 0.9, 0)
    th_old, th = np.zeros((1, 3)), np.array([[1.0, -2.0, 0.5]])
    assert S.cpi_objective(mdp1, th, th_old) == pytest.approx(S.performance_difference(mdp1, th, th_old), rel=1e-12)
    mdp, theta_old = make_case(4, 3, 0.9, 3)
    theta = theta_old + 1.0
    theta[0, 0] += 2.0
    assert abs(S.cpi_objective(mdp, theta, theta_old) - S.performance_difference(mdp, theta, theta_old)) > 1e-3


@pytest.mark.claim("prop-cpi-taylor", how="finite difference")
def test_cpi_is_the_first_order_term_in_the_policy_table():
    """d/dt J((1-t) pi_old + t pi_theta) at t = 0 equals L^CPI(theta) (central differences of the exact J)."""
    for nS, nA, gamma, seed in CASES:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        theta = theta_old + np.random.default_rng(seed + 7).standard_normal(theta_old.shape)
        h = 1e-5
        fd = (S.policy_segment_return(mdp, theta, theta_old, h) - S.policy_segment_return(mdp, theta, theta_old, -h)) / (
            2 * h
        )
        L = S.cpi_objective(mdp, theta, theta_old)
        assert fd == pytest.approx(L, rel=1e-6, abs=1e-8 / (1 - gamma))


@pytest.mark.claim("err-cpi-taylor", "prop-cpi-taylor", how="autograd")
def test_cpi_is_not_the_taylor_expansion_in_theta():
    """L^CPI is not linear in theta, and its Hessian at theta_old differs from that of J (torch double backward)."""
    for nS, nA, gamma, seed in CASES[3::2]:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        t0 = torch.tensor(theta_old)
        H_L = torch.autograd.functional.hessian(lambda t: S.cpi_objective_torch(mdp, t, theta_old), t0, vectorize=True)
        H_J = torch.autograd.functional.hessian(lambda t: expected_return_torch(mdp, t), t0, vectorize=True)
        n = nS * nA
        H_L, H_J = H_L.reshape(n, n).numpy(), H_J.reshape(n, n).numpy()
        assert np.max(np.abs(H_L)) > 1e-3  # a linear function (the Taylor polynomial) has zero Hessian
        assert np.max(np.abs(H_L - H_J)) > 1e-3 * np.max(np.abs(H_J))  # and it is not J's second-order term either
        # ... while value and gradient agree: J(theta) - J_old - L^CPI(theta) = O(|theta - theta_old|^2)
        direction = np.random.default_rng(seed).standard_normal(theta_old.shape)
        rem = []
        for step in (1e-3, 2e-3):
            th = theta_old + step * direction
            rem.append(
                expected_return_of_theta(mdp, th) - expected_return_of_theta(mdp, theta_old) - S.cpi_objective(mdp, th, theta_old)
            )
        assert rem[1] / rem[0] == pytest.approx(4.0, rel=0.05)


@settings(max_examples=20, deadline=None)
@given(nA=st.integers(2, 5), gamma=st.sampled_from([0.0, 0.5, 0.9, 0.99]), seed=st.integers(0, 10_000))
def test_exercise_one_state(nA, gamma, seed):
    """Exercise ex-ch06-one-state: with one state, J(theta) - J(theta_old) = L^CPI(theta) for every theta."""
    mdp = M.random_mdp(1, nA, gamma, seed)
    rng = np.random.default_rng(seed)
    theta_old, theta = rng.standard_normal((1, nA)), 5 * rng.standard_normal((1, nA))
    lhs = expected_return_of_theta(mdp, theta) - expected_return_of_theta(mdp, theta_old)
    assert S.cpi_objective(mdp, theta, theta_old) == pytest.approx(lhs, rel=1e-10, abs=1e-12 / (1 - gamma))


# ------------------------------------------------------------------------------------------------
# TRPO, Theorem 1
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("thm-cpi-trpo-bound", how="exact")
def test_trpo_lower_bound_holds_and_is_needed():
    """J >= J_old + L^CPI - C max KL (and the TV form) on 200 random policy pairs; with C = 0 it fails in many."""
    violations_without_penalty = 0
    count = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        nS, nA = int(rng.integers(2, 7)), int(rng.integers(2, 5))
        gamma = (0.5, 0.9, 0.99)[seed % 3]
        mdp = M.random_mdp(nS, nA, gamma, seed)
        theta_old = rng.standard_normal((nS, nA))
        J_old = expected_return_of_theta(mdp, theta_old)
        for scale in (0.01, 0.1, 0.5, 1.0, 3.0):
            theta = theta_old + scale * rng.standard_normal((nS, nA))
            J = expected_return_of_theta(mdp, theta)
            tol = 1e-10 / (1 - gamma) ** 2
            assert J >= S.trpo_lower_bound(mdp, theta, theta_old, "kl") - tol
            assert J >= S.trpo_lower_bound(mdp, theta, theta_old, "tv") - tol
            assert S.trpo_lower_bound(mdp, theta, theta_old, "tv") >= S.trpo_lower_bound(mdp, theta, theta_old, "kl") - tol
            violations_without_penalty += J < J_old + S.cpi_objective(mdp, theta, theta_old) - tol
            count += 1
    assert count == 200
    assert violations_without_penalty >= 20


@pytest.mark.claim("thm-cpi-trpo-bound", how="exact")
def test_trpo_penalty_cannot_be_twenty_times_smaller():
    """Power: on sharper policies (logits x2, 20 MDPs x 4 gammas x 4 step sizes) the loss J_old + L - J uses over 5% of C alpha^2: C/20 fails."""
    worst = 0.0
    for seed in range(240, 260):
        rng = np.random.default_rng(seed)
        nS, nA = int(rng.integers(2, 6)), int(rng.integers(2, 4))
        for gamma in (0.5, 0.8, 0.9, 0.99):
            mdp = M.random_mdp(nS, nA, gamma, seed)
            theta_old = 2 * rng.standard_normal((nS, nA))
            J_old = expected_return_of_theta(mdp, theta_old)
            for scale in (0.3, 1, 3, 10):
                theta = theta_old + scale * rng.standard_normal((nS, nA))
                L = S.cpi_objective(mdp, theta, theta_old)
                penalty = J_old + L - S.trpo_lower_bound(mdp, theta, theta_old, "tv")  # C alpha^2
                worst = max(worst, (J_old + L - expected_return_of_theta(mdp, theta)) / penalty)
    assert 0.05 < worst <= 1.0  # measured: 0.073


@pytest.mark.claim("thm-cpi-trpo-bound", how="exact")
def test_trpo_constant_and_kl():
    """C = 4 eps gamma / (1 - gamma)^2 with eps = max |A_old| (the constant as the theorem states it); KL(p||p) = 0 and KL matches torch.distributions."""
    mdp, theta_old = make_case(3, 2, 0.9, 1)
    A = M.advantage_values(mdp, policies.probs(theta_old))
    assert S.trpo_penalty_coefficient(mdp, theta_old) == pytest.approx(4 * np.abs(A).max() * 0.9 / 0.01)
    p, q = policies.probs(theta_old), policies.probs(theta_old + 1.3 * np.eye(3, 2))
    assert np.allclose(S.policy_kl(p, p), 0.0)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Categorical(probs=torch.tensor(p)), torch.distributions.Categorical(probs=torch.tensor(q))
    )
    assert np.allclose(S.policy_kl(p, q), ref.numpy(), rtol=1e-12)
    assert S.trpo_lower_bound(mdp, theta_old, theta_old) == pytest.approx(expected_return_of_theta(mdp, theta_old))


# ------------------------------------------------------------------------------------------------
# The discount pitfall
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-cpi-pitfall", how="Monte Carlo")
def test_pitfall_is_what_the_sample_average_estimates():
    """The uniform time-step average estimates eq-cpi-pitfall, not (1-gamma) grad J; the gamma^t-weighted sum estimates grad J.

    n = 20000 episodes of length 60, seed 1, Bonferroni-corrected 99 % intervals over the 12 entries.
    """
    mdp = S.trap_chain_mdp(3, 1.0, 4.0, 0.8)
    theta = np.random.default_rng(0).standard_normal((4, 2))
    T, n = 60, 20_000
    level = 1 - 0.01 / 8
    uniform = mean_ci(S.time_step_gradient_samples(mdp, theta, n, T, seed=1, weighting="uniform").reshape(n, -1), level)
    disc = mean_ci(S.time_step_gradient_samples(mdp, theta, n, T, seed=2, weighting="discounted").reshape(n, -1), level)
    pit = S.discount_pitfall_gradient(mdp, theta, T).ravel()
    grad = policy_gradient(mdp, theta).ravel()
    assert uniform.contains(pit).all()
    assert not uniform.contains((1 - mdp.gamma) * grad).all()  # the check would fail if the pitfall were harmless
    assert disc.contains(grad).all()  # (truncation 0.8^60 ~ 1e-6 is far below the interval widths)
    assert_power(uniform, np.abs(pit).max())
    assert_power(disc, np.abs(grad).max())
    assert not disc.contains(pit / (1 - mdp.gamma)).all()


@pytest.mark.claim("prop-cpi-pitfall-direction", how="exact")
def test_pitfall_direction_tabular_vs_shared():
    """Tabular: the pitfall direction is an ascent direction of J; shared parameters: it can point downhill."""
    for nS, nA, gamma, seed in CASES:
        mdp, theta = make_case(nS, nA, gamma, seed)
        g, p = policy_gradient(mdp, theta), S.discount_pitfall_gradient(mdp, theta, 200)
        assert np.sum(g * p) > 0
    # the trap chain with one shared "go" logit x: at x = 0.15, dJ/dx > 0 but the pitfall says < 0
    mdp = S.trap_chain_mdp(6, 1.0, 8.0, 0.9)
    policy = LinearSoftmaxPolicy(np.ones((7, 1)), 2)
    w = np.array([[0.0, 0.15]])
    theta = policy.logits(w)
    dJ = policy.param_gradient(policy_gradient(mdp, theta))
    dpit = policy.param_gradient(S.discount_pitfall_gradient(mdp, theta, 1000))
    assert dJ[0, 1] > 0 > dpit[0, 1]
    assert dJ[0, 1] == pytest.approx(policy.param_gradient(autograd_policy_gradient(mdp, theta))[0, 1], rel=1e-10)


def test_time_averaged_distribution():
    """mu_T sums to one and equals the mean of p0 P_pi^t; T = 1 gives p0."""
    mdp, theta = make_case(4, 3, 0.9, 2)
    pi = policies.probs(theta)
    mu = S.time_averaged_state_distribution(mdp, pi, 7)
    P = M.policy_transition_matrix(mdp, pi)
    ref = np.mean([mdp.p0 @ np.linalg.matrix_power(P, t) for t in range(7)], axis=0)
    assert np.allclose(mu, ref, atol=1e-14) and mu.sum() == pytest.approx(1.0)
    assert np.allclose(S.time_averaged_state_distribution(mdp, pi, 1), mdp.p0)


def test_trap_chain_structure():
    """The trap chain: rows of P are distributions; 'go' advances and pays the bonus, the trap pays -penalty."""
    mdp = S.trap_chain_mdp(3, 2.0, 5.0, 0.9)
    assert mdp.n_states == 4 and mdp.n_actions == 2
    assert mdp.P[1, 1, 2] == 1 and mdp.R[1, 1] == 2.0 and mdp.R[3, 1] == -5.0 and mdp.P[3, 1, 3] == 1
    assert np.all(mdp.P[:, 0, 0] == 1) and np.all(mdp.R[:, 0] == 0)


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_bad_input_raises():
    """Every public function of pgbook.surrogate rejects wrong shapes, NaN and bad arguments with ValueError."""
    mdp, theta = make_case(3, 2, 0.9, 0)
    bad_shape = np.zeros((2, 2))
    nan = theta.copy()
    nan[0, 0] = np.nan
    for fn in (S.cpi_objective, S.cpi_gradient, S.performance_difference):
        with pytest.raises(ValueError, match="theta"):
            fn(mdp, bad_shape, theta)
        with pytest.raises(ValueError, match="theta_old"):
            fn(mdp, theta, bad_shape)
        with pytest.raises(ValueError, match="NaN"):
            fn(mdp, nan, theta)
        with pytest.raises(ValueError, match="mdp"):
            fn("not an mdp", theta, theta)
    for fn in (S.surrogate_objective, S.surrogate_gradient):
        with pytest.raises(ValueError, match="state_weights"):
            fn(mdp, theta, theta, np.ones(2))
        with pytest.raises(ValueError, match="state_weights"):
            fn(mdp, theta, theta, -np.ones(3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        S.cpi_objective_torch(mdp, theta, theta)
    with pytest.raises(ValueError, match="shape"):
        S.cpi_objective_torch(mdp, torch.zeros(2, 2, dtype=torch.float64), theta)
    with pytest.raises(ValueError, match="NaN"):
        S.cpi_objective_torch(mdp, torch.tensor(nan), theta)
    with pytest.raises(ValueError, match="t must"):
        S.policy_segment_return(mdp, theta, theta, float("nan"))
    p = policies.probs(theta)
    with pytest.raises(ValueError, match="pi must have shape"):
        S.policy_kl(p, p[:2])
    with pytest.raises(ValueError, match="sum to 1"):
        S.policy_kl(p, 2 * p)
    with pytest.raises(ValueError, match="positive wherever"):
        S.policy_kl(p, np.array([[1.0, 0.0]] * 3))
    with pytest.raises(ValueError, match="divergence"):
        S.trpo_lower_bound(mdp, theta, theta, divergence="js")
    with pytest.raises(ValueError, match="theta_old"):
        S.trpo_penalty_coefficient(mdp, bad_shape)
    with pytest.raises(ValueError, match="horizon"):
        S.time_averaged_state_distribution(mdp, p, 0)
    with pytest.raises(ValueError, match="pi"):
        S.time_averaged_state_distribution(mdp, 2 * p, 3)
    with pytest.raises(ValueError, match="horizon"):
        S.discount_pitfall_gradient(mdp, theta, -1)
    with pytest.raises(ValueError, match="weighting"):
        S.time_step_gradient_samples(mdp, theta, 10, 5, 0, weighting="discount")
    with pytest.raises(ValueError, match="n_episodes"):
        S.time_step_gradient_samples(mdp, theta, 0, 5, 0, weighting="uniform")
    with pytest.raises(ValueError, match="length"):
        S.trap_chain_mdp(0, 1.0, 1.0, 0.9)
    with pytest.raises(ValueError, match="penalty"):
        S.trap_chain_mdp(3, 1.0, float("nan"), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        S.trap_chain_mdp(3, 1.0, 1.0, 1.0)


# ------------------------------------------------------------------------------------------------
# The average-divergence bound of Achiam et al. (2017, CPO), chapter 7
# ------------------------------------------------------------------------------------------------


def average_divergence_cases():
    """(mdp, theta, theta_old): dense random MDPs and nearly deterministic ones; the policy changed in every state,
    in one random state, or only in the state that pi_old visits least (where an average over d_old sees little)."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        nS, nA = int(rng.integers(2, 7)), int(rng.integers(2, 5))
        gamma = (0.5, 0.9, 0.99)[seed % 3]
        mdp = M.random_mdp(nS, nA, gamma, seed) if seed % 4 == 0 else S.random_sparse_mdp(nS, nA, gamma, seed, 0.1)
        theta_old = rng.standard_normal((nS, nA))
        rarest = int(np.argmin(M.discounted_state_distribution(mdp, policies.probs(theta_old))))
        for scale in (0.1, 0.5, 1.0, 3.0, 10.0):
            step = scale * rng.standard_normal((nS, nA))
            yield mdp, theta_old + step, theta_old
            for s in (int(rng.integers(nS)), rarest):
                one = np.zeros((nS, 1))
                one[s] = 1.0
                yield mdp, theta_old + one * step, theta_old


@pytest.mark.claim("thm-clip-avg-divergence", how="exact")
def test_average_divergence_bound_holds_and_wrong_versions_fail():
    """J - J_old >= L^CPI - 2 gamma eps_Abar/(1-gamma)^2 E_d[TV] (and its KL form) on 1500 pairs; four wrong versions fail on some."""
    wrong = {"no penalty": 0, "one 1/(1-gamma) fewer": 0, "TRPO's C alpha^2 with alpha = E_d[TV]": 0, "eps' -> E_d|abar|": 0}
    count, tightest = 0, 0.0
    for mdp, theta, theta_old in average_divergence_cases():
        g = mdp.gamma
        pi, pi_old = policies.probs(theta), policies.probs(theta_old)
        J, J_old = expected_return_of_theta(mdp, theta), expected_return_of_theta(mdp, theta_old)
        L = S.cpi_objective(mdp, theta, theta_old)
        tol = 1e-10 / (1 - g) ** 2
        tv_bound, kl_bound = S.cpo_lower_bound(mdp, theta, theta_old, "tv"), S.cpo_lower_bound(mdp, theta, theta_old, "kl")
        assert J >= tv_bound - tol and tv_bound >= kl_bound - tol
        # the same bound assembled from its parts: eps' from the advantage table, E_d[TV] from the two tables
        abar = (pi * M.advantage_values(mdp, pi_old)).sum(axis=1)
        d_old = M.discounted_state_distribution(mdp, pi_old)
        mean_tv = d_old @ (0.5 * np.abs(pi - pi_old).sum(axis=1))
        assert S.cpo_epsilon(mdp, theta, theta_old) == pytest.approx(np.abs(abar).max(), rel=1e-12)
        assert S.mean_policy_tv(mdp, theta, theta_old) == pytest.approx(mean_tv, rel=1e-12)
        penalty = 2 * g * np.abs(abar).max() / (1 - g) ** 2 * mean_tv
        assert tv_bound == pytest.approx(J_old + L - penalty, rel=1e-12, abs=tol)
        tightest = max(tightest, (J_old + L - J) / penalty)
        wrong["no penalty"] += J < J_old + L - tol
        wrong["one 1/(1-gamma) fewer"] += J < J_old + L - (1 - g) * penalty - tol
        wrong["TRPO's C alpha^2 with alpha = E_d[TV]"] += J < J_old + L - S.trpo_penalty_coefficient(mdp, theta_old) * mean_tv**2 - tol
        wrong["eps' -> E_d|abar|"] += J < J_old + L - penalty * (d_old @ np.abs(abar)) / np.abs(abar).max() - tol
        count += 1
    assert count == 1500
    assert all(n >= 3 for n in wrong.values()), wrong
    assert tightest > 0.3  # on some pair more than 30 % of the penalty is needed: the bound is not vacuous


@pytest.mark.claim("thm-clip-avg-divergence", how="exact")
def test_average_kl_step_and_kl_penalty_floors():
    """Shared parameters: every theta with L^CPI >= 0 (resp. L^KLPEN >= 0) has J above the floor; J < J_old happens (no monotone improvement)."""
    from pgbook.clipping import expected_kl_penalty_objective

    checked, decreases = 0, 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        nS, nA = int(rng.integers(3, 7)), int(rng.integers(2, 4))
        gamma = (0.5, 0.9, 0.99)[seed % 3]
        mdp = S.random_sparse_mdp(nS, nA, gamma, seed, 0.1)
        policy = LinearSoftmaxPolicy(rng.standard_normal((nS, 1)) + 1.0, nA)  # one weight vector for all states
        w_old, u = rng.standard_normal((1, nA)), rng.standard_normal((1, nA))
        theta_old = policy.logits(w_old)
        J_old = expected_return_of_theta(mdp, theta_old)
        tol = 1e-10 / (1 - gamma) ** 3
        for t in np.linspace(-4.0, 4.0, 17):
            theta = policy.logits(w_old + t * u)
            L = S.cpi_objective(mdp, theta, theta_old)
            kl = S.mean_policy_kl(mdp, theta, theta_old)
            if L < 0 or kl < 1e-12:
                continue
            J = expected_return_of_theta(mdp, theta)
            assert J >= S.trust_region_floor(mdp, theta, theta_old, kl) - tol
            beta = L * (1 - gamma) / kl  # the largest beta with L^KLPEN(theta) >= 0
            assert expected_kl_penalty_objective(mdp, theta, theta_old, beta) == pytest.approx(0.0, abs=1e-9 / (1 - gamma))
            assert J >= S.kl_penalty_floor(mdp, theta, theta_old, beta * (1 - 1e-9)) - tol
            checked += 1
            decreases += J < J_old - tol
    assert checked >= 100
    assert decreases >= 5  # "J(theta) >= J(theta_old)" is false for such steps: bounded degradation, not improvement


def test_average_divergence_bad_input_raises():
    """The new functions reject bad input, and the floors reject a theta outside their conditions, naming the argument."""
    mdp, theta = make_case(3, 2, 0.9, 1)
    p = policies.probs(theta)
    with pytest.raises(ValueError, match="pi must have shape"):
        S.policy_tv(p, p[:2])
    with pytest.raises(ValueError, match="pi_old"):
        S.policy_tv(2 * p, p)
    for fn in (S.mean_policy_tv, S.cpo_epsilon, S.cpo_lower_bound):
        with pytest.raises(ValueError, match="theta_old"):
            fn(mdp, theta, np.zeros((2, 2)))
        with pytest.raises(ValueError, match="mdp"):
            fn("mdp", theta, theta)
    with pytest.raises(ValueError, match="divergence"):
        S.cpo_lower_bound(mdp, theta, theta, divergence="max")
    far = theta + np.array([[3.0, -3.0]] * 3)
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="delta"):
            S.trust_region_floor(mdp, theta, theta, bad)
        with pytest.raises(ValueError, match="beta"):
            S.kl_penalty_floor(mdp, theta, theta, bad)
    with pytest.raises(ValueError, match="theta must satisfy the constraint"):
        S.trust_region_floor(mdp, far, theta, 1e-3)
    direction = S.cpi_gradient(mdp, theta, theta)
    downhill = theta - 0.5 * direction / np.abs(direction).max()
    with pytest.raises(ValueError, match="theta must have L.CPI"):
        S.trust_region_floor(mdp, downhill, theta, 10.0)
    with pytest.raises(ValueError, match="theta must have L.KLPEN"):
        S.kl_penalty_floor(mdp, downhill, theta, 1.0)
    assert S.trust_region_floor(mdp, theta, theta, 0.01) == pytest.approx(expected_return_of_theta(mdp, theta))
    assert S.cpo_lower_bound(mdp, theta, theta) == pytest.approx(expected_return_of_theta(mdp, theta))
    for kwargs, word in ((dict(concentration=0.0), "concentration"), (dict(seed=1.5), "seed"), (dict(n_states=0), "n_states")):
        args = dict(n_states=3, n_actions=2, gamma=0.9, seed=0, concentration=0.1) | kwargs
        with pytest.raises(ValueError, match=word):
            S.random_sparse_mdp(**args)


@pytest.mark.claim("thm-clip-avg-divergence", how="sympy")
def test_kl_penalty_floor_is_the_minimum_of_its_quadratic():
    """Part 2 derived independently: min over x = sqrt(E KL) >= 0 of beta x^2/(1-gamma) - sqrt2 gamma eps_Abar x/(1-gamma)^2 (sympy) equals kl_penalty_floor - J_old."""
    import sympy as sp

    x = sp.symbols("x", nonnegative=True)
    beta_s, gamma_s, eps_s = sp.symbols("beta gamma epsilon", positive=True)
    q = beta_s * x**2 / (1 - gamma_s) - sp.sqrt(2) * gamma_s * eps_s * x / (1 - gamma_s) ** 2
    x_star = sp.solve(sp.diff(q, x), x)[0]
    floor_expr = sp.simplify(q.subs(x, x_star))
    assert sp.simplify(floor_expr + gamma_s**2 * eps_s**2 / (2 * beta_s * (1 - gamma_s) ** 3)) == 0
    for nS, nA, gamma, seed in ((3, 2, 0.9, 0), (4, 3, 0.5, 1), (2, 2, 0.99, 2)):
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        J_old = M.expected_return(mdp, policies.probs(theta_old))
        for beta in (0.5, 3.0):
            # a step with L^KLPEN >= 0: theta_old itself (L^KLPEN = 0), where eps' = max_s |sum_a pi_old A_old| = 0,
            # and a small step along the exact gradient of L^CPI, which makes L^KLPEN > 0
            theta = theta_old + 1e-3 * S.cpi_gradient(mdp, theta_old, theta_old)
            eps = S.cpo_epsilon(mdp, theta, theta_old)
            want = float(floor_expr.subs({beta_s: beta, gamma_s: gamma, eps_s: eps}))
            assert S.kl_penalty_floor(mdp, theta, theta_old, beta) - J_old == pytest.approx(want, rel=1e-12, abs=1e-15)
            assert want < 0
