"""Tests of pgbook.gaussian, pgbook.lq and pgbook.normalization: continuous actions (chapter 11)."""

from __future__ import annotations

import functools
import math

import gymnasium as gym
import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate

from pgbook import gaussian as G
from pgbook import gradients, lq
from pgbook import mdp as M
from pgbook import normalization as Nz

LOW, HIGH = -1.0, 1.0


def _rel(x, ref):
    x, ref = np.asarray(x, float), np.asarray(ref, float)
    return float(np.max(np.abs(x - ref) / np.maximum(1.0, np.abs(ref))))


# ---------------------------------------------------------------------------------------------
# The diagonal Gaussian
# ---------------------------------------------------------------------------------------------


def _batch(seed=0, n=300, d=3):
    rng = np.random.default_rng(seed)
    mean = rng.normal(scale=3.0, size=(n, d))
    log_std = rng.uniform(-6.0, 3.0, size=(n, d))
    a = mean + np.exp(log_std) * rng.normal(scale=3.0, size=(n, d))
    return a, mean, log_std


@pytest.mark.claim("eq-cont-gauss-logpdf", "eq-cont-gauss-entropy", how="autograd")
def test_gaussian_log_prob_and_entropy_match_torch():
    a, mean, log_std = _batch()
    normal = torch.distributions.Normal(torch.tensor(mean), torch.tensor(log_std).exp())
    assert _rel(G.diag_gaussian_log_prob(a, mean, log_std), normal.log_prob(torch.tensor(a)).sum(-1).numpy()) < 1e-12
    assert _rel(G.diag_gaussian_entropy(log_std), normal.entropy().sum(-1).numpy()) < 1e-12
    # broadcasting: one mean and log-std for many actions
    assert G.diag_gaussian_log_prob(a, mean[0], log_std[0]).shape == (a.shape[0],)


@pytest.mark.claim("eq-cont-gauss-score", how="autograd")
def test_gaussian_score_matches_autograd_and_finite_differences():
    a, mean, log_std = _batch(1)
    m_t, l_t = torch.tensor(mean, requires_grad=True), torch.tensor(log_std, requires_grad=True)
    lp = torch.distributions.Normal(m_t, l_t.exp()).log_prob(torch.tensor(a)).sum()
    gm, gl = torch.autograd.grad(lp, [m_t, l_t])
    sm, sl = G.diag_gaussian_score(a, mean, log_std)
    assert _rel(sm, gm.numpy()) < 1e-12 and _rel(sl, gl.numpy()) < 1e-12
    h = 1e-6
    for m0, l0, a0 in [(0.3, -0.5, 1.1), (-2.0, 0.7, 0.0), (5.0, -2.0, 5.3)]:
        fd_m = (G.diag_gaussian_log_prob([a0], [m0 + h], [l0]) - G.diag_gaussian_log_prob([a0], [m0 - h], [l0])) / (2 * h)
        fd_l = (G.diag_gaussian_log_prob([a0], [m0], [l0 + h]) - G.diag_gaussian_log_prob([a0], [m0], [l0 - h])) / (2 * h)
        s_m, s_l = G.diag_gaussian_score([a0], [m0], [l0])
        assert abs(fd_m - s_m[0]) < 1e-5 * max(1, abs(s_m[0])) and abs(fd_l - s_l[0]) < 1e-5 * max(1, abs(s_l[0]))


@pytest.mark.claim("eq-cont-gauss-score", "eq-cont-gauss-entropy", how="sympy")
def test_gaussian_symbolic_derivation():
    """sympy, from the density: score (a-mu)/sigma^2 and (a-mu)^2/sigma^2 - 1, mean zero, entropy s + (1 + log 2 pi)/2;
    and pgbook.gaussian's numbers agree with the symbolic expressions."""
    d = G.gaussian_symbolic()
    a, mu, s = d["a"], d["mu"], d["s"]
    assert sp.simplify(d["score_mu"] - (a - mu) * sp.exp(-2 * s)) == 0
    assert sp.simplify(d["score_log_std"] - ((a - mu) ** 2 * sp.exp(-2 * s) - 1)) == 0
    assert d["mean_score_mu"] == 0 and d["mean_score_log_std"] == 0 and d["total_mass"] == 1
    assert sp.simplify(d["entropy"] - (s + (1 + sp.log(2 * sp.pi)) / 2)) == 0
    vals = {a: 0.7, mu: -0.2, s: -0.4}
    sm, sl = G.diag_gaussian_score([0.7], [-0.2], [-0.4])
    assert abs(float(d["score_mu"].subs(vals)) - sm[0]) < 1e-12
    assert abs(float(d["score_log_std"].subs(vals)) - sl[0]) < 1e-12
    assert abs(float(d["logpdf"].subs(vals)) - G.diag_gaussian_log_prob([0.7], [-0.2], [-0.4])) < 1e-12
    assert abs(float(d["entropy"].subs(vals)) - G.diag_gaussian_entropy([-0.4])) < 1e-12


