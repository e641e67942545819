"""Proximal policy optimisation (PPO-Clip), read top to bottom next to chapter 10 (:doc:`/book/ch10_ppo`).

Equations of the chapter implemented here (:cite:`schulman2017ppo`; the theory is chapter 7's,
:doc:`/book/ch07_clipping`):

* the ratio ``r_t(theta) = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t)``, computed as
  ``exp(log pi_theta - log pi_old)`` with ``log pi_old`` recorded during collection;
* ``eq-ppo-loss`` — the minibatch loss the optimiser *minimises*,
  ``loss = -L^CLIP + c1 L^VF - c2 S = -L^TOTAL``, where ``L^TOTAL = mean_t[ L^CLIP_t - c1 L^VF_t +
  c2 S[pi_theta](s_t) ]`` is the objective to *maximise* (chapter 7's ``eq-clip-total``),
  ``L^CLIP_t = min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t)``, ``L^VF_t = (V_phi(s_t) - V^targ_t)^2``
  and ``S`` the entropy. (The notes' pseudocode writes ``L^CLIP + c1 L^VF + c2 S`` and descends on
  it; chapters 7 and 10 sort the signs out.)
* ``cor-ppo-first-minibatch`` — at ``theta = theta_old`` every ratio is 1, nothing is clipped,
  and the first minibatch's gradient of ``L^CLIP`` is the A2C step ``mean_t[grad log pi(a_t|s_t) A_t]``
  (chapter 7's ``thm-clip-first-step``, on real rollouts), whose expectation is the agents'
  direction ``g_agent`` of chapter 9 (``eq-agent-direction``), not ``grad J``.
* ``eq-ppo-approx-kl`` — the diagnostic ``approx_kl = mean_t[(r_t - 1) - log r_t]``, an unbiased,
  per-sample non-negative estimator of ``KL(pi_old || pi_theta)`` on states and actions drawn
  by ``pi_old``; with the clip fraction ``mean_t[ |r_t - 1| > eps ]`` and the ratio range it is
  recorded for every epoch (``rem-ppo-ratio-diagnostics``).

GAE (chapter 8) gives ``A_t`` and ``V^targ_t = A_t + V_phi_old(s_t)`` with the critic *as it
was during collection*: there is no separate "old critic" network to update softly or hardly.

Continuous actions (chapter 11): on a Box action space the policy is a diagonal Gaussian
(:class:`pgbook.heads.DiagGaussianHead`) and ``r_t`` a ratio of densities; nothing else in the
algorithm changes. :meth:`PPOConfig.for_env` selects the continuous defaults
(:data:`CONTINUOUS_DEFAULTS`, CleanRL's ``ppo_continuous_action.py``, with per-environment
tunings in :data:`ENV_PRESETS`) when the action space is a Box.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Callable

import torch

from . import agents_common as common
from ._validate import check_callable, check_real, check_tensor
from .agent_config import _check_int, _check_real
from .agents_common import ActorCritic, AgentConfig, TrainResult
from .envs import FastRunningMeanStd
from .heads import CategoricalHead, DiagGaussianHead, PolicyHead, check_loss_batch

__all__ = [
    "PPOConfig",
    "CONTINUOUS_DEFAULTS",
    "ENV_PRESETS",
    "ZOO_SETTINGS",
    "PPOLosses",
    "clipped_surrogate",
    "ppo_losses",
    "ratio_diagnostics",
    "ppo_update",
    "train",
]


@dataclass
class PPOConfig(AgentConfig):
    """PPO hyper-parameters. Defaults, compared with the notes and :cite:`schulman2017ppo`:

    ===================  ==============  ========================================================
    field                default         notes / PPO paper (MuJoCo; Atari) / why
    ===================  ==============  ========================================================
    clip_eps (epsilon)   0.2             notes 0.2; paper 0.2; Atari 0.1 x alpha (annealed)
    anneal_clip          True            paper (Atari): epsilon x alpha, alpha 1 -> 0
    n_epochs (K)         20              notes: K unspecified (ppo_epochs); paper 10; 3
    minibatch_size       256             notes: batch_size; paper 64; 32 x 8
    n_envs, n_steps      8, 32           notes: N episodes of T steps; paper 1 x 2048; 8 x 128
    gamma                0.98            notes 0.99; paper 0.99 (CartPole is short-sighted)
    lam (GAE)            0.8             notes 0.95; paper 0.95
    lr                   1e-3            paper 3e-4 (Adam); 2.5e-4 x alpha
    anneal_lr            True            paper (Atari): linear alpha 1 -> 0
    vf_coef (c1)         0.5             notes 0.5 (code: 0.5 x 0.5 = 0.25 of the MSE); paper 1
    ent_coef (c2)        0.0             notes 0.01; paper 0.01 (Atari); CartPole needs none
    max_grad_norm        0.5             notes 0.5; paper's code 0.5
    normalize_adv.       True            paper's code (baselines): per minibatch
    total_steps          100_000         the budget of the book's benchmark on CartPole-v1
    ===================  ==============  ========================================================

    The CartPole-specific values (8 x 32, 20 epochs, batch 256, gamma 0.98, lambda 0.8, linear
    lr 1e-3 and clip 0.2 schedules) are the tuned ones of RL Baselines3 Zoo, the configuration of
    the book's speed comparison with Stable-Baselines3. ``clip_eps = math.inf`` turns clipping off
    (the surrogate becomes ``L^CPI``; the ablation of chapter 10).
    """

    total_steps: int = 100_000
    n_envs: int = 8
    n_steps: int = 32
    gamma: float = 0.98
    lam: float = 0.8
    lr: float = 1e-3
    anneal_lr: bool = True
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float | None = 0.5
    normalize_advantages: bool = True
    #: epsilon of the clipped surrogate; math.inf disables clipping.
    clip_eps: float = 0.2
    #: anneal epsilon linearly towards 0 together with the learning rate's schedule.
    anneal_clip: bool = True
    #: K, passes over each rollout.
    n_epochs: int = 20
    #: minibatch size; must divide n_envs * n_steps.
    minibatch_size: int = 256
    #: Adam's epsilon (1e-5 in the PPO paper's code, instead of PyTorch's 1e-8).
    adam_eps: float = 1e-5

    def validate(self) -> None:
        super().validate()
        if isinstance(self.clip_eps, bool) or not isinstance(self.clip_eps, numbers.Real) or not self.clip_eps > 0:
            raise ValueError(f"clip_eps must be > 0 (math.inf disables clipping), got {self.clip_eps!r}")
        if not isinstance(self.anneal_clip, bool):
            raise ValueError(f"anneal_clip must be True or False, got {self.anneal_clip!r}")
        _check_int(self.n_epochs, "n_epochs", 1)
        _check_int(self.minibatch_size, "minibatch_size", 1)
        batch = self.n_envs * self.n_steps
        if self.normalize_advantages and self.minibatch_size < 2:
            raise ValueError(
                "minibatch_size must be >= 2 with normalize_advantages=True (the standard deviation of one "
                f"advantage is undefined and would turn every parameter into NaN), got {self.minibatch_size}"
            )
        if batch % self.minibatch_size != 0:
            raise ValueError(
                f"minibatch_size must divide the rollout size n_envs * n_steps = {batch}, got {self.minibatch_size}"
            )
        _check_real(self.adam_eps, "adam_eps", 0.0, math.inf, lo_open=True, hi_open=True)

    @classmethod
    def for_env(cls, env_id: str, **overrides) -> "PPOConfig":
        """The configuration for ``env_id``: the class defaults (tuned on CartPole) for a Discrete
        action space; for a Box action space :data:`CONTINUOUS_DEFAULTS`, updated with
        ``ENV_PRESETS[env_id]`` if there is one. ``overrides`` (any fields) win over both.
        ``ValueError`` for an unknown or unsupported environment (:func:`pgbook.envs.env_spaces`)."""
        preset = {}
        if common.env_spaces(env_id).continuous:
            preset = {**CONTINUOUS_DEFAULTS, **ENV_PRESETS.get(env_id, {})}
        return cls(**{**preset, "env_id": env_id, **overrides})


#: PPO's defaults for a Box action space (chapter 11): CleanRL's ``ppo_continuous_action.py``, that
#: is the PPO paper's MuJoCo hyper-parameters (rollouts of 2048 steps of one environment, 10 epochs
#: of minibatches of 64, Adam 3e-4, gamma 0.99, lambda 0.95, clip 0.2, tanh 64 x 64) as OpenAI
#: Baselines' ``ppo2`` runs them, which adds a linearly annealed learning rate and observation
#: normalisation and reward scaling; no entropy bonus, c1 0.5, gradient norm 0.5. CleanRL also clips
#: the normalised observations and scaled rewards to [-10, 10], clips the value loss, weights the
#: squared error by 0.25 (0.5 x 0.5; this book: c1 x MSE), treats a time limit as termination and
#: does not reset its reward-scaling accumulator at a time limit; this book does none of these.
CONTINUOUS_DEFAULTS: dict = {
    "n_envs": 1,
    "n_steps": 2048,
    "n_epochs": 10,
    "minibatch_size": 64,
    "lr": 3e-4,
    "anneal_lr": True,
    "gamma": 0.99,
    "lam": 0.95,
    "clip_eps": 0.2,
    "anneal_clip": False,
    "ent_coef": 0.0,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "hidden": (64, 64),
    "normalize_obs": True,
    "normalize_reward": True,
}

#: RL Baselines3 Zoo's network for its tuned MuJoCo PPO settings: 256 x 256 ReLU, PyTorch's default
#: initialisation, initial sigma = exp(-2).
_ZOO_MUJOCO_NETWORK = {"hidden": (256, 256), "activation": "relu", "orthogonal_init": False, "log_std_init": -2.0}

#: RL Baselines3 Zoo's tuned PPO entries, in this book's field names (over
#: :data:`CONTINUOUS_DEFAULTS`): ``hyperparams/ppo.yml`` at 22e3ff2. ``HalfCheetah-v4`` and
#: ``Hopper-v4`` (tuned on the v3 tasks): a constant learning rate and clip range, observation
#: normalisation and reward scaling, the zoo's wide ReLU networks. ``Pendulum-v1``: 4 x 1024 steps,
#: gamma 0.9, lr 1e-3 (constant), 10 epochs of minibatches of 64 (SB3's default), SB3's default
#: network (tanh 64 x 64, orthogonal initialisation), no normalisation -- and state-dependent
#: exploration (gSDE, resampled every 4 steps), which this book's Gaussian head does not implement:
#: here the log-std is state-independent, the one difference in that pair.
#: benchmarks/continuous_vs_peers.py trains this book's agent with them next to Stable-Baselines3
#: with the same entries (tests/test_benchmarks.py checks that the two agree field by field).
ZOO_SETTINGS: dict[str, dict] = {
    "Pendulum-v1": {
        "n_envs": 4,
        "n_steps": 1024,
        "minibatch_size": 64,
        "gamma": 0.9,
        "lam": 0.95,
        "n_epochs": 10,
        "ent_coef": 0.0,
        "lr": 1e-3,
        "anneal_lr": False,
        "clip_eps": 0.2,
        "normalize_obs": False,
        "normalize_reward": False,
    },
    "HalfCheetah-v5": {
        **_ZOO_MUJOCO_NETWORK,
        "n_steps": 512,
        "minibatch_size": 64,
        "gamma": 0.98,
        "lr": 2.0633e-05,
        "anneal_lr": False,
        "ent_coef": 0.000401762,
        "clip_eps": 0.1,
        "n_epochs": 20,
        "lam": 0.92,
        "max_grad_norm": 0.8,
        "vf_coef": 0.58096,
    },
    "Hopper-v5": {
        **_ZOO_MUJOCO_NETWORK,
        "n_steps": 512,
        "minibatch_size": 32,
        "gamma": 0.999,
        "lr": 9.80828e-05,
        "anneal_lr": False,
        "ent_coef": 0.00229519,
        "clip_eps": 0.2,
        "n_epochs": 5,
        "lam": 0.99,
        "max_grad_norm": 0.7,
        "vf_coef": 0.835671,
    },
}

#: Per-environment tunings over :data:`CONTINUOUS_DEFAULTS` (used by :meth:`PPOConfig.for_env`).
#: Pendulum-v1: RL Baselines3 Zoo's setting (4 x 1024, gamma 0.9, lr 1e-3, 10 epochs, no
#: normalisation) without its state-dependent exploration (gSDE) and with the learning rate
#: annealed (the zoo keeps it constant); measured with benchmarks/pendulum_ppo.py (seed 0, 196,608
#: steps): greedy mean return -137 over 20 episodes. HalfCheetah-v5: the zoo's entry
#: (:data:`ZOO_SETTINGS`), which benchmarks/continuous_vs_peers.py found far ahead of CleanRL's
#: setting. Hopper-v5 has no preset: there the zoo's entry ended near 1000 (about the healthy reward
#: of a whole episode upright) with both implementations while CleanRL's setting went much further
#: with both (chapter 11's benchmark table).
ENV_PRESETS: dict[str, dict] = {
    "Pendulum-v1": {
        "n_envs": 4,
        "n_steps": 1024,
        "gamma": 0.9,
        "lam": 0.95,
        "lr": 1e-3,
        "minibatch_size": 64,
        "n_epochs": 10,
        "normalize_obs": False,
        "normalize_reward": False,
    },
    "HalfCheetah-v5": dict(ZOO_SETTINGS["HalfCheetah-v5"]),
}


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """Per-sample ``L^CLIP_t = min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t)`` (to be maximised).

    ``ratio`` (non-negative) and ``advantages`` are finite floating-point tensors of the same shape;
    ``clip_eps > 0`` (``math.inf``: no clipping, the surrogate ``r_t A_t``).
    """
    check_tensor(ratio, "ratio")
    check_tensor(advantages, "advantages")
    if ratio.shape != advantages.shape:
        raise ValueError(f"ratio and advantages must have the same shape, got {tuple(ratio.shape)} and {tuple(advantages.shape)}")
    if bool((ratio < 0).any()):
        raise ValueError("ratio must be non-negative (a ratio of probabilities)")
    return _clipped_surrogate(ratio, advantages, _check_clip_eps(clip_eps))


def _check_clip_eps(clip_eps) -> float:
    return check_real(clip_eps, "clip_eps", 0.0, low_open=True, allow_inf=True)


def _clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """:func:`clipped_surrogate` without the argument checks (the training loop's hot path)."""
    if clip_eps >= torch.finfo(ratio.dtype).max:  # 1 + eps is not a number of ratio's dtype: nothing is clipped
        return ratio * advantages
    return torch.min(ratio * advantages, torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages)


@dataclass
class PPOLosses:
    """The terms of one minibatch's loss ``-L^TOTAL`` and the diagnostics (eq. ``eq-ppo-approx-kl``)."""

    #: the loss that is minimised: ``policy + c1 value - c2 entropy = -L^TOTAL``.
    total: torch.Tensor
    #: ``-mean(L^CLIP_t)``.
    policy: torch.Tensor
    #: ``mean((V_phi(s_t) - V^targ_t)^2)``.
    value: torch.Tensor
    #: ``mean(S[pi_theta](s_t))``.
    entropy: torch.Tensor
    #: ``mean((r - 1) - log r)`` (no gradient).
    approx_kl: torch.Tensor
    #: fraction of samples with ``|r - 1| > eps`` (no gradient).
    clip_frac: torch.Tensor
    #: smallest and largest ratio in the minibatch (no gradient).
    ratio_min: torch.Tensor
    ratio_max: torch.Tensor


def ppo_losses(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip_eps: float = 0.2,
    vf_coef: float = 0.5,
    ent_coef: float = 0.0,
    head: PolicyHead | None = None,
) -> PPOLosses:
    """The PPO loss of a minibatch, ``-L^TOTAL`` (eq. ``eq-ppo-loss``), and its diagnostics.

    ``logits`` are the policy parameters and ``values`` (B,) the values, from the current networks;
    ``old_log_probs`` (log pi_old(a|s), recorded at collection), ``advantages`` and ``returns``
    (the value targets) of shape (B,), all treated as constants. ``head`` says how ``logits`` and
    ``actions`` are read (:mod:`pgbook.heads`): ``None`` or a :class:`~pgbook.heads.CategoricalHead`
    -- logits (B, A), integer ``actions`` (B,) in ``[0, A)`` (chapter 10); a
    :class:`~pgbook.heads.DiagGaussianHead` ``(d)`` -- ``[mu, log sigma]`` (B, 2d) and real
    ``actions`` (B, d) (chapter 11). The training loop computes the same loss with the model's head.
    """
    if head is None:
        head = CategoricalHead
    elif not isinstance(head, (CategoricalHead, DiagGaussianHead)):
        raise ValueError(f"head must be None, a CategoricalHead or a DiagGaussianHead, got {type(head).__name__}")
    gaussian = isinstance(head, DiagGaussianHead)
    check_tensor(logits, "logits", ndim=2, finite=False)  # finiteness: check_loss_batch / below
    B = logits.shape[0]
    for name, x in (
        ("values", values),
        ("actions", actions),
        ("old_log_probs", old_log_probs),
        ("advantages", advantages),
        ("returns", returns),
    ):
        check_tensor(x, name, floating=gaussian or name != "actions", finite=gaussian)  # categorical: below
        shape = (B, head.action_dim) if gaussian and name == "actions" else (B,)
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} like the batch of logits, got {tuple(x.shape)}")
    if gaussian:
        if logits.shape[1] != head.n_params:
            raise ValueError(f"logits must be [mu, log sigma] of shape ({B}, {head.n_params}) for this head, got {tuple(logits.shape)}")
        check_tensor(logits, "logits")
    else:
        if head is not CategoricalHead and logits.shape[1] != head.n_actions:
            raise ValueError(f"logits must have {head.n_actions} columns for this head, got {tuple(logits.shape)}")
        check_loss_batch(
            logits, actions, values=values, old_log_probs=old_log_probs, advantages=advantages, returns=returns
        )
    for name, c in (("vf_coef", vf_coef), ("ent_coef", ent_coef)):
        _check_real(c, name, 0.0, math.inf, hi_open=True)
    clip_eps = _check_clip_eps(clip_eps)
    return _ppo_losses(head, logits, values, actions, old_log_probs, advantages, returns, clip_eps, vf_coef, ent_coef)


