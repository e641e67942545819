"""Tests of pgbook.score_function: the score-function identity of chapter 3."""

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
from pgbook import score_function as F
from pgbook.montecarlo import mean_ci

# ---------------------------------------------------------------------------------------------
# Symbolic proofs
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("thm-score-zero-mean", "eq-score-softmax", how="sympy")
@pytest.mark.parametrize("K", [2, 3, 4, 5])
def test_softmax_expected_score_is_zero_symbolically(K):
    """Softmax over K symbolic logits: score = 1[a=j] - pi_j, and E_{a~pi}[score] simplifies to 0."""
    z, pi, score = F.softmax_score_symbolic(K)
    for a in range(K):
        for j in range(K):
            assert sp.simplify(score[a, j] - ((1 if a == j else 0) - pi[j])) == 0
    expected = F.softmax_expected_score_symbolic(K)
    assert all(sp.simplify(e) == 0 for e in expected)
    # A wrong weighting (uniform instead of pi) does not give zero: the check can fail.
    wrong = F.softmax_expected_score_symbolic(K, [sp.Rational(1, K)] * K)
    assert any(sp.simplify(e) != 0 for e in wrong)


@pytest.mark.claim("thm-score-zero-mean", "eq-score-gaussian", how="sympy")
def test_gaussian_expected_score_is_zero_symbolically():
    """N(mu, e^{2s}): the scores in mu and s are (a-mu)/sigma^2 and (a-mu)^2/sigma^2 - 1; each integrates to 0."""
    a, mu, s, logpdf, score = F.gaussian_score_symbolic()
    sigma2 = sp.exp(2 * s)
    assert sp.simplify(score["mu"] - (a - mu) / sigma2) == 0
    assert sp.simplify(score["log_std"] - ((a - mu) ** 2 / sigma2 - 1)) == 0
    # the density integrates to one (so the symbolic integral is over a genuine distribution)
    assert sp.simplify(sp.integrate(sp.exp(logpdf), (a, -sp.oo, sp.oo), conds="none")) == 1
    expected = F.gaussian_expected_score_symbolic()
    assert expected["mu"] == 0 and expected["log_std"] == 0


@pytest.mark.claim("eq-score-other-sampling", how="sympy")
def test_expected_score_under_other_distribution_symbolically():
    """Under q != pi the expected score is q - pi (softmax) and (mu_q-mu)/sigma^2, (sigma_q^2+(mu_q-mu)^2)/sigma^2 - 1 (Gaussian)."""
    K = 3
    z, pi, _ = F.softmax_score_symbolic(K)
    q = list(sp.symbols("q1:3", positive=True))
    q = q + [1 - sum(q)]
    got = F.softmax_expected_score_symbolic(K, q)
    for j in range(K):
        assert sp.simplify(got[j] - (q[j] - pi[j])) == 0
    _, mu, s, _, _ = F.gaussian_score_symbolic()
    m, t = sp.symbols("m t", real=True)
    got = F.gaussian_expected_score_symbolic(m, t)
    assert sp.simplify(got["mu"] - (m - mu) / sp.exp(2 * s)) == 0
    assert sp.simplify(got["log_std"] - ((sp.exp(2 * t) + (m - mu) ** 2) / sp.exp(2 * s) - 1)) == 0
    assert got["mu"] != 0 and got["log_std"] != 0


@pytest.mark.claim("err-continuous-case", "rem-score-support", how="sympy")
def test_uniform_support_breaks_identity():
    """Uniform(0, theta): mass 1 for all theta, yet E[d/dtheta log p] = -1/theta; the boundary term 1/theta restores 0."""
    out = F.uniform_support_counterexample()
    theta = out["theta"]
    assert out["total_mass"] == 1 and out["d_total_mass"] == 0
    assert sp.simplify(out["expected_score"] + 1 / theta) == 0
    assert sp.simplify(out["expected_score"] + out["boundary_term"] - out["d_total_mass"]) == 0