@pytest.mark.claim("eq-cont-gauss-score", how="exact")
def test_gaussian_score_mean_zero_by_quadrature():
    """E[score] = 0: Gauss-Hermite (exact for the degree-2 polynomial) and mpmath at 50 digits;
    a score with a wrong factor (sigma for sigma^2) is not mean zero in the second moment check."""
    for m0, l0 in [(0.0, 0.0), (2.5, -4.0), (-40.0, 2.0)]:
        e = lq.gaussian_expectation(lambda x: np.stack(G.diag_gaussian_score(x[:, None], [m0], [l0]), 1)[:, :, 0], m0, l0, 8)
        assert np.abs(e * [math.exp(l0), 1.0]).max() < 1e-12
        # E[score_mu * (a - mu)] = 1 (the Fisher identity in mu) pins down the 1/sigma^2
        fisher = lq.gaussian_expectation(lambda x: G.diag_gaussian_score(x[:, None], [m0], [l0])[0][:, 0] * (x - m0), m0, l0, 8)
        assert abs(fisher - 1.0) < 1e-10
        fisher_ls = lq.gaussian_expectation(lambda x: G.diag_gaussian_score(x[:, None], [m0], [l0])[1][:, 0] ** 2, m0, l0, 8)
        assert abs(fisher_ls - 2.0) < 1e-10
    mpmath.mp.dps = 40
    mu, sig = mpmath.mpf("0.3"), mpmath.exp(mpmath.mpf("-0.7"))
    e_ls = mpmath.quad(lambda x: ((x - mu) ** 2 / sig**2 - 1) * mpmath.npdf(x, mu, sig), [-mpmath.inf, mu, mpmath.inf])
    assert abs(e_ls) < 1e-30


def test_gaussian_extreme_inputs_are_finite_or_correct_limits():
    assert np.isfinite(G.diag_gaussian_log_prob([0.0], [0.0], [-300.0]))  # tiny sigma, a at the mean
    assert G.diag_gaussian_log_prob([0.0], [1e300], [0.0]) == -np.inf  # correct: -5e599 underflows
    sm, sl = G.diag_gaussian_score([1.0], [1.0 + 1e-12], [-30.0])
    assert np.isfinite(sm).all() and np.isfinite(sl).all()
    assert abs(G.diag_gaussian_log_prob([1e200], [1e200], [0.0]) + 0.5 * math.log(2 * math.pi)) < 1e-12
    for bad in ([np.nan], [1.0 + 0j]):
        with pytest.raises(ValueError, match="mean"):
            G.diag_gaussian_log_prob([0.0], bad, [0.0])
    with pytest.raises(ValueError, match="log_std"):
        G.diag_gaussian_entropy([400.0])


# ---------------------------------------------------------------------------------------------
# State-dependent log-std: the contextual problem
# ---------------------------------------------------------------------------------------------


def _contextual_score_expectation(p, k):
    s_nodes, s_w = np.polynomial.hermite_e.hermegauss(80)
    s_w = s_w / s_w.sum()
    a_nodes, a_w = np.polynomial.hermite_e.hermegauss(8)
    a_w = a_w / a_w.sum()
    th = torch.tensor(p, requires_grad=True)
    total = torch.zeros(4, dtype=torch.float64)
    for s_i, ws in zip(s_nodes, s_w):
        acts = torch.tensor(p[0] * s_i + p[1] + math.exp(p[2] + p[3] * s_i) * a_nodes)
        logp = torch.distributions.Normal(th[0] * s_i + th[1], torch.exp(th[2] + th[3] * s_i)).log_prob(acts)
        (grad,) = torch.autograd.grad((torch.tensor(a_w) * -((acts - k * s_i) ** 2) * logp).sum(), th)
        total += ws * grad
    return total.numpy()


@pytest.mark.claim("eq-cont-contextual", how="autograd")
@pytest.mark.parametrize("p", [[0.4, -0.3, -0.5, 0.35], [1.2, 0.8, 0.3, 0.0], [-0.5, 0.0, -1.0, -0.6]])
def test_contextual_gradient(p):
    p, k = np.array(p), 1.5
    closed = lq.contextual_gradient(*p, k=k)
    assert np.abs(_contextual_score_expectation(p, k) - closed).max() < 1e-8
    for e in np.eye(4):
        h = 1e-6
        fd = (lq.contextual_objective(*(p + h * e), k=k) - lq.contextual_objective(*(p - h * e), k=k)) / (2 * h)
        assert abs(fd - closed @ e) < 1e-6
    # J itself against quadrature of the reward: E_s[(mu(s) - k s)^2 + sigma(s)^2]
    s_nodes, s_w = np.polynomial.hermite_e.hermegauss(80)
    J_q = -(s_w / s_w.sum()) @ ((p[0] * s_nodes + p[1] - k * s_nodes) ** 2 + np.exp(2 * (p[2] + p[3] * s_nodes)))
    assert abs(J_q - lq.contextual_objective(*p, k=k)) < 1e-10


