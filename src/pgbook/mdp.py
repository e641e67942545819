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

Finite-horizon helpers enumerate every trajectory of a tiny MDP exhaustively (chapter 1) and
sample trajectories for Monte Carlo checks.

*Episodic MDPs* (chapter 9, :mod:`pgbook.episodic`, eq. ``eq-episodic-pg``) declare a boolean mask
``terminal`` of absorbing, zero-reward states; the episode ends on entering one. Then ``gamma = 1``
is allowed, and ``V``, ``Q`` and the visitation are solved on the non-terminal block only
(``V = 0`` on terminal states; visits count the steps before termination, so
``discounted_visits`` at ``gamma = 1`` is the expected number of visits per episode). The block
``I - gamma P_pi`` is invertible for ``gamma < 1``, and for ``gamma = 1`` exactly when ``pi`` is
*proper* — the terminal set is reachable from every non-terminal state — which is checked on the
support of ``P_pi`` before solving. Without ``terminal`` nothing changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ._validate import (
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
    "state_values",
    "action_values",
    "advantage_values",
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


@dataclass(frozen=True)
class MDP:
    """A finite discounted MDP, validated on construction.

    Parameters
    ----------
    P : array ``(S, A, S)``
        ``P[s, a, s']`` = Pr(s_{t+1} = s' | s_t = s, a_t = a); each ``P[s, a]`` sums to 1.
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

    P: np.ndarray
    R: np.ndarray
    p0: np.ndarray
    gamma: float
    terminal: np.ndarray | None = None

    def __post_init__(self):
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
        for name, value in (("P", P), ("R", R), ("p0", p0)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "terminal", terminal)

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @property
    def episodic(self) -> bool:
        """Whether terminal states are declared."""
        return self.terminal is not None

    def with_gamma(self, gamma: float) -> "MDP":
        """The same dynamics, rewards (and terminal states) with another discount factor."""
        return MDP(self.P, self.R, self.p0, gamma, self.terminal)


def _check_terminal(terminal, P: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Validate the terminal mask: boolean ``(S,)``, absorbing, zero reward, not all terminal."""
    mask = np.asarray(terminal)
    if mask.dtype != bool:
        raise ValueError(f"terminal must be a boolean array, got dtype {mask.dtype}")
    check_shape(mask, (P.shape[0],), "terminal")
    if mask.all():
        raise ValueError("terminal must leave at least one non-terminal state")
    for s in np.flatnonzero(mask):
        if not np.all(P[s, :, s] == 1.0):
            raise ValueError(f"terminal state {s} must be absorbing: P[{s}, a, {s}] = 1 for every action a")
        if np.any(R[s] != 0.0):
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


def check_policy(mdp: MDP, pi, name: str = "pi") -> np.ndarray:
    """Return ``pi`` as a float array after checking it is an ``(S, A)`` table of distributions."""
    pi = as_float_array(pi, name, ndim=2)
    check_shape(pi, (mdp.n_states, mdp.n_actions), name)
    check_distribution(pi, name, axis=1)
    return pi


def policy_transition_matrix(mdp: MDP, pi) -> np.ndarray:
    """``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)``: the state chain under ``pi``."""
    pi = check_policy(mdp, pi)
    return np.einsum("sa,sat->st", pi, mdp.P)


def _bellman_matrix(mdp: MDP, pi: np.ndarray) -> np.ndarray:
    return np.eye(mdp.n_states) - mdp.gamma * np.einsum("sa,sat->st", pi, mdp.P)


def _episodic_block(mdp: MDP, pi: np.ndarray):
    """Non-terminal indices and ``I - gamma P_pi`` on them; raise for an improper ``pi`` at ``gamma = 1``."""
    live = np.flatnonzero(~mdp.terminal)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    if mdp.gamma == 1.0:
        # proper <=> from every non-terminal state some terminal state is reachable (support of P_pi)
        reach = mdp.terminal.copy()
        while True:
            new = reach | ((P_pi[:, reach] > 0).any(axis=1))
            if np.array_equal(new, reach):
                break
            reach = new
        stuck = np.flatnonzero(~reach)
        if stuck.size:
            raise ValueError(
                f"pi is improper: from states {stuck.tolist()} no terminal state is reachable, so with "
                "gamma = 1 the return is undefined (I - P_pi on the non-terminal states is singular)"
            )
    return live, np.eye(live.size) - mdp.gamma * P_pi[np.ix_(live, live)]


def state_values(mdp: MDP, pi) -> np.ndarray:
    """Exact ``V^pi`` from the linear system ``(I - gamma P_pi) V = r_pi``; shape ``(S,)``.

    For an episodic MDP the system is solved on the non-terminal states, and ``V = 0`` on the
    terminal ones.
    """
    pi = check_policy(mdp, pi)
    r_pi = np.einsum("sa,sa->s", pi, mdp.R)
    if mdp.terminal is None:
        return np.linalg.solve(_bellman_matrix(mdp, pi), r_pi)
    live, block = _episodic_block(mdp, pi)
    V = np.zeros(mdp.n_states)
    V[live] = np.linalg.solve(block, r_pi[live])
    return V


def action_values(mdp: MDP, pi) -> np.ndarray:
    """Exact ``Q^pi(s, a) = R(s, a) + gamma sum_s' P(s'|s, a) V^pi(s')``; shape ``(S, A)``."""
    V = state_values(mdp, pi)
    return mdp.R + mdp.gamma * mdp.P @ V


def advantage_values(mdp: MDP, pi) -> np.ndarray:
    """Exact ``A^pi(s, a) = Q^pi(s, a) - V^pi(s)``; shape ``(S, A)``."""
    V = state_values(mdp, pi)
    return mdp.R + mdp.gamma * mdp.P @ V - V[:, None]


def expected_return(mdp: MDP, pi) -> float:
    """Exact ``J(pi) = E[sum_t gamma^t r_t] = sum_s p0(s) V^pi(s)``."""
    return float(mdp.p0 @ state_values(mdp, pi))


def discounted_visits(mdp: MDP, pi) -> np.ndarray:
    """Unnormalised discounted visitation ``eta(s) = sum_t gamma^t Pr(s_t = s)``.

    Solves ``eta^T (I - gamma P_pi) = p0^T``. Sums to ``1 / (1 - gamma)``. This is the weight
    in the state-sum form of the policy gradient theorem (eq. ``eq-pg-visitation``).

    For an episodic MDP only the steps before termination count: ``eta(s) = sum_t gamma^t
    Pr(s_t = s, t < L)`` on non-terminal ``s`` (``L`` the episode length) and 0 on terminal states;
    at ``gamma = 1`` it is the expected number of visits per episode and sums to ``E[L]``.
    """
    pi = check_policy(mdp, pi)
    if mdp.terminal is None:
        return np.linalg.solve(_bellman_matrix(mdp, pi).T, mdp.p0)
    live, block = _episodic_block(mdp, pi)
    eta = np.zeros(mdp.n_states)
    eta[live] = np.linalg.solve(block.T, mdp.p0[live])
    return eta


def discounted_state_distribution(mdp: MDP, pi) -> np.ndarray:
    """Normalised discounted state distribution ``d^pi(s) = (1 - gamma) eta(s)``; sums to 1.

    Defined for continuing MDPs only (for an episodic one use :func:`discounted_visits`).
    """
    if mdp.terminal is not None:
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
    if count > max_trajectories:
        raise ValueError(
            f"horizon={H} gives {count} trajectories for S={S}, A={A}; "
            f"at most max_trajectories={max_trajectories} are enumerated"
        )
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
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
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
        Q[t] = mdp.R + mdp.gamma * mdp.P @ V_next
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
    P_cdf = np.cumsum(mdp.P, axis=2)
    states = np.empty((N, H), dtype=np.int64)
    actions = np.empty((N, H), dtype=np.int64)
    s = np.minimum(np.searchsorted(np.cumsum(mdp.p0), rng.random(N), side="right"), mdp.n_states - 1)
    for t in range(H):
        states[:, t] = s
        a = (rng.random(N)[:, None] >= pi_cdf[s]).sum(axis=1)
        a = np.minimum(a, mdp.n_actions - 1)
        actions[:, t] = a
        s = np.minimum((rng.random(N)[:, None] >= P_cdf[s, a]).sum(axis=1), mdp.n_states - 1)
    return states, actions, mdp.R[states, actions]
