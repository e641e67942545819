"""Chapter 7: PPO's clipped objective, what it does and what it does not do (:mod:`pgbook.clipping`)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pgbook import clipping as C
from pgbook import mdp as M
from pgbook import policies
from pgbook import surrogate as S
from pgbook.gradients import expected_return_of_theta, policy_gradient


SHAPES = [(1, 2), (2, 2), (3, 2), (2, 4), (4, 3), (5, 4), (6, 4), (6, 2)]
CASES = [(nS, nA, gamma, seed) for seed, (nS, nA) in enumerate(SHAPES) for gamma in (0.5, 0.9, 0.99)]
EPS = 0.2


def make_case(nS, nA, gamma, seed):
    mdp = M.random_mdp(nS, nA, gamma, seed)
    return mdp, np.random.default_rng(500 + seed).standard_normal((nS, nA))


def rel_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def cases_formula(r, A, eps):
    """eq-clip-cases written as the notes' two half-line cases, with r A everywhere else."""
    if A > 0 and r > 1 + eps:
        return (1 + eps) * A
    if A < 0 and r < 1 - eps:
        return (1 - eps) * A
    return r * A


# The worked example of the chapter: the trap chain, one shared "go" logit x (features = 1).
CHAIN = S.trap_chain_mdp(6, 1.0, 8.0, 0.95)
SHARED = C.LinearSoftmaxPolicy(np.ones((7, 1)), 2)


def shared_logits(x):
    return SHARED.logits(np.array([[0.0, x]]))


THETA_OLD_CHAIN = shared_logits(0.0)  # the uniform policy
GRID = np.linspace(0.0, 0.8, 161)  # the shared 'go' logit x; step 0.005


# ------------------------------------------------------------------------------------------------
# The per-sample objective
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-clip-cases", how="enumeration")
def test_clip_objective_equals_case_analysis_on_a_grid():
    """min(rA, clip(r)A) equals the three-case formula on a grid of r (kinks included), A and eps."""
    for eps in (0.1, 0.2, 0.3):
        rs = np.unique(np.concatenate([np.linspace(0, 3, 301), [1 - eps, 1 + eps, 1.0]]))
        for A in (-2.0, -0.5, 0.0, 0.5, 2.0):
            got = C.clip_objective(rs, np.full_like(rs, A), eps)
            want = np.array([cases_formula(r, A, eps) for r in rs])
            assert np.allclose(got, want, rtol=0, atol=1e-15)


@settings(max_examples=200, deadline=None)
@given(
    r=st.floats(0, 10, allow_nan=False),
    A=st.floats(-100, 100, allow_nan=False),
    eps=st.floats(0.01, 0.99),
)
@pytest.mark.claim("err-clip-cases", "eq-clip-cases", how="property")
@pytest.mark.claim("eq-clip-lower", how="property")
def test_clip_objective_cases_and_pessimism(r, A, eps):
    """For any r >= 0, A, eps: l^CLIP follows the cases and l^CLIP <= rA (equality unless clipped)."""
    got = float(C.clip_objective(np.array([r]), np.array([A]), eps)[0])
    assert got == pytest.approx(cases_formula(r, A, eps), rel=1e-12, abs=1e-12)
    assert got <= r * A + 1e-12 * (1 + abs(r * A))
    clipped = (A > 0 and r > 1 + eps) or (A < 0 and r < 1 - eps)
    if not clipped:
        assert got == pytest.approx(r * A, rel=1e-12, abs=1e-300)


@pytest.mark.claim("err-clip-cases", "eq-clip-lower", how="exact")
def test_expected_clip_below_cpi():
    """L^CLIP(theta) <= L^CPI(theta) exactly; equal at theta_old (both 0); strictly below iff some (s, a) is clipped."""
    for nS, nA, gamma, seed in CASES:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        assert C.expected_clip_objective(mdp, theta_old, theta_old, EPS) == pytest.approx(0.0, abs=1e-9 / (1 - gamma))
        rng = np.random.default_rng(seed)
        for scale in (0.05, 0.5, 2.0):
            theta = theta_old + scale * rng.standard_normal(theta_old.shape)
            lc, lp = C.expected_clip_objective(mdp, theta, theta_old, EPS), S.cpi_objective(mdp, theta, theta_old)
            assert lc <= lp + 1e-10 / (1 - gamma)
            r = policies.probs(theta) / policies.probs(theta_old)
            A = M.advantage_values(mdp, policies.probs(theta_old))
            clipped = np.any(((A > 0) & (r > 1 + EPS)) | ((A < 0) & (r < 1 - EPS)))
            if clipped:
                assert lc < lp - 1e-12
            else:
                assert lc == pytest.approx(lp, rel=1e-12, abs=1e-12)


@pytest.mark.claim("eq-clip-dr", how="autograd")
def test_ratio_derivative_by_autograd():
    """torch autograd of min(rA, clip(r)A) w.r.t. r is A where unclipped and 0 where clipped (away from the kinks)."""
    r = torch.linspace(0.01, 2.5, 250, dtype=torch.float64)
    r = r[(torch.abs(r - 1 - EPS) > 1e-6) & (torch.abs(r - 1 + EPS) > 1e-6)]
    for A in (-1.5, 1.5):
        rr = r.clone().requires_grad_(True)
        adv = torch.full_like(rr, A)
        C.clip_objective(rr, adv, EPS).sum().backward()
        assert torch.equal(rr.grad, C.clip_objective_ratio_grad(r, adv, EPS))
    # the flat regions are exactly where the notes say the update stops being pushed
    g = C.clip_objective_ratio_grad(np.array([1.5, 0.5, 1.5, 0.5]), np.array([1.0, 1.0, -1.0, -1.0]), EPS)
    assert list(g) == [0.0, 1.0, -1.0, 0.0]