# ---------------------------------------------------------------------------------------------
# The quadratic bandit and its optimal baseline
# ---------------------------------------------------------------------------------------------

BANDIT = [(0.3, -0.2, 1.0), (-1.0, 0.5, 0.2), (2.0, -2.0, 2.1), (0.0, 1.0, -0.5)]


@pytest.mark.claim("eq-cont-lq-objective", how="finite difference")
@pytest.mark.parametrize("m,l,ast", BANDIT)
def test_bandit_objective_and_gradient(m, l, ast):
    J_q = lq.expectation_quad(lambda a: -(a - ast) ** 2, m, l)
    assert abs(J_q - lq.bandit_objective(m, l, ast)) < 1e-9 * max(1, abs(J_q))
    h = 1e-6
    fd = [(lq.bandit_objective(m + h, l, ast) - lq.bandit_objective(m - h, l, ast)) / (2 * h),
          (lq.bandit_objective(m, l + h, ast) - lq.bandit_objective(m, l - h, ast)) / (2 * h)]
    assert np.abs(np.array(fd) - lq.bandit_gradient(m, l, ast)).max() < 1e-5


@pytest.mark.claim("prop-cont-optimal-baseline", how="exact")
@pytest.mark.parametrize("m,l,ast", BANDIT)
def test_estimator_unbiased_for_any_baseline(m, l, ast):
    """E[score (r - b)] = grad J for b = 0, J, b*, 3.7 — the mean by adaptive quadrature (independent of
    the Gauss-Hermite rule inside estimator_moments), compared with both."""
    grad = lq.bandit_gradient(m, l, ast)
    for b in (0.0, lq.bandit_objective(m, l, ast), lq.optimal_baseline(m, l, ast), 3.7):
        mean, _ = lq.estimator_moments(m, l, ast, b)
        assert np.abs(mean - grad).max() < 1e-9 * max(1, np.abs(grad).max())
        quad = [lq.expectation_quad(lambda a: G.diag_gaussian_score([a], [m], [l])[i][0] * (-(a - ast) ** 2 - b), m, l) for i in range(2)]
        assert np.abs(np.array(quad) - grad).max() < 1e-7 * max(1, np.abs(grad).max())


@functools.cache
def _symbolic_second_moment():
    """E||score (r - b)||^2 as a polynomial in d = mean - a_star, sigma and b, by sympy integration over
    z = (a - mean)/sigma (a ~ N(mean, sigma^2) is a = mean + sigma z); the score from sympy's own
    derivative of the log-density."""
    z, b, d = sp.symbols("z b d", real=True)
    sig = sp.symbols("sigma", positive=True)
    a, mu = sp.symbols("a mu", real=True)
    logpdf = -((a - mu) ** 2) / (2 * sig**2) - sp.log(sig) - sp.log(2 * sp.pi) / 2
    score = [sp.diff(logpdf, mu), sig * sp.diff(logpdf, sig)]  # d/d log sigma = sigma d/d sigma
    score = [sp.expand(gi.subs(a, mu + sig * z)) for gi in score]
    phi = sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)
    r = -((d + sig * z) ** 2)
    second = sum(sp.integrate(sp.expand(gi**2 * (r - b) ** 2) * phi, (z, -sp.oo, sp.oo)) for gi in score)
    return second, b, d, sig


@pytest.mark.claim("prop-cont-optimal-baseline", how="sympy")
def test_optimal_baseline_closed_form_sympy():
    """sympy minimises the symbolic second moment over b: b* = -d^2 - sigma^2 (3 + 10 sigma^2)/(1 + 2 sigma^2)
    for every d, sigma; b* < J; and the variances of estimator_moments match the symbolic ones."""
    second, b, d, sig = _symbolic_second_moment()
    b_sym = sp.solve(sp.diff(second, b), b)[0]
    assert sp.simplify(b_sym - (-(d**2) - sig**2 * (3 + 10 * sig**2) / (1 + 2 * sig**2))) == 0
    assert sp.simplify(b_sym - (-(d**2) - sig**2) + 2 * sig**2 * (1 + 4 * sig**2) / (1 + 2 * sig**2)) == 0
    for mf, lf, af in BANDIT:
        at = {d: mf - af, sig: math.exp(lf)}
        b_star = lq.optimal_baseline(mf, lf, af)
        assert abs(float(b_sym.subs(at)) - b_star) < 1e-12 * max(1, abs(b_star))
        J = lq.bandit_objective(mf, lf, af)
        assert b_star < J - 1e-3
        grad2 = float(np.sum(lq.bandit_gradient(mf, lf, af) ** 2))
        for bv in (0.0, J, b_star, 2.5):
            _, var = lq.estimator_moments(mf, lf, af, bv)
            exact = float(second.subs({**at, b: bv})) - grad2
            assert abs(var - exact) < 1e-9 * max(1, abs(exact))
        v = [lq.estimator_moments(mf, lf, af, bv)[1] for bv in (b_star, J, 0.0)]
        assert v[0] < v[1] and v[0] < v[2]


