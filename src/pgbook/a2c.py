"""Advantage actor-critic (A2C), read top to bottom next to chapter 9 (:doc:`/book/ch09_a2c`).

Equations of the chapter implemented here:

* ``prop-a2c-nstep-bias`` — on a tabular MDP, the exact conditional mean of the n-step target
  (:func:`nstep_target_mean`): ``Q^pi(s, a)`` when the critic is ``V^pi``, biased by
  ``gamma^n E[(V - V^pi)(s_{t+n}) | s, a]`` otherwise.
* ``eq-a2c-nstep-advantage`` — the notes' n-step advantage
  ``A_t = sum_{k<n} gamma^k r_{t+k} + gamma^n V_phi(s_{t+n}) - V_phi(s_t)``. Inside a rollout of
  T steps, step t looks ``n = T - t`` steps ahead (or to its episode's end): this is exactly
  GAE with ``lambda = 1`` (chapter 8), so :func:`train` calls :func:`pgbook.gae.gae` with
  ``lam = 1`` by default.
* ``eq-a2c-policy-loss`` — ``L_policy(theta) = -mean_t[ log pi_theta(a_t|s_t) * stopgrad(A_t) ]``.
* ``eq-a2c-policy-grad-phi`` — with the advantage detached, ``grad_phi L_policy = 0`` exactly.
* ``eq-a2c-value-loss`` — ``L_value(phi) = mean_t[ (stopgrad(G_t) - V_phi(s_t))^2 ]``, the
  target ``G_t = A_t + V_phi_old(s_t)`` held fixed (a semi-gradient).
* ``eq-a2c-total-loss`` — ``L = L_policy + c1 L_value - c2 H[pi_theta]``, minimised by one
  gradient step per rollout; minimising ``-c2 H`` *maximises* the entropy.

Episode ends (``eq-a2c-truncation``) are handled by :mod:`pgbook.rollout` and :mod:`pgbook.envs`.
A2C drives Discrete action spaces only (the categorical head); PPO also drives Box ones.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import agents_common as common
from . import mdp as _mdp
from ._validate import as_float_array, check_bool, check_callable, check_mdp, check_positive_int, check_shape, check_tensor
from .agent_config import _check_real
from .agents_common import ActorCritic, AgentConfig, TrainResult
from .envs import FastRunningMeanStd
from .heads import CategoricalHead, check_loss_batch

__all__ = ["A2CConfig", "A2CLosses", "a2c_losses", "nstep_target_mean", "train"]


def nstep_target_mean(mdp: _mdp.MDP, pi, values, n: int) -> np.ndarray:
    """``E[sum_{k<n} gamma^k r_{t+k} + gamma^n V(s_{t+n}) | s_t = s, a_t = a]``, exactly, shape (S, A).

    For a tabular policy ``pi`` and any critic table ``values`` (shape (S,)). Computed forward in
    ``n`` — ``W_0 = V``, ``W_m = r_pi + gamma P_pi W_{m-1}`` (the expected m-step target from a
    state), and the first step with the given action: ``R + gamma P W_{n-1}`` — with no linear
    solve, so it can be checked against :func:`pgbook.mdp.action_values` (``prop-a2c-nstep-bias``).
    """
    mdp = check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    V = as_float_array(values, "values", ndim=1)
    check_shape(V, (mdp.n_states,), "values")
    n = check_positive_int(n, "n")
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    r_pi = (pi * mdp.R).sum(axis=1)
    W = V.copy()
    for _ in range(n - 1):
        W = r_pi + mdp.gamma * P_pi @ W
    return mdp.R + mdp.gamma * _mdp.next_state_expectation(mdp, W)  # dense or sparse P


@dataclass
class A2CConfig(AgentConfig):
    """A2C hyper-parameters. Defaults, compared with the notes and :cite:`mnih2016a3c`:

    ================  =========  ==========================================================
    field             default    notes / paper / why
    ================  =========  ==========================================================
    n_envs, n_steps   8, 5       notes: "buffer full or episode end", n unspecified; A3C: 5
                                 steps per update (t_max = 5); 8 synchronous actors
    gamma             0.99       notes: gamma; A3C: 0.99
    lam               1.0        1 = the notes' n-step advantage exactly (GAE off)
    lr                7e-4       notes: alpha_actor, alpha_critic; A3C: RMSProp, ~7e-4
    optimizer         rmsprop    A3C: RMSProp (alpha 0.99); "adam" is offered
    vf_coef (c1)      0.5        notes: c1 = 0.5
    ent_coef (c2)     0.0        notes: c2 = 0.01 (beta); 0 suits CartPole (exploration is
                                 not the problem, and the bonus delays convergence)
    max_grad_norm     0.5        notes: none for A2C (0.5 in the PPO code)
    normalize_adv.    False      notes: none; A3C: none
    total_steps       500_000    the budget of the book's benchmark on CartPole-v1
    ================  =========  ==========================================================
    """

    total_steps: int = 500_000
    n_envs: int = 8
    n_steps: int = 5
    gamma: float = 0.99
    lam: float = 1.0
    lr: float = 7e-4
    anneal_lr: bool = False
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float | None = 0.5
    normalize_advantages: bool = False
    #: "rmsprop" (A3C's choice, alpha 0.99) or "adam".
    optimizer: str = "rmsprop"
    #: epsilon of the optimiser's denominator.
    optim_eps: float = 1e-5

    def validate(self) -> None:
        super().validate()
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {self.optimizer!r}")
        _check_real(self.optim_eps, "optim_eps", 0.0, math.inf, lo_open=True, hi_open=True)


@dataclass
class A2CLosses:
    """The three terms of the A2C loss (eq. ``eq-a2c-total-loss``) and their weighted sum."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor


def a2c_losses(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    vf_coef: float = 0.5,
    ent_coef: float = 0.0,
    detach_advantages: bool = True,
) -> A2CLosses:
    """The A2C losses of a batch (eqs. ``eq-a2c-policy-loss``, ``eq-a2c-value-loss``, ``eq-a2c-total-loss``).

    ``logits`` (B, A) of ``pi_theta(.|s)``; ``values`` (B,) = ``V_phi(s)``; ``actions`` (B,);
    ``advantages`` and ``returns`` (B,). Returns ``policy = -mean(log pi(a|s) A)``,
    ``value = mean((G - V)^2)``, ``entropy = mean(H[pi(.|s)])`` and
    ``total = policy + vf_coef * value - ent_coef * entropy``.

    ``detach_advantages=False`` exists only for chapter 9's demonstration of what the
    stop-gradient removes: the advantage then carries a gradient into the critic.
    """
    check_tensor(logits, "logits", ndim=2, finite=False)  # finiteness: check_loss_batch
    B = logits.shape[0]
    for name, x in (("values", values), ("actions", actions), ("advantages", advantages), ("returns", returns)):
        check_tensor(x, name, floating=name != "actions", finite=False)  # finiteness: check_loss_batch
        if tuple(x.shape) != (B,):
            raise ValueError(f"{name} must have shape ({B},) like the batch of logits, got {tuple(x.shape)}")
    check_loss_batch(logits, actions, values=values, advantages=advantages, returns=returns)
    for name, c in (("vf_coef", vf_coef), ("ent_coef", ent_coef)):
        _check_real(c, name, 0.0, math.inf, hi_open=True)
    detach_advantages = check_bool(detach_advantages, "detach_advantages")
    dist = CategoricalHead.distribution(logits)
    log_prob = dist.log_prob(actions)
    adv = advantages.detach() if detach_advantages else advantages
    policy = -(log_prob * adv).mean()  # eq-a2c-policy-loss
    value = (returns.detach() - values).pow(2).mean()  # eq-a2c-value-loss: the target is a constant
    if ent_coef > 0:
        entropy = dist.entropy().mean()
        total = policy + vf_coef * value - ent_coef * entropy  # eq-a2c-total-loss
    else:  # c2 = 0: the same loss without back-propagating through a zero-weighted entropy
        with torch.no_grad():
            entropy = dist.entropy().mean()
        total = policy + vf_coef * value
    return A2CLosses(total, policy, value, entropy)