# ---------------------------------------------------------------------------------------------
# Exact (tabular softmax and torch parametrisations)
# ---------------------------------------------------------------------------------------------

shapes = st.tuples(st.integers(1, 5), st.integers(2, 5), st.integers(0, 10_000), st.sampled_from([0.3, 1.0, 5.0]))


@pytest.mark.claim("thm-score-zero-mean", how="property")
@settings(max_examples=40, deadline=None)
@given(shapes)
def test_expected_score_tabular_is_zero(c):
    """Exact sum over actions of the tabular softmax score is zero in every state, for any logits."""
    S, A, seed, scale = c
    theta = random_theta(S, A, seed, scale)
    np.testing.assert_allclose(F.expected_score(theta), 0.0, atol=1e-15)
    _score_is_the_gradient_of_log_pi(theta)  # a multiple of the score would have mean zero too


@pytest.mark.claim("eq-score-other-sampling", how="property")
@settings(max_examples=40, deadline=None)
@given(shapes)
def test_expected_score_other_sampling_is_q_minus_pi(c):
    """E_{a~q}[grad log pi(a|s)] equals q(.|s) - pi(.|s) in row s and 0 elsewhere (exact sum)."""
    S, A, seed, scale = c
    theta = random_theta(S, A, seed, scale)
    q = np.random.default_rng(seed).dirichlet(np.ones(A), size=S)
    got = F.expected_score(theta, sampling=q)
    want = np.zeros((S, S, A))
    want[np.arange(S), np.arange(S)] = q - policies.probs(theta)
    np.testing.assert_allclose(got, want, atol=1e-14)