# ---------------------------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------------------------

CLIP_CASES = [(0.5, -0.3, 1.0), (1.5, 0.2, 1.0), (-3.0, 1.0, 0.2), (0.9, -1.0, 0.8), (2.5, 0.5, 1.0), (-0.2, -3.0, -0.9)]


def _clip_reward(ast):
    return lambda a: -(np.clip(a, LOW, HIGH) - ast) ** 2


@pytest.mark.claim("eq-cont-clip-objective", how="finite difference")
@pytest.mark.parametrize("m,l,ast", CLIP_CASES)
def test_clipped_objective_and_gradient(m, l, ast):
    J_q = lq.expectation_quad(_clip_reward(ast), m, l, [LOW, HIGH])
    assert abs(J_q - lq.clipped_objective(m, l, ast, LOW, HIGH)) < 1e-9
    gr = lq.clipped_gradient(m, l, ast, LOW, HIGH)
    h = 1e-6
    fd = [(lq.clipped_objective(m + h, l, ast, LOW, HIGH) - lq.clipped_objective(m - h, l, ast, LOW, HIGH)) / (2 * h),
          (lq.clipped_objective(m, l + h, ast, LOW, HIGH) - lq.clipped_objective(m, l - h, ast, LOW, HIGH)) / (2 * h)]
    assert np.abs(np.array(fd) - gr).max() < 1e-6
    # wide bounds: the clipped problem is the bandit
    assert abs(lq.clipped_objective(m, l, ast, -1e3, 1e3) - lq.bandit_objective(m, l, ast)) < 1e-9


@pytest.mark.claim("prop-cont-clip-unbiased", how="exact")
@pytest.mark.parametrize("m,l,ast", CLIP_CASES[:5])
def test_clip_estimator_unbiased_with_unclipped_score(m, l, ast):
    gr = lq.clipped_gradient(m, l, ast, LOW, HIGH)

    def est(at_clip):
        return np.array([lq.expectation_quad(
            lambda a: G.diag_gaussian_score([np.clip(a, LOW, HIGH) if at_clip else a], [m], [l])[i][0] * _clip_reward(ast)(a),
            m, l, [LOW, HIGH]) for i in range(2)])

    assert np.abs(est(False) - gr).max() < 1e-8
    bias = est(True) - gr
    assert np.abs(bias).max() > 1e-2  # scoring the clipped action is biased here
    # ... by exactly B = sum_e r(e) [P_e grad log N(e) - grad P_e] (quadrature vs the closed form)
    assert np.abs(bias - lq.clipped_score_bias(m, l, ast, LOW, HIGH)).max() < 1e-8


@pytest.mark.claim("prop-cont-clip-unbiased", how="finite difference")
@pytest.mark.parametrize("m,l,ast", [(0.5, -0.3, 1.0), (-0.4, 0.3, -1.0), (0.2, 0.1, 0.3)])
def test_clip_bias_edge_terms(m, l, ast):
    """Each edge term of B from central differences of the clipped masses P_low = Phi(alpha),
    P_high = 1 - Phi(beta) (scipy's ndtr, not the closed-form derivatives), and the term of an edge
    where r = 0 vanishes: a* = high kills the high-side term, a* = low the low-side one."""
    from scipy.special import ndtr

    def masses(mm, ll):
        s = math.exp(ll)
        return np.array([ndtr((LOW - mm) / s), 1.0 - ndtr((HIGH - mm) / s)])

    h = 1e-6
    dP = np.stack([(masses(m + h, l) - masses(m - h, l)) / (2 * h), (masses(m, l + h) - masses(m, l - h)) / (2 * h)], 1)
    P = masses(m, l)
    terms = []
    for k, e in enumerate((LOW, HIGH)):
        score_e = np.array([s[0] for s in G.diag_gaussian_score([e], [m], [l])])
        terms.append(-((e - ast) ** 2) * (P[k] * score_e - dP[k]))
    assert np.abs(terms[0] + terms[1] - lq.clipped_score_bias(m, l, ast, LOW, HIGH)).max() < 1e-7
    for k, e in enumerate((LOW, HIGH)):
        if e == ast:
            assert np.abs(terms[k]).max() == 0.0


