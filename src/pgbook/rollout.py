"""Rollouts: ``n_steps`` transitions of ``n_envs`` environments, with the episode bookkeeping.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) and 11 (continuous actions). Both
agents collect experience the same way (this module) and differ only in how they turn a rollout
into parameter updates.

* :class:`RolloutStorage` — pre-allocated ``(T, N, ...)`` tensors: observations, actions,
  ``log pi_theta_old(a_t|s_t)``, rewards, ``V_phi_old(s_t)`` and ``V_phi_old(s_{t+1})``, and the
  termination / episode-end flags :func:`pgbook.gae.gae` takes.
* :class:`EpisodeTracker` — returns and lengths of the finished training episodes.
* :func:`collect_rollout` — samples ``a_t ~ pi_theta(.|s_t)`` and steps the environments, with
  the bootstrapping of equation ``eq-a2c-truncation``: 0 after a termination,
  ``V(true final observation)`` after a truncation (see :mod:`pgbook.envs` on same-step autoreset).
  For a Box action space the sampled action is clipped to the bounds only on its way into
  ``env.step``; the rollout keeps the unclipped sample and its log-density (chapter 11).
* :func:`compute_advantages` — GAE (``eq-gae``, chapter 8) on a rollout.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from . import gae as _gae
from ._validate import as_float_array as _as_float_array
from ._validate import check_bool as _check_bool
from .agent_config import _check_device, _check_int, _check_positive
from .networks import ActorCritic

__all__ = ["RolloutStorage", "EpisodeTracker", "collect_rollout", "compute_advantages"]


class RolloutStorage:
    """Pre-allocated tensors of shape ``(T, N, ...)`` for one rollout of T steps in N environments.

    ``values[t] = V_phi_old(s_t)``; ``next_values[t] = V_phi_old(s_{t+1})`` with ``s_{t+1}`` the
    *true* successor (the final observation when the episode was truncated; 0 when it
    terminated); ``terminated[t]`` and ``episode_end[t]`` (terminated or truncated) as floats,
    the arguments of :func:`pgbook.gae.gae`. ``actions`` are integers of shape ``(T, N)`` for a
    Discrete action space (``action_dim=None``), floats of shape ``(T, N, action_dim)`` for a Box.
    """

    def __init__(
        self, n_steps: int, n_envs: int, obs_dim: int, device: torch.device | str = "cpu", action_dim: int | None = None
    ):
        T, N = _check_positive(n_steps, "n_steps"), _check_positive(n_envs, "n_envs")
        _check_int(obs_dim, "obs_dim", 1)
        if action_dim is not None:
            action_dim = _check_positive(action_dim, "action_dim")
        kw = {"device": _check_device(device)}
        self.obs = torch.zeros((T, N, obs_dim), dtype=torch.float32, **kw)
        if action_dim is None:
            self.actions = torch.zeros((T, N), dtype=torch.long, **kw)
        else:
            self.actions = torch.zeros((T, N, action_dim), dtype=torch.float32, **kw)
        self.log_probs = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.rewards = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.values = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.next_values = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.terminated = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.episode_end = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.n_steps, self.n_envs, self.action_dim = T, N, action_dim


class EpisodeTracker:
    """Running return and length of each sub-environment's current episode; finished episodes."""

    def __init__(self, n_envs: int):
        _check_int(n_envs, "n_envs", 1)
        self.returns = np.zeros(n_envs)
        self.lengths = np.zeros(n_envs, dtype=np.int64)
        #: (global step at the end of the episode, return, length) of every finished episode.
        self.finished: list[tuple[int, float, int]] = []
        self.global_step = 0

    def step(self, rewards: np.ndarray, episode_end: np.ndarray) -> None:
        self.returns += rewards
        self.lengths += 1
        self.global_step += len(rewards)
        for i in np.flatnonzero(episode_end):
            self.finished.append((self.global_step, float(self.returns[i]), int(self.lengths[i])))
            self.returns[i] = 0.0
            self.lengths[i] = 0


