"""The agents' environments: checks, the vector environment, and the normalisation wrappers.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) and 11 (continuous actions).

* :func:`env_spaces` — fails at once, with a clear message, on an unknown environment id, a
  missing dependency or spaces the agents cannot drive; returns the sizes the networks need
  (:class:`EnvSpaces`): a flat Box observation, and a Discrete action space (the categorical policy
  of chapters 9–10) or a flat, bounded Box action space (the diagonal Gaussian policy of chapter 11).
* :func:`check_env` — the same check for the discrete-action agents (A2C), returning
  ``(obs_dim, n_actions)``.
* :func:`make_vec_env` — a gymnasium ``SyncVectorEnv`` in **same-step** autoreset mode, optionally
  with observation normalisation and reward scaling (gymnasium's ``NormalizeObservation`` and
  vector ``NormalizeReward``, the wrappers of CleanRL's ``ppo_continuous_action.py``).
* :class:`FastRunningMeanStd` — gymnasium's running statistics, the same numbers, without two
  reductions per step for the usual batch of one row.

Episode ends (``eq-a2c-truncation``). gymnasium 1.x distinguishes *terminated* (the MDP reached
a terminal state: no future reward, bootstrap with 0) from *truncated* (a time limit stopped the
episode: the state still has a value, bootstrap with ``V(s_{t+1})``). Vector environments reset
a finished sub-environment automatically. gymnasium 1.x's default ``NEXT_STEP`` mode returns the
reset observation one step *later* (that step is not a transition and must be dropped); we build
the vector environment with ``AutoresetMode.SAME_STEP`` instead, where every step is a real
transition, the returned observation of a finished sub-environment is already the reset one,
and the true final observation ``s_{t+1}`` is in ``infos["final_obs"]``. The critic's value of
that true final observation is what a truncated step bootstraps from — never the value of the
reset observation.

Normalisation. gymnasium's *vector* ``NormalizeObservation`` refuses same-step autoreset (it would
leave ``infos["final_obs"]`` unnormalised), so observations are normalised by the per-environment
wrapper inside each sub-environment — the final observation is then normalised like every other —
with **one** :class:`~gymnasium.wrappers.utils.RunningMeanStd` shared by all sub-environments
(CleanRL keeps one per sub-environment; one set of statistics is what the greedy evaluation, which
freezes them, needs). Rewards are scaled by the vector ``NormalizeReward`` (same-step aware); the
unscaled rewards travel in ``infos["raw_reward"]`` so the episode returns the agents log are the
environment's.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd

from ._validate import check_gamma as _check_gamma
from .agent_config import _check_int, _check_max_episode_steps

__all__ = ["EnvSpaces", "env_spaces", "check_env", "make_vec_env", "FastRunningMeanStd"]


@dataclass(frozen=True)
class EnvSpaces:
    """What the networks need to know about an environment (from :func:`env_spaces`)."""

    #: length of the (flat) observation vector.
    obs_dim: int
    #: number of actions of a Discrete action space; None for a Box action space.
    n_actions: int | None
    #: length of the action vector of a Box action space; None for a Discrete one.
    action_dim: int | None
    #: the Box's bounds, float32 arrays of shape (action_dim,); None for a Discrete space.
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None

    @property
    def continuous(self) -> bool:
        return self.action_dim is not None


def _spaces_of(env_id: str):
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string, got {env_id!r}")
    try:
        gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"env_id {env_id!r} is not a registered gymnasium environment ({exc})") from None
    try:
        env = gym.make(env_id)
    except gym.error.DependencyNotInstalled as exc:  # e.g. LunarLander-v3 without box2d
        raise ValueError(f"env_id {env_id!r} needs a package that is not installed: {exc}") from None
    try:
        act, obs = env.action_space, env.observation_space
    finally:
        env.close()
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        raise ValueError(f"env_id {env_id!r} has observation space {obs}; a flat Box (vector) is needed")
    return obs, act


def env_spaces(env_id: str) -> EnvSpaces:
    """Check that ``env_id`` exists and suits the agents; return its :class:`EnvSpaces`.

    Raises ``ValueError`` for an unknown id, a missing dependency (e.g. box2d for
    ``LunarLander-v3``), an observation that is not a flat vector, or an action space that is
    neither Discrete nor a flat Box with finite bounds — before any training starts.
    """
    obs, act = _spaces_of(env_id)
    if isinstance(act, gym.spaces.Discrete):
        return EnvSpaces(int(obs.shape[0]), int(act.n), None)
    if isinstance(act, gym.spaces.Box) and len(act.shape) == 1:
        low, high = np.asarray(act.low, dtype=np.float32), np.asarray(act.high, dtype=np.float32)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"env_id {env_id!r} has action space {act}; the Gaussian policy needs finite bounds")
        return EnvSpaces(int(obs.shape[0]), None, int(act.shape[0]), low, high)
    raise ValueError(
        f"env_id {env_id!r} has action space {act}; the agents of this book need a Discrete action space "
        "(Categorical policy) or a flat Box (diagonal Gaussian policy, PPO)"
    )


def check_env(env_id: str) -> tuple[int, int]:
    """Check that ``env_id`` exists and suits a discrete-action agent; return (obs_dim, n_actions).

    Raises ``ValueError`` for an unknown id, a missing dependency (e.g. box2d for
    ``LunarLander-v3``), a non-discrete action space (e.g. ``Pendulum-v1``: A2C has only the
    categorical policy) or an observation that is not a flat vector — before any training starts.
    """
    obs, act = _spaces_of(env_id)
    if not isinstance(act, gym.spaces.Discrete):
        raise ValueError(
            f"env_id {env_id!r} has action space {act}; the A2C agent of this book uses a "
            "Categorical policy and needs a Discrete action space (PPO also drives a Box action space)"
        )
    return int(obs.shape[0]), int(act.n)


def _make_env(env_id: str, max_episode_steps: int | None, obs_rms: RunningMeanStd | None = None, frozen: bool = False):
    """One environment; with ``obs_rms``, wrapped in gymnasium's ``NormalizeObservation`` whose
    statistics are ``obs_rms`` (shared, updated at every step unless ``frozen``)."""
    kwargs = {"disable_env_checker": True}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    env = gym.make(env_id, **kwargs)
    if obs_rms is not None:
        env = gym.wrappers.NormalizeObservation(env)
        env.obs_rms = obs_rms
        env.update_running_mean = not frozen
    return env


class FastRunningMeanStd(RunningMeanStd):
    """gymnasium's :class:`~gymnasium.wrappers.utils.RunningMeanStd` with a shortcut for a batch of one row.

    The normalisation wrappers update their statistics at every environment step, usually with a
    batch of one row: ``NormalizeObservation`` with the one observation, the vector
    ``NormalizeReward`` with the accumulator of a single environment (the MuJoCo settings of
    chapter 11 run one). The parent's ``update`` computes ``np.mean`` and ``np.var`` of that row,
    which are the row itself and zeros; here the row and zeros go straight to the parent's
    ``update_from_moments`` (gymnasium's parallel-variance formula, unchanged): the same numbers
    bit for bit (tests/test_continuous_agent.py), without the two reductions, which took a quarter
    of a HalfCheetah step with both wrappers (about 129 down to 97 microseconds on this book's
    machine: ``benchmarks/env_step_normalization.py``). The one exception is a row with an infinite
    entry, whose batch variance is NaN for the parent (``inf - inf``) and 0 here: the statistics
    are then unusable either way (an infinite mean; variance NaN there, infinite here). A batch of
    several rows, or one that is not a numpy array, takes the parent's path. The agents create their
    statistics with this class; :func:`make_vec_env` accepts either.
    """

    def update(self, x):
        if isinstance(x, np.ndarray) and x.ndim >= 1 and x.shape[0] == 1:  # one sample: mean = the sample, variance = 0
            row = x[0]
            self.update_from_moments(row, np.zeros_like(row), 1)
        else:
            super().update(x)


class _RawReward(gym.vector.VectorWrapper):
    """Copies the environment's rewards into ``infos["raw_reward"]`` (below ``NormalizeReward``)."""

    def step(self, actions):
        obs, reward, terminated, truncated, infos = self.env.step(actions)
        infos = dict(infos)
        infos["raw_reward"] = np.array(reward, dtype=np.float64, copy=True)
        return obs, reward, terminated, truncated, infos


def _check_obs_rms(obs_rms, obs_dim: int | None = None, name: str = "obs_rms") -> RunningMeanStd | None:
    """None, or a :class:`~gymnasium.wrappers.utils.RunningMeanStd` of finite statistics (shape (obs_dim,))."""
    if obs_rms is None:
        return None
    if not isinstance(obs_rms, RunningMeanStd):
        raise ValueError(f"{name} must be a gymnasium.wrappers.utils.RunningMeanStd or None, got {type(obs_rms).__name__}")
    mean, var = np.asarray(obs_rms.mean), np.asarray(obs_rms.var)
    if obs_dim is not None and (mean.shape != (obs_dim,) or var.shape != (obs_dim,)):
        raise ValueError(f"{name} must hold statistics of shape ({obs_dim},), got {mean.shape} and {var.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
        raise ValueError(f"{name} must hold a finite mean and a finite non-negative variance")
    return obs_rms


def make_vec_env(
    env_id: str,
    n_envs: int,
    max_episode_steps: int | None = None,
    obs_rms: RunningMeanStd | None = None,
    reward_gamma: float | None = None,
) -> gym.vector.VectorEnv:
    """``n_envs`` copies of ``env_id`` in a ``SyncVectorEnv`` with same-step autoreset.

    Same-step mode: ``step`` returns, for a sub-environment whose episode just ended, the *reset*
    observation, and the true final observation in ``infos["final_obs"][i]`` (mask
    ``infos["_final_obs"]``). Synchronous, because CartPole is so cheap that inter-process
    communication would cost more than it saves.

    ``obs_rms``: normalise every sub-environment's observations with these running statistics
    (a :class:`~gymnasium.wrappers.utils.RunningMeanStd` of shape ``(obs_dim,)``, shared and updated
    as the environments step). ``reward_gamma``: scale the rewards by the running standard
    deviation of the return discounted with it (gymnasium's vector ``NormalizeReward``); the
    environment's rewards are then in ``infos["raw_reward"]``.
    """
    spaces = env_spaces(env_id)
    _check_int(n_envs, "n_envs", 1)
    max_episode_steps = _check_max_episode_steps(max_episode_steps)
    obs_rms = _check_obs_rms(obs_rms, spaces.obs_dim)
    if reward_gamma is not None:
        reward_gamma = _check_gamma(reward_gamma, "reward_gamma", allow_one=True)
    envs = gym.vector.SyncVectorEnv(
        [lambda: _make_env(env_id, max_episode_steps, obs_rms) for _ in range(n_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        copy=False,
    )
    if reward_gamma is not None:
        envs = gym.wrappers.vector.NormalizeReward(_RawReward(envs), gamma=reward_gamma)
        envs.return_rms = FastRunningMeanStd(shape=())  # the wrapper's own initial state, faster updates
    return envs