@pytest.mark.claim("rem-cont-clip-drift", how="exact")
def test_clip_drift():
    """a* = high: dJ_clip/dmu > 0 everywhere (it underflows to 0 far beyond the bound), grad -> 0 far beyond the bound, J_clip -> 0 (= sup);
    a* = 0.8, sigma = 0.5: the best mean of J_clip lies beyond a*."""
    for l in (math.log(0.1), math.log(0.3), 0.0):
        for m in np.linspace(-1.0, 12.0, 261):
            dmu = lq.clipped_gradient(m, l, 1.0, LOW, HIGH)[0]
            assert dmu >= 0 and (dmu > 0 or m > 1.0 + 3 * math.exp(l))
        assert np.abs(lq.clipped_gradient(40.0, l, 1.0, LOW, HIGH)).max() < 1e-12
        assert abs(lq.clipped_objective(40.0, l, 1.0, LOW, HIGH)) < 1e-12
    from scipy import optimize

    # a global search: a grid, then Brent's method in the bracket around the best grid point
    f = lambda m: -lq.clipped_objective(m, math.log(0.5), 0.8, LOW, HIGH)  # noqa: E731
    grid = np.linspace(-1.0, 8.0, 901)
    i = int(np.argmin([f(m) for m in grid]))
    best = optimize.minimize_scalar(f, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, 900)]), method="bounded", options={"xatol": 1e-10})
    assert 0 < i < 900 and best.x > 0.8 + 0.1
    # the slope at mu = a* is -2 sigma (phi(alpha) - phi(beta)) > 0 exactly when a* is above the midpoint
    for ast in (-0.9, -0.3, 0.3, 0.8):
        for sig in (0.1, 0.5, 2.0):
            al, be = (LOW - ast) / sig, (HIGH - ast) / sig
            slope = lq.clipped_gradient(ast, math.log(sig), ast, LOW, HIGH)[0]
            phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
            assert abs(slope + 2 * sig * (phi(al) - phi(be))) < 1e-12 and (slope > 0) == (ast > (LOW + HIGH) / 2)
    # the optimum is one of the objective the environment defines: J_clip agrees with quadrature there,
    # and the quadrature objective is lower half a step to either side
    for m in (best.x - 0.05, best.x, best.x + 0.05):
        assert abs(lq.clipped_objective(m, math.log(0.5), 0.8, LOW, HIGH) - lq.expectation_quad(_clip_reward(0.8), m, math.log(0.5), [LOW, HIGH])) < 1e-9
    j_q = [lq.expectation_quad(_clip_reward(0.8), m, math.log(0.5), [LOW, HIGH]) for m in (best.x - 0.05, best.x, best.x + 0.05)]
    assert j_q[1] > j_q[0] and j_q[1] > j_q[2]
    assert lq.clipped_objective(best.x, math.log(0.5), 0.8, LOW, HIGH) > lq.clipped_objective(0.8, math.log(0.5), 0.8, LOW, HIGH)


# ---------------------------------------------------------------------------------------------
# tanh squashing
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-cont-tanh-logpdf", how="autograd")
def test_squashed_log_prob_matches_torch_and_integrates_to_one():
    mean, log_std = np.array([0.4, -1.1]), np.array([-0.5, 0.3])
    u = mean + np.exp(log_std) * np.random.default_rng(5).normal(size=(300, 2)).clip(-3, 3)
    td = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(torch.tensor(mean), torch.tensor(log_std).exp()), [torch.distributions.transforms.TanhTransform()]
    )
    assert _rel(G.squashed_log_prob(u, mean, log_std), td.log_prob(torch.tanh(torch.tensor(u))).sum(-1).numpy()) < 1e-9
    for m, l in [(0.4, -0.5), (-1.1, 0.3), (2.0, 0.0)]:
        mass, _ = integrate.quad(lambda a: math.exp(G.squashed_log_prob([math.atanh(a)], [m], [l])), -1, 1, limit=200)
        assert abs(mass - 1.0) < 1e-7
        # the density written directly: N(atanh a) / (1 - a^2)
        a0 = 0.37
        direct = math.log(math.exp(-0.5 * ((math.atanh(a0) - m) / math.exp(l)) ** 2) / (math.exp(l) * math.sqrt(2 * math.pi)) / (1 - a0**2))
        assert abs(G.squashed_log_prob([math.atanh(a0)], [m], [l]) - direct) < 1e-12


@pytest.mark.claim("eq-cont-tanh-logpdf", how="exact")
@pytest.mark.parametrize("u", [0.0, 0.5, -3.0, 10.0, 25.0, -40.0, 300.0])
def test_tanh_log_det_stable_form(u):
    mpmath.mp.dps = 400  # 1 - tanh(300)^2 is about 1e-261
    exact = float(mpmath.log(1 - mpmath.tanh(mpmath.mpf(u)) ** 2))
    assert abs(G.tanh_log_det_jacobian(u) - exact) < 1e-13 * max(1.0, abs(exact))