def test_types_are_preserved():
    """numpy in -> numpy out, torch in -> torch out (differentiable); mixing the two is rejected."""
    out = C.clip_objective(np.array([0.5, 1.5]), np.array([1.0, -1.0]), EPS)
    assert isinstance(out, np.ndarray) and out.tolist() == [0.5, -1.5]
    r = torch.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)
    out_t = C.clip_objective(r, torch.tensor([1.0, -1.0], dtype=torch.float64), EPS)
    assert isinstance(out_t, torch.Tensor) and out_t.requires_grad
    assert isinstance(C.kl_penalty_objective(np.ones(2), np.ones(2), np.zeros(2), 1.0), np.ndarray)
    assert isinstance(C.clip_objective_ratio_grad(r.detach(), torch.ones(2, dtype=torch.float64), EPS), torch.Tensor)
    with pytest.raises(ValueError, match="both"):
        C.clip_objective(np.ones(2), torch.ones(2), EPS)


# ------------------------------------------------------------------------------------------------
# The first step
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("thm-clip-first-step", how="autograd")
def test_clip_gradient_at_theta_old_is_grad_J():
    """Autograd of the exact L^CLIP at theta_old equals the exact grad J (24 cases) and grad L^CPI; not so after a large step."""
    for nS, nA, gamma, seed in CASES:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        t = torch.tensor(theta_old, requires_grad=True)
        C.expected_clip_objective(mdp, t, theta_old, EPS).backward()
        assert rel_err(t.grad.numpy(), policy_gradient(mdp, theta_old)) < 1e-10
        assert rel_err(t.grad.numpy(), S.cpi_gradient(mdp, theta_old, theta_old)) < 1e-10
        theta = theta_old + 2.0 * np.random.default_rng(seed).standard_normal(theta_old.shape)
        t2 = torch.tensor(theta, requires_grad=True)
        C.expected_clip_objective(mdp, t2, theta_old, EPS).backward()
        assert rel_err(t2.grad.numpy(), S.cpi_gradient(mdp, theta, theta_old)) > 1e-3


@pytest.mark.claim("thm-clip-first-step", how="autograd")
def test_first_minibatch_gradient_is_the_policy_gradient_estimate():
    """On a sampled batch at theta_old, autograd of mean l^CLIP equals autograd of mean r A (the policy-gradient estimate)."""
    mdp, theta_old = make_case(4, 3, 0.9, 4)
    batch = C.make_batch(mdp, theta_old, 8, 32, seed=0)
    grads = []
    for fn in (lambda r, a: C.clip_objective(r, a, EPS), lambda r, a: r * a):
        t = torch.tensor(theta_old, requires_grad=True)
        logp = torch.log_softmax(t, 1)[batch.states, batch.actions]
        ratio = torch.exp(logp - batch.old_log_probs)
        fn(ratio, batch.advantages).mean().backward()
        grads.append(t.grad.numpy())
    assert np.allclose(grads[0], grads[1], rtol=1e-13, atol=1e-15)
    assert np.max(np.abs(grads[0])) > 1e-3


# ------------------------------------------------------------------------------------------------
# What clipping does not do
# ------------------------------------------------------------------------------------------------


@pytest.mark.claim("err-clip-trust-region", "prop-clip-ratio-escape", how="reproduction")
def test_ratios_leave_the_interval_after_several_epochs():
    """10 epochs of minibatch Adam on L^CLIP over a fixed batch: ratios start inside [1-eps, 1+eps] and end outside."""
    mdp, theta_old = make_case(4, 3, 0.9, 4)
    batch = C.make_batch(mdp, theta_old, 32, 64, seed=0)
    _, reports = C.run_clip_epochs(lambda p: p, theta_old, batch, EPS, 10, 256, 0.01, seed=0)
    first, last = reports[0].ratio, reports[-1].ratio
    assert first.frac_outside == 0.0
    assert last.max > 1 + EPS + 0.05 or last.min < 1 - EPS - 0.05
    assert last.frac_outside > 0.5


def vertex_maximum(pi_old, A, eps):
    """max over the closed simplex of f(pi) = sum_a pi_old l^CLIP(pi/pi_old, A), by enumerating vertices.

    f is a sum of one-variable concave piecewise-linear terms with one kink each (at (1 +- eps) pi_old(a)),
    so its maximum on the simplex is at a point where all coordinates but one sit at 0 or at their kink.
    Independent of pgbook.clipping.clip_supremum (no sorting, no knapsack)."""
    n = len(pi_old)
    kink = np.where(A > 0, (1 + eps) * pi_old, (1 - eps) * pi_old)
    best = -np.inf
    for free in range(n):
        others = [a for a in range(n) if a != free]
        for choice in itertools.product((0.0, 1.0), repeat=n - 1):
            pi = np.zeros(n)
            pi[others] = kink[others] * np.array(choice)
            pi[free] = 1.0 - pi.sum()
            if pi[free] >= 0.0:
                best = max(best, float(pi_old @ C.clip_objective(pi / pi_old, A, eps)))
    return best