def _make_optimizer(cfg: A2CConfig, model: ActorCritic) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg.lr, alpha=0.99, eps=cfg.optim_eps)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.optim_eps)


def train(cfg: A2CConfig, progress: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train A2C; return the model, per-update log, episodes and evaluations.

    ``progress(steps_done, info)`` is called after every update (the CLI's progress bar).
    Deterministic on CPU for a given ``cfg.seed``.
    """
    if not isinstance(cfg, A2CConfig):
        raise ValueError(f"cfg must be an A2CConfig, got {type(cfg).__name__}")
    if progress is not None:
        check_callable(progress, "progress")  # now, not after the first update
    cfg.validate()
    obs_dim, n_actions = common.check_env(cfg.env_id)  # fail now, not inside the loop
    device = common.resolve_device(cfg.device)
    n_iterations = cfg.total_steps // (cfg.n_envs * cfg.n_steps)

    with common.seeded(cfg.seed, cfg.torch_threads, device):
        obs_rms = FastRunningMeanStd(shape=(obs_dim,)) if cfg.normalize_obs else None  # shared by the envs
        reward_gamma = cfg.gamma if cfg.normalize_reward else None
        envs = common.make_vec_env(cfg.env_id, cfg.n_envs, cfg.max_episode_steps, obs_rms, reward_gamma)
        model = ActorCritic(obs_dim, n_actions, cfg.hidden, cfg.orthogonal_init, activation=cfg.activation).to(device)
        optimizer = _make_optimizer(cfg, model)
        params = list(model.parameters())
        storage = common.RolloutStorage(cfg.n_steps, cfg.n_envs, obs_dim, device)
        tracker = common.EpisodeTracker(cfg.n_envs)
        log, evals = [], []
        obs, _ = envs.reset(seed=cfg.seed)
        start = time.perf_counter()
        for iteration in range(n_iterations):
            # Learning rate: constant, or linearly annealed towards 0.
            lr = cfg.lr * (1.0 - iteration / n_iterations) if cfg.anneal_lr else cfg.lr
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 1. Experience: T steps of N environments with a ~ pi_theta(.|s).
            obs = common.collect_rollout(envs, model, storage, obs, tracker, cfg.bootstrap_truncated)

            # 2. The n-step advantage (eq-a2c-nstep-advantage): GAE with lambda = 1 by default.
            advantages, returns = common.compute_advantages(storage, cfg.gamma, cfg.lam)
            adv = advantages.reshape(-1)
            if cfg.normalize_advantages:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)

            # 3. One gradient-descent step on L = L_policy + c1 L_value - c2 H (eq-a2c-total-loss).
            logits, values = model(storage.obs.reshape(-1, obs_dim))
            losses = a2c_losses(
                logits, values, storage.actions.reshape(-1), adv, returns.reshape(-1), cfg.vf_coef, cfg.ent_coef
            )
            for param in params:  # = optimizer.zero_grad(set_to_none=True), without its profiler hooks
                param.grad = None
            losses.total.backward()
            grad_norm = (
                common.clip_grad_norm(params, cfg.max_grad_norm)
                if cfg.max_grad_norm is not None
                else torch.tensor(float("nan"))
            )
            optimizer.step()

            steps = tracker.global_step
            row = {
                "step": steps,
                "lr": lr,
                "policy_loss": losses.policy.item(),
                "value_loss": losses.value.item(),
                "entropy": losses.entropy.item(),
                "grad_norm": float(grad_norm),
            }
            log.append(row)
            stop = False
            if cfg.eval_every and (steps // cfg.eval_every) > ((steps - cfg.n_envs * cfg.n_steps) // cfg.eval_every):
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