@pytest.mark.claim("prop-cont-tanh-jacobian", how="autograd")
def test_tanh_jacobian_cancels_in_score_and_ratio():
    mean, log_std = np.array([0.4, -1.1]), np.array([-0.5, 0.3])
    u = mean + np.exp(log_std) * np.random.default_rng(6).normal(size=(200, 2)).clip(-3, 3)
    m_t, l_t = torch.tensor(mean, requires_grad=True), torch.tensor(log_std, requires_grad=True)
    td = torch.distributions.TransformedDistribution(torch.distributions.Normal(m_t, l_t.exp()), [torch.distributions.transforms.TanhTransform()])
    gm, gl = torch.autograd.grad(td.log_prob(torch.tanh(torch.tensor(u))).sum(), [m_t, l_t])
    sm, sl = G.diag_gaussian_score(u, mean, log_std)
    assert _rel(sm.sum(0), gm.numpy()) < 1e-9 and _rel(sl.sum(0), gl.numpy()) < 1e-9
    # the ratio: torch's squashed densities (with their own Jacobian) at two parameter sets, against the
    # ratio of Gaussian densities of u (torch Normal) and against pgbook's squashed log-densities
    mean2, log_std2 = mean + np.array([0.3, -0.5]), log_std + np.array([-0.2, 0.4])

    def torch_squashed(mm, ll):
        return torch.distributions.TransformedDistribution(torch.distributions.Normal(torch.tensor(mm), torch.tensor(ll).exp()),
                                                           [torch.distributions.transforms.TanhTransform()])

    a_t = torch.tanh(torch.tensor(u))
    log_ratio_torch = (torch_squashed(mean2, log_std2).log_prob(a_t) - torch_squashed(mean, log_std).log_prob(a_t)).sum(-1).numpy()
    u_t = torch.tensor(u)
    log_ratio_gauss = (torch.distributions.Normal(torch.tensor(mean2), torch.tensor(log_std2).exp()).log_prob(u_t)
                       - torch.distributions.Normal(torch.tensor(mean), torch.tensor(log_std).exp()).log_prob(u_t)).sum(-1).numpy()
    log_ratio_pg = G.squashed_log_prob(u, mean2, log_std2) - G.squashed_log_prob(u, mean, log_std)
    assert np.abs(log_ratio_gauss).max() > 0.5  # the two policies differ
    assert np.abs(log_ratio_torch - log_ratio_gauss).max() < 1e-6  # torch recomputes atanh(tanh u): float64 round-off
    assert np.abs(log_ratio_pg - log_ratio_gauss).max() < 1e-9
    # but the values differ by the (non-zero) Jacobian term
    assert np.abs(G.squashed_log_prob(u, mean, log_std) - G.diag_gaussian_log_prob(u, mean, log_std)).min() > 1e-3


@pytest.mark.claim("eq-cont-tanh-entropy", how="exact")
@pytest.mark.parametrize("m,l", [(0.4, -0.5), (-1.1, 0.3), (2.0, 0.0), (0.0, 1.0), (0.0, -3.0)])
def test_squashed_entropy_by_quadrature(m, l):
    def p_log_p(a):
        lp = G.squashed_log_prob([math.atanh(a)], [m], [l])
        return -math.exp(lp) * lp

    h_quad, _ = integrate.quad(p_log_p, -1, 1, limit=400)
    h = float(G.squashed_entropy([m], [l]))
    assert abs(h - h_quad) < 1e-7
    assert h < float(G.diag_gaussian_entropy([l])) - 1e-3  # the Jacobian term lowers it
    # two independent dimensions add
    assert abs(float(G.squashed_entropy([m, 0.1], [l, -0.2])) - h - float(G.squashed_entropy([0.1], [-0.2]))) < 1e-12


# ---------------------------------------------------------------------------------------------
# Beta
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-cont-beta-logpdf", how="autograd")
def test_beta_log_prob_and_score_match_torch():
    rng = np.random.default_rng(8)
    al, be = rng.uniform(0.6, 8.0, 200), rng.uniform(0.6, 8.0, 200)
    x = rng.beta(al, be).clip(1e-9, 1 - 1e-9)
    for low, high in [(0.0, 1.0), (-1.0, 1.0), (-2.0, 5.0)]:
        a = low + (high - low) * x
        al_t, be_t = torch.tensor(al, requires_grad=True), torch.tensor(be, requires_grad=True)
        lp_t = torch.distributions.Beta(al_t, be_t).log_prob(torch.tensor(x)) - math.log(high - low)
        ga, gb = torch.autograd.grad(lp_t.sum(), [al_t, be_t])
        lp = G.beta_log_prob(a[:, None], al[:, None], be[:, None], low, high)
        sa, sb = G.beta_score(a[:, None], al[:, None], be[:, None], low, high)
        assert _rel(lp, lp_t.detach().numpy()) < 1e-9
        assert _rel(sa[:, 0], ga.numpy()) < 1e-9 and _rel(sb[:, 0], gb.numpy()) < 1e-9


