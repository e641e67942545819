"""Finite Markov decision processes and their exact quantities.

Chapters 0–2 (:doc:`/book/ch00_introduction`, :doc:`/book/ch01_trajectories`,
:doc:`/book/ch02_policy_gradient_theorem`); every later chapter uses these functions as its
ground truth.

An MDP is ``P[s, a, s']`` (transition probabilities), ``R[s, a]`` (expected reward for
taking ``a`` in ``s``), ``p0[s]`` (initial distribution) and ``gamma``. A tabular policy is a
table ``pi[s, a]`` whose rows are distributions. For a policy, with
``P_pi[s, s'] = sum_a pi[s, a] P[s, a, s']`` and ``r_pi[s] = sum_a pi[s, a] R[s, a]``:

* ``V = (I - gamma P_pi)^{-1} r_pi`` (Bellman equation, solved exactly — no iteration);
* ``Q = R + gamma P V`` and ``A = Q - V``  (eq. ``eq-advantage``);
* ``J = p0 . V`` (eq. ``eq-objective``);
* the discounted visitation ``eta = p0^T (I - gamma P_pi)^{-1}``, i.e.
  ``eta(s) = sum_t gamma^t Pr(s_t = s)`` (unnormalised, sums to ``1/(1-gamma)``), and the
  normalised discounted state distribution ``d = (1 - gamma) eta`` (eq. ``eq-visitation``).

*Cost.* Each of these is one linear solve with the ``S x S`` matrix ``I - gamma P_pi``: ``O(S^3)``
time for a dense ``P`` and ``O(S^2 A)`` memory (the transition array itself).
:func:`values_and_visits` returns ``V``, ``Q`` and ``eta`` together from *one* LU factorisation
(``V`` solves with the matrix, ``eta`` with its transpose), which is what
:func:`pgbook.gradients.policy_gradient` uses.

*Sparse transitions.* ``P`` may instead be a ``scipy.sparse`` matrix of shape ``(S*A, S)`` whose
row ``s*A + a`` is the distribution ``P[s, a, :]`` (``P.reshape(S*A, S)`` of the dense array;
:meth:`MDP.as_sparse`, :meth:`MDP.as_dense` convert). It is stored as a read-only
``scipy.sparse.csr_array``; ``P_pi`` is then sparse too and the solves use a sparse LU
factorisation (``scipy.sparse.linalg.splu``), so a gridworld with ``10^4``–``10^5`` states
(a handful of successors per state, :mod:`pgbook.gridworld`) is solved in about 0.03 s
(``10^4`` states) to 0.5 s (``10^5``) of CPU time (README, "The exact engine at scale").
Every function of this module accepts a sparse MDP: :func:`policy_transition_matrix` then returns
a sparse ``(S, S)`` matrix, :func:`enumerate_trajectories` densifies (its MDPs are tiny), and the
rest never form a dense ``S x S`` or ``S x A x S`` array. So do :func:`pgbook.gradients.policy_gradient`,
``finite_horizon_policy_gradient`` and the exact gradients of :mod:`pgbook.episodic`. The torch
objectives (``pgbook.gradients.autograd_policy_gradient`` and the other autograd checks) densify
through :func:`transition_array`, which raises ``ValueError`` when the dense array would exceed
1 GiB. The other exact checks of chapters 3–9 are written for a dense ``P`` (several read
``mdp.P`` as an ``(S, A, S)`` array, e.g. :mod:`pgbook.baselines`,
:func:`pgbook.gae.tabular_gae_moments`, :mod:`pgbook.a2c`): pass them ``mdp.as_dense()``.

Finite-horizon helpers enumerate every trajectory of a tiny MDP exhaustively (chapter 1) and
sample trajectories for Monte Carlo checks.

*Episodic MDPs* (chapter 9, :mod:`pgbook.episodic`, eq. ``eq-episodic-pg``) declare a boolean mask
``terminal`` of absorbing, zero-reward states; the episode ends on entering one. Then ``gamma = 1``
is allowed, and ``V``, ``Q`` and the visitation are solved on the non-terminal block only
(``V = 0`` on terminal states; visits count the steps before termination, so
``discounted_visits`` at ``gamma = 1`` is the expected number of visits per episode). The block
``I - gamma P_pi`` is invertible for ``gamma < 1``, and for ``gamma = 1`` exactly when ``pi`` is
*proper* — the terminal set is reachable from every non-terminal state — which is checked on the
support of ``P_pi`` (a breadth-first search) before solving. Without ``terminal`` nothing changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from ._validate import (
    PROB_ATOL,
    as_float_array,
    check_distribution,
    check_gamma,
    check_positive_int,
    check_seed,
    check_shape,
)

__all__ = [
    "MDP",
    "random_mdp",
    "check_policy",
    "transition_array",
    "next_state_expectation",
    "state_values",
    "action_values",
    "advantage_values",
    "values_and_visits",
    "expected_return",
    "discounted_visits",
    "discounted_state_distribution",
    "policy_transition_matrix",
    "Trajectories",
    "enumerate_trajectories",
    "finite_horizon_return",
    "finite_horizon_action_values",
    "sample_trajectories",
]

#: Largest dense ``(S, A, S)`` array :func:`transition_array` makes from a sparse ``P`` (1 GiB of float64).
MAX_DENSE_ENTRIES = 2**27


@dataclass(frozen=True)
class MDP:
    """A finite discounted MDP, validated on construction.

    Parameters
    ----------
    P : array ``(S, A, S)``, or a ``scipy.sparse`` matrix ``(S*A, S)``
        ``P[s, a, s']`` = Pr(s_{t+1} = s' | s_t = s, a_t = a); each ``P[s, a]`` sums to 1. A sparse
        ``P`` holds ``P[s, a, :]`` in row ``s*A + a`` and is stored as a ``scipy.sparse.csr_array``
        (see the module docstring for which functions keep it sparse).
    R : array ``(S, A)``
        Expected immediate reward r(s, a).
    p0 : array ``(S,)``
        Initial state distribution.
    gamma : float in [0, 1), or in [0, 1] when ``terminal`` is given
        Discount factor.
    terminal : boolean array ``(S,)`` or None
        Optional mask of terminal states (episodic MDP): each must be absorbing
        (``P[s, a, s] = 1``) with zero reward (``R[s, a] = 0``) for every action, and at least one
        state must be non-terminal. ``None`` (the default) is a continuing MDP.
    """

    P: np.ndarray | scipy.sparse.csr_array
    R: np.ndarray
    p0: np.ndarray
    gamma: float
    terminal: np.ndarray | None = None

    def __post_init__(self):
        if scipy.sparse.issparse(self.P):
            P = _check_sparse_transitions(self.P)
            S = P.shape[1]
            A = P.shape[0] // S
        else:
            P = as_float_array(self.P, "P", ndim=3)
            S, A, S2 = P.shape
            if S != S2 or S == 0 or A == 0:
                raise ValueError(f"P must have shape (S, A, S) with S, A >= 1, got {P.shape}")
            check_distribution(P, "P", axis=-1)
        R = as_float_array(self.R, "R", ndim=2)
        check_shape(R, (S, A), "R")
        p0 = as_float_array(self.p0, "p0", ndim=1)
        check_shape(p0, (S,), "p0")
        check_distribution(p0, "p0")
        terminal = self.terminal
        if terminal is None:
            if not isinstance(self.gamma, bool) and isinstance(self.gamma, (int, float, np.integer, np.floating)) and self.gamma == 1:
                raise ValueError(
                    "gamma must lie in [0, 1) unless terminal states are declared "
                    f"(terminal=...), got {self.gamma!r}"
                )
            gamma = check_gamma(self.gamma)
        else:
            gamma = check_gamma(self.gamma, allow_one=True)
            terminal = _check_terminal(terminal, P, R)
        for name, value in (("R", R), ("p0", p0)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        if not scipy.sparse.issparse(P):
            P.setflags(write=False)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "terminal", terminal)

    @property
    def n_states(self) -> int:
        return self.R.shape[0]

    @property
    def n_actions(self) -> int:
        return self.R.shape[1]

    @property
    def episodic(self) -> bool:
        """Whether terminal states are declared."""
        return self.terminal is not None

    @property
    def is_sparse(self) -> bool:
        """Whether ``P`` is stored as a sparse ``(S*A, S)`` matrix."""
        return scipy.sparse.issparse(self.P)

    def with_gamma(self, gamma: float) -> "MDP":
        """The same dynamics, rewards (and terminal states) with another discount factor."""
        return MDP(self.P, self.R, self.p0, gamma, self.terminal)

    def as_sparse(self) -> "MDP":
        """The same MDP with ``P`` stored as a sparse ``(S*A, S)`` matrix (itself if it already is)."""
        if self.is_sparse:
            return self
        S, A = self.n_states, self.n_actions
        return MDP(scipy.sparse.csr_array(self.P.reshape(S * A, S)), self.R, self.p0, self.gamma, self.terminal)

    def as_dense(self) -> "MDP":
        """The same MDP with a dense ``(S, A, S)`` array ``P`` (:func:`transition_array`)."""
        if not self.is_sparse:
            return self
        return MDP(transition_array(self), self.R, self.p0, self.gamma, self.terminal)


def _check_sparse_transitions(P) -> scipy.sparse.csr_array:
    """A sparse ``(S*A, S)`` transition matrix as a read-only float64 CSR array, rows distributions."""
    n_rows, S = P.shape
    if S == 0 or n_rows == 0 or n_rows % S:
        raise ValueError(
            f"P (sparse) must have shape (S*A, S) with S, A >= 1 (row s*A + a holds P[s, a, :]), got {P.shape}"
        )
    if P.dtype.kind not in "iuf":
        raise ValueError(f"P must be an array of real numbers, got a sparse matrix of dtype {P.dtype}")
    P = scipy.sparse.csr_array(P, dtype=np.float64, copy=True)
    P.sum_duplicates()
    if not np.all(np.isfinite(P.data)):
        raise ValueError("P contains NaN or infinite values")
    if np.any(P.data < 0):
        raise ValueError(f"P has negative probabilities (min {P.data.min():.3g})")
    sums = np.asarray(P.sum(axis=1)).ravel()
    if not np.allclose(sums, 1.0, rtol=0.0, atol=PROB_ATOL):
        worst = float(np.max(np.abs(sums - 1.0)))
        raise ValueError(
            f"P must sum to 1 along each row s*A + a (within {PROB_ATOL:g}); the worst row is off by {worst:.3g}"
        )
    for arr in (P.data, P.indices, P.indptr):
        arr.setflags(write=False)
    return P


def _check_terminal(terminal, P, R: np.ndarray) -> np.ndarray:
    """Validate the terminal mask: boolean ``(S,)``, absorbing, zero reward, not all terminal."""
    mask = np.asarray(terminal)
    if mask.dtype != bool:
        raise ValueError(f"terminal must be a boolean array, got dtype {mask.dtype}")
    S, A = R.shape
    check_shape(mask, (S,), "terminal")
    if mask.all():
        raise ValueError("terminal must leave at least one non-terminal state")
    states = np.flatnonzero(mask)
    if scipy.sparse.issparse(P):  # P[s, a, s] sits at row s*A + a, column s
        stay = np.asarray(P[(states[:, None] * A + np.arange(A)).ravel(), np.repeat(states, A)]).reshape(-1, A)
    else:
        stay = P[states[:, None], np.arange(A)[None, :], states[:, None]]
    for s in states[~np.all(stay == 1.0, axis=1)][:1]:
        raise ValueError(f"terminal state {s} must be absorbing: P[{s}, a, {s}] = 1 for every action a")
    for s in states[np.any(R[states] != 0.0, axis=1)][:1]:
        raise ValueError(f"terminal state {s} must have zero reward: R[{s}, a] = 0 for every action a")
    mask = mask.copy()
    mask.setflags(write=False)
    return mask


def random_mdp(n_states: int, n_actions: int, gamma: float, seed: int) -> MDP:
    """A random MDP: Dirichlet(1) transitions and initial state, standard normal rewards.

    All transition probabilities are strictly positive, so every state is reachable and every
    trajectory of the finite-horizon enumeration has positive probability.
    """
    S = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    gamma = check_gamma(gamma)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    rng = np.random.default_rng(check_seed(seed))
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R = rng.standard_normal((S, A))
    p0 = rng.dirichlet(np.ones(S))
    return MDP(P, R, p0, gamma)


def _check_mdp(mdp, name: str = "mdp") -> MDP:
    if not isinstance(mdp, MDP):
        raise ValueError(f"{name} must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    return mdp


def transition_array(mdp: MDP, max_entries: int = MAX_DENSE_ENTRIES) -> np.ndarray:
    """``P`` as a dense ``(S, A, S)`` array: ``mdp.P`` itself, or a sparse ``P`` densified.

    For code that needs the whole array (the torch objectives, trajectory enumeration, the exact
    checks of chapters 4–9). Raises ``ValueError`` when a sparse ``P`` would need more than
    ``max_entries`` dense entries (default ``2**27``, 1 GiB).
    """
    mdp = _check_mdp(mdp)
    max_entries = check_positive_int(max_entries, "max_entries")
    if not mdp.is_sparse:
        return mdp.P
    S, A = mdp.n_states, mdp.n_actions
    if S * A * S > max_entries:
        raise ValueError(
            f"mdp has a sparse P with S={S}, A={A}: the dense (S, A, S) array would have {S * A * S} entries, "
            f"more than max_entries={max_entries}; use a function that accepts sparse MDPs "
            "(pgbook.mdp's exact quantities, pgbook.gradients.policy_gradient)"
        )
    out = mdp.P.toarray().reshape(S, A, S)
    out.setflags(write=False)
    return out


def check_policy(mdp: MDP, pi, name: str = "pi") -> np.ndarray:
    """Return ``pi`` as a float array after checking it is an ``(S, A)`` table of distributions."""
    _check_mdp(mdp)
    if not isinstance(name, str):
        raise ValueError(f"name must be a string (the argument's name in error messages), got {name!r}")
    pi = as_float_array(pi, name, ndim=2)
    check_shape(pi, (mdp.n_states, mdp.n_actions), name)
    check_distribution(pi, name, axis=1)
    return pi


def _policy_chain(mdp: MDP, pi: np.ndarray):
    """``P_pi`` for a checked ``pi``: dense ``(S, S)`` array, or a sparse CSR array for a sparse ``P``."""
    if mdp.is_sparse:
        S, A = mdp.n_states, mdp.n_actions
        # the (S, S*A) matrix with pi[s, a] in row s, column s*A + a, times the (S*A, S) P
        select = scipy.sparse.csr_array((pi.ravel(), np.arange(S * A), np.arange(0, S * A + 1, A)), shape=(S, S * A))
        return (select @ mdp.P).tocsr()
    return np.einsum("sa,sat->st", pi, mdp.P)


def policy_transition_matrix(mdp: MDP, pi):
    """``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)``: the state chain under ``pi``.

    A dense ``(S, S)`` array, or a ``scipy.sparse.csr_array`` when ``mdp.P`` is sparse.
    """
    pi = check_policy(mdp, pi)
    return _policy_chain(mdp, pi)


def _next_expectation(mdp: MDP, f: np.ndarray) -> np.ndarray:
    if mdp.is_sparse:
        return (mdp.P @ f).reshape(mdp.n_states, mdp.n_actions)
    return mdp.P @ f


def next_state_expectation(mdp: MDP, f) -> np.ndarray:
    """``sum_s' P(s'|s, a) f(s')`` for every ``(s, a)``, shape ``(S, A)``; ``f`` has shape ``(S,)``.

    ``O(S^2 A)`` for a dense ``P`` and ``O(nnz(P))`` for a sparse one; ``Q = R + gamma`` times
    this with ``f = V`` (eq. ``eq-q-from-v``).
    """
    mdp = _check_mdp(mdp)
    f = as_float_array(f, "f", ndim=1)
    check_shape(f, (mdp.n_states,), "f")
    return _next_expectation(mdp, f)


def _reaching(P_pi, targets: np.ndarray) -> np.ndarray:
    """Boolean ``(S,)``: from which states the chain ``P_pi`` reaches a state of ``targets`` (incl. itself).

    A breadth-first search on the reversed support graph of ``P_pi``, started from an extra node
    linked to every target: ``O(S + nnz)`` (``O(S^2)`` to read a dense ``P_pi``).
    """
    n = P_pi.shape[0]
    support = scipy.sparse.coo_array(P_pi > 0)
    rows = np.concatenate([support.col, np.full(targets.size, n)])  # reversed edges s' -> s ...
    cols = np.concatenate([support.row, targets])  # ... and the extra node n -> each target
    graph = scipy.sparse.csr_array((np.ones(rows.size), (rows, cols)), shape=(n + 1, n + 1))
    order = scipy.sparse.csgraph.breadth_first_order(graph, n, directed=True, return_predecessors=False)
    reach = np.zeros(n + 1, dtype=bool)
    reach[order] = True
    return reach[:n]


class _BellmanSolver:
    """``I - gamma P_pi`` factorised once, then solved against any right-hand side.

    Dense ``P``: one LU factorisation (LAPACK ``getrf``) of the ``S x S`` matrix, ``O(S^3)``;
    sparse ``P``: a sparse LU (SuperLU, ``scipy.sparse.linalg.splu``). Each solve then costs
    ``O(S^2)`` (dense) or about the size of the factors (sparse), with the matrix
    (``transpose=False``: ``V``) or with its transpose (``transpose=True``: ``eta``). For an episodic
    MDP the matrix is the non-terminal block, after the properness check at ``gamma = 1``, and
    solutions are 0 on terminal states.
    """

    def __init__(self, mdp: MDP, pi: np.ndarray):
        P_pi = _policy_chain(mdp, pi)
        self.n_states = mdp.n_states
        self.live = None
        if mdp.terminal is not None:
            if mdp.gamma == 1.0:
                # proper <=> from every non-terminal state some terminal state is reachable (support of P_pi)
                stuck = np.flatnonzero(~_reaching(P_pi, np.flatnonzero(mdp.terminal)))
                if stuck.size:
                    shown = stuck[:20].tolist() if stuck.size <= 20 else f"{stuck[:20].tolist()[:-1]} ... ({stuck.size} states)"
                    raise ValueError(
                        f"pi is improper: from states {shown} no terminal state is reachable, so with "
                        "gamma = 1 the return is undefined (I - P_pi on the non-terminal states is singular)"
                    )
            self.live = np.flatnonzero(~mdp.terminal)
            P_pi = P_pi[self.live][:, self.live] if mdp.is_sparse else P_pi[np.ix_(self.live, self.live)]
        n = P_pi.shape[0]
        self.sparse = mdp.is_sparse
        if self.sparse:
            matrix = (scipy.sparse.eye_array(n, format="csr") - mdp.gamma * P_pi).tocsc()
            self._lu = scipy.sparse.linalg.splu(matrix)
        else:
            matrix = np.eye(n) - mdp.gamma * P_pi
            # LAPACK is column-major: matrix.T is a Fortran-ordered view (no copy), so factorise the
            # transpose in place; solves with the matrix itself then use trans=1.
            self._lu = scipy.linalg.lu_factor(matrix.T, overwrite_a=True, check_finite=False)

    def solve(self, b: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``x`` with ``(I - gamma P_pi) x = b`` (or ``(I - gamma P_pi)^T x = b``); shape ``(S,)``."""
        rhs = b if self.live is None else b[self.live]
        if self.sparse:
            x = self._lu.solve(rhs, trans="T" if transpose else "N")
        else:
            x = scipy.linalg.lu_solve(self._lu, rhs, trans=0 if transpose else 1, check_finite=False)
        if self.live is None:
            return x
        out = np.zeros(self.n_states)
        out[self.live] = x
        return out


def _values(mdp: MDP, pi: np.ndarray, solver: _BellmanSolver) -> np.ndarray:
    """``V`` from ``(I - gamma P_pi) V = r_pi``."""
    return solver.solve(np.einsum("sa,sa->s", pi, mdp.R))


def _visits(mdp: MDP, solver: _BellmanSolver) -> np.ndarray:
    """``eta`` from ``eta^T (I - gamma P_pi) = p0^T``, i.e. the transposed system."""
    return solver.solve(mdp.p0, transpose=True)


def state_values(mdp: MDP, pi) -> np.ndarray:
    """Exact ``V^pi`` from the linear system ``(I - gamma P_pi) V = r_pi``; shape ``(S,)``.

    For an episodic MDP the system is solved on the non-terminal states, and ``V = 0`` on the
    terminal ones.
    """
    pi = check_policy(mdp, pi)
    return _values(mdp, pi, _BellmanSolver(mdp, pi))


def action_values(mdp: MDP, pi) -> np.ndarray:
    """Exact ``Q^pi(s, a) = R(s, a) + gamma sum_s' P(s'|s, a) V^pi(s')``; shape ``(S, A)``."""
    V = state_values(mdp, pi)
    return mdp.R + mdp.gamma * _next_expectation(mdp, V)


def advantage_values(mdp: MDP, pi) -> np.ndarray:
    """Exact ``A^pi(s, a) = Q^pi(s, a) - V^pi(s)``; shape ``(S, A)``."""
    V = state_values(mdp, pi)
    return mdp.R + mdp.gamma * _next_expectation(mdp, V) - V[:, None]


def values_and_visits(mdp: MDP, pi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(V, Q, eta)`` of ``pi`` from one factorisation of ``I - gamma P_pi``.

    The same numbers as :func:`state_values`, :func:`action_values` and :func:`discounted_visits`
    (up to round-off), for the price of one ``O(S^3)`` factorisation (sparse: one sparse LU) and
    two triangular solves instead of three factorisations.
    """
    pi = check_policy(mdp, pi)
    solver = _BellmanSolver(mdp, pi)
    V = _values(mdp, pi, solver)
    Q = mdp.R + mdp.gamma * _next_expectation(mdp, V)
    return V, Q, _visits(mdp, solver)


def expected_return(mdp: MDP, pi) -> float:
    """Exact ``J(pi) = E[sum_t gamma^t r_t] = sum_s p0(s) V^pi(s)``."""
    V = state_values(mdp, pi)
    return float(mdp.p0 @ V)


def discounted_visits(mdp: MDP, pi) -> np.ndarray:
    """Unnormalised discounted visitation ``eta(s) = sum_t gamma^t Pr(s_t = s)``.

    Solves ``eta^T (I - gamma P_pi) = p0^T``. Sums to ``1 / (1 - gamma)``. This is the weight
    in the state-sum form of the policy gradient theorem (eq. ``eq-pg-visitation``).

    For an episodic MDP only the steps before termination count: ``eta(s) = sum_t gamma^t
    Pr(s_t = s, t < L)`` on non-terminal ``s`` (``L`` the episode length) and 0 on terminal states;
    at ``gamma = 1`` it is the expected number of visits per episode and sums to ``E[L]``.
    """
    pi = check_policy(mdp, pi)
    return _visits(mdp, _BellmanSolver(mdp, pi))


def discounted_state_distribution(mdp: MDP, pi) -> np.ndarray:
    """Normalised discounted state distribution ``d^pi(s) = (1 - gamma) eta(s)``; sums to 1.

    Defined for continuing MDPs only (for an episodic one use :func:`discounted_visits`).
    """
    if _check_mdp(mdp).terminal is not None:
        raise ValueError("mdp is episodic (terminal states declared): d = (1 - gamma) eta does not sum to 1; use discounted_visits")
    return (1.0 - mdp.gamma) * discounted_visits(mdp, pi)


@dataclass(frozen=True)
class Trajectories:
    """Every trajectory ``(s_0, a_0, ..., s_{H-1}, a_{H-1})`` of horizon ``H``, one per row.

    ``prob = p0(s_0) prod_t pi(a_t|s_t) prod_{t<H-1} P(s_{t+1}|s_t, a_t)``; the last action's
    successor is not part of the trajectory. ``log_policy`` and ``log_dynamics`` are the two
    parts of ``log prob`` (eq. ``eq-log-traj-split``); ``rewards[n, t] = R(s_t, a_t)``.
    """

    states: np.ndarray
    actions: np.ndarray
    prob: np.ndarray
    log_policy: np.ndarray
    log_dynamics: np.ndarray
    rewards: np.ndarray

    def discounted_return(self, gamma: float) -> np.ndarray:
        """``R(tau) = sum_{t<H} gamma^t r_t`` for every trajectory; shape ``(N,)``."""
        gamma = check_gamma(gamma, allow_one=True)
        H = self.rewards.shape[1]
        return self.rewards @ gamma ** np.arange(H)


def enumerate_trajectories(mdp: MDP, pi, horizon: int, max_trajectories: int = 2_000_000) -> Trajectories:
    """All ``(S*A)^H`` trajectories of horizon ``H`` with their exact probabilities.

    Exhaustive enumeration: nothing is sampled, so any expectation over trajectories becomes an
    exact finite sum ``sum_tau prob(tau) f(tau)``.
    """
    pi = check_policy(mdp, pi)
    H = check_positive_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    count = (S * A) ** H
    if count > check_positive_int(max_trajectories, "max_trajectories"):
        raise ValueError(
            f"horizon={H} gives {count} trajectories for S={S}, A={A}; "
            f"at most max_trajectories={max_trajectories} are enumerated"
        )
    mdp = mdp.as_dense()  # a sparse P is densified: the enumeration is only for tiny MDPs
    pairs = np.array(list(itertools.product(range(S * A), repeat=H)), dtype=np.int64)
    states, actions = pairs // A, pairs % A
    with np.errstate(divide="ignore"):
        log_p0 = np.log(mdp.p0[states[:, 0]])
        log_pi = np.log(pi[states, actions]).sum(axis=1)
        log_P = np.log(mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]]).sum(axis=1)
    prob = mdp.p0[states[:, 0]] * pi[states, actions].prod(axis=1)
    prob = prob * mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]].prod(axis=1)
    return Trajectories(
        states=states,
        actions=actions,
        prob=prob,
        log_policy=log_pi,
        log_dynamics=log_p0 + log_P,
        rewards=mdp.R[states, actions],
    )


def finite_horizon_return(mdp: MDP, pi, horizon: int) -> float:
    """``J_H(pi) = E[sum_{t<H} gamma^t r_t]`` by backward dynamic programming (no enumeration).

    An independent computation of the same number that :func:`enumerate_trajectories` gives as
    ``sum_tau prob(tau) R(tau)``.
    """
    pi = check_policy(mdp, pi)
    H = check_positive_int(horizon, "horizon")
    r_pi = np.einsum("sa,sa->s", pi, mdp.R)
    P_pi = _policy_chain(mdp, pi)
    V = np.zeros(mdp.n_states)
    for _ in range(H):
        V = r_pi + mdp.gamma * P_pi @ V
    return float(mdp.p0 @ V)


def finite_horizon_action_values(mdp: MDP, pi, horizon: int) -> np.ndarray:
    """Time-indexed ``Q_t(s, a) = E[sum_{l=t}^{H-1} gamma^(l-t) r_l | s_t = s, a_t = a]``.

    Backward dynamic programming; shape ``(H, S, A)``. In a finite-horizon problem the value of
    an action depends on how many steps remain, so the policy gradient theorem uses ``Q_t``
    (chapter 2, eq. ``eq-pg-theorem``).
    """
    pi = check_policy(mdp, pi)
    H = check_positive_int(horizon, "horizon")
    Q = np.zeros((H, mdp.n_states, mdp.n_actions))
    V_next = np.zeros(mdp.n_states)
    for t in reversed(range(H)):
        Q[t] = mdp.R + mdp.gamma * _next_expectation(mdp, V_next)
        V_next = (pi * Q[t]).sum(axis=1)
    return Q


def sample_trajectories(mdp: MDP, pi, n_episodes: int, horizon: int, seed: int):
    """Sample ``n_episodes`` trajectories of length ``horizon`` under ``pi`` (vectorised).

    Returns ``(states, actions, rewards)``, each of shape ``(n_episodes, horizon)``, with
    ``rewards[n, t] = R(s_t, a_t)``. For the infinite-horizon ``J``, choose ``horizon`` so that
    the ignored tail ``gamma^H max|R| / (1 - gamma)`` is negligible.
    """
    pi = check_policy(mdp, pi)
    N = check_positive_int(n_episodes, "n_episodes")
    H = check_positive_int(horizon, "horizon")
    rng = np.random.default_rng(check_seed(seed))
    pi_cdf = np.cumsum(pi, axis=1)
    successor = _successor_sampler(mdp)
    states = np.empty((N, H), dtype=np.int64)
    actions = np.empty((N, H), dtype=np.int64)
    s = np.minimum(np.searchsorted(np.cumsum(mdp.p0), rng.random(N), side="right"), mdp.n_states - 1)
    for t in range(H):
        states[:, t] = s
        a = (rng.random(N)[:, None] >= pi_cdf[s]).sum(axis=1)
        a = np.minimum(a, mdp.n_actions - 1)
        actions[:, t] = a
        s = successor(s, a, rng.random(N))
    return states, actions, mdp.R[states, actions]


def _successor_sampler(mdp: MDP):
    """``(s, a, u) -> s'``: the inverse-CDF draw from ``P(.|s, a)`` given uniforms ``u`` (arrays).

    ``s'`` is the first state whose cumulative probability exceeds ``u``. For a sparse ``P`` the
    cumulative sums run over the stored entries of row ``s*A + a`` in column order, which adds the
    same numbers in the same order as the dense cumulative sum (the zeros change nothing), so
    both representations draw the same ``s'`` from the same ``u``.
    """
    S, A = mdp.n_states, mdp.n_actions
    if not mdp.is_sparse:
        P_cdf = np.cumsum(mdp.P, axis=2)
        return lambda s, a, u: np.minimum((u[:, None] >= P_cdf[s, a]).sum(axis=1), S - 1)
    indptr, indices, data = mdp.P.indptr, mdp.P.indices, mdp.P.data
    width = int(np.diff(indptr).max())

    def successor(s, a, u):
        rows = s * A + a
        start, length = indptr[rows], indptr[rows + 1] - indptr[rows]
        chosen = start + length - 1  # if round-off leaves u above the row's total: its last state
        found = np.zeros(rows.size, dtype=bool)
        cdf = np.zeros(rows.size)
        for j in range(width):
            live = np.flatnonzero((j < length) & ~found)
            if live.size == 0:
                break
            cdf[live] += data[start[live] + j]
            hit = live[cdf[live] > u[live]]
            chosen[hit] = start[hit] + j
            found[hit] = True
        return indices[chosen].astype(np.int64)

    return successor
