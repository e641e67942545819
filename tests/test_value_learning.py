"""The critic's loss of the notes, descended two ways (errata entry err-a2c-value-target, eq-a2c-value-loss).

Independent check of :mod:`pgbook.value_learning`: the notes' loss
``E_d[(sum_{k<n} gamma^k r_{t+k} + gamma^n V(s_{t+n}) - V(s_t))^2]`` is computed *exactly* here by
enumerating every path ``(s_t, a_t, ..., s_{t+n})`` with its probability (no matrix algebra of the
package), and plain gradient descent with torch autograd is run on it until the gradient vanishes:
once with the target detached (the semi-gradient A2C uses) and once through the target (the
residual gradient, the loss as written). Each descent must land on the package's linear-solve
point to 1e-8.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pgbook import value_learning as vl
from pgbook.mdp import MDP, discounted_state_distribution, random_mdp, state_values

ERRATA = Path(__file__).resolve().parents[1] / "book" / "errata.md"


def reflecting_walk(n_states: int = 3, gamma: float = 0.9):
    """The errata's chain: states 0..S-1 in a row, actions left/right (staying put at a wall),
    reward 1 for each step taken from the right-most state; the policy flips a fair coin."""
    S = n_states
    P = np.zeros((S, 2, S))
    for s in range(S):
        P[s, 0, max(s - 1, 0)] = 1.0
        P[s, 1, min(s + 1, S - 1)] = 1.0
    R = np.zeros((S, 2))
    R[S - 1] = 1.0
    return MDP(P, R, np.full(S, 1.0 / S), gamma), np.full((S, 2), 0.5)


def _paths(mdp: MDP, pi: np.ndarray, n: int, d: np.ndarray):
    """Every path (s_t, a_t, ..., a_{t+n-1}, s_{t+n}) with s_t ~ d: probability, g = sum gamma^k r, s_t, s_{t+n}."""
    S, A = mdp.n_states, mdp.n_actions
    prob, g, first, last = [], [], [], []
    for s0 in range(S):
        for steps in itertools.product(range(A), range(S), repeat=n):
            p, ret, s = d[s0], 0.0, s0
            for k in range(n):
                a, s_next = steps[2 * k], steps[2 * k + 1]
                p *= pi[s, a] * mdp.P[s, a, s_next]
                ret += mdp.gamma**k * mdp.R[s, a]
                s = s_next
            if p > 0:
                prob.append(p)
                g.append(ret)
                first.append(s0)
                last.append(s)
    as_float = torch.tensor(prob, dtype=torch.float64), torch.tensor(g, dtype=torch.float64)
    return *as_float, torch.tensor(first), torch.tensor(last)


def notes_loss(paths, gamma_n: float, V: torch.Tensor, detach_target: bool) -> torch.Tensor:
    """The notes' loss, exactly: sum over paths of prob * (g + gamma^n V(s_{t+n}) - V(s_t))^2."""
    prob, g, first, last = paths
    target = g + gamma_n * (V.detach() if detach_target else V)[last]
    return (prob * (target - V[first]) ** 2).sum()


def msbe_loss(paths, gamma_n: float, V: torch.Tensor, n_states: int) -> torch.Tensor:
    """The mean-squared Bellman error: the target's conditional mean given s_t (by enumeration), then squared."""
    prob, g, first, last = paths
    weight = torch.zeros(n_states, dtype=torch.float64).index_add(0, first, prob)  # d(s_t)
    mean_target = torch.zeros(n_states, dtype=torch.float64).index_add(0, first, prob * (g + gamma_n * V[last])) / weight
    return (weight * (mean_target - V) ** 2).sum()


def descend(loss_of_V, Phi: np.ndarray, max_iter: int = 200_000, tol: float = 1e-13) -> np.ndarray:
    """Plain gradient descent on theta (V = Phi theta) with autograd gradients, step 1/||Jacobian of the gradient||."""
    Phi_t = torch.tensor(Phi, dtype=torch.float64)
    grad_of = lambda th: torch.autograd.grad(loss_of_V(Phi_t @ th), th, create_graph=True)[0]  # noqa: E731
    theta0 = torch.zeros(Phi.shape[1], dtype=torch.float64, requires_grad=True)
    J = torch.autograd.functional.jacobian(lambda th: grad_of(th), theta0)
    step = 1.0 / torch.linalg.matrix_norm(J, ord=2).item()
    theta = theta0.detach().clone().requires_grad_(True)
    for _ in range(max_iter):
        (grad,) = torch.autograd.grad(loss_of_V(Phi_t @ theta), theta)
        with torch.no_grad():
            theta -= step * grad
        if grad.abs().max().item() < tol:
            return (Phi_t @ theta).detach().numpy()
    raise AssertionError(f"gradient descent did not converge in {max_iter} steps (|grad| = {grad.abs().max().item():.2e})")


