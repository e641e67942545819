"""Where the critic's updates converge: semi-gradient TD versus the notes' loss as written.

Chapter 9 (:doc:`/book/ch09_a2c`), eq. ``eq-a2c-value-loss``, and the errata entry
``err-a2c-value-target``. The notes write the critic's loss as

    L(phi) = E[ (G^(n)(phi) - V_phi(s_t))^2 ],   G^(n)(phi) = sum_{k<n} gamma^k r_{t+k} + gamma^n V_phi(s_{t+n}),

with ``phi`` inside the target. A2C descends it with the target held fixed (a *semi-gradient*,
eq. ``eq-a2c-value-loss``); differentiating it as written (``phi`` in the target too) is the
*residual gradient* of Baird (1995), see Sutton and Barto (2018), section 11.5. The two
descents converge to different points. This module computes both points exactly, by one
linear solve each, for a tabular MDP, a tabular policy ``pi`` and values that are linear in
features, ``V = Phi theta`` (``Phi`` = identity: tabular values).

Notation (the expectations are over the policy's actions and the MDP's transitions, and over
``s_t ~ d``, the state weighting of the loss):

* ``P_pi``, ``r_pi`` — the state chain and expected reward under ``pi``; ``M = P_pi^n``;
* ``r^(n) = sum_{k<n} gamma^k P_pi^k r_pi`` — the expected n-step reward (:func:`nstep_reward`);
* ``T^n V = r^(n) + gamma^n M V`` — the n-step Bellman operator, ``T^n V^pi = V^pi``;
* ``D = diag(d)``.

The three points (each returned as the value vector ``V = Phi theta``, shape ``(S,)``):

* :func:`semi_gradient_fixed_point` — the expected update with the target held fixed is
  ``theta += alpha Phi^T D (T^n Phi theta - Phi theta)``; it is zero where
  ``Phi^T D (I - gamma^n M) Phi theta = Phi^T D r^(n)`` (the TD fixed point). With tabular
  values and ``d > 0`` this is ``V^pi``.
* :func:`residual_gradient_fixed_point` — the minimiser of the notes' loss as written, with the
  *sampled* next state ``s_{t+n}`` in the target. Writing the residual as ``g + x^T V`` with
  ``g = sum_{k<n} gamma^k r_{t+k}`` and ``x = gamma^n e_{s_{t+n}} - e_{s_t}``, the loss is
  ``E[(g + x^T V)^2]``. Splitting each moment into the product of conditional means (given
  ``s_t``) plus a conditional covariance, with ``B = I - gamma^n M``,

      E[x x^T] = B^T D B + gamma^(2n) (diag(M^T d) - M^T D M),
      E[x g]   = -B^T D r^(n) + gamma^n (C^T d - M^T D r^(n)),   C[s, s'] = E[g 1{s_{t+n} = s'} | s_t = s],

  and the loss is minimised where ``Phi^T E[x x^T] Phi theta = -Phi^T E[x g]``. The first terms
  alone are the mean-squared Bellman error; the covariance terms are ``E_d[Var(G^(n)(V) | s_t)]``:
  the variance of ``gamma^n V(s_{t+n})`` and its covariance with the rewards depend on ``V`` and
  pull the minimiser away from ``V^pi`` (the variance of the rewards alone is a constant and
  moves nothing). When ``s_{t+n}`` is determined by ``s_t`` (deterministic dynamics and policy)
  both covariance terms vanish and, with tabular values, the minimiser is ``V^pi``.
* :func:`msbe_minimiser` — the minimiser of the mean-squared Bellman error
  ``|| T^n V - V ||_D^2`` (the expected target: the residual gradient with two independent
  samples of ``s_{t+n}``). Tabular: ``V^pi``; with features it differs from the TD fixed point.

The default weighting ``d`` is the stationary distribution of ``P_pi``
(:func:`on_policy_distribution`): A2C trains its critic on the states of rollouts that run on
without restarting in a continuing MDP, and these are distributed (in the long run) by the
stationary distribution — the on-policy distribution of Sutton and Barto (2018), section 9.2.
Under it ``T^n`` is a ``gamma^n``-contraction in the ``D``-weighted norm, so the TD fixed point
exists, is unique and the expected semi-gradient update converges to it also with features
(Tsitsiklis and Van Roy, 1997). Any other full-support ``d`` may be passed as ``weights``.
Continuing MDPs only (no terminal states). A sparse MDP is densified
(:meth:`pgbook.mdp.MDP.as_dense`; ``ValueError`` naming ``mdp`` when it is too large for that).
"""

from __future__ import annotations

import numpy as np