def clip_state_case(n, eps, regime, seed):
    """A state with n actions, no zero advantage, mean-zero advantages, and p_G on the chosen side of 1/(1+eps)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, n))  # |G|
    threshold = 1.0 / (1.0 + eps)
    p_G = rng.uniform(0.02, threshold - 0.01) if regime == "attained" else rng.uniform(threshold + 0.01, 0.99)
    pi_old = np.concatenate([p_G * rng.dirichlet(np.ones(k)), (1 - p_G) * rng.dirichlet(np.ones(n - k))])
    A_G, A_N = rng.exponential(1.0, k) + 0.05, -(rng.exponential(1.0, n - k) + 0.05)
    A_N *= (pi_old[:k] @ A_G) / -(pi_old[k:] @ A_N)  # sum_a pi_old A = 0
    perm = rng.permutation(n)
    return pi_old[perm], np.concatenate([A_G, A_N])[perm], rng


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(2, 5),
    eps=st.sampled_from([0.1, 0.2, 0.3]),
    regime=st.sampled_from(["attained", "not attained"]),
    seed=st.integers(0, 10_000),
)
@pytest.mark.claim("prop-clip-ratio-escape", how="property")
def test_clip_supremum_in_both_regimes(n, eps, regime, seed):
    """sup f_s = eps sum pi_old |A| iff p_G <= 1/(1+eps), else smaller and not attained; the ratios as stated in both regimes."""
    pi_old, A, rng = clip_state_case(n, eps, regime, seed)
    good = A > 0
    p_G = pi_old[good].sum()
    assert np.all(A != 0) and abs(pi_old @ A) < 1e-12

    def f(pi):
        return float(pi_old @ C.clip_objective(pi / pi_old, A, eps))

    bound = eps * pi_old @ np.abs(A)
    sup = float(C.clip_supremum(pi_old[None], A[None], eps)[0])
    star = C.clip_sup_policy(pi_old[None], A[None], eps)[0]
    # the supremum, against an independent enumeration of the vertices; the bound always holds
    assert sup == pytest.approx(vertex_maximum(pi_old, A, eps), rel=1e-12, abs=1e-14)
    assert f(star) == pytest.approx(sup, rel=1e-12, abs=1e-14) and sup <= bound + 1e-12
    # full-support policies: random ones and mixtures with the point where the supremum is reached
    policies_ = [rng.dirichlet(np.ones(n)) for _ in range(20)]
    policies_ += [(1 - d) * star + d * rng.dirichlet(np.ones(n)) for d in (1e-1, 1e-2, 1e-4) for _ in range(5)]
    for pi in policies_:
        assert f(pi) <= sup + 1e-12
    r_star = star / pi_old
    if regime == "attained":  # p_G < 1/(1+eps)
        assert sup == pytest.approx(bound, rel=1e-12)
        assert np.all(star > 0)  # a softmax policy reaches it
        on, off = star[good].sum() / p_G, star[~good].sum() / (1 - p_G)
        assert on == pytest.approx(max(1 + eps, 1 - eps + eps / p_G), rel=1e-12)  # the bounds are tight
        assert off == pytest.approx(min(1 - eps, 1 - eps * p_G / (1 - p_G)), rel=1e-12, abs=1e-12)
        if abs(p_G - 0.5) > 1e-6:  # strictly outside the interval on one side
            assert r_star.max() > 1 + eps or r_star.min() < 1 - eps
        for pi in policies_:  # equality iff r >= 1 + eps on G and r <= 1 - eps off G; then the mean-ratio bounds
            r = pi / pi_old
            condition = np.all(r[good] >= 1 + eps) and np.all(r[~good] <= 1 - eps)
            assert (f(pi) >= bound - 1e-12 * (1 + bound)) == condition
            if condition:
                assert pi[good].sum() / p_G >= max(1 + eps, 1 - eps + eps / p_G) - 1e-12
                assert pi[~good].sum() / (1 - p_G) <= min(1 - eps, 1 - eps * p_G / (1 - p_G)) + 1e-12
    else:  # p_G > 1/(1+eps): the claim "sup = eps sum pi_old |A|, attained" is false here
        excess = (1 + eps) * p_G - 1
        assert sup < bound and bound - sup >= excess * A[good].min() * (1 - 1e-9)
        assert np.all(star[~good] == 0) and star[good].sum() == pytest.approx(1.0, rel=1e-14)
        assert r_star[good].max() <= 1 + eps + 1e-12
        assert star[good].sum() / p_G == pytest.approx(1 / p_G) and 1 < 1 / p_G < 1 + eps
        caps = (1 + eps) * pi_old
        for pi in policies_:  # the gap to the supremum controls the mass off G and above the caps
            gap = sup - f(pi)
            assert gap > 0
            assert gap >= A[good].min() * (pi[~good].sum() + np.maximum(pi - caps, 0)[good].sum()) - 1e-12
        for d in (1e-2, 1e-4, 1e-6):  # approached along (1 - d) star + d pi_old: off-G ratios d -> 0
            pi_d = (1 - d) * star + d * pi_old
            assert 0 < sup - f(pi_d) <= d * abs(sup) + 1e-12
            assert np.allclose((pi_d / pi_old)[~good], d)


@pytest.mark.claim("prop-clip-ratio-escape", how="exact")
def test_clip_supremum_examples_of_the_review():
    """pi_old = (0.5, 0.4, 0.1), A = (1, 1, -9), eps = 0.2: sup 0.28, not 0.36; limit ratios (10/9, 10/9, 0). Boundary p_G = 1/(1+eps)."""
    pi_old, A = np.array([[0.5, 0.4, 0.1]]), np.array([[1.0, 1.0, -9.0]])
    assert 0.2 * pi_old[0] @ np.abs(A[0]) == pytest.approx(0.36)
    assert C.clip_supremum(pi_old, A, 0.2)[0] == pytest.approx(0.28, rel=1e-14)
    assert np.allclose(C.clip_sup_policy(pi_old, A, 0.2) / pi_old, [[10 / 9, 10 / 9, 0.0]], rtol=1e-14)
    # p_G = 0.8 = 1/(1 + 0.25): the bound is the supremum, reached only with zero probability off G
    pi_old, A = np.array([[0.8, 0.2]]), np.array([[1.0, -4.0]])
    assert C.clip_supremum(pi_old, A, 0.25)[0] == pytest.approx(0.25 * 1.6, rel=1e-14)
    assert np.array_equal(C.clip_sup_policy(pi_old, A, 0.25), [[1.0, 0.0]])
    for d in (0.1, 0.01, 1e-4):
        pi = np.array([1 - d, d])
        assert pi_old[0] @ C.clip_objective(pi / pi_old[0], A[0], 0.25) < 0.4


@pytest.mark.claim("prop-clip-ratio-escape", how="exact")
def test_exact_clip_ascent_when_the_supremum_is_not_attained():
    """One-state MDP with the review's example: exact ascent on L^CLIP approaches 0.28 from below, off-G ratio -> 0, mean G ratio -> 1/p_G."""
    mdp = M.MDP(np.ones((1, 3, 1)), np.array([[1.0, 1.0, -9.0]]), np.ones(1), 0.9)
    theta_old = np.log(np.array([[0.5, 0.4, 0.1]]))
    A = M.advantage_values(mdp, policies.probs(theta_old))
    assert np.allclose(A, [[1.0, 1.0, -9.0]])
    sup = C.state_clip_maxima(mdp, theta_old, EPS)[0]
    assert sup == pytest.approx(0.28, rel=1e-12)
    t = torch.tensor(theta_old, requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.05)
    for step in range(1, 2001):
        opt.zero_grad()
        (-C.expected_clip_objective(mdp, t, theta_old, EPS)).backward()
        opt.step()
        if step % 100 == 0:
            pi = policies.probs(t.detach().numpy())[0]
            gap = sup - C.state_clip_objectives(mdp, t.detach().numpy(), theta_old, EPS)[0]
            assert gap > 0 and gap >= 1.0 * pi[2] - 1e-12  # min_G A = 1, pi(G^c) = pi[2]
    ratio = pi / np.array([0.5, 0.4, 0.1])
    assert gap < 1e-3 and ratio[2] < 0.01
    assert (0.5 * ratio[0] + 0.4 * ratio[1]) / 0.9 == pytest.approx(1 / 0.9, abs=1e-3)
    assert ratio[:2].max() <= 1 + EPS