def _mlp_logits(seed):
    gen = torch.Generator().manual_seed(seed)
    W1 = torch.randn(8, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    W2 = torch.randn(4, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    return (W1, W2), lambda: W2 @ torch.tanh(W1 @ x)


@pytest.mark.claim("thm-score-zero-mean", how="autograd")
def test_expected_score_of_a_network_policy_is_zero():
    """A two-layer network's categorical policy: sum_a pi(a) grad log pi(a) over all weights is 0 (autograd)."""
    params, logits = _mlp_logits(0)
    pi = torch.softmax(logits(), 0).detach().numpy()

    def log_prob(a):
        return torch.distributions.Categorical(logits=logits()).log_prob(a)

    got = F.expected_score_autograd(log_prob, params, torch.arange(4), pi)
    assert max(float(g.abs().max()) for g in got) < 1e-14
    # Weighted by another distribution the same sum is not zero.
    q = np.array([0.7, 0.1, 0.1, 0.1])
    wrong = F.expected_score_autograd(log_prob, params, torch.arange(4), q)
    assert max(float(g.abs().max()) for g in wrong) > 1e-2


@pytest.mark.claim("thm-score-zero-mean", "eq-score-gaussian", "eq-score-other-sampling", how="autograd")
def test_expected_score_of_a_gaussian_network_policy():
    """Gaussian policy with network mean and log-std: exact Gauss-Hermite expectation of the autograd score is 0."""
    gen = torch.Generator().manual_seed(1)
    W = torch.randn(2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.5, -0.4, 1.1], dtype=torch.float64)

    def dist():
        out = W @ torch.tanh(x)
        return torch.distributions.Normal(out[0], out[1].exp())

    with torch.no_grad():
        mean, std = float(dist().mean), float(dist().stddev)
    nodes, weights = F.gauss_hermite(mean, std, n_nodes=4)
    (got,) = F.expected_score_autograd(lambda a: dist().log_prob(a), [W], torch.tensor(nodes), weights)
    assert float(got.abs().max()) < 1e-13
    # Under N(m, tau^2) the same rule reproduces the symbolic values (so it is not trivially zero).
    m, tau = mean + 0.8, 1.5 * std
    nodes, weights = F.gauss_hermite(m, tau, n_nodes=4)
    (got,) = F.expected_score_autograd(lambda a: dist().log_prob(a), [W], torch.tensor(nodes), weights)
    d_mu = (m - mean) / std**2
    d_ls = (tau**2 + (m - mean) ** 2) / std**2 - 1
    th = torch.tanh(x).numpy()
    np.testing.assert_allclose(got.numpy(), np.outer([d_mu, d_ls], th), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Monte Carlo
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("thm-score-zero-mean", "eq-score-other-sampling", how="Monte Carlo")
def test_monte_carlo_softmax_scores():
    """n=40000, seed 0, 99.9% Bonferroni CIs: under pi the CI contains 0; under q it excludes 0 and contains q - pi."""
    theta = np.array([[0.5, -1.0, 1.5]])
    A = theta.shape[1]
    level = 1 - 0.001 / A
    ci = mean_ci(F.sample_scores(theta, 0, 40_000, seed=0), level=level)
    assert ci.contains(np.zeros(A)).all()
    q = np.array([[0.6, 0.3, 0.1]])
    ci_q = mean_ci(F.sample_scores(theta, 0, 40_000, seed=1, sampling=q), level=level)
    assert ci_q.contains(q[0] - policies.probs(theta)[0]).all()
    assert not ci_q.contains(np.zeros(A)).any()
    scale = np.abs(q[0] - policies.probs(theta)[0]).max()
    assert_power(ci_q, scale)
    assert_power(ci, scale)


@pytest.mark.claim("thm-score-zero-mean", "eq-score-gaussian", "eq-score-other-sampling", how="Monte Carlo")
def test_monte_carlo_gaussian_scores():
    """n=80000, seed 0 (detects a 5% bias with probability 0.99): sampled Gaussian scores average to 0 under the policy, to the symbolic values under N(mu_q, sigma_q^2)."""
    mu, ls = 0.4, -0.3
    level = 1 - 0.001 / 2
    ci = mean_ci(F.sample_gaussian_scores(mu, ls, 80_000, seed=0), level=level)
    assert ci.contains(np.zeros(2)).all()
    m, t = 0.9, 0.1
    ci_q = mean_ci(F.sample_gaussian_scores(mu, ls, 80_000, seed=1, sample_mean=m, sample_log_std=t), level=level)
    want = [(m - mu) / np.exp(2 * ls), (np.exp(2 * t) + (m - mu) ** 2) / np.exp(2 * ls) - 1]
    assert ci_q.contains(np.array(want)).all()
    assert not ci_q.contains(np.zeros(2)).any()
    assert_power(ci_q, np.abs(want).max())
    assert_power(ci, np.abs(want).max())


def test_sampled_gaussian_scores_match_closed_form():
    """The autograd per-sample scores equal (a-mu)/sigma^2 and (a-mu)^2/sigma^2 - 1 for the same draws."""
    mu, ls = 0.4, -0.3
    got = F.sample_gaussian_scores(mu, ls, 50, seed=3)
    a = mu + np.exp(ls) * torch.randn(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    np.testing.assert_allclose(got[:, 0], (a - mu) / np.exp(2 * ls), rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], (a - mu) ** 2 / np.exp(2 * ls) - 1, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-score-baseline", how="property")
@settings(max_examples=40, deadline=None)
@given(shapes)
def test_state_baseline_has_zero_mean(c):
    """E_{a~pi}[grad log pi(a|s) b(s)] = 0 exactly for any state-dependent b."""
    S, A, seed, scale = c
    theta = random_theta(S, A, seed, scale)
    b = 10 * np.random.default_rng(seed).standard_normal(S)
    np.testing.assert_allclose(F.expected_score(theta, weights=b), 0.0, atol=1e-13)
    _score_is_the_gradient_of_log_pi(theta)


def _score_is_the_gradient_of_log_pi(theta):
    """The score the expectations use is grad log pi (central differences), not a multiple of it."""
    from pgbook.gradients import finite_difference_gradient

    fd = finite_difference_gradient(policies.log_probs, theta)
    np.testing.assert_allclose(policies.score(theta), fd, atol=1e-7 * max(1.0, np.abs(fd).max()))


@pytest.mark.claim("prop-score-action-baseline", how="finite difference")
@settings(max_examples=25, deadline=None)
@given(shapes)
def test_action_baseline_term_is_a_gradient(c):
    """E_a[grad log pi(a|s) b(s,a)] = pi (b - E_pi b) = grad_theta sum_a pi_theta(a|s) b(s,a) (b fixed); nonzero."""
    S, A, seed, scale = c
    theta = random_theta(S, A, seed, scale)
    b = np.random.default_rng(seed).standard_normal((S, A))
    got = F.expected_score(theta, weights=b)
    pi = policies.probs(theta)
    closed = pi * (b - (pi * b).sum(1, keepdims=True))
    for s in range(S):
        np.testing.assert_allclose(got[s, s], closed[s], atol=1e-14)
        fd = gradients.finite_difference_gradient(lambda th: float(policies.probs(th)[s] @ b[s]), theta)
        np.testing.assert_allclose(got[s], fd, atol=1e-9)
    if pi.min() > 1e-3:  # a near-deterministic policy makes pi (b - E_pi b) tiny, not zero
        assert np.abs(got).max() > 1e-6


@pytest.mark.claim("prop-score-action-baseline", how="exact")
@pytest.mark.parametrize("gamma", [0.5, 0.9])
def test_action_baseline_biases_the_policy_gradient(gamma):
    """With b(s,a) the theorem's sum becomes grad J - sum_s eta(s) pi(b - E_pi b); with b = Q it is exactly 0."""
    mdp = M.random_mdp(4, 3, gamma, 5)
    theta = random_theta(4, 3, 5)
    pi = policies.probs(theta)
    eta = M.discounted_visits(mdp, pi)
    Q = M.action_values(mdp, pi)
    grad = gradients.policy_gradient(mdp, theta)
    b = np.random.default_rng(0).standard_normal((4, 3))
    with_b = np.einsum("s,sxy->xy", eta, F.expected_score(theta, weights=Q - b))
    bias = np.einsum("s,sxy->xy", eta, F.expected_score(theta, weights=b))
    np.testing.assert_allclose(with_b, grad - bias, atol=1e-12)
    assert np.abs(bias).max() > 1e-3
    killed = np.einsum("s,sxy->xy", eta, F.expected_score(theta, weights=Q - Q))
    assert np.abs(killed).max() == 0.0 and np.abs(grad).max() > 1e-3
    # A state-only baseline (here V) changes nothing.
    V = M.state_values(mdp, pi)
    np.testing.assert_allclose(np.einsum("s,sxy->xy", eta, F.expected_score(theta, weights=Q - V[:, None])), grad, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_inputs_raise():
    """Every public function rejects malformed input with a ValueError naming the argument."""
    theta = np.zeros((2, 3))
    with pytest.raises(ValueError, match="K"):
        F.softmax_score_symbolic(1)
    with pytest.raises(ValueError, match="weights"):
        F.softmax_expected_score_symbolic(3, [1, 2])
    with pytest.raises(ValueError, match="weights"):
        F.softmax_expected_score_symbolic(2, ["not a number", 1])
    with pytest.raises(ValueError, match="sample_mean"):
        F.gaussian_expected_score_symbolic(sample_mean=sp.oo)
    with pytest.raises(ValueError, match="sample_log_std"):
        F.gaussian_expected_score_symbolic(sample_log_std=sp.I)
    with pytest.raises(ValueError, match="theta"):
        F.expected_score(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="sampling"):
        F.expected_score(theta, sampling=np.ones((2, 3)))
    with pytest.raises(ValueError, match="sampling"):
        F.expected_score(theta, sampling=np.ones((3, 3)) / 3)
    with pytest.raises(ValueError, match="weights"):
        F.expected_score(theta, weights=np.ones(3))
    with pytest.raises(ValueError, match="state"):
        F.sample_scores(theta, 2, 10, 0)
    with pytest.raises(ValueError, match="n"):
        F.sample_scores(theta, 0, 0, 0)
    with pytest.raises(ValueError, match="seed"):
        F.sample_scores(theta, 0, 10, 0.5)
    with pytest.raises(ValueError, match="sampling"):
        F.sample_scores(theta, 0, 10, 0, sampling=np.ones((2, 3)))
    with pytest.raises(ValueError, match="log_std"):
        F.sample_gaussian_scores(0.0, float("nan"), 10, 0)
    with pytest.raises(ValueError, match="n"):
        F.sample_gaussian_scores(0.0, 0.0, -1, 0)
    with pytest.raises(ValueError, match="seed"):
        F.sample_gaussian_scores(0.0, 0.0, 10, None)
    with pytest.raises(ValueError, match="std"):
        F.gauss_hermite(0.0, 0.0)
    with pytest.raises(ValueError, match="mean"):
        F.gauss_hermite(float("inf"), 1.0)
    with pytest.raises(ValueError, match="n_nodes"):
        F.gauss_hermite(0.0, 1.0, 0)
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="params"):
        F.expected_score_autograd(lambda a: w.sum(), [torch.zeros(2)], [0], [1.0])
    with pytest.raises(ValueError, match="same non-zero length"):
        F.expected_score_autograd(lambda a: w.sum(), [w], [0, 1], [1.0])
    with pytest.raises(ValueError, match="scalar"):
        F.expected_score_autograd(lambda a: w * 2, [w], [0], [1.0])
    with pytest.raises(ValueError, match="weights"):
        F.expected_score_autograd(lambda a: w.sum(), [w], [0], [float("nan")])


# ---------------------------------------------------------------------------------------------
# Exercises
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("K, tau, seed", [(2, 0.3, 0), (3, 1.0, 1), (5, 0.7, 2), (6, 4.0, 3)])
def test_exercise_temperature_score(K, tau, seed):
    """Exercise ex-ch03-temperature: softmax(z/tau) has scores (1[a=j]-pi_j)/tau and -(z_a - E_pi z)/tau^2, mean 0."""
    z_np = np.random.default_rng(seed).normal(scale=2.0, size=K)
    z = torch.tensor(z_np, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(tau, dtype=torch.float64, requires_grad=True)

    def log_prob(action):
        return torch.distributions.Categorical(logits=z / t).log_prob(action)

    pi = np.exp(z_np / tau - np.logaddexp.reduce(z_np / tau))
    for a in range(K):  # autograd of torch's log_prob against the hand-derived closed forms
        g_z, g_t = F.expected_score_autograd(log_prob, [z, t], [torch.tensor(a)], [1.0])
        assert np.abs(g_z.numpy() - (np.eye(K)[a] - pi) / tau).max() < 1e-10
        assert abs(float(g_t) + (z_np[a] - pi @ z_np) / tau**2) < 1e-10
        assert abs(tau * float(g_t) + z_np @ g_z.numpy()) < 1e-10  # degree-0 homogeneity in (z, tau)
    mean_z, mean_t = F.expected_score_autograd(log_prob, [z, t], torch.arange(K), pi)
    assert float(mean_z.abs().max()) < 1e-12 and abs(float(mean_t)) < 1e-12
    # Deliberately wrong variant: uniform weights instead of pi leave a non-zero temperature component.
    _, wrong_t = F.expected_score_autograd(log_prob, [z, t], torch.arange(K), np.full(K, 1.0 / K))
    assert abs(float(wrong_t) + (z_np.mean() - pi @ z_np) / tau**2) < 1e-10
    assert abs(float(wrong_t)) > 1e-3
