"""The agents' configuration: :class:`AgentConfig`, the device, and the seeded training context.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) and 11 (continuous actions). Both
agents share these hyper-parameters; the agents' own dataclasses (:class:`pgbook.a2c.A2CConfig`,
:class:`pgbook.ppo.PPOConfig`) add theirs and override the defaults, and their docstrings compare
each default with the lecture notes and the papers. The symbols are the chapters': ``gamma`` and
``lambda`` of GAE (``eq-gae``), ``c1`` and ``c2`` of the total loss (``eq-a2c-total-loss``,
``eq-ppo-loss``), N environments of T steps per rollout.

* :class:`AgentConfig` — the shared fields, each with a one-line doc, validated on construction.
* :func:`resolve_device` — ``"auto"`` to CUDA or CPU.
* :func:`seeded` — the context every training run executes in: torch's global generator seeded
  (and restored afterwards) and the intra-op thread count set.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass, fields

import numpy as np
import torch

from ._validate import check_positive_int as _check_positive_int
from ._validate import check_torch_seed as _check_torch_seed

__all__ = ["AgentConfig", "resolve_device", "seeded"]


@dataclass
class AgentConfig:
    """Hyper-parameters shared by A2C and PPO. Validated on construction (``ValueError``).

    The agents' dataclasses override the defaults; their docstrings compare each default with
    the lecture notes and the papers.
    """

    #: gymnasium environment id; a flat Box observation and a Discrete action space (A2C, PPO) or a
    #: Box action space (PPO's diagonal Gaussian policy, chapter 11).
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
    #: hidden layer widths of the actor and of the critic (two separate MLPs).
    hidden: tuple[int, ...] = (64, 64)
    #: the hidden layers' activation, "tanh" (the PPO paper's) or "relu".
    activation: str = "tanh"
    #: initial log standard deviation of the Gaussian policy (Box actions only; 0: sigma = 1).
    log_std_init: float = 0.0
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
    #: normalise observations with running statistics (gymnasium's NormalizeObservation, one set of
    #: statistics shared by the sub-environments and frozen for evaluation); on in PPO's continuous preset.
    normalize_obs: bool = False
    #: scale rewards by the running standard deviation of the discounted return (gymnasium's vector
    #: NormalizeReward with this config's gamma); the logged episode returns stay unscaled.
    normalize_reward: bool = False

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
        for name in ("anneal_lr", "normalize_advantages", "orthogonal_init", "bootstrap_truncated", "normalize_obs", "normalize_reward"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else None
        if not hidden or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ValueError(f"hidden must be a non-empty sequence of positive integers, got {self.hidden!r}")
        self.hidden = tuple(int(h) for h in hidden)
        _check_activation(self.activation)
        _check_real(self.log_std_init, "log_std_init", -20.0, 20.0)
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


#: the hidden-layer activations of the agents' networks (:class:`pgbook.networks.MLP`)
ACTIVATIONS = ("tanh", "relu")


def _check_activation(activation, name: str = "activation") -> str:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, ACTIVATIONS))}, got {activation!r}")
    return activation


def _check_hidden(hidden, name: str = "hidden", allow_empty: bool = False) -> tuple[int, ...]:
    """``hidden`` (a list or tuple of positive integers) as a tuple of ints."""
    ok = isinstance(hidden, (list, tuple)) and (allow_empty or len(hidden) > 0)
    if ok:
        ok = all(isinstance(h, numbers.Integral) and not isinstance(h, (bool, np.bool_)) and h >= 1 for h in hidden)
    if not ok:
        what = "sequence" if allow_empty else "non-empty sequence"
        raise ValueError(f"{name} must be a {what} (list or tuple) of positive integers, got {hidden!r}")
    return tuple(int(h) for h in hidden)


def _check_positive(n, name):
    _check_int(n, name, 1)
    return int(n)


def _check_max_episode_steps(max_episode_steps) -> int | None:
    """None, or a positive integer (as a Python int: gymnasium's time limit wants one)."""
    if max_episode_steps is None:
        return None
    return _check_positive_int(max_episode_steps, "max_episode_steps")


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