@pytest.mark.claim("eq-cont-beta-logpdf", how="exact")
@pytest.mark.parametrize("al,be", [(1.5, 2.0), (3.0, 1.2), (6.0, 6.0)])
def test_beta_density_integrates_to_one_and_score_mean_zero(al, be):
    def expect(f):
        return integrate.quad(lambda a: f(a) * math.exp(G.beta_log_prob([a], [al], [be], LOW, HIGH)), LOW, HIGH,
                              limit=200, epsabs=1e-13, epsrel=1e-12)[0]

    assert abs(expect(lambda a: 1.0) - 1.0) < 1e-9
    for i in range(2):
        assert abs(expect(lambda a: G.beta_score([a], [al], [be], LOW, HIGH)[i][0])) < 1e-8
    # the bandit gradient by the score equals central differences of the closed-form J_Beta
    def J(al_, be_):
        ex, vx = al_ / (al_ + be_), al_ * be_ / ((al_ + be_) ** 2 * (al_ + be_ + 1))
        return -(4 * vx + (LOW + 2 * ex - 0.8) ** 2)

    h = 1e-6
    fd = [(J(al + h, be) - J(al - h, be)) / (2 * h), (J(al, be + h) - J(al, be - h)) / (2 * h)]
    est = [expect(lambda a: G.beta_score([a], [al], [be], LOW, HIGH)[i][0] * -(a - 0.8) ** 2) for i in range(2)]
    assert np.abs(np.array(est) - fd).max() < 1e-7


# ---------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("prop-cont-reward-scale", how="exact")
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("c", [0.01, 3.0, 250.0])
def test_reward_scale(seed, c):
    mdp = M.random_mdp(5, 3, 0.9, seed=seed)
    theta = np.random.default_rng(seed).standard_normal((5, 3))
    scaled = Nz.scale_rewards(mdp, c)
    g1, g2 = gradients.policy_gradient(mdp, theta), gradients.policy_gradient(scaled, theta)
    assert np.abs(g2 - c * g1).max() < 1e-12 * c * np.abs(g1).max()
    pi = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
    assert np.abs(M.advantage_values(scaled, pi) - c * M.advantage_values(mdp, pi)).max() < 1e-11 * c
    Q, Qc = Nz.optimal_action_values(mdp), Nz.optimal_action_values(scaled)
    assert np.abs(Qc - c * Q).max() < 1e-9 * c * np.abs(Q).max()
    assert (Qc.argmax(1) == Q.argmax(1)).all()
    # Q* is a fixed point of the Bellman optimality operator (independent of the iteration's stopping rule)
    P = M.transition_array(mdp)
    assert np.abs(mdp.R + mdp.gamma * P @ Q.max(1) - Q).max() < 1e-9


def _reference_accumulators(rewards, terminated, truncated, gamma, vector):
    """D_t from the definition: single-env wrapper D_t = gamma (1 - terminated_t) D_{t-1} + r_t, never
    cleared (reset() keeps it); vector wrapper (same-step autoreset): the same in float32, then D set
    to 0 after a terminated or truncated step. Returns (D used for the statistics, D held after the step)."""
    used, held, acc = [], [], 0.0
    for r, te, tr in zip(rewards, terminated, truncated):
        acc = acc * gamma * (1 - te) + r
        if vector:
            acc = float(np.float32(acc))
        used.append(acc)
        if vector and (te or tr):
            acc = 0.0
        held.append(acc)
    return np.array(used), np.array(held)


def _reference_scales(D, eps=1e-8):
    """NormalizeReward's factor recomputed from its definition: the variance of all accumulators so
    far together with the prior (count 1e-4, mean 0, variance 1), as a batch formula."""
    out, c0 = [], 1e-4
    for t in range(len(D)):
        x = D[: t + 1]
        n = t + 1
        mean = x.sum() / (n + c0)
        m2 = c0 * (1.0 + mean**2) + ((x - mean) ** 2).sum()
        out.append(1.0 / math.sqrt(m2 / (n + c0) + eps))
    return np.array(out)


@pytest.mark.claim("rem-cont-normalize-reward", how="exact")
@pytest.mark.parametrize("terminate", [False, True])
def test_normalize_reward_semantics(terminate):
    T = 600
    rewards = np.where(np.arange(T) < 300, -1.0, -0.2) + 0.1 * np.sin(np.arange(T))
    term = (np.arange(T) % 100 == 99) if terminate else np.zeros(T, bool)
    sc = Nz.normalize_reward_scales(rewards, 0.99, terminated=term)
    D, _ = _reference_accumulators(rewards, term, np.zeros(T, bool), 0.99, vector=False)
    ref = _reference_scales(D)
    assert np.abs(sc - ref).max() < 1e-9 * np.abs(ref).max()
    assert np.abs(Nz.normalize_reward_accumulators(rewards, 0.99, terminated=term) - D).max() < 1e-12
    # what the wrapper returns is reward * factor (no centring)
    env = gym.wrappers.NormalizeReward(Nz.ScriptedEnv(np.zeros((T + 1, 1)), rewards, term), gamma=0.99)
    env.reset(seed=0)
    got = np.array([env.step(0)[1] for _ in range(T)])
    assert np.abs(got - rewards * sc).max() < 1e-12 * np.abs(got).max()
    # the factor drifts: it is not a constant
    assert abs(sc[-1] / sc[99] - 1.0) > 0.05


