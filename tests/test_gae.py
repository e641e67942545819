"""Tests of pgbook.gae: generalized advantage estimation (chapter 8, :doc:`/book/ch08_gae`)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_power, random_theta
from pgbook import gradients, policies
from pgbook import mdp as M
from pgbook.gae import (
    gae,
    gae_definition,
    gae_policy_gradient,
    lambda_return,
    n_step_return,
    tabular_gae_moments,
    td_errors,
)
from pgbook.montecarlo import mean_ci

# ---------------------------------------------------------------------------------------------
# The notes' code, verbatim (section 阶段2：优势计算). Do not "fix" it: the tests below pin down
# exactly how it differs from the definition.
# ---------------------------------------------------------------------------------------------


def compute_advantages(rewards, values, dones, next_value, gamma=0.99, lambda_=0.95):
    advantages = []
    returns = []

    # 计算TD误差
    deltas = []
    for t in range(len(rewards)):
        td_target = rewards[t] + gamma * (1 - dones[t]) * values[t+1] if t < len(rewards)-1 else next_value  # noqa: E501
        delta = td_target - values[t]
        deltas.append(delta)

    # 计算GAE
    advantage = 0
    for t in reversed(range(len(deltas))):
        advantage = deltas[t] + gamma * lambda_* advantage
        advantages.insert(0, advantage)
        returns.insert(0, advantage + values[t])

    return advantages, returns


# ---------------------------------------------------------------------------------------------
# Random rollouts with episode boundaries.
# ---------------------------------------------------------------------------------------------

KINDS = ("step", "terminated", "truncated")


def make_rollout(kinds, seed):
    """Rollout arrays from a (T, N) array of step kinds; next_values is V(s_{t+1}) within an episode,
    an independent draw (the true final observation's value) at a truncation, and garbage (which
    must be ignored) at a termination."""
    kinds = np.asarray(kinds)
    T, N = kinds.shape
    rng = np.random.default_rng(seed)
    rewards = rng.standard_normal((T, N))
    v = rng.standard_normal((T + 1, N))
    values = v[:-1]
    terminated = kinds == "terminated"
    episode_end = terminated | (kinds == "truncated")
    next_values = np.where(episode_end, rng.standard_normal((T, N)), v[1:])
    next_values = np.where(terminated, 1e3 * rng.standard_normal((T, N)), next_values)
    return rewards, values, next_values, terminated, episode_end


@st.composite
def rollouts(draw, n_envs=None, min_boundaries=2):
    """(arrays, gamma, lam) with at least ``min_boundaries`` episode ends in every column."""
    T = draw(st.integers(max(1, min_boundaries), 30))
    N = draw(st.integers(1, 3)) if n_envs is None else n_envs
    cols = []
    for _ in range(N):
        col = draw(st.lists(st.sampled_from(KINDS), min_size=T, max_size=T))
        ends = draw(st.lists(st.integers(0, T - 1), min_size=min_boundaries, max_size=min_boundaries, unique=True))
        for e in ends:
            if col[e] == "step":
                col[e] = draw(st.sampled_from(KINDS[1:]))
        cols.append(col)
    kinds = np.array(cols).T
    seed = draw(st.integers(0, 2**31 - 1))
    gamma = draw(st.floats(0.0, 1.0))
    lam = draw(st.floats(0.0, 1.0))
    return make_rollout(kinds, seed), gamma, lam


def squeeze(arrays):
    return tuple(a[:, 0] for a in arrays)


def to_torch(arrays, dtype=torch.float64):
    return tuple(torch.tensor(a) if a.dtype == bool else torch.tensor(a, dtype=dtype) for a in arrays)


# ---------------------------------------------------------------------------------------------
# The recursion equals the definition.
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("err-gae-definition-episodes", "eq-gae-recursion", "prop-gae-recursion", how="property")
@settings(max_examples=150, deadline=None)
@given(rollouts(n_envs=1))
def test_gae_equals_definition_numpy_1d(case):
    """gae (backward recursion) equals the brute-force sum over (gamma lam)^l delta_{t+l}: numpy, shape (T,)."""
    arrays, gamma, lam = case
    arrays = squeeze(arrays)
    adv, ret = gae(*arrays, gamma, lam)
    assert isinstance(adv, np.ndarray) and adv.shape == arrays[0].shape and adv.dtype == np.float64
    np.testing.assert_allclose(adv, gae_definition(*arrays, gamma, lam), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret, adv + arrays[1], rtol=0, atol=0)


@pytest.mark.claim("eq-gae-recursion", "prop-gae-recursion", how="property")
@settings(max_examples=100, deadline=None)
@given(rollouts())
def test_gae_equals_definition_numpy_2d(case):
    """gae equals the brute-force definition column by column: numpy, shape (T, n_envs)."""
    arrays, gamma, lam = case
    adv, _ = gae(*arrays, gamma, lam)
    assert adv.shape == arrays[0].shape
    np.testing.assert_allclose(adv, gae_definition(*arrays, gamma, lam), rtol=0, atol=1e-12)


@pytest.mark.claim("eq-gae-recursion", "prop-gae-recursion", how="property")
@settings(max_examples=100, deadline=None)
@given(rollouts(), st.booleans())
def test_gae_equals_definition_torch(case, one_d):
    """gae on float64 torch tensors returns float64 tensors equal to the brute-force definition."""
    arrays, gamma, lam = case
    if one_d:
        arrays = squeeze(arrays)
    adv, ret = gae(*to_torch(arrays), gamma, lam)
    assert isinstance(adv, torch.Tensor) and adv.dtype == torch.float64 and tuple(adv.shape) == arrays[0].shape
    assert isinstance(ret, torch.Tensor) and ret.dtype == torch.float64
    np.testing.assert_allclose(adv.numpy(), gae_definition(*arrays, gamma, lam), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret.numpy(), adv.numpy() + arrays[1], rtol=0, atol=1e-15)


def test_wrong_recursions_fail_the_same_check():
    """Ignoring episode_end in the recursion, or bootstrapping after a termination, breaks the equality."""
    kinds = np.array([["step", "terminated", "step", "truncated", "step", "step"]]).T
    r, v, nv, term, end = make_rollout(kinds, seed=3)
    ref = gae_definition(r, v, nv, term, end, 0.9, 0.8)
    delta = td_errors(r, v, nv, term, end, 0.9)
    leaky = np.zeros_like(delta)  # the recursion without (1 - episode_end)
    running = np.zeros(1)
    for t in reversed(range(len(delta))):
        running = delta[t] + 0.9 * 0.8 * running
        leaky[t] = running
    assert np.max(np.abs(leaky - ref)) > 1e-3
    bootstrap_all, _ = gae(r, v, nv, np.zeros_like(term), end, 0.9, 0.8)
    assert np.max(np.abs(bootstrap_all - ref)) > 1e-3


@pytest.mark.claim("err-gae-target-critic", "eq-gae-recursion", how="property")
def test_gae_torch_float32_keeps_dtype_device_and_no_grad():
    """float32 (T, n_envs) tensors in, float32 tensors out on the same device, without autograd history."""
    kinds = np.array([["step"] * 6 + ["truncated"] + ["step"] * 4 + ["terminated"]] * 4).T
    arrays = make_rollout(kinds, seed=0)
    t_arrays = list(to_torch(arrays, torch.float32))
    t_arrays[1] = t_arrays[1].clone().requires_grad_(True)
    adv, ret = gae(*t_arrays, 0.99, 0.95)
    assert adv.dtype == torch.float32 and ret.dtype == torch.float32
    assert adv.device == t_arrays[0].device and adv.shape == (12, 4)
    assert not adv.requires_grad and not ret.requires_grad
    np.testing.assert_allclose(adv.numpy(), gae_definition(*arrays, 0.99, 0.95), rtol=1e-5, atol=1e-5)


def test_gae_mixed_inputs_and_integer_flags():
    """Torch floats with numpy 0/1 flags give the same result as an all-numpy call."""
    kinds = np.array([["step", "terminated", "step", "step", "truncated", "step"]] * 2).T
    r, v, nv, term, end = make_rollout(kinds, seed=5)
    ref, _ = gae(r, v, nv, term, end, 0.9, 0.7)
    adv, _ = gae(torch.tensor(r), torch.tensor(v), torch.tensor(nv), term.astype(int), end.astype(float), 0.9, 0.7)
    np.testing.assert_allclose(adv.numpy(), ref, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# lambda = 0 and lambda = 1: sympy and property tests.
# ---------------------------------------------------------------------------------------------


def _symbolic_gae(L, gamma, lam):
    r = sp.symbols(f"r0:{L}")
    V = sp.symbols(f"V0:{L + 1}")
    delta = [r[k] + gamma * V[k + 1] - V[k] for k in range(L)]
    A0 = sum((gamma * lam) ** k * delta[k] for k in range(L))
    return r, V, delta, A0


@pytest.mark.claim("eq-gae-lambda-zero", "eq-gae-lambda-one", how="sympy")
@pytest.mark.parametrize("L", [1, 2, 5, 9])
def test_sympy_telescoping(L):
    """Symbolically: lam = 0 leaves delta_0; lam = 1 telescopes to sum gamma^k r_k + gamma^L V_L - V_0."""
    gamma, lam = sp.symbols("gamma lambda")
    r, V, delta, A0 = _symbolic_gae(L, gamma, lam)
    assert sp.expand(A0.subs(lam, 0) - delta[0]) == 0
    telescoped = sum(gamma**k * r[k] for k in range(L)) + gamma**L * V[L] - V[0]
    assert sp.expand(A0.subs(lam, 1) - telescoped) == 0
    # a wrong claim (no bootstrap term) fails the same check
    assert sp.expand(A0.subs(lam, 1) - (telescoped - gamma**L * V[L])) != 0


@pytest.mark.claim("eq-gae-lambda-zero", how="property")
@settings(max_examples=60, deadline=None)
@given(rollouts())
def test_lambda_zero_is_td_error(case):
    """With lam = 0 the advantage is the TD error delta_t and the return is the one-step return."""
    arrays, gamma, _ = case
    adv, ret = gae(*arrays, gamma, 0.0)
    np.testing.assert_allclose(adv, td_errors(*arrays, gamma), rtol=0, atol=1e-15)
    np.testing.assert_allclose(ret, n_step_return(*arrays, gamma, 1), rtol=0, atol=1e-12)


@pytest.mark.claim("eq-gae-lambda-one", how="property")
@settings(max_examples=60, deadline=None)
@given(rollouts())
def test_lambda_one_is_discounted_return_minus_value(case):
    """With lam = 1, A_t = sum_k gamma^k r_{t+k} (to the episode's end) + bootstrap if not terminated - V(s_t)."""
    arrays, gamma, _ = case
    r, v, nv, term, end = arrays
    adv, _ = gae(*arrays, gamma, 1.0)
    T, N = r.shape
    expected = np.zeros((T, N))
    for j in range(N):
        for t in range(T):
            k = t
            while k < T - 1 and not end[k, j]:
                k += 1
            G = sum(gamma ** (u - t) * r[u, j] for u in range(t, k + 1))
            if not term[k, j]:
                G += gamma ** (k + 1 - t) * nv[k, j]
            expected[t, j] = G - v[t, j]
    np.testing.assert_allclose(adv, expected, rtol=0, atol=1e-12)


@pytest.mark.claim("eq-gae-lambda-return", how="property")
@settings(max_examples=60, deadline=None)
@given(rollouts())
def test_returns_are_lambda_returns(case):
    """returns = advantages + values equals the lambda-mixture of n-step returns, evaluated from its definition."""
    arrays, gamma, lam = case
    _, ret = gae(*arrays, gamma, lam)
    np.testing.assert_allclose(ret, lambda_return(*arrays, gamma, lam), rtol=0, atol=1e-11)


def test_n_step_return_long_n_is_monte_carlo_and_torch_input():
    """n_step_return with n >= T is the lam = 1 return; reference functions accept torch tensors."""
    kinds = np.array([["step", "terminated", "step", "step", "truncated", "step", "step"]]).T
    arrays = squeeze(make_rollout(kinds, seed=11))
    _, ret1 = gae(*arrays, 0.8, 1.0)
    np.testing.assert_allclose(n_step_return(*arrays, 0.8, 50), ret1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(n_step_return(*to_torch(arrays), 0.8, 50), ret1, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Exact bias and variance on tabular MDPs.
# ---------------------------------------------------------------------------------------------

TABULAR_CASES = [(S, A, g, seed) for seed, (S, A) in enumerate([(2, 2), (3, 2), (4, 3), (5, 2)]) for g in (0.5, 0.9)]
LAMS = np.linspace(0.0, 1.0, 11)


def _tabular(S, A, gamma, seed):
    mdp = M.random_mdp(S, A, gamma, seed)
    theta = random_theta(S, A, seed)
    pi = policies.probs(theta)
    return mdp, theta, pi


@pytest.mark.claim("eq-gae-mean", "eq-gae-second-moment", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", TABULAR_CASES[:4])
def test_moments_equal_truncated_series(S, A, gamma, seed):
    """The linear-solve mean and variance equal sums over l of E[delta_l ...] built from matrix powers."""
    mdp, _, pi = _tabular(S, A, gamma, seed)
    V = M.state_values(mdp, pi) + np.random.default_rng(seed).standard_normal(S)
    lam = 0.7
    c = gamma * lam
    mean, var = tabular_gae_moments(mdp, pi, V, lam)
    # independent computation: E[A] = sum_l c^l E[delta_l | s0, a0] and
    # E[A^2] = sum_j c^{2j} E[delta_j^2 + 2 delta_j sum_{k>=1} c^k delta_{j+k}], with matrix powers
    delta = mdp.R[:, :, None] + gamma * V[None, None, :] - V[:, None, None]  # (S, A, S')
    P_pi = M.policy_transition_matrix(mdp, pi)
    dbar_pi = np.einsum("sa,sat,sat->s", pi, mdp.P, delta)
    # E[delta_l | s0, a0] for l >= 1: P(.|s0,a0) P_pi^{l-1} dbar_pi
    L = 400
    mean_series = np.einsum("sat,sat->sa", mdp.P, delta)
    dist = mdp.P.copy()  # (S, A, S): law of s_l given (s0, a0), l = 1
    for l in range(1, L):
        mean_series = mean_series + c**l * dist @ dbar_pi
        dist = dist @ P_pi
    np.testing.assert_allclose(mean, mean_series, rtol=1e-10, atol=1e-10)
    # E[delta_{j+k} | s_{j+1}] = (P_pi^{k-1} dbar_pi)(s_{j+1}), so the inner sum is g(s_{j+1}) with
    # g = sum_{k>=0} c^{k+1} P_pi^k dbar_pi
    g_series = np.zeros(S)
    vec = dbar_pi.copy()
    for k in range(L):
        g_series += c ** (k + 1) * vec
        vec = P_pi @ vec
    # f(s, a) = E[delta^2 + 2 delta g(s') | s, a]; second moment = sum_j c^{2j} E[f(s_j, a_j) | s0, a0]
    f_sa = np.einsum("sat,sat->sa", mdp.P, delta**2 + 2 * delta * g_series[None, None, :])
    f_pi = (pi * f_sa).sum(1)
    second_series = f_sa.copy()
    dist = mdp.P.copy()
    for j in range(1, L):
        second_series = second_series + c ** (2 * j) * dist @ f_pi
        dist = dist @ P_pi
    np.testing.assert_allclose(var, second_series - mean_series**2, rtol=1e-9, atol=1e-9)


@pytest.mark.claim("eq-gae-mean", "eq-gae-second-moment", how="Monte Carlo")
def test_moments_match_monte_carlo():
    """Sampled GAE estimates at t = 0 (n = 20000, seed 7) match the exact mean and variance (99% CIs)."""
    mdp, _, pi = _tabular(3, 2, 0.9, 2)
    V = M.state_values(mdp, pi) + np.array([1.0, -2.0, 0.5])
    lam = 0.8
    mean, var = tabular_gae_moments(mdp, pi, V, lam)
    states, actions, rewards = M.sample_trajectories(mdp, pi, n_episodes=20_000, horizon=150, seed=7)
    T = 149  # steps 0..148; s_{149} is observed, so next_values is known for every step
    r = rewards[:, :T].T
    v = V[states[:, :T]].T
    nv = V[states[:, 1 : T + 1]].T
    flags = np.zeros((T, r.shape[1]), dtype=bool)
    adv, _ = gae(r, v, nv, flags, flags, mdp.gamma, lam)
    a0 = adv[0]
    s0, act0 = states[:, 0], actions[:, 0]
    # mean: the centred estimate has mean zero; the squared centred estimate has mean E[var(s0, a0)]
    centred = a0 - mean[s0, act0]
    ci_mean = mean_ci(centred, level=0.995)
    assert ci_mean.contains(0.0), (ci_mean.mean, ci_mean.half_width)
    ci_var = mean_ci(centred**2, level=0.995)
    assert ci_var.contains(np.mean(var[s0, act0])), (ci_var.mean, np.mean(var[s0, act0]), ci_var.half_width)
    assert_power(ci_mean, np.sqrt(np.mean(mean[s0, act0] ** 2)))  # 5% of the typical exact mean
    assert_power(ci_var, np.mean(var[s0, act0]))
    # a wrong mean (the exact A^pi, which differs since V != V^pi) is rejected by the same check
    wrong = a0 - M.advantage_values(mdp, pi)[s0, act0]
    assert not mean_ci(wrong, level=0.995).contains(0.0)


@pytest.mark.claim("eq-gae-bias", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", TABULAR_CASES)
def test_bias_closed_form(S, A, gamma, seed):
    """E[A_hat|s,a] - A^pi = gamma (1-lam) P(.|s,a).(I - gamma lam P_pi)^{-1} e - e(s), e = V - V^pi, for all lam."""
    mdp, _, pi = _tabular(S, A, gamma, seed)
    V_pi = M.state_values(mdp, pi)
    A_pi = M.advantage_values(mdp, pi)
    e = np.random.default_rng(7 + seed).standard_normal(S)
    P_pi = M.policy_transition_matrix(mdp, pi)
    for lam in LAMS:
        mean, _ = tabular_gae_moments(mdp, pi, V_pi + e, lam)
        solved = np.linalg.solve(np.eye(S) - gamma * lam * P_pi, e)
        np.testing.assert_allclose(mean - A_pi, gamma * (1 - lam) * mdp.P @ solved - e[:, None], rtol=0, atol=1e-10)
        if 0 < lam < 1:  # a sign error in the derivation is detected
            wrong = gamma * (1 + lam) * mdp.P @ solved - e[:, None]
            assert np.max(np.abs(mean - A_pi - wrong)) > 1e-6


@pytest.mark.claim("err-gae-bias-variance", "thm-gae-exact-critic", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", TABULAR_CASES)
def test_exact_critic_unbiased_and_variance_monotone(S, A, gamma, seed):
    """With V = V^pi: E[A_hat | s, a] = A^pi(s, a) for every lam, and Var is non-decreasing in lam."""
    mdp, _, pi = _tabular(S, A, gamma, seed)
    V = M.state_values(mdp, pi)
    A_pi = M.advantage_values(mdp, pi)
    variances = []
    for lam in LAMS:
        mean, var = tabular_gae_moments(mdp, pi, V, lam)
        np.testing.assert_allclose(mean, A_pi, rtol=0, atol=1e-12)
        variances.append(var)
    variances = np.array(variances)
    assert np.all(np.diff(variances, axis=0) >= -1e-12)
    # the variance decomposition of the proof: Var = Var(delta_0) + sum_{l>=1} c^{2l} E[delta_l^2]
    c = gamma * 0.6
    delta = mdp.R[:, :, None] + gamma * V[None, None, :] - V[:, None, None]
    var0 = np.einsum("sat,sat->sa", mdp.P, delta**2) - A_pi**2
    e2_pi = np.einsum("sa,sat,sat->s", pi, mdp.P, delta**2)
    P_pi = M.policy_transition_matrix(mdp, pi)
    tail = c**2 * mdp.P @ np.linalg.solve(np.eye(S) - c**2 * P_pi, e2_pi)
    np.testing.assert_allclose(tabular_gae_moments(mdp, pi, V, 0.6)[1], var0 + tail, rtol=1e-10, atol=1e-10)


@pytest.mark.claim("thm-gae-exact-critic", how="exact")
def test_inaccurate_critic_biased_for_lambda_below_one():
    """Counter-check: with V != V^pi the mean differs from A^pi for lam < 1 (the theorem needs V = V^pi)."""
    mdp, _, pi = _tabular(4, 3, 0.9, 2)
    V = M.state_values(mdp, pi) + np.random.default_rng(0).standard_normal(4)
    A_pi = M.advantage_values(mdp, pi)
    for lam in (0.0, 0.5, 0.9):
        mean, _ = tabular_gae_moments(mdp, pi, V, lam)
        centred_bias = (mean - A_pi) - ((mean - A_pi) * pi).sum(1, keepdims=True)
        assert np.max(np.abs(centred_bias)) > 1e-2


@pytest.mark.claim("prop-gae-lambda-one", how="exact")
@pytest.mark.parametrize("S,A,gamma,seed", TABULAR_CASES)
def test_lambda_one_bias_is_state_only_and_gradient_unbiased(S, A, gamma, seed):
    """lam = 1: E[A_hat | s, a] - A^pi(s, a) = V^pi(s) - V(s) for any V; the expected gradient is exact.
    lam < 1 with an inaccurate V: the expected gradient differs from the true one."""
    mdp, theta, pi = _tabular(S, A, gamma, seed)
    V_pi = M.state_values(mdp, pi)
    V = V_pi + np.random.default_rng(100 + seed).standard_normal(S)
    mean, _ = tabular_gae_moments(mdp, pi, V, 1.0)
    np.testing.assert_allclose(mean - M.advantage_values(mdp, pi), np.repeat((V_pi - V)[:, None], A, 1), atol=1e-10)
    g_true = gradients.policy_gradient(mdp, theta)
    np.testing.assert_allclose(gae_policy_gradient(mdp, theta, V, 1.0), g_true, rtol=0, atol=1e-10)
    np.testing.assert_allclose(gae_policy_gradient(mdp, theta, V_pi, 0.3), g_true, rtol=0, atol=1e-10)
    assert np.max(np.abs(gae_policy_gradient(mdp, theta, V, 0.3) - g_true)) > 1e-4


@pytest.mark.claim("err-gae-bias-variance", "rem-gae-notes-bias-variance", how="exact")
def test_inaccurate_critic_lambda_zero_can_have_more_variance():
    """The notes' 'lam = 0: low variance' fails for a bad critic: Var at lam = 0 exceeds Var at lam = 1."""
    mdp, _, pi = _tabular(4, 2, 0.9, 1)
    V_pi = M.state_values(mdp, pi)
    V = V_pi + 20.0 * np.random.default_rng(0).standard_normal(4)
    _, var0 = tabular_gae_moments(mdp, pi, V, 0.0)
    _, var1 = tabular_gae_moments(mdp, pi, V, 1.0)
    assert np.all(var0 > var1)
    # with the exact critic the ordering of the notes holds (theorem thm-gae-exact-critic)
    _, e0 = tabular_gae_moments(mdp, pi, V_pi, 0.0)
    _, e1 = tabular_gae_moments(mdp, pi, V_pi, 1.0)
    assert np.all(e0 <= e1)


@pytest.mark.claim("err-gae-bias-variance", "rem-gae-notes-bias-variance", how="enumeration")
def test_lambda_one_with_a_cut_inherits_critic_error():
    """At a rollout cut after L steps, lam = 1 bootstraps: by exhaustive enumeration, E[A_hat_0 | s, a] - A^pi(s, a)
    = gamma^L E[(V - V^pi)(s_L) | s, a] - (V - V^pi)(s), which is action-dependent."""
    mdp, _, pi = _tabular(2, 2, 0.9, 3)
    V_pi = M.state_values(mdp, pi)
    e = np.array([1.5, -2.0])
    V = V_pi + e
    L = 4
    traj = M.enumerate_trajectories(mdp, pi, horizon=L + 1)  # s_0..s_L (a_L is summed out)
    r = traj.rewards[:, :L].T
    flags = np.zeros((L, len(traj.prob)), dtype=bool)
    adv, _ = gae(r, V[traj.states[:, :L]].T, V[traj.states[:, 1:]].T, flags, flags, mdp.gamma, 1.0)
    A_pi = M.advantage_values(mdp, pi)
    P_pi = M.policy_transition_matrix(mdp, pi)
    predicted = mdp.gamma**L * mdp.P @ np.linalg.matrix_power(P_pi, L - 1) @ e - e[:, None]
    for s in range(2):
        for a in range(2):
            sel = (traj.states[:, 0] == s) & (traj.actions[:, 0] == a)
            w = traj.prob[sel] / traj.prob[sel].sum()
            assert w @ adv[0, sel] - A_pi[s, a] == pytest.approx(predicted[s, a], abs=1e-12)
    centred = predicted - (pi * predicted).sum(1, keepdims=True)
    assert np.max(np.abs(centred)) > 1e-3


# ---------------------------------------------------------------------------------------------
# Termination versus truncation.
# ---------------------------------------------------------------------------------------------


def _constant_chain(L, episodes, gamma, c):
    """Reward 1 at every step, episodes of L steps cut by a time limit, critic V = c everywhere."""
    T = L * episodes
    rewards = np.ones(T)
    values = np.full(T, c)
    next_values = np.full(T, c)
    episode_end = (np.arange(T) % L) == L - 1
    return rewards, values, next_values, episode_end


@pytest.mark.claim("err-gae-code-done-flag", "eq-gae-truncation", how="exact")
@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.99, 0.0)])
def test_truncation_targets(gamma, lam):
    """A never-failing reward-1 chain: correct handling gives targets 1/(1-gamma); truncation-as-termination
    gives 1/(1-gamma) - gamma (gamma lam)^(L-1-t) / (1-gamma)."""
    L = 500
    c = 1.0 / (1.0 - gamma)
    r, v, nv, end = _constant_chain(L, 2, gamma, c)
    _, right = gae(r, v, nv, np.zeros_like(end), end, gamma, lam)
    np.testing.assert_allclose(right, c, rtol=1e-13)
    _, wrong = gae(r, v, nv, end, end, gamma, lam)
    t = np.arange(2 * L) % L
    np.testing.assert_allclose(wrong, c - gamma * (gamma * lam) ** (L - 1 - t) / (1 - gamma), rtol=1e-12)
    assert wrong[L - 1] == pytest.approx(1.0)


@pytest.mark.claim("eq-gae-truncation-fixed-point", how="sympy")
def test_fitted_constant_critic_fixed_point():
    """A constant critic fitted to lam = 0 targets converges to 1/(1-gamma(1-1/L)) under truncation-as-termination."""
    g, c, L = sp.symbols("gamma c L", positive=True)
    mean_target = ((L - 1) * (1 + g * c) + 1) / L
    sol = sp.solve(sp.Eq(c, mean_target), c)
    assert len(sol) == 1 and sp.simplify(sol[0] - 1 / (1 - g * (1 - 1 / L))) == 0
    # numerically with gae: the mean target is affine in c; its fixed point matches the formula
    gamma, Ln = 0.99, 500

    def mean_target_num(cv, terminated):
        r, v, nv, end = _constant_chain(Ln, 2, gamma, cv)
        return gae(r, v, nv, end if terminated else np.zeros_like(end), end, gamma, 0.0)[1].mean()

    for terminated, expected in ((True, 1 / (1 - gamma * (1 - 1 / Ln))), (False, 1 / (1 - gamma))):
        f0, f1 = mean_target_num(0.0, terminated), mean_target_num(1.0, terminated)
        assert f0 / (1 - (f1 - f0)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.claim("eq-gae-truncation", how="reproduction")
def test_cartpole_controller_is_truncated_not_terminated():
    """CartPole-v1 with the chapter's linear controller: episodes end by truncation at 500 steps, never by failure."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        for n in range(1, 1001):
            x, x_dot, th, th_dot = obs
            obs, reward, terminated, truncated, _ = env.step(int(th + 0.5 * th_dot + 0.1 * x + 0.5 * x_dot > 0))
            assert reward == 1.0 and not terminated
            if truncated:
                break
        assert n == 500 and truncated
    env.close()


# ---------------------------------------------------------------------------------------------
# The notes' compute_advantages: each discrepancy, predicted exactly.
# ---------------------------------------------------------------------------------------------


def _notes_rollout():
    """8 steps; episode 1 terminates at t = 3, episode 2 is cut by the rollout end at t = 7."""
    rng = np.random.default_rng(2024)
    rewards = rng.standard_normal(8)
    v = rng.standard_normal(9)  # v[8] = V(s_8), the bootstrap value of the cut
    dones = np.zeros(8, dtype=bool)
    dones[3] = True
    return rewards, v, dones


@pytest.mark.claim("err-gae-code-precedence", "rem-gae-notes-code", how="reproduction")
def test_notes_last_step_precedence():
    """The last td_target of the notes is next_value alone: it lacks r_{T-1}, gamma and (1 - done)."""
    r, v, dones = _notes_rollout()
    gamma, lam = 0.99, 0.95
    adv_notes, _ = compute_advantages(list(r), list(v[:8]), list(dones), v[8], gamma, lam)
    # with lam = 0 the advantages are the deltas, exposing the last one directly
    d_notes, _ = compute_advantages(list(r), list(v[:8]), list(dones), v[8], gamma, 0.0)
    assert d_notes[7] == v[8] - v[7]
    correct_last = r[7] + gamma * v[8] - v[7]
    assert d_notes[7] - correct_last == pytest.approx((1 - gamma) * v[8] - r[7], abs=1e-15)
    # the parenthesised expression is what was meant: it gives the correct delta
    t = 7
    td_target_meant = r[t] + gamma * (1 - dones[t]) * (v[t + 1] if t < 7 else v[8])
    assert td_target_meant - v[7] == pytest.approx(correct_last, abs=1e-15)
    assert len(adv_notes) == 8


@pytest.mark.claim("err-gae-code-precedence", "err-gae-code-dones", "rem-gae-notes-code", how="reproduction")
def test_notes_discrepancies_decompose_exactly():
    """Notes minus definition = (gamma lam)^{7-t} x last-step error, plus, before the boundary, the leaked tail."""
    r, v, dones = _notes_rollout()
    gamma, lam = 0.99, 0.95
    c = gamma * lam
    adv_notes = np.array(compute_advantages(list(r), list(v[:8]), list(dones), v[8], gamma, lam)[0])
    nv = v[1:].copy()
    ref = gae_definition(r, v[:8], nv, dones, dones, gamma, lam)
    assert np.max(np.abs(adv_notes - ref)) > 0.1
    last_error = (v[8] - v[7]) - (r[7] + gamma * v[8] - v[7])
    predicted = np.zeros(8)
    predicted[4:] = c ** (7 - np.arange(4, 8)) * last_error  # episode 2: the wrong last delta, discounted
    leaked_A4 = ref[4] + predicted[4]  # the notes' A_4, carried across the boundary
    predicted[:4] = c ** (4 - np.arange(4)) * leaked_A4
    np.testing.assert_allclose(adv_notes - ref, predicted, rtol=0, atol=1e-12)


@pytest.mark.claim("err-gae-code-done-flag", "rem-gae-notes-code", how="reproduction")
def test_notes_truncation_loses_bootstrap():
    """With a time-limit end at t = 3 (old gym done=True), the notes drop gamma V(s_4^final) from delta_3,
    and values[4] is the reset state's value: the final observation has no slot in values."""
    r, v, dones = _notes_rollout()
    gamma = 0.99
    v_final = 3.0  # V of the true final observation of the truncated episode
    d_notes, _ = compute_advantages(list(r), list(v[:8]), list(dones), v[8], gamma, 0.0)
    nv = v[1:].copy()
    nv[3] = v_final
    trunc_terminated = np.zeros(8, dtype=bool)
    d_right = td_errors(r, v[:8], nv, trunc_terminated, dones, gamma)
    assert d_notes[3] - d_right[3] == pytest.approx(-gamma * v_final, abs=1e-14)
    np.testing.assert_allclose(np.array(d_notes[:3]), d_right[:3], rtol=0, atol=1e-15)


@pytest.mark.claim("err-gae-code-dones", "err-gae-code-precedence", "rem-gae-notes-code", how="reproduction")
def test_notes_minimally_fixed_equals_gae():
    """Parenthesising the conditional and masking the recursion with (1 - done) makes the notes' code equal gae
    on rollouts whose episode ends are all terminations (the wrong version does not)."""

    def compute_advantages_fixed(rewards, values, dones, next_value, gamma=0.99, lambda_=0.95):
        advantages, returns, deltas = [], [], []
        for t in range(len(rewards)):
            td_target = rewards[t] + gamma * (1 - dones[t]) * (values[t + 1] if t < len(rewards) - 1 else next_value)
            deltas.append(td_target - values[t])
        advantage = 0
        for t in reversed(range(len(deltas))):
            advantage = deltas[t] + gamma * lambda_ * (1 - dones[t]) * advantage
            advantages.insert(0, advantage)
            returns.insert(0, advantage + values[t])
        return advantages, returns

    r, v, dones = _notes_rollout()
    ref_adv, ref_ret = gae(r, v[:8], v[1:], dones, dones, 0.99, 0.95)
    adv, ret = compute_advantages_fixed(list(r), list(v[:8]), list(dones), v[8])
    np.testing.assert_allclose(adv, ref_adv, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret, ref_ret, rtol=0, atol=1e-12)
    adv_bad, _ = compute_advantages(list(r), list(v[:8]), list(dones), v[8])
    assert np.max(np.abs(np.array(adv_bad) - ref_adv)) > 0.1


# ---------------------------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------------------------

GOOD = make_rollout(np.array([["step", "terminated", "step", "truncated"]]).T, seed=0)
GOOD1 = squeeze(GOOD)


def _bad_cases():
    r, v, nv, term, end = GOOD1
    nan_r = r.copy()
    nan_r[1] = np.nan
    return [
        ((r[:3], v, nv, term, end), "values"),
        ((r, v[:3], nv, term, end), "values"),
        ((r, v, nv[:2], term, end), "next_values"),
        ((r, v, nv, term[:2], end), "terminated"),
        ((r, v, nv, term, end[:1]), "episode_end"),
        ((nan_r, v, nv, term, end), "rewards"),
        ((r, v, np.full(4, np.inf), term, end), "next_values"),
        ((r, v, nv, np.array([0, 2, 0, 0]), end), "terminated"),
        ((r, v, nv, term, np.array([0.0, 0.5, 0.0, 1.0])), "episode_end"),
        ((r, v, nv, np.array([True, True, False, False]), end), "episode_end"),
        ((np.zeros((4, 2, 2)), v, nv, term, end), "rewards"),
        ((np.zeros(0), v[:0], nv[:0], term[:0], end[:0]), "rewards"),
        ((["a"] * 4, v, nv, term, end), "rewards"),
    ]


@pytest.mark.parametrize("args,name", _bad_cases())
@pytest.mark.parametrize("fn", [gae, gae_definition, lambda_return])
def test_bad_arrays_raise(fn, args, name):
    """Wrong shapes, NaN/inf, non-0/1 flags and terminated-without-episode_end raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=name):
        fn(*args, 0.9, 0.9)


@pytest.mark.parametrize("args,name", _bad_cases())
@pytest.mark.parametrize("fn", [td_errors, n_step_return])
def test_bad_arrays_raise_td_and_n_step(fn, args, name):
    """td_errors and n_step_return validate their arrays in the same way."""
    extra = (0.9,) if fn is td_errors else (0.9, 2)
    with pytest.raises(ValueError, match=name):
        fn(*args, *extra)


@pytest.mark.parametrize("gamma,lam,name", [(1.5, 0.5, "gamma"), (-0.1, 0.5, "gamma"), (0.9, 1.01, "lam"),
                                            (0.9, -0.5, "lam"), (float("nan"), 0.5, "gamma"), (0.9, True, "lam")])
@pytest.mark.parametrize("fn", [gae, gae_definition, lambda_return])
def test_bad_gamma_lam_raise(fn, gamma, lam, name):
    """gamma or lam outside [0, 1] (or not a real number) raises ValueError naming it."""
    with pytest.raises(ValueError, match=name):
        fn(*GOOD1, gamma, lam)


def test_bad_torch_and_scalar_inputs_raise():
    """Torch-specific bad input: NaN tensors, non-0/1 flag tensors, bool rewards; n < 1; td_errors gamma."""
    tr = to_torch(GOOD)
    bad = tr[0].clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="rewards"):
        gae(bad, *tr[1:], 0.9, 0.9)
    with pytest.raises(ValueError, match="terminated"):
        gae(*tr[:3], torch.full((4, 1), 3), tr[4], 0.9, 0.9)
    with pytest.raises(ValueError, match="values"):
        gae(tr[0], torch.ones((4, 1), dtype=torch.bool), *tr[2:], 0.9, 0.9)
    with pytest.raises(ValueError, match="values"):
        gae(tr[0], tr[1][:2], *tr[2:], 0.9, 0.9)
    with pytest.raises(ValueError, match="n must"):
        n_step_return(*GOOD1, 0.9, 0)
    with pytest.raises(ValueError, match="gamma"):
        td_errors(*GOOD1, 1.2)


def test_tabular_bad_input_raises():
    """tabular_gae_moments and gae_policy_gradient validate the policy, the value table and lam."""
    mdp, theta, pi = _tabular(3, 2, 0.9, 0)
    with pytest.raises(ValueError, match="values"):
        tabular_gae_moments(mdp, pi, np.zeros(4), 0.5)
    with pytest.raises(ValueError, match="values"):
        tabular_gae_moments(mdp, pi, np.array([0.0, np.nan, 1.0]), 0.5)
    with pytest.raises(ValueError, match="pi"):
        tabular_gae_moments(mdp, pi[:, ::-1] * 2, np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="lam"):
        tabular_gae_moments(mdp, pi, np.zeros(3), 2.0)
    with pytest.raises(ValueError, match="theta"):
        gae_policy_gradient(mdp, theta[:2], np.zeros(3), 0.5)


# ---------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma, lam, seed", [(0.99, 0.95, 0), (0.9, 0.5, 1), (0.97, 1.0, 2), (0.8, 0.0, 3)])
def test_exercise_lookahead(gamma, lam, seed):
    """Exercise ex-ch08-lookahead: dA_t/dr_j = (gamma lam)^(j-t) up to the end of t's episode, 0 after it."""
    T = 80
    rng = np.random.default_rng(seed)
    end = rng.random(T) < 0.1
    term = end & (rng.random(T) < 0.5)

    def cols(x):  # the same rollout in T environments side by side
        return np.repeat(x[:, None], T, axis=1)

    values, next_values = cols(rng.standard_normal(T)), cols(rng.standard_normal(T))
    rewards = cols(rng.standard_normal(T))
    base, _ = gae(rewards, values, next_values, cols(term), cols(end), gamma, lam)
    bumped, _ = gae(rewards + np.eye(T), values, next_values, cols(term), cols(end), gamma, lam)
    sens = bumped - base  # sens[t, j] = dA_t / dr_j: gae is affine in the rewards
    expected = np.zeros((T, T))
    for t in range(T):
        k = t
        while k < T - 1 and not end[k]:
            k += 1
        expected[t, t : k + 1] = (gamma * lam) ** np.arange(k - t + 1)
    assert end.sum() >= 2 and np.abs(sens - expected).max() < 1e-12
    # Without episode ends the weights of A_0 sum to (1 - c^T) / (1 - c) -> 1 / (1 - gamma lam).
    none = np.zeros((T, T), dtype=bool)
    row0 = gae(np.eye(T), np.zeros((T, T)), np.zeros((T, T)), none, none, gamma, lam)[0][0]
    c = gamma * lam
    assert abs(row0.sum() - (1 - c**T) / (1 - c)) < 1e-12 * T