@torch.no_grad()
def collect_rollout(
    envs: gym.vector.VectorEnv,
    model: ActorCritic,
    storage: RolloutStorage,
    obs: np.ndarray,
    tracker: EpisodeTracker,
    bootstrap_truncated: bool = True,
) -> np.ndarray:
    """Fill ``storage`` with ``T`` steps of every environment, sampling ``a ~ pi_theta(.|s)``.

    ``obs`` is the current observation batch ``(N, obs_dim)``; returns the observation batch to
    continue from. The environments must be in same-step autoreset mode (:func:`pgbook.envs.make_vec_env`).

    Bootstrapping (``eq-a2c-truncation``): for a step that did not end an episode, ``s_{t+1}`` is
    the next row of observations, so ``next_values[t] = values[t+1]`` (the value of the last
    observation for ``t = T-1``). For a step that ended an episode the next row holds the *reset*
    observation of a new episode: a terminated step bootstraps with 0, a truncated one with
    ``V(infos["final_obs"])``. ``bootstrap_truncated=False`` records truncation as termination.

    Only the actor runs at each step (to sample the action). The critic's values — of every
    ``s_t``, of the last observations and of the true final observations — and the
    log-probabilities of the sampled actions are computed after the loop, each in one batch: the
    network does not change during a rollout, so this is the same computation with fewer calls.
    The episode returns of ``tracker`` are the environment's rewards (``infos["raw_reward"]`` when
    the rewards are scaled, see :func:`pgbook.envs.make_vec_env`).
    """
    if not isinstance(envs, gym.vector.VectorEnv):
        raise ValueError(f"envs must be a gymnasium vector environment (make_vec_env), got {type(envs).__name__}")
    if envs.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError("envs must use AutoresetMode.SAME_STEP (build them with make_vec_env)")
    if not isinstance(model, ActorCritic):
        raise ValueError(f"model must be an ActorCritic, got {type(model).__name__}")
    if not isinstance(storage, RolloutStorage):
        raise ValueError(f"storage must be a RolloutStorage, got {type(storage).__name__}")
    if not isinstance(tracker, EpisodeTracker):
        raise ValueError(f"tracker must be an EpisodeTracker, got {type(tracker).__name__}")
    _check_bool(bootstrap_truncated, "bootstrap_truncated")
    if storage.action_dim != model.action_dim:
        raise ValueError(f"storage must hold the model's actions (action_dim {model.action_dim}), got action_dim {storage.action_dim}")
    space = envs.single_action_space
    if model.continuous:
        if not (isinstance(space, gym.spaces.Box) and space.shape == (model.action_dim,)):
            raise ValueError(f"envs must have a Box action space of shape ({model.action_dim},) for this model, got {space}")
        low, high = space.low, space.high
    elif not (isinstance(space, gym.spaces.Discrete) and int(space.n) == model.n_actions):
        raise ValueError(f"envs must have a Discrete({model.n_actions}) action space for this model, got {space}")
    T, N = storage.n_steps, storage.n_envs
    obs = _as_float_array(obs, "obs")
    if obs.shape != (N, storage.obs.shape[-1]):
        raise ValueError(f"obs must have shape {(N, storage.obs.shape[-1])}, got {obs.shape}")
    if not np.all(np.abs(obs) <= np.finfo(np.float32).max):
        raise ValueError("obs has entries too large in magnitude for the float32 networks")
    device = storage.obs.device
    rewards = np.zeros((T, N), dtype=np.float32)
    terms = np.zeros((T, N), dtype=np.float32)
    ends = np.zeros((T, N), dtype=np.float32)
    finals = []  # (t, indices, true final observations) of the steps that were truncated
    obs_t = torch.tensor(obs, dtype=torch.float32, device=device)
    obs_list, action_list, logits_list = [], [], []
    for t in range(T):
        logits = model.policy_params(obs_t)  # the actor now; the critic once, after the loop
        action = model.head.sample(logits)  # = model.distribution(logits).sample(), faster
        obs_list.append(obs_t)
        action_list.append(action)
        logits_list.append(logits)

        env_action = action.cpu().numpy()
        if model.continuous:
            # The environment gets the action clipped to its bounds; the rollout keeps the unclipped
            # sample and (below) its log-density under the Gaussian, as CleanRL and Stable-Baselines3
            # do: the ratio r_t is then a ratio of the densities the actions were drawn from.
            env_action = np.clip(env_action, low, high)
        obs, reward, terminated, truncated, infos = envs.step(env_action)
        episode_end = terminated | truncated
        if not bootstrap_truncated:
            terminated = episode_end  # the ablation: a time limit treated as a terminal state
        truncated_only = episode_end & ~terminated
        if truncated_only.any():
            idx = np.flatnonzero(truncated_only)
            finals.append((t, idx, np.stack([infos["final_obs"][i] for i in idx])))
        rewards[t], terms[t], ends[t] = reward, terminated, episode_end
        tracker.step(infos["raw_reward"] if "raw_reward" in infos else reward, episode_end)
        obs_t = torch.from_numpy(obs.astype(np.float32)).to(device)  # a copy (astype): the envs reuse obs

    torch.stack(obs_list, out=storage.obs)
    torch.stack(action_list, out=storage.actions)
    dist = model.distribution(torch.stack(logits_list))
    storage.log_probs.copy_(model.head.log_prob(dist, storage.actions))
    storage.rewards.copy_(torch.from_numpy(rewards))
    storage.terminated.copy_(torch.from_numpy(terms))
    storage.episode_end.copy_(torch.from_numpy(ends))

    # V_phi in one forward pass: every s_t of the rollout, the last observations s_T, and the
    # true final observations of the truncated steps.
    extra = [torch.as_tensor(f, dtype=torch.float32, device=device) for _, _, f in finals]
    values = model.value(torch.cat([storage.obs.reshape(T * N, -1), obs_t, *extra]))
    storage.values.copy_(values[: T * N].reshape(T, N))
    end_values = torch.zeros((T, N), dtype=torch.float32, device=device)  # 0 after a termination
    offset = (T + 1) * N
    for t, idx, _ in finals:
        end_values[t, torch.as_tensor(idx, device=device)] = values[offset : offset + len(idx)]
        offset += len(idx)
    # V(s_{t+1}): the next row of values, except at episode ends (0 or V(true final obs)).
    storage.next_values[:-1] = storage.values[1:]
    storage.next_values[-1] = values[T * N : (T + 1) * N]
    storage.next_values.copy_(torch.where(storage.episode_end.bool(), end_values, storage.next_values))
    return np.array(obs, dtype=np.float32, copy=True)


def compute_advantages(storage: RolloutStorage, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(gamma, lambda) advantages and value targets of a rollout, shape (T, N) each.

    A thin call of :func:`pgbook.gae.gae` (chapter 8): ``delta_t = r_t + gamma (1 - term_t)
    V(s_{t+1}) - V(s_t)`` and ``A_t = delta_t + gamma lambda (1 - end_t) A_{t+1}``; the targets
    are ``A_t + V(s_t)``.
    """
    if not isinstance(storage, RolloutStorage):
        raise ValueError(f"storage must be a RolloutStorage, got {type(storage).__name__}")
    return _gae.gae(
        storage.rewards,
        storage.values,
        storage.next_values,
        storage.terminated,
        storage.episode_end,
        gamma,
        lam,
    )
