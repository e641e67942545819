"""The scalable exact engine (issue 16): the block-structured policy gradient and sparse transitions.

``policy_gradient`` contracts the softmax score by its block structure and takes ``eta`` and ``Q``
from one factorisation; it is checked against the literal ``(S, A, S, A)`` contraction
(``policy_gradient_dense``), torch autograd and central differences. A sparse ``P`` must give the
same ``V``, ``Q``, ``eta``, ``d``, ``J`` and gradient as the dense array, and both must equal
computations that share no code with the engine (an explicit ``np.linalg.solve`` of a matrix built
entry by entry, the forward series of ``eta``). Timings are in ``benchmarks/exact_scaling.py``,
not here.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from helpers import GRADIENT_CASES, case, random_theta, relative_error
from pgbook import episodic as E
from pgbook import gradients as G
from pgbook import mdp as M
from pgbook import policies


def sparse_random_mdp(S: int, A: int, gamma: float, seed: int, successors: int = 3) -> M.MDP:
    """A random MDP with ``successors`` next states per (s, a): a genuinely sparse ``P`` (dense array)."""
    rng = np.random.default_rng(seed)
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            nxt = rng.choice(S, size=min(successors, S), replace=False)
            P[s, a, nxt] = rng.dirichlet(np.ones(nxt.size))
    return M.MDP(P, rng.standard_normal((S, A)), rng.dirichlet(np.ones(S)), gamma)


def reference_quantities(mdp: M.MDP, pi: np.ndarray):
    """``V, Q, eta`` by an explicit dense solve, the matrix built entry by entry (no engine code)."""
    P = mdp.P.toarray().reshape(mdp.n_states, mdp.n_actions, mdp.n_states) if scipy.sparse.issparse(mdp.P) else mdp.P
    S, A = pi.shape
    P_pi = np.zeros((S, S))
    for s in range(S):
        for a in range(A):
            P_pi[s] += pi[s, a] * P[s, a]
    matrix = np.eye(S) - mdp.gamma * P_pi
    V = np.linalg.solve(matrix, (pi * mdp.R).sum(axis=1))
    Q = mdp.R + mdp.gamma * np.tensordot(P, V, axes=(2, 0))
    eta = np.linalg.solve(matrix.T, mdp.p0)
    return V, Q, eta


# ---------------------------------------------------------------------------------------------
# The block-structured contraction is the theorem's sum
# ---------------------------------------------------------------------------------------------


@pytest.mark.claim("eq-pg-visitation", "eq-softmax-score", how="exact")
@pytest.mark.parametrize("S, A, gamma, seed", GRADIENT_CASES[::2])
def test_block_contraction_equals_the_dense_score_contraction(S, A, gamma, seed):
    """policy_gradient (block-structured) equals the literal (S, A, S, A) einsum to 1e-12 relative."""
    mdp, theta = case(S, A, gamma, seed)
    assert relative_error(G.policy_gradient(mdp, theta), G.policy_gradient_dense(mdp, theta)) <= 1e-12


@pytest.mark.claim("eq-softmax-score", how="exact")
@pytest.mark.parametrize("seed", range(4))
def test_score_contraction_for_any_weights_and_values(seed):
    """score_contraction(pi, w, f) = einsum(w, pi, score, f) for arbitrary w and f (not only eta and Q)."""
    rng = np.random.default_rng(seed)
    S, A = 5, 4
    theta = rng.standard_normal((S, A))
    w, f = rng.standard_normal(S), rng.standard_normal((S, A))
    pi = policies.probs(theta)
    dense = np.einsum("s,sa,saxy,sa->xy", w, pi, policies.score(theta), f)
    assert relative_error(G.score_contraction(pi, w, f), dense) <= 1e-13


@pytest.mark.claim("eq-pg-visitation", "thm-policy-gradient", how="autograd")
@pytest.mark.parametrize("S, A, seed", [(40, 3, 0), (150, 6, 1)])
def test_policy_gradient_equals_autograd_beyond_toy_sizes(S, A, seed):
    """At S = 40 and 150, gamma = 0.99, the exact gradient equals torch autograd to 1e-10 relative."""
    mdp, theta = M.random_mdp(S, A, 0.99, seed), random_theta(S, A, seed, scale=2.0)
    assert relative_error(G.policy_gradient(mdp, theta), G.autograd_policy_gradient(mdp, theta)) <= 1e-10


@pytest.mark.claim("eq-pg-visitation", "thm-policy-gradient", how="finite difference")
@pytest.mark.parametrize("gamma", [0.5, 0.95])
def test_sparse_policy_gradient_equals_finite_differences(gamma):
    """The gradient of a sparse MDP equals central differences of its exact J (sparse solves) to 1e-7."""
    mdp = sparse_random_mdp(7, 3, gamma, 5).as_sparse()
    theta = random_theta(7, 3, 5)
    fd = G.finite_difference_gradient(lambda th: G.expected_return_of_theta(mdp, th), theta)
    assert relative_error(G.policy_gradient(mdp, theta), fd) <= 1e-7


def test_wrong_contractions_fail_the_checks():
    """Power: without the eta weight, or with pi Q in place of pi (Q - V), the autograd check fails."""
    mdp, theta = case(5, 4, 0.9, 4)
    pi = policies.probs(theta)
    V, Q, eta = M.values_and_visits(mdp, pi)
    truth = G.autograd_policy_gradient(mdp, theta)
    assert relative_error(G.score_contraction(pi, eta, Q), truth) <= 1e-10
    assert relative_error(G.score_contraction(pi, np.ones(5), Q), truth) > 0.5  # eta weight missing
    assert relative_error(eta[:, None] * pi * Q, truth) > 0.5  # the "- V" of the score dropped


# ---------------------------------------------------------------------------------------------
# One factorisation, dense or sparse, and independent references
# ---------------------------------------------------------------------------------------------

SPARSE_CASES = [(6, 2, 0.5, 0), (9, 3, 0.9, 1), (12, 4, 0.99, 2)]


@pytest.mark.claim("eq-bellman-v", "eq-q-from-v", "eq-visitation", how="exact")
@pytest.mark.parametrize("S, A, gamma, seed", SPARSE_CASES)
def test_sparse_and_dense_quantities_equal_an_independent_solve(S, A, gamma, seed):
    """V, Q, A, eta, d, J of the dense and the sparse representation equal an explicit solve to 1e-12."""
    dense = sparse_random_mdp(S, A, gamma, seed)
    sparse = dense.as_sparse()
    assert sparse.is_sparse and not dense.is_sparse and sparse.P.shape == (S * A, S)
    pi = policies.probs(random_theta(S, A, seed))
    V, Q, eta = reference_quantities(dense, pi)
    for mdp in (dense, sparse):
        np.testing.assert_allclose(M.state_values(mdp, pi), V, rtol=0, atol=1e-12 * np.abs(V).max())
        np.testing.assert_allclose(M.action_values(mdp, pi), Q, rtol=0, atol=1e-12 * np.abs(Q).max())
        np.testing.assert_allclose(M.advantage_values(mdp, pi), Q - V[:, None], rtol=0, atol=1e-12 * np.abs(Q).max())
        np.testing.assert_allclose(M.discounted_visits(mdp, pi), eta, rtol=0, atol=1e-12 * eta.max())
        np.testing.assert_allclose(M.discounted_state_distribution(mdp, pi), (1 - gamma) * eta, rtol=0, atol=1e-12)
        assert abs(M.expected_return(mdp, pi) - dense.p0 @ V) <= 1e-12 * np.abs(V).max()
        for got, want in zip(M.values_and_visits(mdp, pi), (V, Q, eta)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * np.abs(want).max())
    np.testing.assert_allclose(
        M.policy_transition_matrix(sparse, pi).toarray(), M.policy_transition_matrix(dense, pi), rtol=0, atol=1e-15
    )
    theta = random_theta(S, A, seed)
    assert relative_error(G.policy_gradient(sparse, theta), G.policy_gradient(dense, theta)) <= 1e-12


@pytest.mark.claim("eq-visitation", how="exact")
def test_sparse_visitation_equals_its_series():
    """eta = sum_t gamma^t p0 P_pi^t (forward series, 2000 terms at gamma = 0.9) for a sparse P."""
    mdp = sparse_random_mdp(10, 3, 0.9, 7).as_sparse()
    pi = policies.probs(random_theta(10, 3, 7))
    P_pi = M.policy_transition_matrix(mdp, pi)
    series, p = np.zeros(10), mdp.p0.copy()
    for t in range(2000):
        series += 0.9**t * p
        p = P_pi.T @ p
    np.testing.assert_allclose(M.discounted_visits(mdp, pi), series, rtol=0, atol=1e-12)
    # power: the untransposed solve (I - gamma P_pi) x = p0 is not the visitation
    wrong = np.linalg.solve(np.eye(10) - 0.9 * P_pi.toarray(), mdp.p0)
    assert np.abs(wrong - series).max() > 1e-2


@pytest.mark.claim("eq-episodic-pg", how="autograd")
def test_sparse_episodic_gradient_at_gamma_one():
    """Episodic MDP, gamma = 1, sparse P: V, eta and grad J_1 equal the dense ones and autograd (1e-10)."""
    dense = E.random_episodic_mdp(6, 3, seed=3)
    sparse = dense.as_sparse()
    theta = random_theta(7, 3, 3)
    pi = policies.probs(theta)
    for f in (M.state_values, M.discounted_visits, M.action_values):
        np.testing.assert_allclose(f(sparse, pi), f(dense, pi), rtol=0, atol=1e-12 * np.abs(f(dense, pi)).max())
    truth = E.autograd_gradient(dense, theta)
    assert relative_error(G.policy_gradient(sparse, theta), truth) <= 1e-10
    assert relative_error(E.autograd_gradient(sparse, theta), truth) <= 1e-12  # torch densifies a sparse P


def test_improper_policy_is_rejected_for_a_sparse_mdp():
    """gamma = 1: a policy that never reaches the terminal set raises, with the states named."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[1, :, 0] = 1.0  # action 0 in state 0 and both actions in 1: the cycle 0 <-> 1
    P[0, 1, 2] = P[2, :, 2] = 1.0  # action 1 in state 0 ends the episode
    mdp = M.MDP(P, np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]), np.array([1.0, 0, 0]), 1.0, np.array([False, False, True]))
    improper = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    for m in (mdp, mdp.as_sparse()):
        with pytest.raises(ValueError, match=r"pi is improper: from states \[0, 1\]"):
            M.state_values(m, improper)
        np.testing.assert_allclose(M.state_values(m, np.full((3, 2), 0.5)), [2.0, 3.0, 0.0], rtol=0, atol=1e-12)


