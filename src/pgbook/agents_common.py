"""The parts the A2C and PPO agents share — now split by idea; this module re-exports them.

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`) and 11 (continuous actions). The
code that lived here moved (issue 15) to modules that follow the chapters' ideas; every name is
still importable from here, so ``pgbook.agents_common.X`` keeps working, and :mod:`pgbook.a2c`
and :mod:`pgbook.ppo` call the shared functions through this module (one place to patch them,
as ``benchmarks/solve_cartpole.py`` does with :func:`evaluate`):

* :mod:`pgbook.agent_config` — :class:`AgentConfig`, :func:`resolve_device`, :func:`seeded`.
* :mod:`pgbook.envs` — :func:`check_env`, :func:`make_vec_env` (same-step autoreset, the
  truncation bookkeeping of ``eq-a2c-truncation``, normalisation wrappers), and
  :func:`~pgbook.envs.env_spaces` for Box action spaces.
* :mod:`pgbook.heads` — the action distributions behind one interface: :class:`NormalizedCategorical`
  and :class:`~pgbook.heads.CategoricalHead` (chapters 9–10) and :class:`~pgbook.heads.DiagGaussianHead`
  (chapter 11).
* :mod:`pgbook.networks` — :class:`MLP`, :class:`ActorCritic`, :func:`clip_grad_norm`.
* :mod:`pgbook.rollout` — :class:`RolloutStorage`, :class:`EpisodeTracker`, :func:`collect_rollout`,
  :func:`compute_advantages` (GAE, ``eq-gae``).
* :mod:`pgbook.evaluation` — :func:`evaluate`, :func:`policy_entropy`, :func:`greedy_probability`,
  :class:`TrainResult`.
"""

from __future__ import annotations

from .agent_config import AgentConfig, resolve_device, seeded
from .agent_config import _check_device, _check_hidden, _check_int, _check_max_episode_steps, _check_positive, _check_real  # noqa: F401
from .envs import _make_env, check_env, env_spaces, make_vec_env  # noqa: F401
from .evaluation import TrainResult, _policy_at, evaluate, greedy_probability, policy_entropy  # noqa: F401
from .heads import NormalizedCategorical, check_loss_batch  # noqa: F401
from .networks import MLP, ActorCritic, clip_grad_norm
from .rollout import EpisodeTracker, RolloutStorage, collect_rollout, compute_advantages

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
