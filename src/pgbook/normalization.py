"""Reward scaling and gymnasium's running normalisation wrappers, measured.

Chapter 11 (:doc:`/book/ch11_continuous_actions`, section "Observation and reward normalisation").

* ``prop-cont-reward-scale`` — multiplying every reward of an MDP by a constant ``c > 0``
  multiplies every value, advantage and the policy gradient by ``c`` and leaves the optimal
  policy unchanged: :func:`scale_rewards`, :func:`optimal_action_values` (value iteration).
* ``rem-cont-normalize-reward`` — ``gymnasium.wrappers.NormalizeReward`` divides each reward by
  ``sqrt(var_t + epsilon)``, where ``var_t`` is the running variance of the discounted accumulator
  ``D_t = gamma (1 - terminated_{t-1}) D_{t-1} + r_t`` over all steps so far (a prior of count
  1e-4, mean 0 and variance 1 included). The factor changes at every step:
  :func:`normalize_reward_scales` runs the real wrapper over a scripted reward sequence and returns
  the factor it applied at each step. :func:`normalize_observation_trace` does the same for
  ``NormalizeObservation``.

:class:`ScriptedEnv` is the scripted environment both run the wrappers on.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from . import mdp as _mdp
from ._validate import as_float_array, check_gamma, check_mdp, check_positive_int, check_real

__all__ = ["scale_rewards", "optimal_action_values", "ScriptedEnv", "normalize_reward_scales", "normalize_observation_trace"]


def scale_rewards(mdp: _mdp.MDP, c) -> _mdp.MDP:
    """The MDP with every expected reward multiplied by ``c > 0`` (prop. ``prop-cont-reward-scale``).

    The result has a dense transition array (a sparse ``P`` is densified by
    :func:`pgbook.mdp.transition_array`, which refuses arrays too large for memory)."""
    mdp = check_mdp(mdp)
    c = check_real(c, "c", 0.0, low_open=True)
    with np.errstate(over="ignore"):
        R = mdp.R * c
    if not np.all(np.isfinite(R)):
        raise ValueError(f"c = {c!r} times the rewards overflows float64")
    return dataclasses.replace(mdp, P=_mdp.transition_array(mdp), R=R)


def optimal_action_values(mdp: _mdp.MDP, tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
    """``Q*`` by value iteration, ``Q <- R + gamma P max_a' Q``, until the update moves it by ``< tol``.

    Continuing MDPs (``gamma < 1``) only. Returns ``(S, A)``; its row-wise argmax is an optimal policy.
    """
    mdp = check_mdp(mdp)
    tol = check_real(tol, "tol", 0.0, low_open=True)
    max_iter = check_positive_int(max_iter, "max_iter")
    if mdp.gamma >= 1.0:
        raise ValueError(f"mdp must be discounted (gamma < 1) for value iteration, got gamma={mdp.gamma}")
    S, A = mdp.R.shape
    Q = np.zeros((S, A))
    for _ in range(max_iter):
        nxt = _mdp.next_state_expectation(mdp, Q.max(axis=1))
        Q_new = mdp.R + mdp.gamma * nxt
        if np.max(np.abs(Q_new - Q)) < tol * max(1.0, float(np.max(np.abs(Q_new)))):
            return Q_new
        Q = Q_new
    raise ValueError(f"value iteration did not reach tol={tol:g} in max_iter={max_iter} iterations")


class ScriptedEnv(gym.Env):
    """An environment that replays given observations, rewards and terminations, whatever the action.

    ``observations``: ``(T + 1, d)`` (the first is returned by ``reset``); ``rewards``: ``(T,)``;
    ``terminated``: ``(T,)`` booleans or None (never). After a termination the next ``step`` simply
    continues the script (the wrappers' statistics are what is being measured, not episodes).
    """

    metadata: dict = {"render_modes": []}

    def __init__(self, observations, rewards, terminated=None):
        obs = as_float_array(observations, "observations", ndim=2)
        rew = as_float_array(rewards, "rewards", ndim=1)
        if obs.shape[0] != rew.shape[0] + 1:
            raise ValueError(f"observations must have one row more than rewards ({rew.shape[0] + 1}), got {obs.shape[0]}")
        if obs.shape[1] == 0:
            raise ValueError("observations must have at least one column")
        if terminated is None:
            term = np.zeros(rew.shape[0], dtype=bool)
        else:
            term = np.asarray(terminated)
            if term.dtype != bool or term.shape != rew.shape:
                raise ValueError(f"terminated must be a boolean array of shape {rew.shape}, got {term.dtype} {term.shape}")
        self._obs, self._rew, self._term = obs, rew, term
        self._t = 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs.shape[1],), dtype=np.float64)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self._obs[0].copy(), {}

    def step(self, action):
        if self._t >= self._rew.shape[0]:
            raise ValueError("the script has no more steps; call reset()")
        t = self._t
        self._t += 1
        return self._obs[t + 1].copy(), float(self._rew[t]), bool(self._term[t]), False, {}


def normalize_reward_scales(rewards, gamma: float = 0.99, epsilon: float = 1e-8, terminated=None) -> np.ndarray:
    """The factor ``1 / sqrt(var_t + epsilon)`` that ``gymnasium.wrappers.NormalizeReward`` applies at each step.

    Runs the installed wrapper over a :class:`ScriptedEnv` replaying ``rewards`` (``(T,)``) and
    ``terminated``, and reads its running variance after each step (rem. ``rem-cont-normalize-reward``).
    Returns ``(T,)``: the normalised reward of step ``t`` is ``rewards[t] * scales[t]``.
    """
    rew = as_float_array(rewards, "rewards", ndim=1)
    if rew.shape[0] == 0:
        raise ValueError("rewards must not be empty")
    gamma = check_gamma(gamma, allow_one=True)
    epsilon = check_real(epsilon, "epsilon", 0.0, low_open=True)
    env = ScriptedEnv(np.zeros((rew.shape[0] + 1, 1)), rew, terminated)
    wrapped = gym.wrappers.NormalizeReward(env, gamma=gamma, epsilon=epsilon)
    wrapped.reset(seed=0)
    scales = np.empty(rew.shape[0])
    with np.errstate(over="ignore"):
        for t in range(rew.shape[0]):
            wrapped.step(0)
            scales[t] = 1.0 / np.sqrt(float(wrapped.return_rms.var) + epsilon)
    return scales


def normalize_observation_trace(observations, epsilon: float = 1e-8) -> np.ndarray:
    """What ``gymnasium.wrappers.NormalizeObservation`` returns for each of ``observations`` ``(T + 1, d)``.

    The wrapper updates its running mean and variance with each observation *before* normalising it,
    so the same raw observation maps to different inputs at different times. Returns ``(T + 1, d)``
    (float32, as the wrapper returns it, converted to float64).
    """
    obs = as_float_array(observations, "observations", ndim=2)
    if obs.shape[0] < 1:
        raise ValueError("observations must have at least one row")
    epsilon = check_real(epsilon, "epsilon", 0.0, low_open=True)
    env = ScriptedEnv(obs, np.zeros(obs.shape[0] - 1))
    wrapped = gym.wrappers.NormalizeObservation(env, epsilon=epsilon)
    out = np.empty(obs.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        first, _ = wrapped.reset(seed=0)
        out[0] = first
        for t in range(1, obs.shape[0]):
            o, *_ = wrapped.step(0)
            out[t] = o
    return out