@pytest.mark.claim("rem-cont-normalize-reward", how="exact")
def test_normalize_reward_terminating_step_and_reset():
    """Rewards 1, 2 (terminating), 3 with gamma = 0.5: the single-env wrapper's D is 1, 2, 4 (the
    terminating step keeps only its reward, reset() does not clear D); the vector wrapper's D restarts
    at 0 (1, 2, then 3)."""
    r, te = np.array([1.0, 2.0, 3.0]), np.array([False, True, False])
    assert np.array_equal(Nz.normalize_reward_accumulators(r, 0.5, terminated=te), [1.0, 2.0, 4.0])
    assert np.array_equal(Nz.normalize_reward_accumulators(r, 0.5, terminated=te, vector=True), [1.0, 0.0, 3.0])
    # truncation: the single-env wrapper keeps accumulating (1, 2.5, 4.25), the vector one restarts
    assert np.array_equal(Nz.normalize_reward_accumulators(r, 0.5, truncated=te), [1.0, 2.5, 4.25])
    assert np.array_equal(Nz.normalize_reward_accumulators(r, 0.5, truncated=te, vector=True), [1.0, 0.0, 3.0])
    # the scales of the vector wrapper: statistics of D = 1, 2.5 (used at the truncated step, then cleared), 3
    assert np.abs(Nz.normalize_reward_scales(r, 0.5, truncated=te, vector=True) - _reference_scales(np.array([1.0, 2.5, 3.0]))).max() < 1e-6


@pytest.mark.claim("rem-cont-normalize-reward", how="exact")
@pytest.mark.parametrize("vector", [False, True])
def test_normalize_reward_truncation(vector):
    """Episodes of 200 steps that end by truncation (ScriptedEnv returns truncated=True, and reset() is
    called after it as a training loop does): the single-env wrapper never resets D, the vector wrapper
    resets it exactly as it does after a termination."""
    T = 2000
    ends = np.arange(T) % 200 == 199
    rewards = -np.ones(T) + 0.05 * np.cos(np.arange(T))
    none = np.zeros(T, bool)
    by_term = Nz.normalize_reward_scales(rewards, 0.99, terminated=ends, vector=vector)
    by_trunc = Nz.normalize_reward_scales(rewards, 0.99, truncated=ends, vector=vector)
    for term, trunc, got in ((ends, none, by_term), (none, ends, by_trunc)):
        used, held = _reference_accumulators(rewards, term, trunc, 0.99, vector)
        assert np.abs(got - _reference_scales(used)).max() < 1e-6 * np.abs(got).max()
        assert np.abs(Nz.normalize_reward_accumulators(rewards, 0.99, terminated=term, truncated=trunc, vector=vector) - held).max() < 1e-5 * np.abs(held).max()
    assert np.allclose(by_term[:199], by_trunc[:199], rtol=1e-14)
    if vector:
        # resets on both; the runs differ only in the ending step's own D (r_T alone after a termination)
        assert np.abs(by_trunc / by_term - 1.0).max() < 0.02
    else:
        assert by_trunc[-1] > 1.3 * by_term[-1]  # D settles near -1/(1 - gamma): a smaller variance, a larger factor


@pytest.mark.claim("rem-cont-normalize-reward", how="exact")
def test_normalize_observation_trace():
    rng = np.random.default_rng(3)
    raw = rng.normal(loc=[1.0, -2.0], scale=[0.5, 3.0], size=(50, 2))
    out = Nz.normalize_observation_trace(raw)
    for t in (0, 10, 49):
        x = raw[: t + 1]
        c0, n = 1e-4, t + 1
        mean = x.sum(0) / (n + c0)
        var = (c0 * (1.0 + mean**2) + ((x - mean) ** 2).sum(0)) / (n + c0)
        expected = np.float32((raw[t] - mean) / np.sqrt(var + 1e-8))
        assert np.abs(out[t] - expected).max() < 1e-5


def test_validation_names_arguments():
    with pytest.raises(ValueError, match="c"):
        Nz.scale_rewards(M.random_mdp(2, 2, 0.9, 0), -1.0)
    with pytest.raises(ValueError, match="high"):
        lq.clipped_objective(0.0, 0.0, 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="a must lie"):
        G.beta_log_prob([1.0], [2.0], [2.0], -1.0, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        G.beta_score([0.5], [0.0], [2.0])
    with pytest.raises(ValueError, match="f must"):
        lq.gaussian_expectation(lambda a: 1.0, 0.0, 0.0)