@pytest.mark.claim("err-clip-trust-region", "prop-clip-ratio-escape", how="exact")
def test_exact_clip_ascent_converges_outside_the_interval():
    """Exact ascent on the exact L^CLIP reaches the per-state maximum, with mean ratios beyond the bounds of the proposition."""
    mdp, _ = make_case(4, 3, 0.9, 4)
    theta_old = np.random.default_rng(504).standard_normal((4, 3))
    t = torch.tensor(theta_old, requires_grad=True)
    opt = torch.optim.Adam([t], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        (-C.expected_clip_objective(mdp, t, theta_old, EPS)).backward()
        opt.step()
    theta = t.detach().numpy()
    assert np.allclose(
        C.state_clip_objectives(mdp, theta, theta_old, EPS), C.state_clip_maxima(mdp, theta_old, EPS), rtol=1e-4
    )
    pi_o = policies.probs(theta_old)
    good = M.advantage_values(mdp, pi_o) > 0
    ratio = policies.probs(theta) / pi_o
    p_G = (pi_o * good).sum(axis=1)
    for s in range(4):
        on = (pi_o[s] * good[s] * ratio[s]).sum() / p_G[s]
        off = (pi_o[s] * ~good[s] * ratio[s]).sum() / (1 - p_G[s])
        assert on >= 1 - EPS + EPS / p_G[s] - 1e-3
        assert off <= 1 - EPS * p_G[s] / (1 - p_G[s]) + 1e-3
        assert ratio[s].max() > 1 + EPS + 0.05 or ratio[s].min() < 1 - EPS - 0.05


@pytest.mark.claim("err-clip-monotonic", "prop-clip-no-monotonic", how="exact")
def test_clip_increase_with_J_decrease_on_the_trap_chain():
    """Shared parameters, exact expectations: the maximiser of L^CLIP has L^CLIP > 0 yet J < J(theta_old)."""
    J_old = expected_return_of_theta(CHAIN, THETA_OLD_CHAIN)
    Lc = np.array([C.expected_clip_objective(CHAIN, shared_logits(x), THETA_OLD_CHAIN, EPS) for x in GRID])
    x_star = GRID[np.argmax(Lc)]
    J_star = expected_return_of_theta(CHAIN, shared_logits(x_star))
    assert Lc.max() > 0.5 and J_star < J_old - 0.5
    # ... although the first step goes uphill: dJ/dx > 0 at x = 0
    g = SHARED.param_gradient(policy_gradient(CHAIN, THETA_OLD_CHAIN))
    assert g[0, 1] > 0
    # the culprit: L^CLIP is positive on average but negative in the states near the trap
    f = C.state_clip_objectives(CHAIN, shared_logits(x_star), THETA_OLD_CHAIN, EPS)
    assert f[0] > 0 and f[-1] < 0


@pytest.mark.claim("err-clip-monotonic", "prop-clip-no-monotonic", how="reproduction")
def test_ppo_epochs_on_sampled_batches_decrease_J():
    """PPO's K-epoch minibatch loop on sampled batches (3 seeds) raises the exact L^CLIP and lowers the exact J."""
    J_old = expected_return_of_theta(CHAIN, THETA_OLD_CHAIN)
    for seed in range(3):
        batch = C.make_batch(CHAIN, THETA_OLD_CHAIN, 16, 128, seed=seed)
        w, _ = C.run_clip_epochs(SHARED.logits, np.zeros((1, 2)), batch, EPS, 10, 256, 0.003, seed=seed)
        theta = SHARED.logits(w)
        assert C.expected_clip_objective(CHAIN, theta, THETA_OLD_CHAIN, EPS) > 0.3
        assert expected_return_of_theta(CHAIN, theta) < J_old - 0.3


@settings(max_examples=30, deadline=None)
@given(
    nS=st.integers(1, 6),
    nA=st.integers(2, 4),
    gamma=st.sampled_from([0.5, 0.9, 0.99]),
    seed=st.integers(0, 10_000),
)
@pytest.mark.claim("prop-clip-tabular-safe", how="property")
def test_nonnegative_state_objectives_imply_improvement(nS, nA, gamma, seed):
    """If f_s(theta) >= 0 in every state then J(theta) >= J(theta_old); checked along a whole line of steps."""
    mdp = M.random_mdp(nS, nA, gamma, seed)
    rng = np.random.default_rng(seed)
    theta_old = rng.standard_normal((nS, nA))
    J_old = expected_return_of_theta(mdp, theta_old)
    # per-state steps along each state's own clipped-objective gradient at theta_old (= its grad J block / eta)
    direction = policy_gradient(mdp, theta_old) / M.discounted_visits(mdp, policies.probs(theta_old))[:, None]
    direction += 0.3 * rng.standard_normal((nS, nA))
    for t in (0.01, 0.1, 0.5, 1.0, 3.0, 10.0):
        theta = theta_old + t * direction
        if np.all(C.state_clip_objectives(mdp, theta, theta_old, EPS) >= 0):
            assert expected_return_of_theta(mdp, theta) >= J_old - 1e-10 / (1 - gamma)


@pytest.mark.claim("prop-clip-tabular-safe", how="exact")
def test_tabular_clip_ascent_improves_the_trap_chain():
    """Same chain, per-state (tabular) softmax: exact gradient ascent on L^CLIP keeps every f_s >= 0 and J rises at every step."""
    t = torch.tensor(THETA_OLD_CHAIN, requires_grad=True)
    opt = torch.optim.SGD([t], lr=0.1)
    J_prev = expected_return_of_theta(CHAIN, THETA_OLD_CHAIN)
    for _ in range(100):
        opt.zero_grad()
        (-C.expected_clip_objective(CHAIN, t, THETA_OLD_CHAIN, EPS)).backward()
        opt.step()
        theta = t.detach().numpy()
        assert np.all(C.state_clip_objectives(CHAIN, theta, THETA_OLD_CHAIN, EPS) >= -1e-12)
        J = expected_return_of_theta(CHAIN, theta)
        assert J >= J_prev - 1e-12
        J_prev = J
    assert J_prev > expected_return_of_theta(CHAIN, THETA_OLD_CHAIN) + 1.0


@pytest.mark.claim("err-clip-good-actions", "prop-clip-good-actions", how="autograd")
def test_a_good_action_can_lose_probability():
    """With three actions, the first (policy-gradient) step lowers the probability of an action with A > 0."""
    pi_old = np.array([[0.8, 0.1, 0.1]])
    A = np.array([0.1, 0.05, -(0.08 + 0.005) / 0.1])  # E_{pi_old}[A] = 0
    assert pi_old[0] @ A == pytest.approx(0.0, abs=1e-15)
    theta = torch.tensor(np.log(pi_old), requires_grad=True)
    ratio = torch.softmax(theta, 1) / torch.tensor(pi_old)
    (torch.tensor(pi_old) * C.clip_objective(ratio, torch.tensor(A)[None, :], EPS)).sum().backward()
    step = theta.grad  # the ascent direction on the logits
    d_prob = torch.autograd.functional.jvp(lambda t: torch.softmax(t, 1), torch.tensor(np.log(pi_old)), step)[1]
    assert A[1] > 0 and d_prob[0, 1] < 0  # "good" action 1 loses probability to the better action 0
    assert d_prob[0, 0] > 0 and d_prob[0, 2] < 0


@settings(max_examples=20, deadline=None)
@given(nS=st.integers(1, 6), gamma=st.sampled_from([0.5, 0.9, 0.99]), seed=st.integers(0, 10_000))
def test_exercise_two_actions(nS, gamma, seed):
    """Exercise ex-ch07-two-actions: with two actions, the first step changes pi(a|s) with the sign of A(s, a)."""
    mdp = M.random_mdp(nS, 2, gamma, seed)
    theta = np.random.default_rng(seed).standard_normal((nS, 2))
    step = torch.tensor(policy_gradient(mdp, theta))
    _, d_pi = torch.autograd.functional.jvp(lambda t: torch.softmax(t, 1), torch.tensor(theta), step)
    A = M.advantage_values(mdp, policies.probs(theta))
    big = np.abs(A) > 1e-9
    assert np.all(np.sign(d_pi.numpy()[big]) == np.sign(A[big]))


@pytest.mark.claim("eq-clip-klpen", how="autograd")
def test_kl_penalty_variant():
    """L^KLPEN = L^CPI - beta sum_s eta_old KL_s exactly; its gradient at theta_old is grad J (the KL is flat there)."""
    for nS, nA, gamma, seed in CASES[::3]:
        mdp, theta_old = make_case(nS, nA, gamma, seed)
        theta = theta_old + 0.5 * np.random.default_rng(seed).standard_normal(theta_old.shape)
        eta = M.discounted_visits(mdp, policies.probs(theta_old))
        kl = S.policy_kl(policies.probs(theta_old), policies.probs(theta))
        want = S.cpi_objective(mdp, theta, theta_old) - 2.0 * eta @ kl
        assert C.expected_kl_penalty_objective(mdp, theta, theta_old, 2.0) == pytest.approx(want, rel=1e-10)
        t = torch.tensor(theta_old, requires_grad=True)
        C.expected_kl_penalty_objective(mdp, t, theta_old, 5.0).backward()
        assert rel_err(t.grad.numpy(), policy_gradient(mdp, theta_old)) < 1e-10
    r, a, k = np.array([1.2, 0.7]), np.array([1.0, -2.0]), np.array([0.1, 0.0])
    assert np.allclose(C.kl_penalty_objective(r, a, k, 3.0), [1.2 - 0.3, -1.4])
    assert C.adapt_kl_coefficient(1.0, 0.001, 0.01) == 0.5
    assert C.adapt_kl_coefficient(1.0, 0.1, 0.01) == 2.0
    assert C.adapt_kl_coefficient(1.0, 0.01, 0.01) == 1.0


@pytest.mark.claim("err-trpo-constraint", "prop-clip-compare", how="exact")
def test_penalties_and_constraints_on_the_trap_chain():
    """Same example: the Theorem-1 step improves J (guaranteed) but is tiny; TRPO's delta = 0.01 and beta = 1 still lower J."""
    J_old = expected_return_of_theta(CHAIN, THETA_OLD_CHAIN)

    def J_at_argmax(values, grid):
        return expected_return_of_theta(CHAIN, shared_logits(grid[int(np.argmax(values))]))

    fine = np.linspace(-0.005, 0.005, 101)
    bound = [S.trpo_lower_bound(CHAIN, shared_logits(x), THETA_OLD_CHAIN) for x in fine]
    x_thm = fine[int(np.argmax(bound))]
    assert 0 < x_thm < 0.005 and J_at_argmax(bound, fine) > J_old
    cpi = np.array([S.cpi_objective(CHAIN, shared_logits(x), THETA_OLD_CHAIN) for x in GRID])
    kl = np.array([S.mean_policy_kl(CHAIN, shared_logits(x), THETA_OLD_CHAIN) for x in GRID])
    assert J_at_argmax(np.where(kl <= 0.01, cpi, -np.inf), GRID) < J_old
    assert J_at_argmax(np.where(kl <= 0.001, cpi, -np.inf), GRID) > J_old
    for beta, worse in ((1.0, True), (3.0, False)):
        klpen = [C.expected_kl_penalty_objective(CHAIN, shared_logits(x), THETA_OLD_CHAIN, beta) for x in GRID]
        assert (J_at_argmax(klpen, GRID) < J_old) == worse


@pytest.mark.claim("prop-clip-compare", "thm-clip-avg-divergence", how="exact")
def test_average_kl_steps_on_the_trap_chain_degrade_boundedly():
    """Trap chain: every average-KL and KL-penalty maximiser stays above its floor, yet delta = 0.01 and beta <= 1 lower J.

    The floors are hundreds (delta) to tens of thousands (beta) of times below the actual loss."""
    J_old = expected_return_of_theta(CHAIN, THETA_OLD_CHAIN)
    grid = np.linspace(0.0, 1.0, 201)  # the chapter's grid
    cpi = np.array([S.cpi_objective(CHAIN, shared_logits(x), THETA_OLD_CHAIN) for x in grid])
    kl = np.array([S.mean_policy_kl(CHAIN, shared_logits(x), THETA_OLD_CHAIN) for x in grid])
    losses = {}
    for delta in (0.001, 0.01):
        theta = shared_logits(grid[int(np.argmax(np.where(kl <= delta, cpi, -np.inf)))])
        floor = S.trust_region_floor(CHAIN, theta, THETA_OLD_CHAIN, delta)
        J = expected_return_of_theta(CHAIN, theta)
        assert J >= floor
        losses[("delta", delta)] = (J - J_old, floor - J_old)
    for beta in (0.3, 1.0, 3.0, 10.0):
        klpen = [C.expected_kl_penalty_objective(CHAIN, shared_logits(x), THETA_OLD_CHAIN, beta) for x in grid]
        theta = shared_logits(grid[int(np.argmax(klpen))])
        floor = S.kl_penalty_floor(CHAIN, theta, THETA_OLD_CHAIN, beta)
        J = expected_return_of_theta(CHAIN, theta)
        assert J >= floor
        losses[("beta", beta)] = (J - J_old, floor - J_old)
    # the wrong statement "an average-divergence step improves J": false for delta = 0.01 and beta = 0.3, 1
    assert {k for k, (dJ, _) in losses.items() if dJ < 0} == {("delta", 0.01), ("beta", 0.3), ("beta", 1.0)}
    dJ, floor = losses[("delta", 0.01)]
    assert dJ == pytest.approx(-0.148, abs=5e-4) and floor == pytest.approx(-60.0, abs=0.05)  # glued in the chapter
    assert 100 < floor / dJ < 1000
    for beta in (0.3, 1.0):
        dJ, floor = losses[("beta", beta)]
        assert 1e4 < floor / dJ < 1e5


# ------------------------------------------------------------------------------------------------
# The notes' total objective and code: signs
# ------------------------------------------------------------------------------------------------


def notes_total_loss(ratios, batch_advantages, values, batch_returns, entropy, clip_epsilon=0.2):
    """The notes' code (section 阶段3: PPO更新), verbatim apart from the function wrapper."""
    surr1 = ratios * batch_advantages
    surr2 = torch.clamp(ratios, 1 - clip_epsilon, 1 + clip_epsilon) * batch_advantages
    actor_loss = -torch.min(surr1, surr2).mean()
    critic_loss = 0.5 * (values.squeeze() - batch_returns).pow(2).mean()
    entropy_bonus = -entropy.mean()
    total_loss = actor_loss + 0.5 * critic_loss + 0.01 * entropy_bonus
    return total_loss


@pytest.mark.claim("err-critic-coefficient", "eq-clip-total", how="reproduction")
def test_notes_code_is_minus_L_total_with_c1_one_quarter():
    """The notes' total_loss = -(L^CLIP - c1 L^VF + c2 S) with c1 = 0.25 (not 0.5) and c2 = 0.01."""
    g = torch.Generator().manual_seed(0)
    n = 64
    ratios = 0.5 + torch.rand(n, generator=g, dtype=torch.float64)
    adv, values, returns = (torch.randn(n, generator=g, dtype=torch.float64) for _ in range(3))
    entropy = torch.rand(n, generator=g, dtype=torch.float64)
    L_clip = C.clip_objective(ratios, adv, 0.2).mean()
    L_vf = (values - returns).pow(2).mean()
    S_mean = entropy.mean()
    got = notes_total_loss(ratios, adv, values[:, None], returns, entropy)
    assert float(got) == pytest.approx(float(-(L_clip - 0.25 * L_vf + 0.01 * S_mean)), rel=1e-14)
    assert float(got) != pytest.approx(float(-(L_clip - 0.5 * L_vf + 0.01 * S_mean)), rel=1e-3)


@pytest.mark.claim("err-entropy-minimised", "err-total-loss-sign", "eq-clip-total", how="exact")
def test_pseudo_code_sign_flip_descends_J():
    """Gradient descent on the pseudo-code's L^CLIP + c2 S lowers J and the entropy bonus; on -(L^CLIP + c2 S) it raises both."""
    mdp, theta_old = make_case(4, 3, 0.9, 4)
    J_old = expected_return_of_theta(mdp, theta_old)

    def entropy(t):  # eta_old-weighted mean entropy, the S of L^TOTAL in expectation
        eta = torch.tensor(M.discounted_visits(mdp, policies.probs(theta_old)))
        return (eta * torch.distributions.Categorical(logits=t).entropy()).sum()

    results = {}
    for name, sign in (("pseudo-code", +1.0), ("correct", -1.0)):
        t = torch.tensor(theta_old, requires_grad=True)
        loss = sign * (C.expected_clip_objective(mdp, t, theta_old, EPS) + 0.01 * entropy(t))
        loss.backward()
        theta = theta_old - 1e-3 * t.grad.numpy()  # one small gradient-descent step
        results[name] = expected_return_of_theta(mdp, theta) - J_old
    assert results["pseudo-code"] < 0 < results["correct"]
    # the entropy term alone: descent on -c2 S raises the entropy (a bonus is maximised, not minimised)
    t = torch.tensor(theta_old, requires_grad=True)
    (-0.01 * entropy(t)).backward()
    after = torch.tensor(theta_old - 1.0 * t.grad.numpy())
    assert float(entropy(after)) > float(entropy(torch.tensor(theta_old)))


# ------------------------------------------------------------------------------------------------
# Helpers and bad input
# ------------------------------------------------------------------------------------------------


def test_linear_softmax_policy():
    """Identity features give the tabular softmax; param_gradient is the chain rule (checked by autograd)."""
    mdp, theta = make_case(3, 2, 0.9, 1)
    tab = C.LinearSoftmaxPolicy(np.eye(3), 2)
    assert np.allclose(tab.probs(theta), policies.probs(theta))
    phi = np.random.default_rng(0).standard_normal((3, 2))
    pol = C.LinearSoftmaxPolicy(phi, 2)
    w = np.random.default_rng(1).standard_normal((2, 2))
    from pgbook.gradients import expected_return_torch

    wt = torch.tensor(w, requires_grad=True)
    expected_return_torch(mdp, pol.logits(wt)).backward()
    assert np.allclose(pol.param_gradient(policy_gradient(mdp, pol.logits(w))), wt.grad.numpy(), rtol=1e-9)
    assert pol.n_states == 3 and pol.n_features == 2


def test_ratio_range():
    """ratio_range reports min, max and the fraction outside [1-eps, 1+eps]."""
    rr = C.ratio_range(np.array([0.7, 1.0, 1.1, 1.3]), 0.2)
    assert (rr.min, rr.max, rr.frac_outside) == (0.7, 1.3, 0.5)
    assert C.ratio_range(torch.tensor([1.0, 1.2], dtype=torch.float64), 0.2).frac_outside == 0.0


def test_bad_input_raises():
    """Every public function of pgbook.clipping rejects bad input with a ValueError naming the argument."""
    r, a = np.ones(3), np.ones(3)
    for eps in (0.0, 1.0, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match="eps"):
            C.clip_objective(r, a, eps)
    with pytest.raises(ValueError, match="advantages must have shape"):
        C.clip_objective(r, np.ones(2), EPS)
    with pytest.raises(ValueError, match="NaN"):
        C.clip_objective(np.array([1.0, np.nan]), np.ones(2), EPS)
    with pytest.raises(ValueError, match="NaN"):
        C.clip_objective(torch.tensor([1.0, float("nan")]), torch.ones(2), EPS)
    with pytest.raises(ValueError, match="non-negative"):
        C.clip_objective(np.array([-1.0]), np.ones(1), EPS)
    with pytest.raises(ValueError, match="floating"):
        C.clip_objective(torch.ones(2, dtype=torch.int64), torch.ones(2), EPS)
    with pytest.raises(ValueError, match="shape"):
        C.clip_objective(torch.ones(2), torch.ones(3), EPS)
    with pytest.raises(ValueError, match="eps"):
        C.clip_objective_ratio_grad(r, a, 2.0)
    with pytest.raises(ValueError, match="beta"):
        C.kl_penalty_objective(r, a, np.zeros(3), -1.0)
    with pytest.raises(ValueError, match="kl must be non-negative"):
        C.kl_penalty_objective(r, a, -np.ones(3), 1.0)
    with pytest.raises(ValueError, match="kl must have shape"):
        C.kl_penalty_objective(r, a, np.zeros(2), 1.0)
    with pytest.raises(ValueError, match="kl_target"):
        C.adapt_kl_coefficient(1.0, 0.1, 0.0)
    with pytest.raises(ValueError, match="beta"):
        C.adapt_kl_coefficient(float("nan"), 0.1, 0.01)
    with pytest.raises(ValueError, match="empty"):
        C.ratio_range(np.array([]), EPS)
    with pytest.raises(ValueError, match="features"):
        C.LinearSoftmaxPolicy(np.ones(3), 2)
    with pytest.raises(ValueError, match="n_actions"):
        C.LinearSoftmaxPolicy(np.ones((3, 1)), 0)
    pol = C.LinearSoftmaxPolicy(np.ones((3, 1)), 2)
    with pytest.raises(ValueError, match="w must have shape"):
        pol.logits(np.ones((2, 2)))
    with pytest.raises(ValueError, match="w must have shape"):
        pol.logits(torch.ones(2, 2))
    with pytest.raises(ValueError, match="grad_theta"):
        pol.param_gradient(np.ones((2, 2)))
    mdp, theta = make_case(3, 2, 0.9, 0)
    with pytest.raises(ValueError, match="theta_old"):
        C.state_clip_maxima(mdp, np.ones((2, 2)), EPS)
    with pytest.raises(ValueError, match="mdp"):
        C.state_clip_maxima(None, theta, EPS)
    with pytest.raises(ValueError, match="eps"):
        C.state_clip_maxima(mdp, theta, 0)
    for fn in (C.expected_clip_objective, C.state_clip_objectives):
        with pytest.raises(ValueError, match="theta"):
            fn(mdp, np.ones((2, 2)), theta, EPS)
        with pytest.raises(ValueError, match="theta_old"):
            fn(mdp, theta, np.ones((2, 2)), EPS)
        with pytest.raises(ValueError, match="mdp"):
            fn(None, theta, theta, EPS)
        with pytest.raises(ValueError, match="eps"):
            fn(mdp, theta, theta, 1.5)
    with pytest.raises(ValueError, match="theta"):
        C.expected_clip_objective(mdp, torch.ones(2, 2), theta, EPS)
    with pytest.raises(ValueError, match="beta"):
        C.expected_kl_penalty_objective(mdp, theta, theta, -2.0)
    with pytest.raises(ValueError, match="advantages"):
        C.make_batch(mdp, theta, 2, 3, 0, advantages=np.ones((2, 2)))
    with pytest.raises(ValueError, match="n_episodes"):
        C.make_batch(mdp, theta, 0, 3, 0)
    with pytest.raises(ValueError, match="states"):
        C.ClipBatch(torch.ones(3), torch.ones(3, dtype=torch.int64), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="advantages"):
        C.ClipBatch(torch.ones(3, dtype=torch.int64), torch.ones(3, dtype=torch.int64), torch.ones(2), torch.ones(3))
    batch = C.make_batch(mdp, theta, 2, 3, 0)
    for kwargs, word in (
        (dict(epochs=0), "epochs"),
        (dict(minibatch_size=0), "minibatch_size"),
        (dict(lr=-1.0), "lr"),
        (dict(objective="ppo"), "objective"),
        (dict(beta=-1.0), "beta"),
        (dict(eps=0.0), "eps"),
    ):
        args = dict(eps=EPS, epochs=1, minibatch_size=2, lr=0.01, seed=0) | kwargs
        with pytest.raises(ValueError, match=word):
            C.run_clip_epochs(lambda p: p, theta, batch, **args)
    with pytest.raises(ValueError, match="batch"):
        C.run_clip_epochs(lambda p: p, theta, "batch", EPS, 1, 2, 0.01, 0)


def test_clip_supremum_bad_input_raises():
    """clip_supremum and clip_sup_policy reject bad tables with a ValueError naming the argument."""
    p, A = np.array([[0.5, 0.5]]), np.array([[1.0, -1.0]])
    for fn in (C.clip_supremum, C.clip_sup_policy):
        with pytest.raises(ValueError, match="eps"):
            fn(p, A, 0.0)
        with pytest.raises(ValueError, match="pi_old"):
            fn(np.array([0.5, 0.5]), A, EPS)
        with pytest.raises(ValueError, match="pi_old"):
            fn(np.array([[0.7, 0.7]]), A, EPS)
        with pytest.raises(ValueError, match="pi_old must be positive"):
            fn(np.array([[1.0, 0.0]]), A, EPS)
        with pytest.raises(ValueError, match="advantages must have shape"):
            fn(p, np.array([[1.0, -1.0, 0.0]]), EPS)
        with pytest.raises(ValueError, match="advantages must have mean zero"):
            fn(p, np.array([[1.0, 0.0]]), EPS)
        with pytest.raises(ValueError, match="advantages"):
            fn(p, np.array([[np.nan, 0.0]]), EPS)
    assert np.array_equal(C.clip_sup_policy(p, np.zeros((1, 2)), EPS), p)  # no positive advantage: pi_old
    assert C.clip_supremum(p, np.zeros((1, 2)), EPS)[0] == 0.0