def _loss_terms(head: PolicyHead, logits, values, actions, old_log_probs, advantages, returns, clip_eps, vf_coef, ent_coef):
    """The hot path of :func:`ppo_losses`: ``(total, policy, value, entropy or None, log_ratio)``.

    ``logits``: the policy parameters, read by ``head`` (the logits of a categorical policy,
    ``[mu, log sigma]`` of a Gaussian one, :mod:`pgbook.heads`)."""
    dist = head.distribution(logits)
    log_ratio = head.log_prob(dist, actions) - old_log_probs.detach()
    ratio = log_ratio.exp()  # r_t(theta)
    policy = -_clipped_surrogate(ratio, advantages.detach(), clip_eps).mean()  # -mean L^CLIP
    value = (values - returns.detach()).pow(2).mean()  # mean L^VF
    total = policy + vf_coef * value  # = -L^TOTAL (eq-ppo-loss) when c2 = 0 ...
    entropy = None
    if ent_coef > 0:  # ... and with the entropy bonus (c2 = 0: no back-propagation through 0 * S)
        entropy = head.entropy(dist).mean()  # mean S[pi_theta]
        total = total - ent_coef * entropy
    return total, policy, value, entropy, log_ratio


@torch.no_grad()
def ratio_diagnostics(log_ratio: torch.Tensor, clip_eps: float) -> tuple[torch.Tensor, ...]:
    """``(approx_kl, clip_frac, ratio_min, ratio_max)`` along the last axis of ``log_ratio``.

    ``approx_kl = mean((r - 1) - log r)`` (eq. ``eq-ppo-approx-kl``), ``clip_frac = mean(|r - 1| >
    eps)``, and the range of ``r = exp(log_ratio)``. Works on one minibatch (shape (B,)) or on a
    stack of them (shape (K, B)).
    """
    check_tensor(log_ratio, "log_ratio")
    if log_ratio.ndim == 0 or log_ratio.shape[-1] == 0:
        raise ValueError(f"log_ratio must have shape (B,) or (K, B) with B >= 1, got {tuple(log_ratio.shape)}")
    return _ratio_diagnostics(log_ratio, _check_clip_eps(clip_eps))