CASES = [  # (S, A, gamma, n, seed): random MDPs, random stochastic policies
    (3, 2, 0.9, 1, 0),
    (4, 2, 0.8, 2, 1),
    (3, 3, 0.7, 3, 2),
]


def _case(S, A, gamma, n, seed):
    mdp = random_mdp(S, A, gamma, seed)
    pi = np.random.default_rng(100 + seed).dirichlet(np.ones(A), size=S)
    return mdp, pi


def _on_policy_d(mdp, pi):
    """The stationary distribution, independently: the limit of p P_pi^k by repeated multiplication."""
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    p = np.full(mdp.n_states, 1.0 / mdp.n_states)
    for _ in range(5000):
        p = p @ P_pi
    return p


@pytest.mark.claim("err-a2c-value-target", "eq-a2c-value-loss", how="autograd")
@pytest.mark.parametrize("S,A,gamma,n,seed", CASES)
def test_semi_gradient_descent_converges_to_v_pi(S, A, gamma, n, seed):
    """Descending the notes' loss with the target detached (A2C's semi-gradient) converges to V^pi (tabular)."""
    mdp, pi = _case(S, A, gamma, n, seed)
    d = _on_policy_d(mdp, pi)
    paths = _paths(mdp, pi, n, d)
    V_gd = descend(lambda V: notes_loss(paths, gamma**n, V, detach_target=True), np.eye(S))
    V_solve = vl.semi_gradient_fixed_point(mdp, pi, n)
    np.testing.assert_allclose(V_gd, V_solve, rtol=0, atol=1e-8)
    np.testing.assert_allclose(V_solve, state_values(mdp, pi), rtol=0, atol=1e-10)


@pytest.mark.claim("err-a2c-value-target", how="autograd")
@pytest.mark.parametrize("S,A,gamma,n,seed", CASES)
def test_residual_gradient_descent_converges_to_a_biased_point(S, A, gamma, n, seed):
    """Descending the notes' loss as written (gradient through the target too) converges to the residual point, not V^pi."""
    mdp, pi = _case(S, A, gamma, n, seed)
    d = _on_policy_d(mdp, pi)
    paths = _paths(mdp, pi, n, d)
    V_gd = descend(lambda V: notes_loss(paths, gamma**n, V, detach_target=False), np.eye(S))
    V_solve = vl.residual_gradient_fixed_point(mdp, pi, n)
    np.testing.assert_allclose(V_gd, V_solve, rtol=0, atol=1e-8)
    gap = np.abs(V_solve - state_values(mdp, pi)).max()
    assert gap > 1e-3 * np.abs(state_values(mdp, pi)).max()
    # the notes' loss is lower at its minimiser than at V^pi: V^pi does not minimise it
    at = lambda V: notes_loss(paths, gamma**n, torch.as_tensor(V), detach_target=False).item()  # noqa: E731
    assert at(V_solve) < at(state_values(mdp, pi))


@pytest.mark.claim("err-a2c-value-target", how="autograd")
@pytest.mark.parametrize("S,A,gamma,n,seed", CASES)
def test_three_points_with_linear_features(S, A, gamma, n, seed):
    """With V = Phi theta (2 features) semi-gradient, residual gradient and the MSBE minimiser are three different points."""
    mdp, pi = _case(S, A, gamma, n, seed)
    d = _on_policy_d(mdp, pi)
    paths = _paths(mdp, pi, n, d)
    Phi = np.random.default_rng(200 + seed).standard_normal((S, 2))
    semi = descend(lambda V: notes_loss(paths, gamma**n, V, detach_target=True), Phi)
    resid = descend(lambda V: notes_loss(paths, gamma**n, V, detach_target=False), Phi)
    msbe = descend(lambda V: msbe_loss(paths, gamma**n, V, S), Phi)
    np.testing.assert_allclose(semi, vl.semi_gradient_fixed_point(mdp, pi, n, features=Phi), rtol=0, atol=1e-8)
    np.testing.assert_allclose(resid, vl.residual_gradient_fixed_point(mdp, pi, n, features=Phi), rtol=0, atol=1e-8)
    np.testing.assert_allclose(msbe, vl.msbe_minimiser(mdp, pi, n, features=Phi), rtol=0, atol=1e-8)
    scale = np.abs(state_values(mdp, pi)).max()
    for a, b in ((semi, resid), (semi, msbe), (resid, msbe)):
        assert np.abs(a - b).max() > 1e-3 * scale


