"""Evaluating a policy: deterministic episodes, how random it still is, and training results.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) and 11 (continuous actions).

* :func:`evaluate` — deterministic evaluation episodes: the greedy action ``argmax_a pi_theta(a|s)``
  of a categorical policy, the mean ``mu_theta(s)`` of a Gaussian one (clipped to the action bounds
  when it is passed to ``env.step``), with the training run's observation normalisation frozen.
* :func:`policy_entropy` and :func:`greedy_probability` — how random the policy still is at given
  observations: ``H(pi_theta(.|s))`` and ``max_a pi_theta(a|s)``.
* :class:`TrainResult` — what :func:`pgbook.a2c.train` and :func:`pgbook.ppo.train` return.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium.wrappers.utils import RunningMeanStd
from torch.distributions import Distribution

from ._validate import as_float_array as _as_float_array
from .agent_config import _check_int, _check_max_episode_steps
from .envs import _check_obs_rms, _make_env, env_spaces
from .networks import ActorCritic

__all__ = ["evaluate", "policy_entropy", "greedy_probability", "TrainResult"]


@torch.no_grad()
def evaluate(
    model: ActorCritic,
    env_id: str,
    n_episodes: int = 20,
    seed: int = 10_000,
    max_episode_steps: int | None = None,
    obs_rms: RunningMeanStd | None = None,
) -> np.ndarray:
    """Returns of ``n_episodes`` deterministic episodes: ``a = argmax_a pi_theta(a|s)`` (Discrete)
    or ``a = mu_theta(s)`` clipped to the action bounds (Box).

    Episode ``i`` starts from ``reset(seed=seed + i)``; the episodes run side by side (one
    batched forward pass per time step). ``obs_rms``: the observation-normalisation statistics of
    the training run (:attr:`TrainResult.obs_rms`), applied frozen (a copy; never updated) with
    gymnasium's ``NormalizeObservation``. Returns an array of shape ``(n_episodes,)``.
    """
    if not isinstance(model, ActorCritic):
        raise ValueError(f"model must be an ActorCritic, got {type(model).__name__}")
    _check_int(n_episodes, "n_episodes", 1)
    _check_int(seed, "seed", 0)
    seed = int(seed)  # gymnasium's reset wants a Python int
    max_episode_steps = _check_max_episode_steps(max_episode_steps)
    spaces = env_spaces(env_id)
    if (spaces.obs_dim, spaces.n_actions, spaces.action_dim) != (model.obs_dim, model.n_actions, model.action_dim):
        raise ValueError(
            f"env_id {env_id!r} has obs_dim {spaces.obs_dim}, n_actions {spaces.n_actions}, action_dim "
            f"{spaces.action_dim}; the model has {model.obs_dim}, {model.n_actions}, {model.action_dim}"
        )
    obs_rms = _check_obs_rms(obs_rms, model.obs_dim)
    frozen = None if obs_rms is None else copy.deepcopy(obs_rms)
    device = next(model.parameters()).device
    envs = [_make_env(env_id, max_episode_steps, frozen, frozen=True) for _ in range(n_episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    returns = np.zeros(n_episodes)
    alive = np.ones(n_episodes, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        params = model.policy_params(torch.as_tensor(obs[idx], device=device))
        actions = model.head.mode(params).cpu().numpy()
        for i, a in zip(idx, actions):
            if model.continuous:
                a = np.clip(a, spaces.action_low, spaces.action_high)  # the env gets a bounded action
            else:
                a = int(a)
            o, r, term, trunc, _ = envs[i].step(a)
            returns[i] += r
            obs[i] = o
            if term or trunc:
                alive[i] = False
    for env in envs:
        env.close()
    return returns


def _policy_at(model: ActorCritic, obs, name: str = "obs") -> Distribution:
    """``pi_theta(.|s)`` for every row of ``obs`` (validated: a finite (B, obs_dim) batch, B >= 1, on
    which the float32 actor's logits are finite)."""
    if not isinstance(model, ActorCritic):
        raise ValueError(f"model must be an ActorCritic, got {type(model).__name__}")
    arr = _as_float_array(obs, name, ndim=2)
    if arr.shape[0] < 1 or arr.shape[1] != model.obs_dim:
        raise ValueError(f"{name} must have shape (B, {model.obs_dim}) with B >= 1, got {arr.shape}")
    device = next(model.parameters()).device
    logits = model.policy_params(torch.as_tensor(arr, dtype=torch.float32, device=device))
    if not torch.isfinite(logits).all():  # e.g. 1e300 is finite in float64, inf in the float32 actor
        raise ValueError(f"{name} gives non-finite logits in the float32 actor (entries too large in magnitude)")
    return model.distribution(logits)


@torch.no_grad()
def policy_entropy(model: ActorCritic, obs) -> np.ndarray:
    """``H(pi_theta(.|s)) = -sum_a pi_theta(a|s) log pi_theta(a|s)`` in nats, for each row ``s`` of ``obs``.

    ``obs`` is a finite ``(B, obs_dim)`` array or tensor (B >= 1); returns a float64 array of shape
    ``(B,)``: ``log n_actions`` for a uniform policy, 0 for one that picks a single action with
    certainty. For a Gaussian policy (Box actions) the differential entropy
    ``sum_i (log sigma_i + (1 + log 2 pi) / 2)``, which can be negative.
    """
    dist = _policy_at(model, obs)  # checks model and obs first
    return model.head.entropy(dist).double().cpu().numpy()


@torch.no_grad()
def greedy_probability(model: ActorCritic, obs) -> np.ndarray:
    """``max_a pi_theta(a|s)``, the probability of the greedy action, for each row ``s`` of ``obs``.

    Same input as :func:`policy_entropy`; returns a float64 array of shape ``(B,)`` with values in
    ``[1 / n_actions, 1]``.
    """
    dist = _policy_at(model, obs)  # checks model and obs first
    if model.continuous:
        raise ValueError("model must have a Discrete action space (categorical policy); a Gaussian has densities, not probabilities")
    return dist.probs.amax(-1).double().cpu().numpy()


@dataclass
class TrainResult:
    """What :func:`pgbook.a2c.train` and :func:`pgbook.ppo.train` return."""

    #: the trained actor-critic.
    model: ActorCritic
    #: one dict per update (iteration): step, losses, diagnostics, learning rate, ...
    log: list[dict]
    #: finished training episodes: (global step at its end, return, length).
    episodes: list[tuple[int, float, int]]
    #: periodic deterministic evaluations: (global step, mean return, std of returns).
    evals: list[tuple[int, float, float]]
    #: environment steps taken.
    steps: int
    #: wall-clock seconds of the training loop.
    seconds: float
    #: the observation-normalisation statistics at the end of training (``normalize_obs``), which
    #: :func:`evaluate` must apply, frozen; None without normalisation.
    obs_rms: RunningMeanStd | None = None

    @property
    def sps(self) -> float:
        """Environment steps per second of wall-clock training time."""
        return self.steps / self.seconds if self.seconds > 0 else math.nan

    def steps_to_reach(self, threshold: float) -> int | None:
        """Global step of the first periodic evaluation with mean return >= threshold (or None)."""
        for step, mean, _ in self.evals:
            if mean >= threshold:
                return step
        return None
