"""Reward scaling and gymnasium's running normalisation wrappers, measured.

Chapter 11 (:doc:`/book/ch11_continuous_actions`, section "Observation and reward normalisation").

* ``prop-cont-reward-scale`` — multiplying every reward of an MDP by a constant ``c > 0``
  multiplies every value, advantage and the policy gradient by ``c`` and leaves the optimal
  policy unchanged: :func:`scale_rewards`, :func:`optimal_action_values` (value iteration).
* ``rem-cont-normalize-reward`` — ``gymnasium.wrappers.NormalizeReward`` (the single-environment
  wrapper) divides each reward by ``sqrt(var_t + epsilon)``, where ``var_t`` is the running variance
  of the discounted accumulator ``D_t = gamma (1 - terminated_t) D_{t-1} + r_t`` over all steps so
  far (a prior of count 1e-4, mean 0 and variance 1 included). A terminating step keeps only its own
  reward, ``D_T = r_T``; truncation does not reset ``D`` and neither does ``reset()``, so the next
  episode starts from ``gamma r_T``. The vector wrapper ``gymnasium.wrappers.vector.NormalizeReward``
  under same-step autoreset (what :func:`pgbook.envs.make_vec_env` uses) computes the same ``D_t``
  but sets it to 0 after a terminated *or* truncated step and on ``reset()``, and keeps it in
  float32. The factor changes at every step: :func:`normalize_reward_scales` runs either real
  wrapper over a scripted reward sequence, calling ``reset()`` after every episode end as a training
  loop does, and returns the factor it applied at each step; :func:`normalize_reward_accumulators`
  returns the accumulator ``D_t``. :func:`normalize_observation_trace` does the same for
  ``NormalizeObservation``.

:class:`ScriptedEnv` is the scripted environment both run the wrappers on.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np

from . import mdp as _mdp
from ._validate import as_float_array, check_gamma, check_mdp, check_positive_int, check_real

__all__ = [
    "scale_rewards",
    "optimal_action_values",
    "ScriptedEnv",
    "normalize_reward_scales",
    "normalize_reward_accumulators",
    "normalize_observation_trace",
]


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
    """An environment that replays given observations, rewards and episode ends, whatever the action.

    ``observations``: ``(T + 1, d)``; ``rewards``: ``(T,)``; ``terminated`` and ``truncated``:
    ``(T,)`` booleans or None (never). The script is one stream: ``reset`` does not rewind it but
    returns the observation at the current position (the first one on the first call), so a loop
    that calls ``reset`` after every episode end, as a training loop does, walks through the whole
    script (the wrappers' statistics are what is being measured, not episodes).
    """

    metadata: dict = {"render_modes": []}

    def __init__(self, observations, rewards, terminated=None, truncated=None):
        obs = as_float_array(observations, "observations", ndim=2)
        rew = as_float_array(rewards, "rewards", ndim=1)
        if obs.shape[0] != rew.shape[0] + 1:
            raise ValueError(f"observations must have one row more than rewards ({rew.shape[0] + 1}), got {obs.shape[0]}")
        if obs.shape[1] == 0:
            raise ValueError("observations must have at least one column")
        self._obs, self._rew = obs, rew
        self._term = _flags(terminated, "terminated", rew.shape)
        self._trunc = _flags(truncated, "truncated", rew.shape)
        self._t = 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs.shape[1],), dtype=np.float64)
        self.action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs[self._t].copy(), {}

    def step(self, action):
        if self._t >= self._rew.shape[0]:
            raise ValueError("the script has no more steps")
        t = self._t
        self._t += 1
        return self._obs[t + 1].copy(), float(self._rew[t]), bool(self._term[t]), bool(self._trunc[t]), {}


def _flags(flags, name: str, shape) -> np.ndarray:
    if flags is None:
        return np.zeros(shape, dtype=bool)
    arr = np.asarray(flags)
    if arr.dtype != bool or arr.shape != shape:
        raise ValueError(f"{name} must be a boolean array of shape {shape}, got {arr.dtype} {arr.shape}")
    return arr


def _run_normalize_reward(rewards, gamma, epsilon, terminated, truncated, vector):
    """Runs NormalizeReward (single-env or vector, same-step autoreset) over the script; (scales, D)."""
    rew = as_float_array(rewards, "rewards", ndim=1)
    if rew.shape[0] == 0:
        raise ValueError("rewards must not be empty")
    gamma = check_gamma(gamma, allow_one=True)
    epsilon = check_real(epsilon, "epsilon", 0.0, low_open=True)
    if not isinstance(vector, (bool, np.bool_)):
        raise ValueError(f"vector must be a bool, got {vector!r}")
    term = _flags(terminated, "terminated", rew.shape)
    trunc = _flags(truncated, "truncated", rew.shape)
    T = rew.shape[0]
    scales, acc = np.empty(T), np.empty(T)
    # float32 (vector wrapper) or float64 overflow of huge rewards gives inf / nan, as the wrapper does
    with np.errstate(over="ignore", invalid="ignore"):
        if vector:
            envs = gym.vector.SyncVectorEnv(
                [lambda: ScriptedEnv(np.zeros((T + 1, 1)), rew, term, trunc)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
            )
            wrapped = gym.wrappers.vector.NormalizeReward(envs, gamma=gamma, epsilon=epsilon)

            def step():  # the vector environment resets a finished sub-environment itself
                wrapped.step(np.zeros(1, dtype=np.int64))
                return float(wrapped.accumulated_reward[0])

        else:
            wrapped = gym.wrappers.NormalizeReward(ScriptedEnv(np.zeros((T + 1, 1)), rew, term, trunc), gamma=gamma, epsilon=epsilon)

            def step():
                _, _, te, tr, _ = wrapped.step(0)
                d = float(np.asarray(wrapped.discounted_reward).reshape(-1)[0])
                if te or tr:
                    wrapped.reset()  # as a training loop does; this wrapper does not clear D here
                return d

        wrapped.reset(seed=0)
        for t in range(T):
            acc[t] = step()
            scales[t] = 1.0 / np.sqrt(float(wrapped.return_rms.var) + epsilon)
    return scales, acc


def normalize_reward_scales(rewards, gamma: float = 0.99, epsilon: float = 1e-8, terminated=None, truncated=None, vector: bool = False) -> np.ndarray:
    """The factor ``1 / sqrt(var_t + epsilon)`` that gymnasium's ``NormalizeReward`` applies at each step.

    Runs the installed wrapper over a :class:`ScriptedEnv` replaying ``rewards`` (``(T,)``),
    ``terminated`` and ``truncated`` (rem. ``rem-cont-normalize-reward``), calling ``reset()`` after
    every episode end. ``vector=False``: ``gymnasium.wrappers.NormalizeReward`` on the environment;
    ``vector=True``: ``gymnasium.wrappers.vector.NormalizeReward`` on a one-environment
    ``SyncVectorEnv`` with same-step autoreset (as :func:`pgbook.envs.make_vec_env` builds it).
    Returns ``(T,)``: the normalised reward of step ``t`` is ``rewards[t] * scales[t]``.
    """
    return _run_normalize_reward(rewards, gamma, epsilon, terminated, truncated, vector)[0]


def normalize_reward_accumulators(rewards, gamma: float = 0.99, epsilon: float = 1e-8, terminated=None, truncated=None, vector: bool = False) -> np.ndarray:
    """The accumulator ``D_t`` whose running variance ``NormalizeReward`` divides by, after each step.

    Same arguments and run as :func:`normalize_reward_scales`. Single-environment wrapper:
    ``D_t = gamma (1 - terminated_t) D_{t-1} + r_t``, never cleared (rem. ``rem-cont-normalize-reward``).
    Vector wrapper: the same recursion in float32, the statistics updated with it, and then ``D``
    set to 0 after a terminated or truncated step; the value returned is the one the wrapper holds
    after the step (0 after an episode end).
    """
    return _run_normalize_reward(rewards, gamma, epsilon, terminated, truncated, vector)[1]


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