from . import mdp as _mdp
from ._validate import as_float_array, check_distribution, check_positive_int, check_shape

__all__ = [
    "on_policy_distribution",
    "nstep_reward",
    "nstep_bellman",
    "semi_gradient_fixed_point",
    "residual_gradient_fixed_point",
    "msbe_minimiser",
]


def _check_continuing(mdp: _mdp.MDP) -> _mdp.MDP:
    """``mdp``, checked to be a continuing MDP, with a dense ``P`` (the functions here need the array)."""
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    if mdp.terminal is not None:
        raise ValueError("mdp must be continuing (no terminal states): the fixed points here are for a continuing MDP")
    return mdp.as_dense()


def on_policy_distribution(mdp: _mdp.MDP, pi) -> np.ndarray:
    """The stationary distribution ``d`` of ``P_pi``: ``d^T P_pi = d^T``, ``sum d = 1``; shape ``(S,)``.

    Raises ``ValueError`` when it is not unique (the chain under ``pi`` has more than one closed
    class).
    """
    mdp = _check_continuing(mdp)
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    S = mdp.n_states
    system = np.vstack([np.eye(S) - P_pi.T, np.ones((1, S))])
    if np.linalg.matrix_rank(system) < S:
        raise ValueError("pi: the chain P_pi has more than one stationary distribution; pass weights explicitly")
    rhs = np.zeros(S + 1)
    rhs[-1] = 1.0
    d = np.linalg.lstsq(system, rhs, rcond=None)[0]
    return np.clip(d, 0.0, None) / np.clip(d, 0.0, None).sum()


def _setup(mdp, pi, n, features, weights):
    mdp = _check_continuing(mdp)
    pi = _mdp.check_policy(mdp, pi)
    n = check_positive_int(n, "n")
    S = mdp.n_states
    if features is None:
        Phi = np.eye(S)
    else:
        Phi = as_float_array(features, "features", ndim=2)
        if Phi.shape[0] != S or Phi.shape[1] < 1:
            raise ValueError(f"features must have shape (S, m) = ({S}, m) with m >= 1, got {Phi.shape}")
        # V = Phi theta depends only on the column space of Phi: columns of extreme magnitude are
        # rescaled by powers of two (exact), so that the normal equations do not overflow or underflow.
        col = np.abs(Phi).max(axis=0)
        extreme = (col > 1e100) | ((col < 1e-100) & (col > 0))
        if extreme.any():
            Phi = Phi / np.where(extreme, np.exp2(np.frexp(col)[1].astype(np.float64)), 1.0)
        if np.linalg.matrix_rank(Phi) < Phi.shape[1]:
            raise ValueError("features must have linearly independent columns")
    if weights is None:
        d = on_policy_distribution(mdp, pi)
    else:
        d = as_float_array(weights, "weights", ndim=1)
        check_shape(d, (S,), "weights")
        check_distribution(d, "weights")
    return mdp, pi, n, Phi, d


def _solve(lhs: np.ndarray, rhs: np.ndarray, Phi: np.ndarray) -> np.ndarray:
    """``Phi theta`` with ``theta`` solving ``lhs theta = rhs``; ValueError when singular."""
    if np.linalg.matrix_rank(lhs) < lhs.shape[0]:
        raise ValueError("weights: the system is singular (a state, or a feature direction, has zero weight)")
    return Phi @ np.linalg.solve(lhs, rhs)


def _reward_and_chain(mdp: _mdp.MDP, pi: np.ndarray):
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    r_pi = np.einsum("sa,sa->s", pi, mdp.R)
    return P_pi, r_pi


def nstep_reward(mdp: _mdp.MDP, pi, n: int) -> np.ndarray:
    """``r^(n)(s) = E[sum_{k<n} gamma^k r_{t+k} | s_t = s] = sum_{k<n} gamma^k (P_pi^k r_pi)(s)``; shape ``(S,)``."""
    mdp = _check_continuing(mdp)
    pi = _mdp.check_policy(mdp, pi)
    n = check_positive_int(n, "n")
    P_pi, r_pi = _reward_and_chain(mdp, pi)
    out = np.zeros(mdp.n_states)
    term = r_pi.copy()
    for k in range(n):
        out += mdp.gamma**k * term
        term = P_pi @ term
    return out


def nstep_bellman(mdp: _mdp.MDP, pi, values, n: int) -> np.ndarray:
    """``(T^n V)(s) = E[G^(n)(V) | s_t = s] = r^(n)(s) + gamma^n (P_pi^n V)(s)``; shape ``(S,)``."""
    mdp = _check_continuing(mdp)
    pi = _mdp.check_policy(mdp, pi)
    V = as_float_array(values, "values", ndim=1)
    check_shape(V, (mdp.n_states,), "values")
    n = check_positive_int(n, "n")
    P_pi, _ = _reward_and_chain(mdp, pi)
    return nstep_reward(mdp, pi, n) + mdp.gamma**n * np.linalg.matrix_power(P_pi, n) @ V