@pytest.mark.claim("lem-pg-finite-horizon", how="autograd")
def test_finite_horizon_gradient_sparse_and_block_structured():
    """grad J_H (block-structured, sparse P) equals torch autograd of the exact J_H to 1e-12."""
    mdp = sparse_random_mdp(6, 3, 0.9, 11).as_sparse()
    theta = random_theta(6, 3, 11)
    for H in (1, 4):
        assert relative_error(G.finite_horizon_policy_gradient(mdp, theta, H), G.autograd_finite_horizon_gradient(mdp, theta, H)) <= 1e-12
    assert abs(M.finite_horizon_return(mdp, policies.probs(theta), 4) - M.finite_horizon_return(mdp.as_dense(), policies.probs(theta), 4)) <= 1e-13


def test_score_norm_max_equals_the_dense_score():
    """score_norm_max, from the closed form 1 - 2 pi(a|s) + |pi(.|s)|^2, equals the norm of the (S, A, S, A) score."""
    theta = random_theta(5, 4, 1, scale=3.0)
    dense = np.sqrt((policies.score(theta) ** 2).sum(axis=(2, 3)).max())
    assert abs(G.score_norm_max(theta) - dense) <= 1e-14


def test_sampling_is_identical_for_dense_and_sparse():
    """The same seed draws the same trajectories and episodes from the dense and the sparse P."""
    dense = sparse_random_mdp(8, 3, 0.9, 2)
    pi = policies.probs(random_theta(8, 3, 2))
    for got, want in zip(M.sample_trajectories(dense.as_sparse(), pi, 200, 15, seed=4), M.sample_trajectories(dense, pi, 200, 15, seed=4)):
        np.testing.assert_array_equal(got, want)
    episodic = E.random_episodic_mdp(5, 2, seed=1)
    pi = policies.probs(random_theta(6, 2, 1))
    a, b = E.sample_episodes(episodic.as_sparse(), pi, 100, seed=3), E.sample_episodes(episodic, pi, 100, seed=3)
    np.testing.assert_array_equal(a.states, b.states)
    np.testing.assert_array_equal(a.lengths, b.lengths)


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------


