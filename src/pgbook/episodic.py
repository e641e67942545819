"""Episodic MDPs, the undiscounted return, and the direction the agents actually follow.

Chapter 9 (:doc:`/book/ch09_a2c`, section *Which gradient the agents follow*), equations
``eq-episodic-pg`` and ``eq-agent-direction``, proposition ``prop-agent-direction`` and remark
``rem-gridworld-random-values``; chapter 10 refers to it for PPO's first minibatch.

An *episodic* MDP (:class:`pgbook.mdp.MDP` with a ``terminal`` mask) ends when it enters an
absorbing, zero-reward terminal state; for a *proper* policy (one that reaches the terminal set
with probability 1) the undiscounted return ``J_1 = E[sum_{t<L} r_t]`` is finite (``L`` the
episode length) and :mod:`pgbook.mdp` solves for it on the non-terminal block. Notation, for a
tabular softmax policy ``pi = softmax(theta)``:

* ``rho(s) = E[#{t < L : s_t = s}] = p0^T (I - P_pi)^{-1}`` (non-terminal block): the expected
  number of visits per episode, undiscounted (:func:`episode_visits`; sums to ``E[L]``);
* ``eta_gamma(s) = sum_t gamma^t Pr(s_t = s, t < L)`` and ``A_gamma`` the discounted advantage
  (:func:`pgbook.mdp.discounted_visits`, :func:`pgbook.mdp.advantage_values`);
* ``grad J_gamma = sum_s eta_gamma(s) sum_a pi grad log pi A_gamma`` (eq. ``eq-pg-visitation``,
  :func:`discounted_gradient`);
* ``grad J_1 = sum_s rho(s) sum_a pi grad log pi A_1`` (eq. ``eq-episodic-pg``,
  :func:`undiscounted_gradient`), checked against :func:`autograd_gradient` and finite differences;
* ``g_agent = sum_s rho(s) sum_a pi grad log pi A_gamma`` (eq. ``eq-agent-direction``,
  :func:`agent_direction`): the expectation of the per-episode *sum*
  ``sum_{t<L} grad log pi(a_t|s_t) A_gamma(s_t, a_t)`` — time steps weighted uniformly, no
  ``gamma^t``. The agents' losses (``pgbook.a2c.a2c_losses``, ``pgbook.ppo.ppo_losses`` at
  ``theta_old``) take the *mean* over the steps of a batch; over whole episodes (or, by the
  renewal-reward theorem, over long runs of auto-resetting environments) that mean tends to
  ``g_agent / E[L]``: the same direction, a positive scale that the learning rate absorbs.
  :func:`agent_direction_samples` computes the per-episode sums from sampled episodes through
  ``a2c_losses`` itself.

Examples: :func:`gridworld_4x4` (Sutton & Barto, Example 4.1), :func:`random_episodic_mdp`,
:func:`delayed_reward_mdp` (where ``g_agent`` points exactly away from ``grad J_1``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from . import mdp as _mdp
from . import gradients, policies
from .gridworld import gridworld
from ._validate import check_gamma, check_positive_int, check_seed, check_shape

__all__ = [
    "GRIDWORLD_RANDOM_POLICY_VALUES",
    "gridworld_4x4",
    "random_episodic_mdp",
    "delayed_reward_mdp",
    "episode_visits",
    "episode_visits_by_series",
    "undiscounted_return",
    "expected_return_torch",
    "autograd_gradient",
    "discounted_gradient",
    "undiscounted_gradient",
    "agent_direction",
    "DirectionComparison",
    "compare_directions",
    "Episodes",
    "sample_episodes",
    "agent_direction_samples",
]

#: ``V`` of the equiprobable random policy in Sutton & Barto's Example 4.1 (Figure 4.1, k = inf),
#: row by row; states 0 and 15 are terminal.
GRIDWORLD_RANDOM_POLICY_VALUES = np.array(
    [[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]], dtype=float
)


def _check_episodic(mdp) -> _mdp.MDP:
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    if mdp.terminal is None:
        raise ValueError("mdp must be episodic: declare its terminal states (MDP(..., terminal=mask))")
    return mdp


def _theta_for(mdp: _mdp.MDP, theta) -> np.ndarray:
    theta = policies.check_theta(theta)
    check_shape(theta, (mdp.n_states, mdp.n_actions), "theta")
    return theta


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def gridworld_4x4(gamma: float = 1.0) -> _mdp.MDP:
    """Sutton & Barto (2018), Example 4.1: the 4x4 gridworld with two terminal corners.

    States ``0..15`` row by row; 0 and 15 are terminal. Actions ``0..3`` = up, down, right, left
    move deterministically; a move off the grid leaves the state unchanged. Every step from a
    non-terminal state has reward -1. ``p0`` is uniform over the 14 non-terminal states (the book
    gives values per state and no initial distribution). Built by :func:`pgbook.gridworld.gridworld`
    (no walls, no slip, goals in two corners).
    """
    gamma = check_gamma(gamma, allow_one=True)
    return gridworld(4, 4, goals=[(0, 0), (3, 3)], gamma=gamma, step_reward=-1.0).mdp


def random_episodic_mdp(n_states: int, n_actions: int, seed: int, gamma: float = 1.0) -> _mdp.MDP:
    """``n_states`` non-terminal states plus one terminal state (the last index).

    ``P[s, a]`` is Dirichlet(1) over all ``n_states + 1`` states, so every transition has positive
    probability, the terminal state is reachable from everywhere and *every* policy is proper.
    Rewards are standard normal (0 in the terminal state); ``p0`` is Dirichlet(1) over the
    non-terminal states.
    """
    n = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    rng = np.random.default_rng(check_seed(seed))
    gamma = check_gamma(gamma, allow_one=True)
    S = n + 1
    P = np.zeros((S, A, S))
    P[:n] = rng.dirichlet(np.ones(S), size=(n, A))
    P[n, :, n] = 1.0
    R = np.zeros((S, A))
    R[:n] = rng.standard_normal((n, A))
    p0 = np.append(rng.dirichlet(np.ones(n)), 0.0)
    terminal = np.zeros(S, dtype=bool)
    terminal[n] = True
    return _mdp.MDP(P, R, p0, gamma, terminal)


def delayed_reward_mdp(delay: int, now_reward: float, later_reward: float, gamma: float) -> _mdp.MDP:
    """A choice between a reward now and a larger one later: discounting changes the better action.

    State 0 (where every episode starts): action 0 pays ``now_reward`` and ends the episode;
    action 1 pays 0 and enters a corridor of ``delay`` states ``1..delay`` that both actions walk
    through with reward 0, except that leaving state ``delay`` pays ``later_reward``. The terminal
    state is ``delay + 1``. So ``Q_gamma(0, 0) = now_reward`` and
    ``Q_gamma(0, 1) = gamma^delay later_reward``.
    """
    k = check_positive_int(delay, "delay")
    for name, x in (("now_reward", now_reward), ("later_reward", later_reward)):
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not math.isfinite(x):
            raise ValueError(f"{name} must be a finite number, got {x!r}")
    gamma = check_gamma(gamma, allow_one=True)
    S = k + 2
    P = np.zeros((S, 2, S))
    R = np.zeros((S, 2))
    P[0, 0, S - 1] = 1.0
    R[0, 0] = float(now_reward)
    P[0, 1, 1] = 1.0
    for s in range(1, k + 1):
        P[s, :, s + 1] = 1.0
    R[k, :] = float(later_reward)
    P[S - 1, :, S - 1] = 1.0
    p0 = np.zeros(S)
    p0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[S - 1] = True
    return _mdp.MDP(P, R, p0, gamma, terminal)


# ---------------------------------------------------------------------------------------------
# Exact quantities
# ---------------------------------------------------------------------------------------------


def episode_visits(mdp: _mdp.MDP, pi) -> np.ndarray:
    """``rho(s)``, the expected number of visits to ``s`` per episode (undiscounted), exactly.

    ``rho^T (I - P_pi) = p0^T`` on the non-terminal states (0 on terminal ones); sums to the
    expected episode length ``E[L]``. Raises ``ValueError`` for an improper ``pi``.
    """
    mdp = _check_episodic(mdp)
    return _mdp.discounted_visits(mdp.with_gamma(1.0), pi)


def episode_visits_by_series(mdp: _mdp.MDP, pi, tol: float = 1e-15, max_steps: int = 1_000_000) -> np.ndarray:
    """``rho(s) = sum_t Pr(s_t = s, t < L)`` summed forward in time, without a linear solve.

    Pushes the sub-probability of the non-terminal states forward (``q_{t+1} = q_t P_pi``
    restricted to non-terminal states) until its total mass is below ``tol``; an independent
    computation of :func:`episode_visits`. The neglected tail is at most ``tol / (1 - c)`` for a
    contraction factor ``c`` of the chain.
    """
    mdp = _check_episodic(mdp)
    pi = _mdp.check_policy(mdp, pi)
    if isinstance(tol, bool) or not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise ValueError(f"tol must be a float in (0, 1), got {tol!r}")
    n = check_positive_int(max_steps, "max_steps")
    live = ~mdp.terminal
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    q = np.where(live, mdp.p0, 0.0)
    total = np.zeros(mdp.n_states)
    for _ in range(n):
        total += q
        q = np.where(live, q @ P_pi, 0.0)
        if q.sum() < tol:
            return total + q
    raise ValueError(f"max_steps={n} steps leave mass {q.sum():.3g} >= tol: the policy terminates too slowly")


def undiscounted_return(mdp: _mdp.MDP, theta) -> float:
    """``J_1(theta) = E[sum_{t<L} r_t]`` of the tabular softmax policy, exact (linear solve)."""
    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    return _mdp.expected_return(mdp.with_gamma(1.0), policies.probs(theta))


def expected_return_torch(mdp: _mdp.MDP, theta: torch.Tensor) -> torch.Tensor:
    """Differentiable exact ``J_gamma(theta)`` of an episodic MDP (``gamma = 1`` allowed), in torch.

    Softmax, then the linear solve of ``(I - gamma P_pi) V = r_pi`` on the non-terminal block —
    the same solve as :func:`pgbook.mdp.state_values`, written in torch so that autograd can
    differentiate it. For ``gamma = 1`` the policy must be proper (checked on the numpy side).
    """
    mdp = _check_episodic(mdp)
    gradients.check_theta_tensor(mdp, theta)
    _mdp.state_values(mdp, policies.probs(theta.detach().cpu().numpy().astype(np.float64)))  # properness
    live = torch.as_tensor(np.flatnonzero(~mdp.terminal))
    p0 = torch.tensor(mdp.p0, dtype=theta.dtype)
    P_pi, r_pi = gradients.policy_chain_torch(mdp, theta)
    P_pi, r_pi = P_pi[live][:, live], r_pi[live]  # the non-terminal block
    V = torch.linalg.solve(torch.eye(len(live), dtype=theta.dtype) - mdp.gamma * P_pi, r_pi)
    return p0[live] @ V


def autograd_gradient(mdp: _mdp.MDP, theta) -> np.ndarray:
    """``grad_theta J_gamma`` by torch autograd through :func:`expected_return_torch`; shape ``(S, A)``.

    For ``grad J_1`` pass ``mdp.with_gamma(1.0)``.
    """
    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    expected_return_torch(mdp, t).backward()
    return t.grad.numpy()


def _score_sum(theta: np.ndarray, weights: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """``sum_s w(s) sum_a pi(a|s) grad log pi(a|s) adv(s, a)`` with the analytic softmax score.

    Contracted by the score's block structure (:func:`pgbook.gradients.score_contraction`), without
    the ``(S, A, S, A)`` array.
    """
    return gradients.score_contraction(policies.probs(theta), weights, adv)


def discounted_gradient(mdp: _mdp.MDP, theta) -> np.ndarray:
    """``grad J_gamma = sum_s eta_gamma(s) sum_a pi grad log pi A_gamma`` (eq. ``eq-pg-visitation``)."""
    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    pi = policies.probs(theta)
    return _score_sum(theta, _mdp.discounted_visits(mdp, pi), _mdp.advantage_values(mdp, pi))


def undiscounted_gradient(mdp: _mdp.MDP, theta) -> np.ndarray:
    """``grad J_1 = sum_s rho(s) sum_a pi grad log pi A_1`` (eq. ``eq-episodic-pg``); ``mdp.gamma`` is ignored."""
    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    pi = policies.probs(theta)
    m1 = mdp.with_gamma(1.0)
    return _score_sum(theta, _mdp.discounted_visits(m1, pi), _mdp.advantage_values(m1, pi))


def agent_direction(mdp: _mdp.MDP, theta) -> np.ndarray:
    """``g_agent = sum_s rho(s) sum_a pi grad log pi A_gamma`` (eq. ``eq-agent-direction``).

    The expectation of the per-episode sum ``sum_{t<L} grad log pi(a_t|s_t) A_gamma(s_t, a_t)``:
    undiscounted visits ``rho`` (no ``gamma^t``), discounted advantages ``A_gamma`` with
    ``gamma = mdp.gamma``. The agents' per-step mean tends to ``g_agent / E[L]``.
    """
    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    pi = policies.probs(theta)
    return _score_sum(theta, episode_visits(mdp, pi), _mdp.advantage_values(mdp, pi))


@dataclass(frozen=True)
class DirectionComparison:
    """``g_agent`` against ``grad J_gamma`` and ``grad J_1``: angles (degrees) and relative distances.

    ``rel_gamma = |g_agent - grad J_gamma| / |grad J_gamma|``, ``rel_one = |g_agent - grad J_1| /
    |grad J_1|``; ``inner_one = <g_agent, grad J_1>`` (positive: an ascent direction of ``J_1``).
    """

    gamma: float
    angle_gamma: float
    angle_one: float
    rel_gamma: float
    rel_one: float
    inner_gamma: float
    inner_one: float


def _angle(u: np.ndarray, v: np.ndarray) -> float:
    c = float(u.ravel() @ v.ravel() / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def compare_directions(mdp: _mdp.MDP, theta) -> DirectionComparison:
    """Exact comparison of :func:`agent_direction` with :func:`discounted_gradient` and :func:`undiscounted_gradient`."""
    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    g = agent_direction(mdp, theta)
    gg = discounted_gradient(mdp, theta)
    g1 = undiscounted_gradient(mdp, theta)
    if not (np.any(gg) and np.any(g1)):
        raise ValueError("theta is a stationary point of J_gamma or J_1: the angles are undefined")
    return DirectionComparison(
        gamma=mdp.gamma,
        angle_gamma=_angle(g, gg),
        angle_one=_angle(g, g1),
        rel_gamma=float(np.linalg.norm(g - gg) / np.linalg.norm(gg)),
        rel_one=float(np.linalg.norm(g - g1) / np.linalg.norm(g1)),
        inner_gamma=float(np.sum(g * gg)),
        inner_one=float(np.sum(g * g1)),
    )


# ---------------------------------------------------------------------------------------------
# Sampled episodes and the agents' own per-step formula
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episodes:
    """Sampled whole episodes, flattened: step ``i`` is time ``t[i]`` of episode ``episode[i]``.

    ``lengths[n]`` is the number of steps of episode ``n`` before it entered a terminal state.
    """

    episode: np.ndarray
    t: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray


def sample_episodes(mdp: _mdp.MDP, pi, n_episodes: int, seed: int, max_steps: int = 100_000) -> Episodes:
    """Sample ``n_episodes`` whole episodes under ``pi`` until each enters a terminal state.

    Raises ``ValueError`` if an episode is still running after ``max_steps`` steps (no truncation
    is ever applied silently).
    """
    mdp = _check_episodic(mdp)
    pi = _mdp.check_policy(mdp, pi)
    N = check_positive_int(n_episodes, "n_episodes")
    H = check_positive_int(max_steps, "max_steps")
    rng = np.random.default_rng(check_seed(seed))
    pi_cdf, successor = np.cumsum(pi, axis=1), _mdp._successor_sampler(mdp)
    S, A = mdp.n_states, mdp.n_actions
    s = np.minimum(np.searchsorted(np.cumsum(mdp.p0), rng.random(N), side="right"), S - 1)
    active = ~mdp.terminal[s]
    lengths = np.zeros(N, dtype=np.int64)
    parts = []
    t = 0
    while active.any():
        if t >= H:
            raise ValueError(f"max_steps={H}: {int(active.sum())} episodes have not terminated")
        idx = np.flatnonzero(active)
        st = s[idx]
        a = np.minimum((rng.random(idx.size)[:, None] >= pi_cdf[st]).sum(axis=1), A - 1)
        s2 = successor(st, a, rng.random(idx.size))
        parts.append((idx, np.full(idx.size, t), st, a, mdp.R[st, a]))
        lengths[idx] += 1
        s[idx] = s2
        active[idx] = ~mdp.terminal[s2]
        t += 1
    cols = [np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype=int) for i in range(5)]
    return Episodes(*cols, lengths=lengths)


def agent_direction_samples(mdp: _mdp.MDP, theta, n_episodes: int, seed: int, max_steps: int = 100_000) -> np.ndarray:
    """Per-episode sums ``sum_{t<L} grad log pi(a_t|s_t) A_gamma(s_t, a_t)``; shape ``(N, S, A)``.

    Computed with the agents' own loss: the policy term of :func:`pgbook.a2c.a2c_losses` on the
    batch of all sampled steps (logits ``theta[s_t]``, advantages the exact ``A_gamma(s_t, a_t)``,
    i.e. a perfect critic), differentiated by autograd with respect to each step's logits and
    multiplied by ``-B`` (the loss is ``-mean`` over the ``B`` steps); each step's row is added to
    its episode's table. The mean over episodes estimates :func:`agent_direction`; the episodes
    are independent, so :func:`pgbook.montecarlo.mean_ci` over axis 0 gives a valid interval.
    """
    from .a2c import a2c_losses  # the agents' code; imported here to keep this module light

    mdp = _check_episodic(mdp)
    theta = _theta_for(mdp, theta)
    pi = policies.probs(theta)
    ep = sample_episodes(mdp, pi, n_episodes, seed, max_steps)
    A = _mdp.advantage_values(mdp, pi)
    B = ep.states.size
    logits = torch.tensor(theta[ep.states], dtype=torch.float64, requires_grad=True)
    zeros = torch.zeros(B, dtype=torch.float64)
    adv = torch.tensor(A[ep.states, ep.actions], dtype=torch.float64)
    loss = a2c_losses(logits, zeros, torch.as_tensor(ep.actions), adv, zeros).policy
    (per_step,) = torch.autograd.grad(loss, logits)
    rows = -B * per_step.numpy()  # grad log pi(a_t|s_t) A_t with respect to theta[s_t]
    out = np.zeros((ep.lengths.size, mdp.n_states, mdp.n_actions))
    np.add.at(out, (ep.episode, ep.states), rows)
    return out