def semi_gradient_fixed_point(mdp: _mdp.MDP, pi, n: int = 1, features=None, weights=None) -> np.ndarray:
    """Where the expected n-step semi-gradient TD update (target held fixed) is zero; ``V = Phi theta``.

    Solves ``Phi^T D (I - gamma^n P_pi^n) Phi theta = Phi^T D r^(n)``. Tabular values
    (``features=None``) with a full-support ``d`` give ``V^pi``.
    """
    mdp, pi, n, Phi, d = _setup(mdp, pi, n, features, weights)
    P_pi, _ = _reward_and_chain(mdp, pi)
    g_n = mdp.gamma**n
    M = np.linalg.matrix_power(P_pi, n)
    PhiTD = Phi.T * d  # Phi^T D
    lhs = PhiTD @ (np.eye(mdp.n_states) - g_n * M) @ Phi
    rhs = PhiTD @ nstep_reward(mdp, pi, n)
    return _solve(lhs, rhs, Phi)


def _reward_next_state_moment(mdp: _mdp.MDP, pi: np.ndarray, n: int) -> np.ndarray:
    """``C[s, s'] = E[(sum_{k<n} gamma^k r_{t+k}) 1{s_{t+n} = s'} | s_t = s]``.

    ``E[r_{t+k} 1{s_{t+n} = s'} | s_t = s] = (P_pi^k W P_pi^(n-k-1))[s, s']`` with
    ``W[u, s''] = sum_a pi(a|u) R(u, a) P(s''|u, a)`` (reward of step t+k and the step it takes).
    """
    P_pi, _ = _reward_and_chain(mdp, pi)
    W = np.einsum("ua,ua,uav->uv", pi, mdp.R, mdp.P)
    C = np.zeros((mdp.n_states, mdp.n_states))
    for k in range(n):
        C += mdp.gamma**k * np.linalg.matrix_power(P_pi, k) @ W @ np.linalg.matrix_power(P_pi, n - k - 1)
    return C


def residual_gradient_fixed_point(mdp: _mdp.MDP, pi, n: int = 1, features=None, weights=None) -> np.ndarray:
    """The minimiser of the notes' loss as written, ``E_d[(G^(n)(V) - V(s_t))^2]`` with ``V`` in the target.

    The next state ``s_{t+n}`` in the target is the sampled one (one sample per ``s_t``, as in a
    rollout), so the loss contains ``E_d[Var(G^(n)(V) | s_t)]`` and its minimiser — where the
    residual-gradient descent converges — is biased away from ``V^pi`` (double-sampling bias).
    Returns ``V = Phi theta``.
    """
    mdp, pi, n, Phi, d = _setup(mdp, pi, n, features, weights)
    P_pi, _ = _reward_and_chain(mdp, pi)
    gn = mdp.gamma**n
    M = np.linalg.matrix_power(P_pi, n)
    B = np.eye(mdp.n_states) - gn * M
    Dw = np.diag(d)
    r_n = nstep_reward(mdp, pi, n)
    C = _reward_next_state_moment(mdp, pi, n)
    cov_xx = gn**2 * (np.diag(d @ M) - M.T @ Dw @ M)  # E_d[Cov(x | s_t)]: variance of gamma^n V(s_{t+n})
    cov_xg = gn * (C.T @ d - M.T @ Dw @ r_n)  # E_d[Cov(x, g | s_t)]: covariance with the rewards
    return _solve(Phi.T @ (B.T @ Dw @ B + cov_xx) @ Phi, Phi.T @ (B.T @ Dw @ r_n - cov_xg), Phi)


def msbe_minimiser(mdp: _mdp.MDP, pi, n: int = 1, features=None, weights=None) -> np.ndarray:
    """The minimiser of the mean-squared Bellman error ``|| T^n V - V ||_D^2`` over ``V = Phi theta``.

    The residual gradient with the *expected* target (two independent next-state samples).
    Tabular: ``V^pi``.
    """
    mdp, pi, n, Phi, d = _setup(mdp, pi, n, features, weights)
    P_pi, _ = _reward_and_chain(mdp, pi)
    B = (np.eye(mdp.n_states) - mdp.gamma**n * np.linalg.matrix_power(P_pi, n)) @ Phi
    D = np.diag(d)
    return _solve(B.T @ D @ B, B.T @ D @ nstep_reward(mdp, pi, n), Phi)
