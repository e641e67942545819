"""The parts the A2C and PPO agents share: configuration, networks, environments, rollouts, evaluation.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`). Both agents collect experience the
same way and differ only in how they turn a rollout into parameter updates, so this module holds
everything else:

* :class:`AgentConfig` — the hyper-parameters both agents have (each with a one-line doc); the
  agents' own dataclasses (:class:`pgbook.a2c.A2CConfig`, :class:`pgbook.ppo.PPOConfig`) add theirs.
* :func:`check_env` — fails at once, with a clear message, on an unknown environment id or an
  environment the discrete-action agents cannot drive.
* :func:`make_vec_env` — a gymnasium ``SyncVectorEnv`` in **same-step** autoreset mode.
* :class:`ActorCritic` — the notes' two networks: the actor ``pi_theta(a|s)`` (logits of a
  :class:`torch.distributions.Categorical`) and the critic ``V_phi(s)``, with orthogonal init.
* :class:`RolloutStorage` and :func:`collect_rollout` — ``n_steps`` transitions from each of the
  ``n_envs`` environments, with the episode bookkeeping of equation ``eq-a2c-truncation``.
* :func:`compute_advantages` — calls :func:`pgbook.gae.gae` on a rollout.
* :func:`evaluate` — deterministic (greedy) evaluation episodes.
* :func:`policy_entropy` and :func:`greedy_probability` — how random the policy still is at given
  observations: ``H(pi_theta(.|s))`` and ``max_a pi_theta(a|s)``.

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
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass, fields
from typing import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.distributions import Categorical, Distribution

from . import gae as _gae
from ._validate import as_float_array as _as_float_array
from ._validate import check_bool as _check_bool
from ._validate import check_positive_int as _check_positive_int
from ._validate import check_real as _check_real_number
from ._validate import check_tensor as _check_tensor
from ._validate import check_torch_seed as _check_torch_seed

__all__ = [
    "AgentConfig",
    "check_env",
    "make_vec_env",
    "resolve_device",
    "NormalizedCategorical",
    "MLP",
    "ActorCritic",
    "RolloutStorage",
    "EpisodeTracker",
    "collect_rollout",
    "compute_advantages",
    "clip_grad_norm",
    "evaluate",
    "policy_entropy",
    "greedy_probability",
    "TrainResult",
    "seeded",
]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class AgentConfig:
    """Hyper-parameters shared by A2C and PPO. Validated on construction (``ValueError``).

    The agents' dataclasses override the defaults; their docstrings compare each default with
    the lecture notes and the papers.
    """

    #: gymnasium environment id; needs a discrete action space and a flat Box observation.
    env_id: str = "CartPole-v1"
    #: total environment steps (summed over the parallel environments).
    total_steps: int = 100_000
    #: number of parallel environments N (gymnasium ``SyncVectorEnv``).
    n_envs: int = 8
    #: steps per environment per rollout T; a rollout holds N*T transitions.
    n_steps: int = 32
    #: discount factor gamma.
    gamma: float = 0.99
    #: GAE lambda (chapter 8); lambda = 1 gives the notes' n-step advantage of A2C.
    lam: float = 0.95
    #: learning rate (of the optimiser over actor and critic together).
    lr: float = 3e-4
    #: anneal the learning rate linearly towards 0 over training.
    anneal_lr: bool = False
    #: c1, weight of the value loss in the total loss.
    vf_coef: float = 0.5
    #: c2, weight of the entropy bonus (subtracted from the loss, i.e. entropy is maximised).
    ent_coef: float = 0.0
    #: clip the global gradient norm to this value (None: no clipping).
    max_grad_norm: float | None = 0.5
    #: standardise advantages (zero mean, unit std) in each (mini)batch.
    normalize_advantages: bool = True
    #: hidden layer widths of the actor and of the critic (two separate tanh MLPs).
    hidden: tuple[int, ...] = (64, 64)
    #: orthogonal initialisation (gain sqrt 2 hidden, 0.01 policy head, 1 value head).
    orthogonal_init: bool = True
    #: bootstrap truncated episodes from V(true final observation); False treats a time-limit
    #: truncation as termination (the ablation of chapter 9).
    bootstrap_truncated: bool = True
    #: seed of parameters, action sampling, minibatch order and the environments.
    seed: int = 0
    #: "auto" (CUDA if available, else CPU), "cpu" or "cuda".
    device: str = "auto"
    #: torch intra-op threads during training (1 is fastest for small MLPs).
    torch_threads: int = 1
    #: evaluate the greedy policy every this many environment steps (0: never during training).
    eval_every: int = 0
    #: number of deterministic evaluation episodes.
    eval_episodes: int = 20
    #: stop training at the first evaluation whose mean return reaches this (None: never).
    stop_at_return: float | None = None
    #: override the environment's time limit (None: the registered one; CartPole-v1: 500).
    max_episode_steps: int | None = None

    def __post_init__(self):
        self.validate()

    # Validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every field; raise ``ValueError`` naming the first bad one."""
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        for name in ("total_steps", "n_envs", "n_steps", "eval_episodes", "torch_threads"):
            _check_int(getattr(self, name), name, 1)
        _check_int(self.eval_every, "eval_every", 0)
        _check_int(self.seed, "seed", 0)
        _check_torch_seed(self.seed, "seed")
        if self.max_episode_steps is not None:
            _check_int(self.max_episode_steps, "max_episode_steps", 1)
        if self.total_steps < self.n_envs * self.n_steps:
            raise ValueError(
                f"total_steps must be at least n_envs * n_steps = {self.n_envs * self.n_steps} "
                f"(one rollout), got {self.total_steps}"
            )
        _check_real(self.gamma, "gamma", 0.0, 1.0, hi_open=True)
        _check_real(self.lam, "lam", 0.0, 1.0)
        _check_real(self.lr, "lr", 0.0, math.inf, lo_open=True, hi_open=True)
        _check_real(self.vf_coef, "vf_coef", 0.0, math.inf, hi_open=True)
        _check_real(self.ent_coef, "ent_coef", 0.0, math.inf, hi_open=True)
        if self.max_grad_norm is not None:
            _check_real(self.max_grad_norm, "max_grad_norm", 0.0, math.inf, lo_open=True, hi_open=True)
        if self.stop_at_return is not None:
            _check_real(self.stop_at_return, "stop_at_return", -math.inf, math.inf, lo_open=True, hi_open=True)
        for name in ("anneal_lr", "normalize_advantages", "orthogonal_init", "bootstrap_truncated"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else None
        if not hidden or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive integers, got {self.hidden!r}")
        self.hidden = tuple(int(h) for h in hidden)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but CUDA is not available")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _check_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_real(value, name, lo, hi, lo_open=False, hi_open=False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (ok_lo and ok_hi):
        interval = ("(" if lo_open else "[") + f"{lo:g}, {hi:g}" + (")" if hi_open else "]")
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")


def _check_device(device, name: str = "device") -> torch.device:
    """``device`` (a :class:`torch.device` or a string torch understands, e.g. ``"cpu"``, ``"cuda:0"``)
    as a :class:`torch.device`; ``ValueError`` naming the argument for anything else, and for CUDA
    when CUDA is not available."""
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError, TypeError):
            raise ValueError(f"{name} must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    else:
        raise ValueError(f"{name} must be a torch.device or a device string such as 'cpu', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r} was requested but CUDA is not available")
    return dev


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; any other device string (or :class:`torch.device`)
    as a :class:`torch.device` (``ValueError`` naming ``device`` for one torch does not know)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return _check_device(device)


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------


def check_env(env_id: str) -> tuple[int, int]:
    """Check that ``env_id`` exists and suits a discrete-action agent; return (obs_dim, n_actions).

    Raises ``ValueError`` for an unknown id, a missing dependency (e.g. box2d for
    ``LunarLander-v3``), a non-discrete action space (e.g. ``Pendulum-v1``) or an observation that
    is not a flat vector — before any training starts.
    """
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
    if not isinstance(act, gym.spaces.Discrete):
        raise ValueError(
            f"env_id {env_id!r} has action space {act}; the A2C and PPO agents of this book use a "
            "Categorical policy and need a Discrete action space"
        )
    if not (isinstance(obs, gym.spaces.Box) and len(obs.shape) == 1):
        raise ValueError(f"env_id {env_id!r} has observation space {obs}; a flat Box (vector) is needed")
    return int(obs.shape[0]), int(act.n)


def _make_env(env_id: str, max_episode_steps: int | None):
    kwargs = {"disable_env_checker": True}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(env_id, **kwargs)


def _check_max_episode_steps(max_episode_steps) -> int | None:
    """None, or a positive integer (as a Python int: gymnasium's time limit wants one)."""
    if max_episode_steps is None:
        return None
    return _check_positive_int(max_episode_steps, "max_episode_steps")


def make_vec_env(env_id: str, n_envs: int, max_episode_steps: int | None = None) -> gym.vector.SyncVectorEnv:
    """``n_envs`` copies of ``env_id`` in a ``SyncVectorEnv`` with same-step autoreset.

    Same-step mode: ``step`` returns, for a sub-environment whose episode just ended, the *reset*
    observation, and the true final observation in ``infos["final_obs"][i]`` (mask
    ``infos["_final_obs"]``). Synchronous, because CartPole is so cheap that inter-process
    communication would cost more than it saves.
    """
    check_env(env_id)
    _check_int(n_envs, "n_envs", 1)
    max_episode_steps = _check_max_episode_steps(max_episode_steps)
    return gym.vector.SyncVectorEnv(
        [lambda: _make_env(env_id, max_episode_steps) for _ in range(n_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        copy=False,
    )


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


class NormalizedCategorical(Categorical):
    """A :class:`torch.distributions.Categorical` built from logits with one ``log_softmax``.

    ``Categorical(logits=z)`` normalises with ``z - z.logsumexp(-1)``, a composite of about six
    kernels; ``log_softmax`` is one fused kernel with the same result (to rounding). Everything else
    — ``sample``, ``log_prob``, ``entropy``, ``probs`` — is the parent class's. On CartPole the
    parent's constructor costs about a tenth of a PPO run on this machine, because a distribution is
    built at every environment step and every gradient step. torch's argument validation is off;
    the constructor checks ``logits`` (a finite floating-point tensor with at least one dimension and
    at least one event: ``ValueError`` otherwise). The agents build their distributions through
    :meth:`ActorCritic.distribution`, which skips that check (its logits come from the network).
    """

    def __init__(self, logits: torch.Tensor):
        _check_tensor(logits, "logits")
        if logits.ndim < 1 or logits.shape[-1] < 1:
            raise ValueError(f"logits must have at least one dimension and one event, got shape {tuple(logits.shape)}")
        self._set_logits(logits)

    def _set_logits(self, logits: torch.Tensor) -> None:
        self.logits = torch.log_softmax(logits, dim=-1)
        self._param = self.logits
        self._num_events = self._param.size(-1)
        Distribution.__init__(self, self._param.size()[:-1], validate_args=False)

    @classmethod
    def _unchecked(cls, logits: torch.Tensor) -> "NormalizedCategorical":
        """The distribution of ``logits`` without the argument check (the agents' per-step path)."""
        dist = cls.__new__(cls)
        dist._set_logits(logits)
        return dist


def _check_hidden(hidden, name: str = "hidden", allow_empty: bool = False) -> tuple[int, ...]:
    """``hidden`` (a list or tuple of positive integers) as a tuple of ints."""
    ok = isinstance(hidden, (list, tuple)) and (allow_empty or len(hidden) > 0)
    if ok:
        ok = all(isinstance(h, numbers.Integral) and not isinstance(h, (bool, np.bool_)) and h >= 1 for h in hidden)
    if not ok:
        what = "sequence" if allow_empty else "non-empty sequence"
        raise ValueError(f"{name} must be a {what} (list or tuple) of positive integers, got {hidden!r}")
    return tuple(int(h) for h in hidden)


class MLP(nn.Module):
    """A tanh multilayer perceptron; ``mlp[i]`` is its i-th :class:`torch.nn.Linear` layer.

    The forward pass calls ``F.linear`` and ``torch.tanh`` directly (the same computation as an
    ``nn.Sequential`` of ``Linear`` and ``Tanh`` modules, without the per-module call overhead,
    which dominates for batches of a few rows).
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, out_gain: float, orthogonal: bool):
        super().__init__()
        n_in, n_out = _check_positive_int(n_in, "n_in"), _check_positive_int(n_out, "n_out")
        hidden = _check_hidden(hidden, allow_empty=True)
        out_gain = _check_real_number(out_gain, "out_gain")
        orthogonal = _check_bool(orthogonal, "orthogonal")
        sizes = [n_in, *hidden, n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        if orthogonal:
            for i, lin in enumerate(self.layers):
                nn.init.orthogonal_(lin.weight, gain=out_gain if i == len(self.layers) - 1 else math.sqrt(2.0))
                nn.init.zeros_(lin.bias)

    def __getitem__(self, i: int) -> nn.Linear:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = torch.tanh(F.linear(x, layer.weight, layer.bias))
        return F.linear(x, last.weight, last.bias)


class ActorCritic(nn.Module):
    """The notes' two networks: actor ``pi_theta(a|s)`` and critic ``V_phi(s)`` (no shared layers).

    ``theta`` = ``actor.parameters()``, ``phi`` = ``critic.parameters()``. Separate networks make
    the split of the total loss exact: the policy and entropy terms depend on ``theta`` only, the
    value term on ``phi`` only (chapter 9, ``eq-a2c-policy-grad-phi``).

    Orthogonal initialisation (as in the PPO paper's code and :cite:`huang2022`): hidden layers
    with gain ``sqrt 2``, the policy head with gain 0.01 (initial policy almost uniform), the value
    head with gain 1; biases 0.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (64, 64), orthogonal_init: bool = True):
        super().__init__()
        _check_int(obs_dim, "obs_dim", 1)
        _check_int(n_actions, "n_actions", 2)
        hidden = _check_hidden(hidden, allow_empty=True)
        _check_bool(orthogonal_init, "orthogonal_init")
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)
        self.actor = MLP(obs_dim, hidden, n_actions, 0.01, orthogonal_init)
        self.critic = MLP(obs_dim, hidden, 1, 1.0, orthogonal_init)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One combined forward pass: ``(logits (B, A), V_phi(s) (B,))``."""
        return self.actor(obs), self.critic(obs).squeeze(-1)

    @staticmethod
    def distribution(logits: torch.Tensor) -> Categorical:
        """``pi_theta(.|s)`` as a :class:`torch.distributions.Categorical` (a :class:`NormalizedCategorical`).

        Called at every environment step and every gradient step, on the network's own logits: the
        argument check of :class:`NormalizedCategorical` is skipped."""
        return NormalizedCategorical._unchecked(logits)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``V_phi(s)``, shape (B,)."""
        return self.critic(obs).squeeze(-1)


# --------------------------------------------------------------------------------------------
# Rollouts
# --------------------------------------------------------------------------------------------


class RolloutStorage:
    """Pre-allocated tensors of shape ``(T, N, ...)`` for one rollout of T steps in N environments.

    ``values[t] = V_phi_old(s_t)``; ``next_values[t] = V_phi_old(s_{t+1})`` with ``s_{t+1}`` the
    *true* successor (the final observation when the episode was truncated; 0 when it
    terminated); ``terminated[t]`` and ``episode_end[t]`` (terminated or truncated) as floats,
    the arguments of :func:`pgbook.gae.gae`.
    """

    def __init__(self, n_steps: int, n_envs: int, obs_dim: int, device: torch.device | str = "cpu"):
        T, N = _check_positive(n_steps, "n_steps"), _check_positive(n_envs, "n_envs")
        _check_int(obs_dim, "obs_dim", 1)
        kw = {"device": _check_device(device)}
        self.obs = torch.zeros((T, N, obs_dim), dtype=torch.float32, **kw)
        self.actions = torch.zeros((T, N), dtype=torch.long, **kw)
        self.log_probs = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.rewards = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.values = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.next_values = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.terminated = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.episode_end = torch.zeros((T, N), dtype=torch.float32, **kw)
        self.n_steps, self.n_envs = T, N


def _check_positive(n, name):
    _check_int(n, name, 1)
    return int(n)


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
    continue from. The environments must be in same-step autoreset mode (:func:`make_vec_env`).

    Bootstrapping (``eq-a2c-truncation``): for a step that did not end an episode, ``s_{t+1}`` is
    the next row of observations, so ``next_values[t] = values[t+1]`` (the value of the last
    observation for ``t = T-1``). For a step that ended an episode the next row holds the *reset*
    observation of a new episode: a terminated step bootstraps with 0, a truncated one with
    ``V(infos["final_obs"])``. ``bootstrap_truncated=False`` records truncation as termination.

    Only the actor runs at each step (to sample the action). The critic's values — of every
    ``s_t``, of the last observations and of the true final observations — and the
    log-probabilities of the sampled actions are computed after the loop, each in one batch: the
    network does not change during a rollout, so this is the same computation with fewer calls.
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
        logits = model.actor(obs_t)  # the actor now; the critic once, after the loop
        action = model.distribution(logits).sample()
        obs_list.append(obs_t)
        action_list.append(action)
        logits_list.append(logits)

        obs, reward, terminated, truncated, infos = envs.step(action.cpu().numpy())
        episode_end = terminated | truncated
        if not bootstrap_truncated:
            terminated = episode_end  # the ablation: a time limit treated as a terminal state
        truncated_only = episode_end & ~terminated
        if truncated_only.any():
            idx = np.flatnonzero(truncated_only)
            finals.append((t, idx, np.stack([infos["final_obs"][i] for i in idx])))
        rewards[t], terms[t], ends[t] = reward, terminated, episode_end
        tracker.step(reward, episode_end)
        obs_t = torch.tensor(obs, dtype=torch.float32, device=device)  # a copy: the envs reuse obs

    torch.stack(obs_list, out=storage.obs)
    torch.stack(action_list, out=storage.actions)
    storage.log_probs.copy_(model.distribution(torch.stack(logits_list)).log_prob(storage.actions))
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


def clip_grad_norm(parameters: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``; return the norm.

    The same operations as :func:`torch.nn.utils.clip_grad_norm_` (per-tensor norms with one
    ``_foreach_norm``, their norm, the coefficient ``max_norm / (norm + 1e-6)`` clamped at 1, one
    ``_foreach_mul_``) and the same result bit for bit, without its per-call grouping of the
    tensors by device and dtype — a measurable share of a 256-sample update step.
    """
    _check_real(max_norm, "max_norm", 0.0, math.inf, lo_open=True, hi_open=True)
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    elif isinstance(parameters, (str, bytes)) or not hasattr(parameters, "__iter__"):
        raise ValueError(f"parameters must be a sequence of tensors, got {type(parameters).__name__}")
    grads = []
    for p in parameters:
        if not isinstance(p, torch.Tensor):
            raise ValueError(f"parameters must be a sequence of tensors, got an item of type {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total


# --------------------------------------------------------------------------------------------
# Evaluation, seeding, results
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: ActorCritic,
    env_id: str,
    n_episodes: int = 20,
    seed: int = 10_000,
    max_episode_steps: int | None = None,
) -> np.ndarray:
    """Returns of ``n_episodes`` deterministic episodes: ``a = argmax_a pi_theta(a|s)``.

    Episode ``i`` starts from ``reset(seed=seed + i)``; the episodes run side by side (one
    batched forward pass per time step). Returns an array of shape ``(n_episodes,)``.
    """
    if not isinstance(model, ActorCritic):
        raise ValueError(f"model must be an ActorCritic, got {type(model).__name__}")
    _check_int(n_episodes, "n_episodes", 1)
    _check_int(seed, "seed", 0)
    seed = int(seed)  # gymnasium's reset wants a Python int
    max_episode_steps = _check_max_episode_steps(max_episode_steps)
    check_env(env_id)
    device = next(model.parameters()).device
    envs = [_make_env(env_id, max_episode_steps) for _ in range(n_episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    returns = np.zeros(n_episodes)
    alive = np.ones(n_episodes, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        logits = model.actor(torch.as_tensor(obs[idx], device=device))
        actions = logits.argmax(dim=-1).cpu().numpy()
        for i, a in zip(idx, actions):
            o, r, term, trunc, _ = envs[i].step(int(a))
            returns[i] += r
            obs[i] = o
            if term or trunc:
                alive[i] = False
    for env in envs:
        env.close()
    return returns


def _policy_at(model: ActorCritic, obs, name: str = "obs") -> Categorical:
    """``pi_theta(.|s)`` for every row of ``obs`` (validated: a finite (B, obs_dim) batch, B >= 1, on
    which the float32 actor's logits are finite)."""
    if not isinstance(model, ActorCritic):
        raise ValueError(f"model must be an ActorCritic, got {type(model).__name__}")
    arr = _as_float_array(obs, name, ndim=2)
    if arr.shape[0] < 1 or arr.shape[1] != model.obs_dim:
        raise ValueError(f"{name} must have shape (B, {model.obs_dim}) with B >= 1, got {arr.shape}")
    device = next(model.parameters()).device
    logits = model.actor(torch.as_tensor(arr, dtype=torch.float32, device=device))
    if not torch.isfinite(logits).all():  # e.g. 1e300 is finite in float64, inf in the float32 actor
        raise ValueError(f"{name} gives non-finite logits in the float32 actor (entries too large in magnitude)")
    return model.distribution(logits)


@torch.no_grad()
def policy_entropy(model: ActorCritic, obs) -> np.ndarray:
    """``H(pi_theta(.|s)) = -sum_a pi_theta(a|s) log pi_theta(a|s)`` in nats, for each row ``s`` of ``obs``.

    ``obs`` is a finite ``(B, obs_dim)`` array or tensor (B >= 1); returns a float64 array of shape
    ``(B,)``: ``log n_actions`` for a uniform policy, 0 for one that picks a single action with
    certainty.
    """
    return _policy_at(model, obs).entropy().double().cpu().numpy()


@torch.no_grad()
def greedy_probability(model: ActorCritic, obs) -> np.ndarray:
    """``max_a pi_theta(a|s)``, the probability of the greedy action, for each row ``s`` of ``obs``.

    Same input as :func:`policy_entropy`; returns a float64 array of shape ``(B,)`` with values in
    ``[1 / n_actions, 1]``.
    """
    return _policy_at(model, obs).probs.amax(-1).double().cpu().numpy()


def check_loss_batch(logits: torch.Tensor, actions: torch.Tensor, **tensors: torch.Tensor) -> None:
    """For the agents' public loss functions: finite floating-point ``logits`` and ``tensors`` (by
    name), and integer ``actions`` in ``[0, n_actions)``; ``ValueError`` naming the argument otherwise.
    (The training loops call the unchecked internals: their inputs come from the agent itself.)"""
    for name, x in (("logits", logits), *tensors.items()):
        if not x.is_floating_point() or not torch.isfinite(x.detach()).all():
            raise ValueError(f"{name} must be a finite floating-point tensor")
    if actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool:
        raise ValueError(f"actions must be an integer tensor, got dtype {actions.dtype}")
    if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= logits.shape[1]):
        raise ValueError(
            f"actions must lie in [0, {logits.shape[1]}), got values in [{int(actions.min())}, {int(actions.max())}]"
        )


@contextlib.contextmanager
def seeded(seed: int, threads: int, device: torch.device):
    """Seed torch's global RNG (restored afterwards) and set the intra-op thread count.

    ``Categorical.sample`` draws from torch's global generator; forking it keeps training
    reproducible *and* leaves the caller's random state as it was. ``seed``: a non-negative integer
    below ``2**64``; ``threads``: a positive integer; ``device``: a :class:`torch.device` (or a
    device string).
    """
    seed = _check_torch_seed(seed, "seed")
    threads = _check_positive_int(threads, "threads")
    device = _check_device(device)
    old_threads = torch.get_num_threads()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(old_threads)


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