def test_sparse_transitions_are_validated_naming_the_argument():
    mdp = sparse_random_mdp(4, 2, 0.9, 0)
    P = scipy.sparse.csr_array(mdp.P.reshape(8, 4))
    with pytest.raises(ValueError, match=r"P \(sparse\) must have shape \(S\*A, S\)"):
        M.MDP(scipy.sparse.csr_array(np.ones((7, 4)) / 4), mdp.R, mdp.p0, 0.9)
    with pytest.raises(ValueError, match="R must have shape"):
        M.MDP(P, np.zeros((4, 3)), mdp.p0, 0.9)
    bad = P.copy()
    bad.data[0] = -bad.data[0]
    with pytest.raises(ValueError, match="P has negative probabilities"):
        M.MDP(bad, mdp.R, mdp.p0, 0.9)
    with pytest.raises(ValueError, match="P must sum to 1 along each row"):
        M.MDP(P * 0.5, mdp.R, mdp.p0, 0.9)
    bad = P.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="P contains NaN"):
        M.MDP(bad, mdp.R, mdp.p0, 0.9)
    with pytest.raises(ValueError, match="P must be an array of real numbers"):
        M.MDP(scipy.sparse.csr_array(P.toarray() > 0), mdp.R, mdp.p0, 0.9)
    stored = M.MDP(P, mdp.R, mdp.p0, 0.9)
    assert not stored.P.data.flags.writeable and P.data.flags.writeable  # a read-only copy
    episodic = E.random_episodic_mdp(3, 2, seed=0)
    bad = episodic.terminal.copy()
    bad[1] = True
    with pytest.raises(ValueError, match="terminal state 1 must be absorbing"):
        M.MDP(episodic.as_sparse().P, episodic.R, episodic.p0, 1.0, bad)


def test_helpers_validate_their_arguments():
    mdp = sparse_random_mdp(4, 2, 0.9, 0).as_sparse()
    with pytest.raises(ValueError, match="f must have shape"):
        M.next_state_expectation(mdp, np.ones(3))
    np.testing.assert_allclose(M.next_state_expectation(mdp, np.arange(4.0)), mdp.as_dense().P @ np.arange(4.0), atol=1e-15)
    with pytest.raises(ValueError, match="max_entries"):
        M.transition_array(mdp, max_entries=10)
    with pytest.raises(ValueError, match="mdp must be a pgbook.mdp.MDP"):
        M.transition_array("mdp")
    pi = np.full((4, 2), 0.5)
    with pytest.raises(ValueError, match="state_weights must have shape"):
        G.score_contraction(pi, np.ones(3), np.ones((4, 2)))
    with pytest.raises(ValueError, match="values must have shape"):
        G.score_contraction(pi, np.ones(4), np.ones((4, 3)))
    with pytest.raises(ValueError, match="theta must have shape"):
        G.policy_gradient(mdp, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="mdp must be a pgbook.mdp.MDP"):
        G.policy_gradient((mdp.P, mdp.R), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="mdp must be a pgbook.mdp.MDP"):
        M.state_values(None, pi)