@pytest.mark.claim("err-a2c-value-target", how="autograd")
@pytest.mark.parametrize("S,A,gamma,n,seed", CASES)
def test_msbe_minimiser_tabular_is_v_pi(S, A, gamma, n, seed):
    """With the expected target (the mean-squared Bellman error) the tabular minimiser is V^pi again."""
    mdp, pi = _case(S, A, gamma, n, seed)
    paths = _paths(mdp, pi, n, _on_policy_d(mdp, pi))
    V_gd = descend(lambda V: msbe_loss(paths, gamma**n, V, S), np.eye(S))
    np.testing.assert_allclose(V_gd, vl.msbe_minimiser(mdp, pi, n), rtol=0, atol=1e-8)
    np.testing.assert_allclose(V_gd, state_values(mdp, pi), rtol=0, atol=1e-8)


@pytest.mark.claim("err-a2c-value-target", how="exact")
@pytest.mark.parametrize("n", [1, 2])
def test_deterministic_chain_has_no_bias(n):
    """With a deterministic policy on deterministic dynamics the target has no variance: the residual point is V^pi."""
    mdp, _ = reflecting_walk(4, 0.9)
    pi = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # 0 -> 1 -> 0, 2 -> 3 -> 2
    V_pi = state_values(mdp, pi)
    for d in (np.full(4, 0.25), np.array([0.1, 0.2, 0.3, 0.4])):
        np.testing.assert_allclose(vl.residual_gradient_fixed_point(mdp, pi, n, weights=d), V_pi, rtol=0, atol=1e-10)


@pytest.mark.claim("err-a2c-value-target", how="autograd")
def test_weighting_moves_only_the_residual_point():
    """Tabular: the semi-gradient point is V^pi for any full-support weighting; the residual point depends on it."""
    mdp, pi = _case(4, 2, 0.8, 2, 1)
    d = discounted_state_distribution(mdp, pi)
    paths = _paths(mdp, pi, 2, d)
    V_gd = descend(lambda V: notes_loss(paths, 0.8**2, V, detach_target=False), np.eye(4))
    np.testing.assert_allclose(V_gd, vl.residual_gradient_fixed_point(mdp, pi, 2, weights=d), rtol=0, atol=1e-8)
    np.testing.assert_allclose(vl.semi_gradient_fixed_point(mdp, pi, 2, weights=d), state_values(mdp, pi), atol=1e-10)
    assert np.abs(V_gd - vl.residual_gradient_fixed_point(mdp, pi, 2)).max() > 1e-3


@pytest.mark.claim("err-a2c-value-target", how="exact")
@pytest.mark.parametrize("S,A,gamma,n,seed", CASES)
def test_nstep_bellman_is_the_mean_target(S, A, gamma, n, seed):
    """T^n V = E[G^(n)(V) | s_t] by enumeration and = sum_a pi(a|s) a2c.nstep_target_mean; T^n V^pi = V^pi."""
    from pgbook.a2c import nstep_target_mean

    mdp, pi = _case(S, A, gamma, n, seed)
    V = np.random.default_rng(300 + seed).standard_normal(S)
    prob, g, first, last = _paths(mdp, pi, n, np.full(S, 1.0 / S))
    by_enumeration = np.bincount(first.numpy(), weights=(prob * (g + gamma**n * torch.tensor(V)[last])).numpy(), minlength=S) * S
    np.testing.assert_allclose(vl.nstep_bellman(mdp, pi, V, n), by_enumeration, rtol=0, atol=1e-12)
    np.testing.assert_allclose(vl.nstep_bellman(mdp, pi, V, n), (pi * nstep_target_mean(mdp, pi, V, n)).sum(1), atol=1e-12)
    V_pi = state_values(mdp, pi)
    np.testing.assert_allclose(vl.nstep_bellman(mdp, pi, V_pi, n), V_pi, rtol=0, atol=1e-12)