@torch.no_grad()
def _ratio_diagnostics(log_ratio: torch.Tensor, clip_eps: float) -> tuple[torch.Tensor, ...]:
    """:func:`ratio_diagnostics` without the argument checks (NaN in, NaN out: a diverged run is logged)."""
    ratio = log_ratio.exp()
    approx_kl = ((ratio - 1.0) - log_ratio).mean(-1)
    clip_frac = ((ratio - 1.0).abs() > clip_eps).float().mean(-1)
    return approx_kl, clip_frac, ratio.amin(-1), ratio.amax(-1)


def _ppo_losses(head, logits, values, actions, old_log_probs, advantages, returns, clip_eps, vf_coef, ent_coef) -> PPOLosses:
    """:func:`ppo_losses` without the argument checks."""
    total, policy, value, entropy, log_ratio = _loss_terms(
        head, logits, values, actions, old_log_probs, advantages, returns, clip_eps, vf_coef, ent_coef
    )
    if entropy is None:
        with torch.no_grad():
            entropy = head.entropy(head.distribution(logits)).mean()
    return PPOLosses(total, policy, value, entropy, *_ratio_diagnostics(log_ratio, clip_eps))


def _check_update_args(model, optimizer, obs, actions, old_log_probs, advantages, returns, cfg, generator) -> None:
    """The checks of :func:`ppo_update`: types, shapes ``(n, obs_dim)`` and ``(n,)``, finite values,
    actions in range, ``n`` a multiple of ``cfg.minibatch_size``. Once per update, not per minibatch."""
    if not isinstance(model, ActorCritic):
        raise ValueError(f"model must be an ActorCritic, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(cfg, PPOConfig):
        raise ValueError(f"cfg must be a PPOConfig, got {type(cfg).__name__}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    check_tensor(obs, "obs", ndim=2)
    n = obs.shape[0]
    if obs.shape[1] != model.obs_dim:
        raise ValueError(f"obs must have shape (n, {model.obs_dim}) for this model, got {tuple(obs.shape)}")
    if n == 0 or n % cfg.minibatch_size != 0:
        raise ValueError(f"obs must hold a positive multiple of cfg.minibatch_size = {cfg.minibatch_size} rows, got {n}")
    if model.continuous:  # (n, action_dim) real action vectors
        check_tensor(actions, "actions", ndim=2)
        if actions.shape[1] != model.action_dim:
            raise ValueError(f"actions must have shape (n, {model.action_dim}) for this model, got {tuple(actions.shape)}")
    else:
        check_tensor(actions, "actions", floating=False, ndim=1)
    for name, x in (("old_log_probs", old_log_probs), ("advantages", advantages), ("returns", returns)):
        check_tensor(x, name, ndim=1)
    dtype = next(model.parameters()).dtype
    for name, x in (("obs", obs), ("old_log_probs", old_log_probs), ("advantages", advantages), ("returns", returns)):
        if x.dtype != dtype and not bool(torch.isfinite(x.detach().to(dtype)).all()):
            raise ValueError(f"{name} overflows {dtype}, the networks' dtype (|values| up to {float(x.abs().max()):.3g})")
    for name, x in (("actions", actions), ("old_log_probs", old_log_probs), ("advantages", advantages), ("returns", returns)):
        if x.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows like obs, got shape {tuple(x.shape)}")
    if not model.continuous and (int(actions.min()) < 0 or int(actions.max()) >= model.n_actions):
        raise ValueError(f"actions must lie in [0, {model.n_actions}), got values in [{int(actions.min())}, {int(actions.max())}]")


def ppo_update(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    cfg: PPOConfig,
    clip_eps: float,
    generator: torch.Generator,
) -> dict:
    """K epochs of minibatch gradient descent on ``-L^TOTAL`` over one flattened rollout.

    Returns the diagnostics of each epoch as lists (length K): mean ``approx_kl`` and
    ``clip_frac`` over its minibatches, ``ratio_min``/``ratio_max`` over the epoch, and the mean
    policy loss, value loss and entropy. They are computed after the K epochs, in one batch, from
    the log-ratios and logits each minibatch had when its gradient step was taken. The five data
    tensors are constants of the update: gradients flow into the networks only, never into them.
    """
    _check_update_args(model, optimizer, obs, actions, old_log_probs, advantages, returns, cfg, generator)
    clip_eps = _check_clip_eps(clip_eps)
    obs, actions, old_log_probs, advantages, returns = (x.detach() for x in (obs, actions, old_log_probs, advantages, returns))
    obs = obs.to(next(model.parameters()).dtype)  # the networks' dtype (float32), whatever float came in
    if model.continuous:
        actions = actions.to(obs.dtype)
    head = model.head  # categorical or diagonal Gaussian (pgbook.heads)
    n = obs.shape[0]
    n_minibatches = n // cfg.minibatch_size
    params = list(model.parameters())

    def normalise(adv):
        return (adv - adv.mean()) / (adv.std() + 1e-8) if cfg.normalize_advantages else adv

    whole = (obs, actions, old_log_probs, normalise(advantages), returns)  # used when one minibatch
    log_ratios, logits_seen, policy_losses, value_losses = [], [], [], []
    for _ in range(cfg.n_epochs):
        if n_minibatches == 1:  # the minibatch is the whole rollout: shuffling would not change the mean
            minibatches = [whole]
        else:
            # One gather per tensor and epoch, then minibatches as views: the rows of obs[idx] for each
            # idx of randperm(n).split(B), five gathers an epoch instead of five a minibatch.
            perm = torch.randperm(n, generator=generator)
            parts = [x[perm].split(cfg.minibatch_size) for x in (obs, actions, old_log_probs, advantages, returns)]
            minibatches = [(o, a, lp, normalise(adv), ret) for o, a, lp, adv, ret in zip(*parts)]
        for mb_obs, mb_actions, mb_old_log_probs, mb_adv, mb_returns in minibatches:
            logits, values = model(mb_obs)
            total, policy, value, _, log_ratio = _loss_terms(
                head, logits, values, mb_actions, mb_old_log_probs, mb_adv, mb_returns, clip_eps, cfg.vf_coef, cfg.ent_coef
            )
            for param in params:  # = optimizer.zero_grad(set_to_none=True), without its profiler hooks
                param.grad = None
            total.backward()
            if cfg.max_grad_norm is not None:
                common.clip_grad_norm(params, cfg.max_grad_norm)
            optimizer.step()
            log_ratios.append(log_ratio.detach())
            logits_seen.append(logits.detach())
            policy_losses.append(policy.detach())
            value_losses.append(value.detach())

    # Diagnostics per epoch, all at once (no per-step work or synchronisation).
    shape = (cfg.n_epochs, n_minibatches)
    kl, clip_frac, r_min, r_max = (d.reshape(shape) for d in _ratio_diagnostics(torch.stack(log_ratios), clip_eps))
    entropy = head.entropy(head.distribution(torch.stack(logits_seen))).mean(-1).reshape(shape)
    return {
        "approx_kl": kl.mean(1).tolist(),
        "clip_frac": clip_frac.mean(1).tolist(),
        "ratio_min": r_min.amin(1).tolist(),
        "ratio_max": r_max.amax(1).tolist(),
        "policy_loss": torch.stack(policy_losses).reshape(shape).mean(1).tolist(),
        "value_loss": torch.stack(value_losses).reshape(shape).mean(1).tolist(),
        "entropy": entropy.mean(1).tolist(),
    }


def train(cfg: PPOConfig, progress: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train PPO-Clip; return the model, per-update log, episodes and evaluations.

    Every iteration: collect ``n_envs x n_steps`` transitions with ``pi_theta_old``; GAE
    advantages and value targets with the critic of collection time; ``n_epochs`` passes of
    shuffled minibatch descent on ``-L^TOTAL``; then ``theta_old <- theta`` (implicitly: the
    next rollout is collected with the updated network). ``progress(steps_done, info)`` is
    called after each iteration. Deterministic on CPU for a given ``cfg.seed``. A Discrete action
    space gets the categorical policy, a Box one the diagonal Gaussian (chapter 11; the defaults
    for it: :meth:`PPOConfig.for_env`).
    """
    if not isinstance(cfg, PPOConfig):
        raise ValueError(f"cfg must be a PPOConfig, got {type(cfg).__name__}")
    if progress is not None:
        check_callable(progress, "progress")  # now, not after the first update
    cfg.validate()
    spaces = common.env_spaces(cfg.env_id)  # fail now, not inside the loop
    obs_dim, n_actions, action_dim = spaces.obs_dim, spaces.n_actions, spaces.action_dim
    device = common.resolve_device(cfg.device)
    batch = cfg.n_envs * cfg.n_steps
    n_iterations = cfg.total_steps // batch

    with common.seeded(cfg.seed, cfg.torch_threads, device):
        obs_rms = FastRunningMeanStd(shape=(obs_dim,)) if cfg.normalize_obs else None  # shared by the envs
        reward_gamma = cfg.gamma if cfg.normalize_reward else None
        envs = common.make_vec_env(cfg.env_id, cfg.n_envs, cfg.max_episode_steps, obs_rms, reward_gamma)
        model = ActorCritic(
            obs_dim, n_actions, cfg.hidden, cfg.orthogonal_init, action_dim=action_dim,
            log_std_init=cfg.log_std_init, activation=cfg.activation,
        ).to(device)
        # fused Adam: one kernel for all parameters instead of ~6 small ops per tensor (faster).
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        storage = common.RolloutStorage(cfg.n_steps, cfg.n_envs, obs_dim, device, action_dim)
        tracker = common.EpisodeTracker(cfg.n_envs)
        log, evals = [], []
        obs, _ = envs.reset(seed=cfg.seed)
        start = time.perf_counter()
        for iteration in range(n_iterations):
            # Schedules: alpha goes linearly from 1 towards 0 (paper, Atari).
            alpha = 1.0 - iteration / n_iterations
            lr = cfg.lr * alpha if cfg.anneal_lr else cfg.lr
            clip_eps = cfg.clip_eps * alpha if cfg.anneal_clip else cfg.clip_eps
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 1. Data collection with pi_theta_old (the current network, frozen for this rollout).
            obs = common.collect_rollout(envs, model, storage, obs, tracker, cfg.bootstrap_truncated)

            # 2. Advantages and value targets by GAE with V_phi_old (chapter 8).
            advantages, returns = common.compute_advantages(storage, cfg.gamma, cfg.lam)

            # 3. K epochs of minibatch descent on -L^TOTAL.
            diag = ppo_update(
                model,
                optimizer,
                storage.obs.reshape(batch, obs_dim),
                storage.actions.reshape(batch, *storage.actions.shape[2:]),
                storage.log_probs.reshape(batch),
                advantages.reshape(batch),
                returns.reshape(batch),
                cfg,
                clip_eps,
                generator,
            )

            steps = tracker.global_step
            row = {"step": steps, "lr": lr, "clip_eps": clip_eps, **{k: v[-1] for k, v in diag.items()}, "epochs": diag}
            log.append(row)
            stop = False
            if cfg.eval_every and (steps // cfg.eval_every) > ((steps - batch) // cfg.eval_every):
                returns_eval = common.evaluate(
                    model, cfg.env_id, cfg.eval_episodes, 10_000 + cfg.seed, cfg.max_episode_steps, obs_rms
                )
                evals.append((steps, float(returns_eval.mean()), float(returns_eval.std())))
                stop = cfg.stop_at_return is not None and returns_eval.mean() >= cfg.stop_at_return
            if progress is not None:
                progress(steps, {**row, "episodes": tracker.finished, "evals": evals})
            if stop:
                break
        seconds = time.perf_counter() - start
        envs.close()
    return TrainResult(model, log, list(tracker.finished), evals, tracker.global_step, seconds, obs_rms)