@pytest.mark.claim("err-a2c-value-target", how="exact")
def test_on_policy_distribution_is_stationary():
    """d^T P_pi = d^T, sum d = 1, against repeated multiplication."""
    for case in CASES:
        mdp, pi = _case(*case)
        np.testing.assert_allclose(vl.on_policy_distribution(mdp, pi), _on_policy_d(mdp, pi), rtol=0, atol=1e-12)


# ---- the numbers printed in the errata entry -----------------------------------------------------------


def _errata_table():
    """The rows of the table in the err-a2c-value-target entry of book/errata.md: {label: [numbers as printed]}."""
    text = ERRATA.read_text(encoding="utf-8")
    start = text.index(":label: err-a2c-value-target")
    entry = text[start : text.index("\n:::", start)]
    rows = {}
    for line in entry.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) >= 2 and re.fullmatch(r"[-−+]?\d+\.\d+", cells[1].replace("$", "")):
            rows[cells[0]] = [c.replace("$", "").replace("−", "-") for c in cells[1:]]
    return entry, rows


def _fmt(x: float, signed: bool = False) -> str:
    return f"{x:+.3f}" if signed else f"{x:.3f}"


@pytest.mark.claim("err-a2c-value-target", how="exact")
def test_errata_table_numbers():
    """Every number of the errata's table is the exact value for the 3-state reflecting walk, gamma = 0.9, n = 1 and 2."""
    entry, rows = _errata_table()
    assert "$\\gamma=0.9$" in entry and "Three states in a row" in entry  # the chain the prose describes is this one
    mdp, pi = reflecting_walk(3, 0.9)
    V_pi = state_values(mdp, pi)
    residual = {n: vl.residual_gradient_fixed_point(mdp, pi, n) for n in (1, 2)}
    expected = {
        "$V^\\pi$ (= semi-gradient fixed point, $n=1,2$)": V_pi,
        "minimiser of the notes' loss, $n=1$": residual[1],
        "its gap to $V^\\pi$, $n=1$": residual[1] - V_pi,
        "minimiser of the notes' loss, $n=2$": residual[2],
        "its gap to $V^\\pi$, $n=2$": residual[2] - V_pi,
    }
    assert set(rows) == set(expected), sorted(rows)
    for label, values in expected.items():
        for printed, value in zip(rows[label], values, strict=True):
            # far from a rounding boundary, so the printed digits are the same on every CPU
            assert abs(value * 1000 - np.floor(value * 1000) - 0.5) > 1e-6
            assert printed == _fmt(value, signed="gap" in label), (label, printed, value)
    for n in (1, 2):
        np.testing.assert_allclose(vl.semi_gradient_fixed_point(mdp, pi, n), V_pi, rtol=0, atol=1e-12)
    np.testing.assert_allclose(vl.on_policy_distribution(mdp, pi), np.full(3, 1 / 3), atol=1e-12)


# ---- input validation ---------------------------------------------------------------------------------


def test_validation():
    mdp, pi = reflecting_walk()
    with pytest.raises(ValueError, match="n must be"):
        vl.semi_gradient_fixed_point(mdp, pi, 0)
    with pytest.raises(ValueError, match="features"):
        vl.residual_gradient_fixed_point(mdp, pi, 1, features=np.ones((2, 1)))
    with pytest.raises(ValueError, match="features"):
        vl.residual_gradient_fixed_point(mdp, pi, 1, features=np.ones((3, 2)))
    with pytest.raises(ValueError, match="weights"):
        vl.msbe_minimiser(mdp, pi, 1, weights=np.array([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="weights"):
        vl.semi_gradient_fixed_point(mdp, pi, 1, weights=np.array([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="mdp"):
        vl.nstep_reward("chain", pi, 1)
    with pytest.raises(ValueError, match="pi"):
        vl.nstep_bellman(mdp, np.ones((3, 2)), np.zeros(3), 1)
    two_classes = MDP(np.stack([np.eye(3), np.eye(3)], axis=1), np.zeros((3, 2)), np.full(3, 1 / 3), 0.9)
    with pytest.raises(ValueError, match="stationary"):
        vl.on_policy_distribution(two_classes, pi)
    episodic = MDP(mdp.P * 0 + np.eye(3)[:, None, :], np.zeros((3, 2)), np.full(3, 1 / 3), 1.0,
                   terminal=np.array([False, False, True]))
    with pytest.raises(ValueError, match="continuing"):
        vl.semi_gradient_fixed_point(episodic, pi)
