"""Every public name of pgbook, driven with generated bad inputs (issue 13, property test).

``REGISTRY`` has an entry for every name in the ``__all__`` of every public module (the test
:func:`test_registry_covers_every_public_name` fails when one is missing, so a new function cannot
escape): a :class:`Fn` — one small, fast, valid call with keyword arguments — or a
:class:`NotFuzzed` with the reason (constants, result containers). A few public methods
(``LinearSoftmaxPolicy.logits`` ...) have entries of their own.

:func:`test_bad_inputs` takes one entry and, for each of its arguments and each *kind* of bad value
that fits the argument's type (NaN, +-inf, complex, strings, bools, None, wrong shape, wrong rank,
empty, integer/half/long tensors, tensors with ``requires_grad``, huge (1e300) and tiny (1e-300)
magnitudes, negative counts, non-integer floats, numpy scalars, another or a sparse MDP, ...), puts
a value of that kind in place of the argument and calls the function. Hypothesis generates the
values of the kinds that have more than one (where the NaN goes, which axis is too long, the sign
of the magnitude, ...). The outcome must be

* a ``ValueError`` whose message names the argument (for the relational kinds — a wrong shape, an
  MDP of another size — it may name the argument it disagrees with), or
* a result in which every float (recursively through tuples, lists, dicts, dataclasses, arrays,
  tensors, modules, sympy expressions) is finite and real. For the ``huge`` kinds +-inf is
  accepted (an exact answer of order 1e600 is not a float64), NaN is not.

Each kind has a class. ``REJECT`` kinds are never valid input (NaN, complex, strings, bools where
numbers are expected, None without a None default, negative or fractional counts, out-of-range
indices): they must raise. ``SAME`` kinds are valid spellings of the valid value (``np.float32`` /
``np.int64`` scalars): they must be accepted and give the result of the equivalent plain value.
``SAME_IF_ACCEPTED`` kinds (lists for arrays, tensors with ``requires_grad``, a sparse copy of the
MDP, ...) may be rejected, but if accepted must give that result too (nothing lost on the way).
Every other kind may go either way. Any other exception type (TypeError, IndexError,
AttributeError, RuntimeError, ZeroDivisionError, ``LinAlgError``, ...), a numpy ``RuntimeWarning``
or ``ComplexWarning`` on a returned result, or a call that takes more than 10 s is a failure.
Entries state their exceptions, each with its reason: kinds that are valid input there
(``accept``), valid inputs whose correct result is not finite (``nonfinite``), documented
exceptions of another type (``raises``).

Known failures in modules that other work is changing are listed in ``KNOWN_GAPS`` (the entry then
xfails, naming them); a gap that no longer fails makes the test fail, so the list stays current.
Deterministic (the ``ci`` hypothesis profile of ``conftest.py`` is derandomized) and bounded: the
one-value kinds are tried once, the generated ones in two examples per entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import inspect
import math
import numbers
import pkgutil
import re
import signal
import types
import warnings
from fractions import Fraction
from typing import Callable

import numpy as np
import pytest
import scipy.sparse
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgbook
from pgbook import a2c, agents_common, baselines, clipping, episodic, gae, gradients, gridworld, importance
from pgbook import mdp as M
from pgbook import montecarlo, policies, ppo, reproducibility, results, score_function, surrogate, symbolic
from pgbook import value_learning
from pgbook import agent_config, evaluation, heads, networks, rollout
from pgbook import envs as pg_envs
from pgbook import gaussian, lq, normalization
from gymnasium.wrappers.utils import RunningMeanStd

# ============================================================================================
# The registry
# ============================================================================================


pytestmark = pytest.mark.kernel_independent  # skipped by the portability pass (tests/conftest.py)

@dataclasses.dataclass
class Fn:
    """A public callable and one small valid call of it.

    ``kwargs()`` returns fresh valid keyword arguments (called once per generated call, because
    some functions mutate their arguments). ``skip``: arguments not fuzzed, with the reason.
    ``accept``: ``(param, kind) -> reason`` for kinds that are valid input here although they are
    ``REJECT`` in general (the finite-result branch then applies). ``nonfinite``: ``(param, kind)
    -> reason`` for valid inputs whose correct result is not finite. ``raises``: ``param ->
    (exception type, reason)`` for arguments whose documented failure is another exception.
    ``kinds``: ``param -> kinds`` restricting which kinds are tried (expensive calls). ``types``:
    ``param -> type`` overriding the type read off the valid value (which picks the kinds).
    ``also_names``: ``param -> names`` a message about a bad ``param`` may name instead (a condition
    that relates several arguments, reported under one of them).
    """

    fn: Callable
    kwargs: Callable[[], dict]
    skip: dict = dataclasses.field(default_factory=dict)
    accept: dict = dataclasses.field(default_factory=dict)
    nonfinite: dict = dataclasses.field(default_factory=dict)
    raises: dict = dataclasses.field(default_factory=dict)
    kinds: dict = dataclasses.field(default_factory=dict)
    types: dict = dataclasses.field(default_factory=dict)
    also_names: dict = dataclasses.field(default_factory=dict)
    examples: int = 2
    #: False when the valid call itself is too slow for this file (tested elsewhere; reason in the entry).
    check_valid: bool = True


@dataclasses.dataclass
class NotFuzzed:
    reason: str


# ---- small valid inputs --------------------------------------------------------------------

TH = np.array([[0.5, -1.0], [2.0, 0.0], [-0.3, 0.4]])
TH_OLD = np.array([[0.2, -0.5], [1.5, 0.3], [0.0, 0.0]])
STATES = np.array([[0, 1, 2], [2, 2, 0]])
ACTIONS = np.array([[1, 0, 1], [0, 0, 1]])
REWARDS = np.array([[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]])
FEATURES = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


@functools.cache
def mdp3() -> M.MDP:
    """A random MDP with 3 states, 2 actions (immutable: one instance serves every call)."""
    return M.random_mdp(3, 2, 0.9, 0)


@functools.cache
def epi3() -> M.MDP:
    """An episodic MDP of the same size (2 non-terminal states + 1 terminal, 2 actions)."""
    return episodic.random_episodic_mdp(2, 2, 0, gamma=0.9)


def pi(theta=TH) -> np.ndarray:
    return policies.probs(theta)


def pi_th() -> np.ndarray:
    return policies.probs(TH)


_Q = M.action_values(mdp3(), policies.probs(TH))
_A_OLD = M.advantage_values(mdp3(), policies.probs(TH_OLD))


def qtable() -> np.ndarray:
    return _Q.copy()


def adv_table() -> np.ndarray:
    return _A_OLD.copy()


def tensor(x, dtype=torch.float64, **kw):
    return torch.tensor(np.asarray(x), dtype=dtype, **kw)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def tiny_a2c_config():
    return a2c.A2CConfig(total_steps=4, n_envs=1, n_steps=4, hidden=(4,), device="cpu")


def tiny_ppo_config():
    return ppo.PPOConfig(total_steps=4, n_envs=1, n_steps=4, minibatch_size=2, n_epochs=1, hidden=(4,), device="cpu")


def _config_kwargs(cls, **overrides):
    """Every field of a tiny valid configuration (so each field is fuzzed)."""
    cfg = cls(**overrides)
    return lambda: {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


_TINY = dict(total_steps=8, n_envs=2, n_steps=4, hidden=(4,), device="cpu", stop_at_return=100.0, max_episode_steps=50)


def model():
    return agents_common.ActorCritic(4, 2, (4,))


def vec_env():
    return agents_common.make_vec_env("CartPole-v1", 1)


def _collect_kwargs():
    envs = vec_env()
    obs, _ = envs.reset(seed=0)
    return dict(
        envs=envs,
        model=model(),
        storage=agents_common.RolloutStorage(2, 1, 4),
        obs=obs,
        tracker=agents_common.EpisodeTracker(1),
        bootstrap_truncated=True,
    )


def _grad_params():
    p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    (p**2).sum().backward()
    return [p]


def _gaussian_model():
    return networks.ActorCritic(3, hidden=(4,), action_dim=1)


def _collect_gaussian_kwargs():
    envs = pg_envs.make_vec_env("Pendulum-v1", 1)
    obs, _ = envs.reset(seed=0)
    return dict(envs=envs, model=_gaussian_model(), storage=rollout.RolloutStorage(2, 1, 3, action_dim=1),
                obs=obs, tracker=rollout.EpisodeTracker(1), bootstrap_truncated=True)


def _use_seeded(seed, threads, device):
    """:func:`pgbook.agents_common.seeded` is a context manager: enter it (its checks run there)."""
    with agents_common.seeded(seed, threads, device):
        return torch.rand(2)


def _ppo_update_kwargs():
    m = model()
    return dict(
        model=m,
        optimizer=torch.optim.Adam(m.parameters(), lr=1e-3),
        obs=_rand(4, 4),
        actions=torch.tensor([0, 1, 1, 0]),
        old_log_probs=torch.full((4,), math.log(0.5)),
        advantages=_rand(4, seed=1),
        returns=_rand(4, seed=2),
        cfg=tiny_ppo_config(),
        clip_eps=0.2,
        generator=torch.Generator().manual_seed(0),
    )


def _loss_batch(B=4, A=3):
    return dict(
        logits=_rand(B, A),
        values=_rand(B, seed=1),
        actions=torch.tensor([0, 1, 2, 0]),
        advantages=_rand(B, seed=2),
        returns=_rand(B, seed=3),
    )


def _expected_score_autograd_kwargs():
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    return dict(
        log_prob=lambda a: torch.log_softmax(p, 0)[a],
        params=[p],
        actions=[torch.tensor(0), torch.tensor(1)],
        weights=np.array([0.3, 0.7]),
    )


def _trust_region_kwargs(beta=None):
    """A theta that satisfies the floors' conditions: a small step along the CPI gradient."""
    m = mdp3()
    theta = TH_OLD + 0.05 * surrogate.cpi_gradient(m, TH_OLD, TH_OLD)
    kw = dict(mdp=m, theta=theta, theta_old=TH_OLD.copy())
    if beta is None:
        kw["delta"] = 2.0 * surrogate.mean_policy_kl(m, theta, TH_OLD) + 1e-3
    else:
        kw["beta"] = beta
    return kw


_TWO_STATE = None


def two_state():
    global _TWO_STATE
    if _TWO_STATE is None:
        _TWO_STATE = symbolic.two_state_mdp()
    return _TWO_STATE


_POLICY = clipping.LinearSoftmaxPolicy(FEATURES, 2)
_CI = montecarlo.mean_ci(np.array([[1.0, 2.0], [2.0, 3.0], [0.5, 1.0]]))
W_LIN = np.array([[0.1, 0.2], [0.3, -0.1]])

MDP_PI = dict(mdp=mdp3, pi=pi_th)


def _is_maker(v) -> bool:
    """A function of no arguments (wrap a callable argument value in :func:`_const`)."""
    if isinstance(v, type) or not callable(v) or isinstance(v, torch.nn.Module):
        return False
    try:
        return not inspect.signature(v).parameters
    except (TypeError, ValueError):
        return False


def mk(**kw):
    """``kwargs`` factory: zero-argument callables in ``kw`` are called (fresh objects), arrays copied."""
    makers = {k: _is_maker(v) for k, v in kw.items()}

    def factory():
        return {k: (v() if makers[k] else v.copy() if isinstance(v, np.ndarray) else v) for k, v in kw.items()}

    return factory


def _const(v):
    """Wrap a callable argument value (so :func:`mk` passes it instead of calling it)."""
    return lambda: v


_OVERFLOW = "inf - inf: the exact variance is of order 1e600, beyond float64"

#: a valid call of the symbolic derivative takes ~0.5 s: only the kinds that must be rejected (and
#: the float spellings), not the valid ones (zero, numpy integers).
_SYMBOLIC_INDEX_KINDS = {
    p: ("negative", "non_integer", "float_int", "bool", "string", "none", "nan", "inf", "complex", "array1") for p in ("s", "a")
}

_ENV_ID_ANY = {("env_id", "unknown"): "configs accept any id string; train() checks it with check_env before training"}

REGISTRY: dict[str, Fn | NotFuzzed] = {
    # ---- a2c
    "a2c.A2CConfig": Fn(
        a2c.A2CConfig,
        _config_kwargs(a2c.A2CConfig, **_TINY),
        accept=_ENV_ID_ANY,
    ),
    "a2c.A2CLosses": NotFuzzed("result type of a2c_losses (plain data container, no validation)"),
    "a2c.a2c_losses": Fn(a2c.a2c_losses, mk(**{k: _const(v) for k, v in _loss_batch().items()}, vf_coef=0.5, ent_coef=0.01, detach_advantages=True)),
    "a2c.nstep_target_mean": Fn(a2c.nstep_target_mean, mk(**MDP_PI, values=np.array([1.0, 0.0, -1.0]), n=2)),
    "a2c.train": Fn(a2c.train, mk(cfg=tiny_a2c_config, progress=_const(lambda step, info: None))),
    # ---- agents_common
    "agents_common.AgentConfig": Fn(
        agents_common.AgentConfig,
        _config_kwargs(agents_common.AgentConfig, **_TINY),
        accept=_ENV_ID_ANY,
    ),
    "agents_common.check_env": Fn(agents_common.check_env, mk(env_id="CartPole-v1")),
    "agents_common.make_vec_env": Fn(agents_common.make_vec_env, mk(env_id="CartPole-v1", n_envs=1, max_episode_steps=10)),
    "agents_common.resolve_device": Fn(agents_common.resolve_device, mk(device="cpu")),
    "agents_common.NormalizedCategorical": Fn(agents_common.NormalizedCategorical, mk(logits=lambda: _rand(2, 3))),
    "agents_common.MLP": Fn(agents_common.MLP, mk(n_in=2, hidden=(3,), n_out=2, out_gain=1.0, orthogonal=True)),
    "agents_common.ActorCritic": Fn(agents_common.ActorCritic, mk(obs_dim=4, n_actions=2, hidden=(4,), orthogonal_init=True)),
    "agents_common.RolloutStorage": Fn(agents_common.RolloutStorage, mk(n_steps=2, n_envs=1, obs_dim=4, device="cpu")),
    "agents_common.EpisodeTracker": Fn(agents_common.EpisodeTracker, mk(n_envs=2)),
    "agents_common.collect_rollout": Fn(agents_common.collect_rollout, _collect_kwargs),
    "agents_common.compute_advantages": Fn(
        agents_common.compute_advantages, mk(storage=lambda: agents_common.RolloutStorage(2, 1, 4), gamma=0.9, lam=0.95)
    ),
    "agents_common.clip_grad_norm": Fn(agents_common.clip_grad_norm, mk(parameters=_grad_params, max_norm=0.5)),
    "agents_common.evaluate": Fn(
        agents_common.evaluate, mk(model=model, env_id="CartPole-v1", n_episodes=1, seed=0, max_episode_steps=10)
    ),
    "agents_common.policy_entropy": Fn(agents_common.policy_entropy, mk(model=model, obs=np.array([[0.1, 0.0, -0.2, 0.3], [0.0, 1.0, 0.0, 0.5]]))),
    "agents_common.greedy_probability": Fn(
        agents_common.greedy_probability, mk(model=model, obs=np.array([[0.1, 0.0, -0.2, 0.3], [0.0, 1.0, 0.0, 0.5]]))
    ),
    "agents_common.TrainResult": NotFuzzed("result type of a2c.train / ppo.train (plain data container)"),
    "agents_common.seeded": Fn(_use_seeded, mk(seed=0, threads=1, device=torch.device("cpu"))),
    # ---- baselines
    "baselines.ESTIMATORS": NotFuzzed("constant: the names of the estimators"),
    "baselines.reward_to_go": Fn(baselines.reward_to_go, mk(rewards=REWARDS, gamma=0.9)),
    "baselines.finite_horizon_values": Fn(baselines.finite_horizon_values, mk(**MDP_PI, horizon=3)),
    "baselines.estimator_samples": Fn(
        baselines.estimator_samples, mk(mdp=mdp3, theta=TH, horizon=2, estimator="reward_to_go", baseline=np.array([0.1, 0.2, 0.3]))
    ),
    "baselines.EstimatorMoments": NotFuzzed("result type of estimator_moments (plain data container)"),
    "baselines.estimator_moments": Fn(
        baselines.estimator_moments,
        mk(mdp=mdp3, theta=TH, horizon=2, estimator="reward_to_go", baseline=np.array([0.1, 0.2, 0.3])),
        nonfinite={("baseline", "huge"): _OVERFLOW},
    ),
    "baselines.reward_score_correlations": Fn(baselines.reward_score_correlations, mk(mdp=mdp3, theta=TH, horizon=2)),
    "baselines.conditional_expectation": Fn(
        baselines.conditional_expectation,
        lambda: (lambda traj: dict(traj=traj, values=np.linspace(-1.0, 1.0, traj.prob.shape[0]), t=1, n_states=3, n_actions=2))(
            M.enumerate_trajectories(mdp3(), pi(), 2)
        ),
    ),
    "baselines.score_sq_norms": Fn(baselines.score_sq_norms, mk(theta=TH)),
    "baselines.state_estimator_variance": Fn(
        baselines.state_estimator_variance,
        mk(mdp=mdp3, theta=TH, b=np.array([0.1, 0.2, 0.3]), Q=qtable),
        nonfinite={("Q", "huge"): _OVERFLOW},
    ),
    "baselines.optimal_baseline": Fn(baselines.optimal_baseline, mk(mdp=mdp3, theta=TH, Q=qtable)),
    "baselines.trajectory_optimal_baseline": Fn(
        baselines.trajectory_optimal_baseline, mk(mdp=mdp3, theta=TH, horizon=2, time_dependent=True, estimator="reward_to_go")
    ),
    "baselines.payback_mdp": Fn(baselines.payback_mdp, mk(rho=0.7, gamma=0.9)),
    "baselines.coordinate_optimal_baseline": Fn(baselines.coordinate_optimal_baseline, mk(mdp=mdp3, theta=TH, Q=qtable)),
    "baselines.coordinate_baseline_variance": Fn(
        baselines.coordinate_baseline_variance,
        mk(mdp=mdp3, theta=TH, b=np.full((3, 2), 0.2), Q=qtable),
        nonfinite={("Q", "huge"): _OVERFLOW},
    ),
    "baselines.sampled_state_variance": Fn(
        baselines.sampled_state_variance, mk(mdp=mdp3, theta=TH, horizon=2, t=1, b=np.array([0.1, 0.2, 0.3]), per_coordinate=False)
    ),
    "baselines.exact_state_variance": Fn(
        baselines.exact_state_variance, mk(pi=[Fraction(1, 3), Fraction(2, 3)], Q=[1, Fraction(1, 2)], b=Fraction(1, 4))
    ),
    "baselines.exact_optimal_baselines": Fn(baselines.exact_optimal_baselines, mk(pi=[Fraction(1, 3), Fraction(2, 3)], Q=[1, Fraction(1, 2)])),
    # ---- clipping
    "clipping.clip_objective": Fn(clipping.clip_objective, mk(ratio=np.array([0.9, 1.3, 0.7]), advantages=np.array([1.0, -1.0, 2.0]), eps=0.2)),
    "clipping.clip_objective_ratio_grad": Fn(
        clipping.clip_objective_ratio_grad, mk(ratio=np.array([0.9, 1.3, 0.7]), advantages=np.array([1.0, -1.0, 2.0]), eps=0.2)
    ),
    "clipping.kl_penalty_objective": Fn(
        clipping.kl_penalty_objective,
        mk(ratio=np.array([0.9, 1.3, 0.7]), advantages=np.array([1.0, -1.0, 2.0]), kl=np.array([0.01, 0.02, 0.0]), beta=0.5),
    ),
    "clipping.adapt_kl_coefficient": Fn(clipping.adapt_kl_coefficient, mk(beta=1.0, kl=0.02, kl_target=0.01)),
    "clipping.RatioRange": NotFuzzed("result type of ratio_range (plain data container)"),
    "clipping.ratio_range": Fn(clipping.ratio_range, mk(ratio=np.array([0.9, 1.3, 0.7]), eps=0.2)),
    "clipping.LinearSoftmaxPolicy": Fn(clipping.LinearSoftmaxPolicy, mk(features=FEATURES, n_actions=2)),
    "clipping.LinearSoftmaxPolicy.logits": Fn(lambda w: _POLICY.logits(w), mk(w=W_LIN)),
    "clipping.LinearSoftmaxPolicy.probs": Fn(lambda w: _POLICY.probs(w), mk(w=W_LIN)),
    "clipping.LinearSoftmaxPolicy.param_gradient": Fn(lambda grad_theta: _POLICY.param_gradient(grad_theta), mk(grad_theta=TH)),
    "clipping.expected_clip_objective": Fn(clipping.expected_clip_objective, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, eps=0.2)),
    "clipping.expected_kl_penalty_objective": Fn(
        clipping.expected_kl_penalty_objective, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, beta=0.5)
    ),
    "clipping.state_clip_objectives": Fn(clipping.state_clip_objectives, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, eps=0.2)),
    "clipping.state_clip_maxima": Fn(clipping.state_clip_maxima, mk(mdp=mdp3, theta_old=TH_OLD, eps=0.2)),
    "clipping.clip_supremum": Fn(clipping.clip_supremum, mk(pi_old=lambda: pi(TH_OLD), advantages=adv_table, eps=0.2)),
    "clipping.clip_sup_policy": Fn(clipping.clip_sup_policy, mk(pi_old=lambda: pi(TH_OLD), advantages=adv_table, eps=0.2)),
    "clipping.ClipBatch": Fn(
        clipping.ClipBatch,
        mk(
            states=lambda: torch.tensor([0, 1, 2]),
            actions=lambda: torch.tensor([0, 1, 0]),
            advantages=lambda: tensor([0.5, -0.5, 1.0]),
            old_log_probs=lambda: tensor(np.log([0.5, 0.3, 0.2])),
        ),
    ),
    "clipping.make_batch": Fn(
        clipping.make_batch, mk(mdp=mdp3, theta_old=TH_OLD, n_episodes=2, horizon=3, seed=0, advantages=adv_table)
    ),
    "clipping.EpochReport": NotFuzzed("result type of run_clip_epochs (plain data container)"),
    "clipping.run_clip_epochs": Fn(
        clipping.run_clip_epochs,
        mk(
            logits_fn=_const(lambda w: w),
            params=TH_OLD,
            batch=lambda: clipping.make_batch(mdp3(), TH_OLD, 2, 3, 0),
            eps=0.2,
            epochs=1,
            minibatch_size=3,
            lr=0.01,
            seed=0,
            objective="clip",
            beta=0.1,
        ),
    ),
    # ---- episodic
    "episodic.GRIDWORLD_RANDOM_POLICY_VALUES": NotFuzzed("constant: Sutton & Barto's published values"),
    "episodic.gridworld_4x4": Fn(episodic.gridworld_4x4, mk(gamma=1.0)),
    "episodic.random_episodic_mdp": Fn(episodic.random_episodic_mdp, mk(n_states=2, n_actions=2, seed=0, gamma=1.0)),
    "episodic.delayed_reward_mdp": Fn(episodic.delayed_reward_mdp, mk(delay=2, now_reward=1.0, later_reward=2.0, gamma=0.9)),
    "episodic.episode_visits": Fn(episodic.episode_visits, mk(mdp=epi3, pi=pi_th)),
    "episodic.episode_visits_by_series": Fn(episodic.episode_visits_by_series, mk(mdp=epi3, pi=pi_th, tol=1e-12, max_steps=10_000)),
    "episodic.undiscounted_return": Fn(episodic.undiscounted_return, mk(mdp=epi3, theta=TH)),
    "episodic.expected_return_torch": Fn(episodic.expected_return_torch, mk(mdp=epi3, theta=lambda: tensor(TH, requires_grad=True))),
    "episodic.autograd_gradient": Fn(episodic.autograd_gradient, mk(mdp=epi3, theta=TH)),
    "episodic.discounted_gradient": Fn(episodic.discounted_gradient, mk(mdp=epi3, theta=TH)),
    "episodic.undiscounted_gradient": Fn(episodic.undiscounted_gradient, mk(mdp=epi3, theta=TH)),
    "episodic.agent_direction": Fn(episodic.agent_direction, mk(mdp=epi3, theta=TH)),
    "episodic.DirectionComparison": NotFuzzed("result type of compare_directions (plain data container)"),
    "episodic.compare_directions": Fn(episodic.compare_directions, mk(mdp=epi3, theta=TH)),
    "episodic.Episodes": NotFuzzed("result type of sample_episodes (plain data container)"),
    "episodic.sample_episodes": Fn(episodic.sample_episodes, mk(mdp=epi3, pi=pi_th, n_episodes=3, seed=0, max_steps=100)),
    "episodic.agent_direction_samples": Fn(
        episodic.agent_direction_samples, mk(mdp=epi3, theta=TH, n_episodes=3, seed=0, max_steps=100)
    ),
    # ---- gae
    **{
        f"gae.{name}": Fn(
            getattr(gae, name),
            mk(
                rewards=np.array([1.0, 0.0, 0.5, -1.0]),
                values=np.array([0.5, 0.2, -0.1, 0.3]),
                next_values=np.array([0.2, -0.1, 0.0, 0.4]),
                terminated=np.array([False, False, True, False]),
                episode_end=np.array([False, False, True, True]),
                gamma=0.9,
                **extra,
            ),
        )
        for name, extra in [
            ("gae", {"lam": 0.95}),
            ("td_errors", {}),
            ("gae_definition", {"lam": 0.95}),
            ("n_step_return", {"n": 2}),
            ("lambda_return", {"lam": 0.95}),
        ]
    },
    "gae.tabular_gae_moments": Fn(gae.tabular_gae_moments, mk(**MDP_PI, values=np.array([1.0, 0.0, -1.0]), lam=0.9)),
    "gae.gae_policy_gradient": Fn(gae.gae_policy_gradient, mk(mdp=mdp3, theta=TH, values=np.array([1.0, 0.0, -1.0]), lam=0.9)),
    # ---- gradients
    **{
        f"gradients.{name}": Fn(getattr(gradients, name), mk(mdp=mdp3, theta=TH))
        for name in ("policy_gradient", "policy_gradient_dense", "expected_return_of_theta", "autograd_policy_gradient")
    },
    "gradients.score_contraction": Fn(gradients.score_contraction, mk(pi=pi_th, state_weights=np.array([1.0, 2.0, 3.0]), values=qtable)),
    "gradients.finite_difference_gradient": Fn(
        gradients.finite_difference_gradient, mk(f=_const(lambda x: float(np.sum(x**2))), x=np.array([1.0, 2.0]), eps=1e-5)
    ),
    "gradients.expected_return_torch": Fn(gradients.expected_return_torch, mk(mdp=mdp3, theta=lambda: tensor(TH, requires_grad=True))),
    "gradients.reinforce_gradients": Fn(
        gradients.reinforce_gradients, mk(mdp=mdp3, theta=TH, n_episodes=2, horizon=3, seed=0, estimator="reward_to_go")
    ),
    "gradients.reinforce_estimates": Fn(
        gradients.reinforce_estimates, mk(theta=TH, states=STATES, actions=ACTIONS, rewards=REWARDS, gamma=0.9, estimator="reward_to_go")
    ),
    **{
        f"gradients.{name}": Fn(getattr(gradients, name), mk(mdp=mdp3, theta=TH, horizon=3))
        for name in ("finite_horizon_policy_gradient", "autograd_finite_horizon_gradient", "gradient_tail")
    },
    "gradients.finite_horizon_return_torch": Fn(
        gradients.finite_horizon_return_torch, mk(mdp=mdp3, theta=lambda: tensor(TH, requires_grad=True), horizon=3)
    ),
    "gradients.score_norm_max": Fn(gradients.score_norm_max, mk(theta=TH)),
    "gradients.gradient_tail_bound": Fn(gradients.gradient_tail_bound, mk(gamma=0.9, horizon=5, r_max=1.0, score_max=1.2)),
    "gradients.skip_cycle_mdp": Fn(gradients.skip_cycle_mdp, mk(rewards=np.array([1.0, 0.0, 0.0, 0.5]), gamma=0.9)),
    # ---- gridworld
    "gridworld.ACTIONS": NotFuzzed("constant: the action names"),
    "gridworld.MOVES": NotFuzzed("constant: the action moves"),
    "gridworld.Gridworld": NotFuzzed("result type of gridworld() (container of the MDP and its cell maps)"),
    "gridworld.gridworld": Fn(
        gridworld.gridworld,
        mk(height=2, width=3, goals=[(1, 2)], walls=[(0, 1)], slip=0.1, gamma=0.9, step_reward=-1.0, goal_reward=0.5, start=(0, 0), sparse=False),
    ),
    # ---- importance
    **{
        f"importance.{name}": Fn(getattr(importance, name), mk(p=np.array([0.2, 0.3, 0.5]), q=np.array([0.4, 0.4, 0.2])))
        for name in ("importance_weights", "kl_divergence", "chi2_divergence", "ess_fraction")
    },
    **{
        f"importance.{name}": Fn(
            getattr(importance, name), mk(f=np.array([1.0, -2.0, 0.5]), p=np.array([0.2, 0.3, 0.5]), q=np.array([0.4, 0.4, 0.2]))
        )
        for name in ("is_expectation", "is_variance")
    },
    "importance.is_samples": Fn(
        importance.is_samples, mk(f=np.array([1.0, -2.0, 0.5]), p=np.array([0.2, 0.3, 0.5]), q=np.array([0.4, 0.4, 0.2]), n=5, seed=0)
    ),
    "importance.effective_sample_size": Fn(importance.effective_sample_size, mk(weights=np.array([1.0, 2.0, 0.5]))),
    **{
        f"importance.{name}": Fn(getattr(importance, name), mk(pi=pi_th, pi_old=lambda: pi(TH_OLD), states=STATES, actions=ACTIONS))
        for name in ("per_step_ratios", "trajectory_ratio")
    },
    "importance.stationary_distribution": Fn(importance.stationary_distribution, mk(**MDP_PI)),
    "importance.trajectory_kl_increments": Fn(importance.trajectory_kl_increments, mk(**MDP_PI, pi_old=lambda: pi(TH_OLD), horizon=3)),
    "importance.trajectory_kl_rate": Fn(importance.trajectory_kl_rate, mk(**MDP_PI, pi_old=lambda: pi(TH_OLD))),
    "importance.finite_visits": Fn(importance.finite_visits, mk(**MDP_PI, horizon=3, discount=0.9)),
    "importance.is_policy_gradient": Fn(
        importance.is_policy_gradient, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, horizon=3, discount_states=True)
    ),
    "importance.is_gradient_samples": Fn(
        importance.is_gradient_samples, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, n_episodes=3, horizon=3, seed=0)
    ),
    "importance.ISGradientGap": NotFuzzed("result type of is_gradient_gap (plain data container)"),
    "importance.is_gradient_gap": Fn(importance.is_gradient_gap, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD)),
    "importance.is_gradient_gap_derivative": Fn(importance.is_gradient_gap_derivative, mk(mdp=mdp3, theta_old=TH_OLD)),
    "importance.trajectory_is_gradient": Fn(importance.trajectory_is_gradient, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, horizon=2)),
    # ---- mdp
    "mdp.MDP": Fn(
        M.MDP,
        lambda: (lambda e: dict(P=np.array(e.P), R=np.array(e.R), p0=np.array(e.p0), gamma=0.9, terminal=np.array(e.terminal)))(epi3()),
    ),
    "mdp.random_mdp": Fn(M.random_mdp, mk(n_states=3, n_actions=2, gamma=0.9, seed=0)),
    "mdp.check_policy": Fn(
        M.check_policy,
        mk(**MDP_PI, name="pi"),
        accept={("name", "unknown"): "name is only the label used in the messages"},
    ),
    "mdp.transition_array": Fn(M.transition_array, mk(mdp=mdp3, max_entries=1000)),
    "mdp.next_state_expectation": Fn(M.next_state_expectation, mk(mdp=mdp3, f=np.array([1.0, 2.0, 3.0]))),
    **{
        f"mdp.{name}": Fn(getattr(M, name), mk(**MDP_PI))
        for name in (
            "state_values",
            "action_values",
            "advantage_values",
            "values_and_visits",
            "expected_return",
            "discounted_visits",
            "discounted_state_distribution",
            "policy_transition_matrix",
        )
    },
    "mdp.Trajectories": NotFuzzed("result type of enumerate_trajectories (plain data container)"),
    "mdp.enumerate_trajectories": Fn(
        M.enumerate_trajectories,
        mk(**MDP_PI, horizon=2, max_trajectories=1000),
        # log_policy and log_dynamics are log-probabilities: -inf, by definition, for a trajectory of
        # probability 0 (a deterministic policy, an absorbing terminal state)
        nonfinite={
            ("mdp", "episodic"): "log_dynamics = -inf where a terminal state cannot be left",
            ("pi", "int_array"): "log_policy = -inf for actions of probability 0",
            ("pi", "tensor_long"): "log_policy = -inf for actions of probability 0",
        },
    ),
    "mdp.finite_horizon_return": Fn(M.finite_horizon_return, mk(**MDP_PI, horizon=3)),
    "mdp.finite_horizon_action_values": Fn(M.finite_horizon_action_values, mk(**MDP_PI, horizon=3)),
    "mdp.sample_trajectories": Fn(M.sample_trajectories, mk(**MDP_PI, n_episodes=2, horizon=3, seed=0)),
    # ---- montecarlo
    "montecarlo.MeanCI": NotFuzzed("result type of mean_ci (plain data container; its methods are fuzzed below)"),
    "montecarlo.MeanCI.detectable_bias": Fn(lambda power: _CI.detectable_bias(power), mk(power=0.9)),
    "montecarlo.MeanCI.contains": Fn(lambda value: _CI.contains(value), mk(value=np.array([1.0, 2.0]))),
    "montecarlo.mean_ci": Fn(montecarlo.mean_ci, mk(samples=np.array([[1.0, 2.0], [2.0, 3.0], [0.5, 1.0]]), level=0.99)),
    # ---- policies
    "policies.check_theta": Fn(
        policies.check_theta, mk(theta=TH, name="theta"), accept={("name", "unknown"): "name is only the label used in the messages"}
    ),
    "policies.log_probs": Fn(policies.log_probs, mk(theta=TH)),
    "policies.probs": Fn(policies.probs, mk(theta=TH)),
    "policies.score": Fn(policies.score, mk(theta=TH)),
    "policies.weighted_score_sum": Fn(policies.weighted_score_sum, mk(theta=TH, states=STATES, actions=ACTIONS, weights=REWARDS)),
    "policies.sample_actions": Fn(policies.sample_actions, mk(theta=TH, states=np.array([0, 1, 2, 1]), seed=0)),
    # ---- ppo
    "ppo.PPOConfig": Fn(
        ppo.PPOConfig,
        _config_kwargs(ppo.PPOConfig, **_TINY, minibatch_size=4, n_epochs=1),
        accept=_ENV_ID_ANY,
        # clip_eps = math.inf is documented: it disables clipping (the ablation of chapter 10).
        nonfinite={("clip_eps", "inf"): "clip_eps = math.inf disables clipping (documented)"},
    ),
    "ppo.PPOLosses": NotFuzzed("result type of ppo_losses (plain data container)"),
    "ppo.clipped_surrogate": Fn(
        ppo.clipped_surrogate, mk(ratio=lambda: torch.tensor([0.9, 1.3, 0.7]), advantages=lambda: torch.tensor([1.0, -1.0, 2.0]), clip_eps=0.2)
    ),
    "ppo.ppo_losses": Fn(
        ppo.ppo_losses,
        lambda: dict(
            **{k: v for k, v in _loss_batch().items()},
            old_log_probs=torch.full((4,), math.log(1 / 3)),
            clip_eps=0.2,
            vf_coef=0.5,
            ent_coef=0.01,
            head=None,
        ),
    ),
    "ppo.ratio_diagnostics": Fn(ppo.ratio_diagnostics, mk(log_ratio=lambda: torch.tensor([0.1, -0.2, 0.0]), clip_eps=0.2)),
    "ppo.ppo_update": Fn(ppo.ppo_update, _ppo_update_kwargs),
    "ppo.train": Fn(ppo.train, mk(cfg=tiny_ppo_config, progress=_const(lambda step, info: None))),
    # ---- reproducibility
    "reproducibility.ENVIRONMENT_FIELDS": NotFuzzed("constant: the field names of environment()"),
    "reproducibility.environment": Fn(reproducibility.environment, mk(torch_threads=1)),
    "reproducibility.same_environment": Fn(
        reproducibility.same_environment,
        mk(recorded=lambda: dict.fromkeys(reproducibility.ENVIRONMENT_FIELDS, "x"), current=lambda: dict.fromkeys(reproducibility.ENVIRONMENT_FIELDS, "x")),
    ),
    "reproducibility.bound": Fn(
        reproducibility.bound,
        mk(error=1e-14, tol=1e-12),
        # bound() is an assertion helper: an error that is not below tol (NaN, inf, huge) is its AssertionError.
        raises={
            p: (AssertionError, "bound() asserts that error < tol: that failure is an AssertionError by design")
            for p in ("error", "tol")
        },
    ),
    # ---- the agents' building blocks (agents_common re-exports them)
    "agent_config.AgentConfig": Fn(agent_config.AgentConfig, _config_kwargs(agent_config.AgentConfig, **_TINY), accept=_ENV_ID_ANY),
    "agent_config.resolve_device": Fn(agent_config.resolve_device, mk(device="cpu")),
    "agent_config.seeded": Fn(_use_seeded, mk(seed=0, threads=1, device=torch.device("cpu"))),
    "envs.EnvSpaces": NotFuzzed("result type of envs.env_spaces (frozen plain data container)"),
    "envs.env_spaces": Fn(pg_envs.env_spaces, mk(env_id="Pendulum-v1")),
    "envs.check_env": Fn(pg_envs.check_env, mk(env_id="CartPole-v1")),
    "envs.FastRunningMeanStd": NotFuzzed("gymnasium's RunningMeanStd with its own constructor; only update's one-row case differs (tested equal bit for bit)"),
    "envs.make_vec_env": Fn(pg_envs.make_vec_env, mk(env_id="Pendulum-v1", n_envs=1, max_episode_steps=10, obs_rms=lambda: RunningMeanStd(shape=(3,)), reward_gamma=0.9)),
    "heads.PolicyHead": NotFuzzed("typing.Protocol: the interface of the heads, no behaviour"),
    "heads.NormalizedCategorical": Fn(heads.NormalizedCategorical, mk(logits=lambda: _rand(2, 3))),
    "heads.LogStdNormal": Fn(heads.LogStdNormal, mk(loc=lambda: _rand(2, 3), log_std=lambda: _rand(2, 3, seed=1))),
    "heads.CategoricalHead": Fn(heads.CategoricalHead, mk(n_actions=3)),
    "heads.DiagGaussianHead": Fn(heads.DiagGaussianHead, mk(action_dim=2)),
    "networks.MLP": Fn(networks.MLP, mk(n_in=2, hidden=(3,), n_out=2, out_gain=1.0, orthogonal=True, activation="relu")),
    "networks.ActorCritic": Fn(
        networks.ActorCritic, mk(obs_dim=3, hidden=(4,), orthogonal_init=True, action_dim=1, log_std_init=0.0, activation="relu"),
    ),
    "networks.clip_grad_norm": Fn(networks.clip_grad_norm, mk(parameters=_grad_params, max_norm=0.5)),
    "rollout.RolloutStorage": Fn(rollout.RolloutStorage, mk(n_steps=2, n_envs=1, obs_dim=3, device="cpu", action_dim=1)),
    "rollout.EpisodeTracker": Fn(rollout.EpisodeTracker, mk(n_envs=2)),
    "rollout.collect_rollout": Fn(rollout.collect_rollout, _collect_gaussian_kwargs),
    "rollout.compute_advantages": Fn(rollout.compute_advantages, mk(storage=lambda: rollout.RolloutStorage(2, 1, 3, action_dim=1), gamma=0.9, lam=0.95)),
    "evaluation.evaluate": Fn(evaluation.evaluate, mk(model=_gaussian_model, env_id="Pendulum-v1", n_episodes=1, seed=0, max_episode_steps=10, obs_rms=lambda: RunningMeanStd(shape=(3,)))),
    "evaluation.policy_entropy": Fn(evaluation.policy_entropy, mk(model=_gaussian_model, obs=np.array([[0.1, 0.0, -0.2], [0.0, 1.0, 0.5]]))),
    "evaluation.greedy_probability": Fn(evaluation.greedy_probability, mk(model=model, obs=np.array([[0.1, 0.0, -0.2, 0.3], [0.0, 1.0, 0.0, 0.5]]))),
    "evaluation.TrainResult": NotFuzzed("result type of a2c.train / ppo.train (plain data container)"),
    "ppo.CONTINUOUS_DEFAULTS": NotFuzzed("constant: PPO's defaults for a Box action space (a dict)"),
    "ppo.ENV_PRESETS": NotFuzzed("constant: PPO's per-environment tunings (a dict of dicts)"),
    "ppo.ZOO_SETTINGS": NotFuzzed("constant: RL Baselines3 Zoo's entries (Pendulum, MuJoCo) in PPOConfig's field names"),
    # ---- ch11: continuous actions (the mathematics)
    "gaussian.LOG_STD_RANGE": NotFuzzed("constant: the interval log_std must lie in"),
    "gaussian.diag_gaussian_log_prob": Fn(gaussian.diag_gaussian_log_prob, mk(a=np.array([[0.3, -1.0], [1.2, 0.5]]), mean=np.array([0.1, 0.2]), log_std=np.array([-0.5, 0.3]))),
    "gaussian.diag_gaussian_score": Fn(gaussian.diag_gaussian_score, mk(a=np.array([[0.3, -1.0], [1.2, 0.5]]), mean=np.array([0.1, 0.2]), log_std=np.array([-0.5, 0.3]))),
    "gaussian.diag_gaussian_entropy": Fn(gaussian.diag_gaussian_entropy, mk(log_std=np.array([-0.5, 0.3]))),
    "gaussian.tanh_log_det_jacobian": Fn(gaussian.tanh_log_det_jacobian, mk(u=np.array([0.3, -25.0, 40.0]))),
    "gaussian.squashed_log_prob": Fn(gaussian.squashed_log_prob, mk(u=np.array([[0.3, -1.0], [1.2, 25.0]]), mean=np.array([0.1, 0.2]), log_std=np.array([-0.5, 0.3]))),
    "gaussian.squashed_entropy": Fn(gaussian.squashed_entropy, mk(mean=np.array([0.1, 2.0]), log_std=np.array([-0.5, 0.3]), n_nodes=20)),
    "gaussian.beta_log_prob": Fn(gaussian.beta_log_prob, mk(a=np.array([[0.3], [-0.5]]), alpha=np.array([2.0]), beta=np.array([1.5]), low=-1.0, high=1.0)),
    "gaussian.beta_score": Fn(gaussian.beta_score, mk(a=np.array([[0.3], [-0.5]]), alpha=np.array([2.0]), beta=np.array([1.5]), low=-1.0, high=1.0)),
    "gaussian.gaussian_symbolic": Fn(gaussian.gaussian_symbolic, mk(), check_valid=False),
    "lq.bandit_objective": Fn(lq.bandit_objective, mk(mean=0.3, log_std=-0.2, a_star=1.0)),
    "lq.bandit_gradient": Fn(lq.bandit_gradient, mk(mean=0.3, log_std=-0.2, a_star=1.0)),
    "lq.gaussian_expectation": Fn(lq.gaussian_expectation, mk(f=_const(lambda a: a**2), mean=0.3, log_std=-0.2, n_nodes=4)),
    "lq.expectation_quad": Fn(lq.expectation_quad, mk(f=_const(lambda a: float(np.clip(a, -1.0, 1.0)) ** 2), mean=0.3, log_std=-0.2, breakpoints=np.array([-1.0, 1.0]))),
    "lq.estimator_moments": Fn(lq.estimator_moments, mk(mean=0.3, log_std=-0.2, a_star=1.0, baseline=-1.0)),
    "lq.optimal_baseline": Fn(lq.optimal_baseline, mk(mean=0.3, log_std=-0.2, a_star=1.0)),
    "lq.contextual_objective": Fn(lq.contextual_objective, mk(w=0.4, c=-0.3, l0=-0.5, l1=0.35, k=1.5)),
    "lq.contextual_gradient": Fn(lq.contextual_gradient, mk(w=0.4, c=-0.3, l0=-0.5, l1=0.35, k=1.5)),
    "lq.clipped_objective": Fn(lq.clipped_objective, mk(mean=0.5, log_std=-0.3, a_star=1.0, low=-1.0, high=1.0)),
    "lq.clipped_gradient": Fn(lq.clipped_gradient, mk(mean=0.5, log_std=-0.3, a_star=1.0, low=-1.0, high=1.0)),
    "normalization.scale_rewards": Fn(normalization.scale_rewards, mk(mdp=mdp3, c=2.5)),
    "normalization.optimal_action_values": Fn(normalization.optimal_action_values, mk(mdp=mdp3, tol=1e-10, max_iter=10_000)),
    "normalization.ScriptedEnv": Fn(normalization.ScriptedEnv, mk(observations=np.zeros((3, 2)), rewards=np.array([1.0, -1.0]), terminated=np.array([False, True]), truncated=np.array([True, False]))),
    "normalization.normalize_reward_scales": Fn(normalization.normalize_reward_scales, mk(rewards=np.array([1.0, -0.5, 2.0]), gamma=0.99, epsilon=1e-8, terminated=np.array([False, True, False]), truncated=np.array([True, False, False]), vector=False)),
    "normalization.normalize_reward_accumulators": Fn(normalization.normalize_reward_accumulators, mk(rewards=np.array([1.0, -0.5, 2.0]), gamma=0.99, epsilon=1e-8, terminated=np.array([False, True, False]), truncated=np.array([True, False, False]), vector=True)),
    "lq.clipped_score_bias": Fn(lq.clipped_score_bias, mk(mean=0.5, log_std=-0.3, a_star=1.0, low=-1.0, high=1.0)),
    "normalization.normalize_observation_trace": Fn(normalization.normalize_observation_trace, mk(observations=np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]), epsilon=1e-8)),
    # ---- results
    "results.RESULT_FILES": NotFuzzed("constant: the names of the shipped result files"),
    "results.read_rows": Fn(results.read_rows, mk(name="cartpole_solve.csv")),
    "results.paired_speed": Fn(results.paired_speed, mk(rows=[
        {"impl": "ours", "env_id": "Hopper-v5", "round": "0", "timed_steps": "4096", "cpu_seconds": "2.0"},
        {"impl": "sb3", "env_id": "Hopper-v5", "round": "0", "timed_steps": "4096", "cpu_seconds": "3.0"},
    ], env_id="Hopper-v5", impl_a="ours", impl_b="sb3")),
    "results.summarize_runs": Fn(results.summarize_runs, mk(rows=[
        {"impl": "ours", "env_id": "Hopper-v5", "seed": "0", "step": "4096", "train_seconds": "2.0", "eval_mean": "1.5", "batch": "2048"},
    ])),
    # ---- score_function
    "score_function.softmax_score_symbolic": Fn(score_function.softmax_score_symbolic, mk(K=2)),
    "score_function.softmax_expected_score_symbolic": Fn(
        score_function.softmax_expected_score_symbolic, mk(K=2, weights=[sp.Rational(1, 3), sp.Rational(2, 3)]), examples=1
    ),
    "score_function.gaussian_score_symbolic": Fn(score_function.gaussian_score_symbolic, mk()),
    "score_function.gaussian_expected_score_symbolic": Fn(
        score_function.gaussian_expected_score_symbolic,
        mk(sample_mean=0.5, sample_log_std=0.0),
        # a symbolic integral per call (~0.5 s): only the kinds that must be rejected before integrating
        kinds={p: ("nan", "inf", "complex", "string", "bool") for p in ("sample_mean", "sample_log_std")},
        examples=1,
        check_valid=False,  # ~10 s of sympy.integrate; tests/test_score_function.py runs it
    ),
    "score_function.uniform_support_counterexample": Fn(score_function.uniform_support_counterexample, mk()),
    "score_function.expected_score": Fn(score_function.expected_score, mk(theta=TH, sampling=lambda: pi(TH_OLD), weights=np.array([1.0, 2.0, 3.0]))),
    "score_function.sample_scores": Fn(score_function.sample_scores, mk(theta=TH, state=1, n=5, seed=0, sampling=lambda: pi(TH_OLD))),
    "score_function.sample_gaussian_scores": Fn(
        score_function.sample_gaussian_scores, mk(mu=0.5, log_std=-0.2, n=5, seed=0, sample_mean=0.1, sample_log_std=0.0)
    ),
    "score_function.gauss_hermite": Fn(score_function.gauss_hermite, mk(mean=0.0, std=1.0, n_nodes=4)),
    "score_function.expected_score_autograd": Fn(score_function.expected_score_autograd, _expected_score_autograd_kwargs),
    # ---- surrogate
    **{
        f"surrogate.{name}": Fn(getattr(surrogate, name), mk(mdp=mdp3, theta=TH, theta_old=TH_OLD))
        for name in ("cpi_objective", "cpi_gradient", "performance_difference", "mean_policy_kl", "mean_policy_tv", "cpo_epsilon")
    },
    "surrogate.cpi_objective_torch": Fn(surrogate.cpi_objective_torch, mk(mdp=mdp3, theta=lambda: tensor(TH, requires_grad=True), theta_old=TH_OLD)),
    **{
        f"surrogate.{name}": Fn(getattr(surrogate, name), mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, state_weights=np.array([1.0, 2.0, 3.0])))
        for name in ("surrogate_objective", "surrogate_gradient")
    },
    "surrogate.policy_segment_return": Fn(surrogate.policy_segment_return, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, t=0.3)),
    "surrogate.policy_kl": Fn(surrogate.policy_kl, mk(pi_old=lambda: pi(TH_OLD), pi=pi_th)),
    "surrogate.policy_tv": Fn(surrogate.policy_tv, mk(pi_old=lambda: pi(TH_OLD), pi=pi_th)),
    "surrogate.softmax_policy_kl": Fn(surrogate.softmax_policy_kl, mk(theta_old=TH_OLD, theta=TH)),
    "surrogate.trpo_penalty_coefficient": Fn(surrogate.trpo_penalty_coefficient, mk(mdp=mdp3, theta_old=TH_OLD)),
    "surrogate.trpo_lower_bound": Fn(surrogate.trpo_lower_bound, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, divergence="kl")),
    "surrogate.cpo_lower_bound": Fn(surrogate.cpo_lower_bound, mk(mdp=mdp3, theta=TH, theta_old=TH_OLD, divergence="tv")),
    "surrogate.time_averaged_state_distribution": Fn(surrogate.time_averaged_state_distribution, mk(**MDP_PI, horizon=3)),
    "surrogate.discount_pitfall_gradient": Fn(surrogate.discount_pitfall_gradient, mk(mdp=mdp3, theta=TH, horizon=3)),
    "surrogate.time_step_gradient_samples": Fn(
        surrogate.time_step_gradient_samples, mk(mdp=mdp3, theta=TH, n_episodes=2, horizon=3, seed=0, weighting="uniform")
    ),
    "surrogate.trap_chain_mdp": Fn(surrogate.trap_chain_mdp, mk(length=3, bonus=1.0, penalty=2.0, gamma=0.9)),
    # The floors hold only for a theta that satisfies their conditions, which relate theta to theta_old
    # and to delta / beta: another theta_old, delta or beta can break them, and the message names theta.
    "surrogate.trust_region_floor": Fn(
        surrogate.trust_region_floor, _trust_region_kwargs, also_names={"theta_old": ("theta",), "delta": ("theta",)}
    ),
    "surrogate.kl_penalty_floor": Fn(
        surrogate.kl_penalty_floor, lambda: _trust_region_kwargs(beta=0.01), also_names={"theta_old": ("theta",), "beta": ("theta",)}
    ),
    "surrogate.random_sparse_mdp": Fn(surrogate.random_sparse_mdp, mk(n_states=3, n_actions=2, gamma=0.9, seed=0, concentration=0.1)),
    # ---- symbolic
    "symbolic.TwoStateMDP": NotFuzzed("result type of two_state_mdp (sympy expressions; its d_dtheta is fuzzed below)"),
    "symbolic.TwoStateMDP.d_dtheta": Fn(
        lambda expr, s, a: two_state().d_dtheta(expr, s, a),
        mk(expr=lambda: two_state().J, s=0, a=1),
        kinds=_SYMBOLIC_INDEX_KINDS,
        accept={("expr", "int"): "a number is a constant expression: its derivative is 0"},
        examples=1,
    ),
    "symbolic.two_state_mdp": Fn(
        symbolic.two_state_mdp,
        mk(P0=lambda: [[sp.Rational(1, 3), sp.Rational(3, 4)], [sp.Rational(1, 5), sp.Rational(2, 3)]], p0=sp.Rational(2, 5)),
        examples=1,
    ),
    "symbolic.theorem_minus_derivative": Fn(
        symbolic.theorem_minus_derivative, mk(ex=two_state, s=0, a=1), kinds=_SYMBOLIC_INDEX_KINDS, examples=1
    ),
    # ---- value_learning
    "value_learning.on_policy_distribution": Fn(value_learning.on_policy_distribution, mk(**MDP_PI)),
    "value_learning.nstep_reward": Fn(value_learning.nstep_reward, mk(**MDP_PI, n=2)),
    "value_learning.nstep_bellman": Fn(value_learning.nstep_bellman, mk(**MDP_PI, values=np.array([1.0, 0.0, -1.0]), n=2)),
    **{
        f"value_learning.{name}": Fn(
            getattr(value_learning, name), mk(**MDP_PI, n=2, features=FEATURES, weights=np.array([0.2, 0.3, 0.5]))
        )
        for name in ("semi_gradient_fixed_point", "residual_gradient_fixed_point", "msbe_minimiser")
    },
}

#: Known failures in modules that other work is editing now (not this test's to fix); each names
#: what goes wrong. ``(entry, param, kind) -> reason``; the entry xfails while they fail, and the
#: test fails once one of them passes (remove it then).
def _gap(entry: str, param: str, kinds: str, reason: str) -> dict:
    return {(entry, param, kind): reason for kind in kinds.split()}


KNOWN_GAPS: dict[tuple[str, str, str], str] = {
    # ---- clipping
    **{
        key: "ClipBatch does not know S and A, so it cannot reject an index beyond them (run_clip_epochs checks the batch against logits_fn(params))"
        for param in ("states", "actions")
        for key in _gap("clipping.ClipBatch", param, "out_of_range", "")
    },
}



# ============================================================================================
# Kinds of bad values
# ============================================================================================

REJECT, EITHER, SAME, SAME_IF_ACCEPTED = "reject", "either", "same", "same-if-accepted"
#: kinds whose ValueError may name another argument (the one the value disagrees with).
RELATIONAL = {"wrong_shape", "wrong_ndim", "empty", "other_size", "episodic", "scalar", "array1"}


class _C:
    """A kind with one value (no randomness): made afresh for each call, drawn by no strategy."""

    def __init__(self, make):
        self.make = make


@dataclasses.dataclass
class Bad:
    value: object
    equiv: object = None  # the plain value the SAME kinds must behave like
    has_equiv: bool = False


def _b(value, equiv=dataclasses.MISSING):
    return Bad(value) if equiv is dataclasses.MISSING else Bad(value, equiv, True)


def _set_flat(v: np.ndarray, i: int, x) -> np.ndarray:
    out = np.array(v, dtype=np.result_type(v.dtype, type(x)) if not isinstance(x, float) else np.float64)
    out.reshape(-1)[i % out.size] = x
    return out


def _farray_kinds(v: np.ndarray):
    v = v.astype(np.float64)  # (a float32 valid value: 1e300 must be a number, not inf)
    n = max(v.size, 1)
    idx = st.integers(0, n - 1)
    sign = st.sampled_from([1.0, -1.0])

    def wrong_shape(t):
        axis, grow = t
        if v.ndim == 0:
            return np.array([v, v])
        if grow or v.shape[axis] < 2:
            return np.concatenate([v, np.take(v, [0], axis=axis)], axis=axis)
        return np.take(v, range(v.shape[axis] - 1), axis=axis)

    def wrong_ndim(flatten):
        return v.reshape(-1) if v.ndim >= 2 and flatten else v[None]

    def empty(axis):
        return np.zeros(0) if v.ndim == 0 else np.take(v, [], axis=axis)

    axes = st.integers(0, max(v.ndim - 1, 0))

    return {
        "nan": (REJECT, idx.map(lambda i: _b(_set_flat(v, i, float("nan"))))),
        "inf": (EITHER, st.tuples(idx, sign).map(lambda t: _b(_set_flat(v, t[0], t[1] * math.inf)))),
        "complex": (REJECT, st.floats(0.01, 3.0).map(lambda b: _b(v + 1j * b))),
        "strings": (REJECT, _C(lambda: _b(v.astype(str)))),
        "bools": (REJECT, _C(lambda: _b(v > np.median(v) if v.size else v.astype(bool)))),
        "none": (REJECT, _C(lambda: _b(None))),
        "list": (SAME_IF_ACCEPTED, _C(lambda: _b(v.tolist(), v))),
        "scalar": (EITHER, st.floats(-2, 2).map(_b)),
        "wrong_shape": (EITHER, st.tuples(axes, st.booleans()).map(lambda t: _b(wrong_shape(t)))),
        "wrong_ndim": (EITHER, st.booleans().map(lambda f: _b(wrong_ndim(f)))),
        "empty": (EITHER, axes.map(lambda a: _b(empty(a)))),
        "int_array": (EITHER, _C(lambda: _b(np.rint(v).astype(np.int64)))),
        "float32": (EITHER, _C(lambda: _b(v.astype(np.float32)))),
        "tensor_grad": (SAME_IF_ACCEPTED, _C(lambda: _b(tensor(v, requires_grad=True), v))),
        "tensor_half": (EITHER, _C(lambda: _b(tensor(v, dtype=torch.float16)))),
        "tensor_long": (EITHER, _C(lambda: _b(tensor(np.rint(v), dtype=torch.long)))),
        "huge": (EITHER, sign.map(lambda s: _b(v * (s * 1e300) if np.any(v) else np.full(v.shape, s * 1e300)))),
        "tiny": (EITHER, sign.map(lambda s: _b(v * (s * 1e-300)))),
        "negative": (EITHER, _C(lambda: _b(-np.abs(v) - 1.0))),
    }


def _iarray_kinds(v: np.ndarray):
    n = max(v.size, 1)
    idx = st.integers(0, n - 1)
    return {
        "nan": (REJECT, idx.map(lambda i: _b(_set_flat(v.astype(float), i, float("nan"))))),
        "non_integer": (REJECT, idx.map(lambda i: _b(_set_flat(v.astype(float), i, float(v.reshape(-1)[i % n]) + 0.5)))),
        "negative_index": (REJECT, idx.map(lambda i: _b(_set_flat(v, i, -1)))),
        "out_of_range": (REJECT, st.tuples(idx, st.sampled_from([10**6, 2**62])).map(lambda t: _b(_set_flat(v, t[0], t[1])))),
        "float_ints": (EITHER, _C(lambda: _b(v.astype(float)))),
        "bools": (REJECT, _C(lambda: _b(v > 0))),
        "strings": (REJECT, _C(lambda: _b(v.astype(str)))),
        "none": (REJECT, _C(lambda: _b(None))),
        "complex": (REJECT, _C(lambda: _b(v + 0.5j))),
        "list": (SAME_IF_ACCEPTED, _C(lambda: _b(v.tolist(), v))),
        "int32": (SAME_IF_ACCEPTED, _C(lambda: _b(v.astype(np.int32), v))),
        "tensor_long": (SAME_IF_ACCEPTED, _C(lambda: _b(torch.tensor(v), v))),
        "wrong_shape": (EITHER, _C(lambda: _b(np.concatenate([v, v[..., :1]], axis=-1)))),
        "wrong_ndim": (EITHER, _C(lambda: _b(v.reshape(-1) if v.ndim >= 2 else v[None]))),
        "empty": (EITHER, _C(lambda: _b(v[..., :0]))),
    }


def _barray_kinds(v: np.ndarray):
    return {
        "nan": (REJECT, _C(lambda: _b(_set_flat(v.astype(float), 0, float("nan"))))),
        "strings": (REJECT, _C(lambda: _b(v.astype(str)))),
        "none": (REJECT, _C(lambda: _b(None))),
        "complex": (REJECT, _C(lambda: _b(v + 0.5j))),
        "non01": (REJECT, st.sampled_from([2.0, 0.5, -1.0]).map(lambda x: _b(_set_flat(v.astype(float), 0, x)))),
        "floats01": (SAME_IF_ACCEPTED, _C(lambda: _b(v.astype(float), v))),
        "ints01": (SAME_IF_ACCEPTED, _C(lambda: _b(v.astype(np.int64), v))),
        "list": (SAME_IF_ACCEPTED, _C(lambda: _b(v.tolist(), v))),
        "wrong_shape": (EITHER, _C(lambda: _b(np.concatenate([v, v[..., :1]], axis=-1)))),
        "empty": (EITHER, _C(lambda: _b(v[..., :0]))),
    }


def _ftensor_kinds(v: torch.Tensor):
    a = v.detach().numpy()
    n = max(v.numel(), 1)
    idx = st.integers(0, n - 1)
    sign = st.sampled_from([1.0, -1.0])

    def put(i, x):
        out = v.detach().clone()
        out.reshape(-1)[i % n] = x
        return out

    return {
        "nan": (REJECT, idx.map(lambda i: _b(put(i, float("nan"))))),
        "inf": (EITHER, st.tuples(idx, sign).map(lambda t: _b(put(t[0], t[1] * math.inf)))),
        "complex": (REJECT, _C(lambda: _b(v.detach() + 0.5j))),
        "none": (REJECT, _C(lambda: _b(None))),
        "bools": (REJECT, _C(lambda: _b(v.detach() > 0))),
        "numpy": (SAME_IF_ACCEPTED, _C(lambda: _b(a.copy(), v))),
        "list": (SAME_IF_ACCEPTED, _C(lambda: _b(a.tolist(), v))),
        "wrong_shape": (EITHER, _C(lambda: _b(torch.cat([v.detach(), v.detach()[:1]])))),
        "wrong_ndim": (EITHER, _C(lambda: _b(v.detach()[None]))),
        "empty": (EITHER, _C(lambda: _b(v.detach()[:0]))),
        "half": (EITHER, _C(lambda: _b(v.detach().half()))),
        "long": (EITHER, _C(lambda: _b(v.detach().round().long()))),
        "requires_grad": (SAME_IF_ACCEPTED, _C(lambda: _b(v.detach().clone().requires_grad_(True), v))),
        "other_float": (EITHER, _C(lambda: _b(v.detach().double() if v.dtype == torch.float32 else v.detach().float()))),
        "huge": (EITHER, sign.map(lambda s: _b(v.detach().double() * s * 1e300))),
        "tiny": (EITHER, sign.map(lambda s: _b(v.detach() * s * 1e-30))),
    }


def _itensor_kinds(v: torch.Tensor):
    n = max(v.numel(), 1)
    idx = st.integers(0, n - 1)

    def put(i, x, dtype=None):
        out = v.clone() if dtype is None else v.to(dtype)
        out.reshape(-1)[i % n] = x
        return out

    return {
        "float": (EITHER, _C(lambda: _b(v.double()))),
        "non_integer": (REJECT, idx.map(lambda i: _b(put(i, 0.5, torch.float64)))),
        "nan": (REJECT, idx.map(lambda i: _b(put(i, float("nan"), torch.float64)))),
        "negative_index": (REJECT, idx.map(lambda i: _b(put(i, -1)))),
        "out_of_range": (REJECT, idx.map(lambda i: _b(put(i, 10**6)))),
        "bools": (REJECT, _C(lambda: _b(v > 0))),
        "none": (REJECT, _C(lambda: _b(None))),
        "numpy": (SAME_IF_ACCEPTED, _C(lambda: _b(v.numpy().copy(), v))),
        "int32": (SAME_IF_ACCEPTED, _C(lambda: _b(v.int(), v))),
        "wrong_shape": (EITHER, _C(lambda: _b(torch.cat([v, v[:1]])))),
        "empty": (EITHER, _C(lambda: _b(v[:0]))),
    }


def _int_kinds(v: int, seed: bool):
    kinds = {
        "negative": (REJECT, st.integers(-3, -1).map(_b)),
        "zero": (EITHER, _C(lambda: _b(0))),
        "non_integer": (REJECT, st.sampled_from([0.5, 0.25]).map(lambda f: _b(v + f))),
        "float_int": (EITHER, _C(lambda: _b(float(v)))),
        "numpy_int": (SAME, st.sampled_from([np.int64, np.int32]).map(lambda t: _b(t(v), v))),
        "bool": (REJECT, _C(lambda: _b(True))),
        "string": (REJECT, _C(lambda: _b(str(v)))),
        "none": (REJECT, _C(lambda: _b(None))),
        "nan": (REJECT, _C(lambda: _b(float("nan")))),
        "inf": (REJECT, _C(lambda: _b(math.inf))),
        "complex": (REJECT, _C(lambda: _b(complex(v, 1)))),
        "array1": (EITHER, _C(lambda: _b(np.array([v])))),
    }
    if seed:
        kinds["huge_seed"] = (EITHER, st.sampled_from([2**63, 2**64, 2**64 + 1]).map(_b))
    return kinds


def _float_kinds(v: float):
    f32 = np.float32(v)
    return {
        "nan": (REJECT, _C(lambda: _b(float("nan")))),
        "inf": (EITHER, _C(lambda: _b(math.inf))),
        "neg_inf": (EITHER, _C(lambda: _b(-math.inf))),
        "complex": (REJECT, st.floats(0.1, 2).map(lambda b: _b(complex(v, b)))),
        "string": (REJECT, _C(lambda: _b(str(v)))),
        "bool": (REJECT, _C(lambda: _b(True))),
        "none": (REJECT, _C(lambda: _b(None))),
        "float32": (SAME, _C(lambda: _b(f32, float(f32)))),
        "zero": (EITHER, _C(lambda: _b(0.0))),
        "negative": (EITHER, _C(lambda: _b(-abs(v) - 0.5))),
        "huge": (EITHER, st.sampled_from([1e300, -1e300]).map(_b)),
        "tiny": (EITHER, st.sampled_from([1e-300, -1e-300]).map(_b)),
        "array1": (EITHER, _C(lambda: _b(np.array([v])))),
        "tensor0d": (EITHER, _C(lambda: _b(torch.tensor(v)))),
    }


def _rational_kinds(v):
    return {
        "nan": (REJECT, _C(lambda: _b(float("nan")))),
        "inf": (REJECT, _C(lambda: _b(math.inf))),
        "float": (EITHER, _C(lambda: _b(float(v)))),
        "string": (REJECT, _C(lambda: _b(str(v)))),
        "bool": (REJECT, _C(lambda: _b(True))),
        "none": (REJECT, _C(lambda: _b(None))),
        "complex": (REJECT, _C(lambda: _b(complex(float(v), 1.0)))),
        "negative": (EITHER, _C(lambda: _b(-abs(v) - 1))),
    }


def _str_kinds(v: str):
    return {
        "unknown": (REJECT, st.sampled_from(["bogus", v.upper() + "_x"]).map(_b)),
        "none": (REJECT, _C(lambda: _b(None))),
        "int": (REJECT, _C(lambda: _b(1))),
        "bool": (REJECT, _C(lambda: _b(True))),
    }


def _flag_kinds(v: bool):
    return {
        "string": (REJECT, st.sampled_from(["no", "False"]).map(_b)),
        "none": (EITHER, _C(lambda: _b(None))),
        "int": (EITHER, st.sampled_from([0, 1]).map(_b)),
        "numpy_bool": (SAME_IF_ACCEPTED, _C(lambda: _b(np.bool_(v), v))),
    }


def _mdp_kinds(v: M.MDP):
    return {
        "none": (REJECT, _C(lambda: _b(None))),
        "string": (REJECT, _C(lambda: _b("mdp"))),
        "int": (REJECT, _C(lambda: _b(3))),
        "tuple": (REJECT, _C(lambda: _b((v.P, v.R, v.p0, v.gamma)))),
        "other_size": (EITHER, st.sampled_from([(4, 2), (3, 3), (2, 2)]).map(lambda sa: _b(M.random_mdp(*sa, 0.9, 1)))),
        "episodic": (EITHER, _C(lambda: _b(epi3()))),
        "sparse": (SAME_IF_ACCEPTED, _C(lambda: _b(v.as_sparse(), v))),
    }


def _seq_kinds(v):
    first = v[0] if len(v) else None

    def replace_first(x):
        out = list(v)
        out[0] = x
        return type(v)(out) if isinstance(v, tuple) else out

    kinds = {
        "none": (REJECT, _C(lambda: _b(None))),
        "string": (REJECT, _C(lambda: _b("abc"))),
        "int": (REJECT, _C(lambda: _b(7))),
        "empty": (EITHER, _C(lambda: _b(type(v)()))),
    }
    if len(v):
        kinds.update(
            {
                "item_none": (REJECT, _C(lambda: _b(replace_first(None)))),
                "item_string": (REJECT, _C(lambda: _b(replace_first("x")))),
                "item_nan": (REJECT, _C(lambda: _b(replace_first(float("nan"))))),
                "item_bool": (REJECT, _C(lambda: _b(replace_first(True)))),
                "item_complex": (REJECT, _C(lambda: _b(replace_first(1 + 2j)))),
            }
        )
        if isinstance(first, numbers.Real) and not isinstance(first, bool):
            kinds["item_negative"] = (EITHER, _C(lambda: _b(replace_first(-abs(first) - 1))))
            kinds["item_float"] = (EITHER, _C(lambda: _b(replace_first(float(first) + 0.5))))
    return kinds


def _object_kinds(v, callable_=False):
    kinds = {
        "none": (REJECT, _C(lambda: _b(None))),
        "string": (REJECT, _C(lambda: _b("abc"))),
        "int": (REJECT, _C(lambda: _b(3))),
    }
    if not callable_:
        kinds["other_object"] = (REJECT, _C(lambda: _b(object())))
    return kinds


def _dict_kinds(v):
    return {
        "none": (REJECT, _C(lambda: _b(None))),
        "string": (REJECT, _C(lambda: _b("abc"))),
        "list": (REJECT, _C(lambda: _b(list(v.items())))),
        "empty": (EITHER, _C(lambda: _b({}))),
    }


def value_type(name: str, v) -> str | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return "flag"
    if isinstance(v, (Fraction, sp.Rational)):
        return "rational"
    if isinstance(v, numbers.Integral):
        return "seed" if "seed" in name else "int"
    if isinstance(v, numbers.Real):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, M.MDP):
        return "mdp"
    if isinstance(v, np.ndarray):
        return {"f": "farray", "i": "iarray", "u": "iarray", "b": "barray"}[v.dtype.kind]
    if isinstance(v, torch.Tensor):
        return "ftensor" if v.is_floating_point() else "itensor"
    if isinstance(v, (list, tuple)):
        return "seq"
    if isinstance(v, dict):
        return "dict"
    if isinstance(v, types.FunctionType):
        return "callable"
    return "object"


def kinds_for(type_: str, v) -> dict:
    return {
        "farray": lambda: _farray_kinds(v),
        "iarray": lambda: _iarray_kinds(v),
        "barray": lambda: _barray_kinds(v),
        "ftensor": lambda: _ftensor_kinds(v),
        "itensor": lambda: _itensor_kinds(v),
        "int": lambda: _int_kinds(v, seed=False),
        "seed": lambda: _int_kinds(v, seed=True),
        "float": lambda: _float_kinds(v),
        "rational": lambda: _rational_kinds(v),
        "str": lambda: _str_kinds(v),
        "flag": lambda: _flag_kinds(v),
        "mdp": lambda: _mdp_kinds(v),
        "seq": lambda: _seq_kinds(v),
        "dict": lambda: _dict_kinds(v),
        "callable": lambda: _object_kinds(v, callable_=True),
        "object": lambda: _object_kinds(v),
    }[type_]()


# ============================================================================================
# Calling, and judging the outcome
# ============================================================================================


class _Timeout(BaseException):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    def handler(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_WATCHED_WARNINGS = (RuntimeWarning, np.exceptions.ComplexWarning)


@contextlib.contextmanager
def _torch_seeded():
    """torch's (CPU) global RNG seeded with 0, restored afterwards. (``torch.manual_seed`` also seeds
    every lazy accelerator generator, recording a stack trace each time: 1 ms a call.)"""
    gen = torch.default_generator
    state = gen.get_state()
    gen.manual_seed(0)
    try:
        yield
    finally:
        gen.set_state(state)


def call(fn, kwargs):
    """``(result, exception, warnings)`` of ``fn(**kwargs)``, with torch's RNG seeded and restored."""
    with _torch_seeded(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _time_limit(10.0):
                out, exc = fn(**kwargs), None
        except _Timeout:
            out, exc = None, TimeoutError("took more than 10 s")
        except Exception as e:  # noqa: BLE001 - every exception type is judged below
            out, exc = None, e
    return out, exc, [w for w in caught if issubclass(w.category, _WATCHED_WARNINGS)]


def fresh_kwargs(entry: Fn) -> dict:
    """The entry's valid arguments, built with torch's RNG seeded (networks are initialised the same each time)."""
    with _torch_seeded():
        return entry.kwargs()


def floats_of(x, out=None, depth=0, seen=None):
    """Every float of a result as a list of float64 arrays (in a fixed order); complex or non-finite
    sympy values append the marker string ``"complex"`` / ``"sympy-nonfinite"``."""
    out = [] if out is None else out
    seen = set() if seen is None else seen
    if depth > 8 or id(x) in seen:
        return out
    if x is None or isinstance(x, (str, bytes, bool, np.bool_, type, types.FunctionType)):
        return out
    if isinstance(x, (complex, np.complexfloating)):
        out.append("complex")
    elif isinstance(x, numbers.Number) and not isinstance(x, sp.Basic):
        try:
            out.append(np.asarray(float(x)))
        except OverflowError:
            out.append(np.asarray(math.inf))
    elif isinstance(x, np.ndarray):
        if x.dtype.kind == "c":
            out.append("complex")
        elif x.dtype.kind in "iuf":
            out.append(x.astype(np.float64))
        elif x.dtype.kind == "O":
            for item in x.ravel():
                floats_of(item, out, depth + 1, seen)
    elif isinstance(x, torch.Tensor):
        if x.is_complex():
            out.append("complex")
        elif x.dtype != torch.bool:
            out.append(x.detach().cpu().double().numpy())
    elif isinstance(x, sp.MatrixBase):
        for e in x:
            floats_of(e, out, depth + 1, seen)
    elif isinstance(x, sp.Basic):
        if x.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or (x.is_number and x.is_real is False):
            out.append("sympy-nonfinite")
    elif scipy.sparse.issparse(x):  # as the dense array (comparable with a dense result)
        floats_of(x.toarray(), out, depth + 1, seen)
    elif isinstance(x, dict):
        seen.add(id(x))
        for k in x:
            floats_of(x[k], out, depth + 1, seen)
    elif isinstance(x, (list, tuple)):
        seen.add(id(x))
        for item in x:
            floats_of(item, out, depth + 1, seen)
    elif dataclasses.is_dataclass(x):
        seen.add(id(x))
        for f in dataclasses.fields(x):
            if f.name != "seconds":  # a wall-clock time is not a function of the inputs
                floats_of(getattr(x, f.name), out, depth + 1, seen)
    elif isinstance(x, torch.nn.Module):
        for p in x.parameters():
            floats_of(p, out, depth + 1, seen)
    elif isinstance(x, torch.distributions.Distribution):
        floats_of(getattr(x, "logits", None), out, depth + 1, seen)
    elif type(x).__module__.startswith("pgbook"):
        seen.add(id(x))
        floats_of(vars(x), out, depth + 1, seen)
    return out


def nonfinite(parts, overflow_ok: bool = False) -> str | None:
    """What is not finite in ``parts`` (``floats_of`` of a result), or None. With ``overflow_ok``
    (the ``huge`` kinds: an exact answer of order 1e600 is not a float64) +-inf passes, NaN does not."""
    for p in parts:
        if isinstance(p, str):
            return p
        if overflow_ok:
            if np.any(np.isnan(p)):
                return "NaN"
        elif not np.all(np.isfinite(p)):
            return "non-finite value"
    return None


def same(a, b, rtol=0.0, atol=0.0) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, str) or isinstance(y, str):
            if x != y:
                return False
        elif np.shape(x) != np.shape(y) or not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            return False
    return True


def names(msg: str, param: str) -> bool:
    """Whether ``msg`` names ``param`` (single letters need to be followed by a verb or a bracket)."""
    if len(param) >= 3:
        return re.search(rf"(?<![A-Za-z0-9_]){re.escape(param)}(?![A-Za-z0-9_])", msg) is not None
    pattern = rf"(^|[\s(`'\"]){re.escape(param)}( must| has| contains| is| and| or| of|:|\[|\(|,| \(|'|`)"
    return re.search(pattern, msg) is not None


def _short(v, n=70) -> str:
    try:
        r = repr(v)
    except Exception:  # noqa: BLE001
        r = f"<{type(v).__name__}>"
    r = " ".join(r.split())
    return r if len(r) <= n else r[: n - 3] + "..."


def _value_key(v):
    if isinstance(v, torch.Tensor):
        v = v.detach().numpy()
    if isinstance(v, np.ndarray):
        return (v.dtype.str, v.shape, v.tobytes())
    return repr(v)


def _none_ok(fn, param, valid) -> bool:
    try:
        p = inspect.signature(fn).parameters[param]
    except (ValueError, KeyError, TypeError):
        return False
    if p.default is None:
        return True
    ann = p.annotation if isinstance(p.annotation, str) else str(p.annotation)
    return "None" in ann


def judge(entry: Fn, name: str, param: str, kind: str, cls: str, bad: Bad, kwargs: dict, params: list[str], reference) -> str | None:
    """The problem with one call, or None."""
    out, exc, warns = call(entry.fn, kwargs)
    if (param, kind) in entry.accept and cls == REJECT:
        cls = EITHER
    expected_exc = entry.raises.get(param)
    if exc is not None:
        if expected_exc is not None and isinstance(exc, expected_exc[0]):
            return None
        if type(exc).__name__ == "TimeoutError":
            return "took more than 10 s"
        if not isinstance(exc, ValueError) or isinstance(exc, np.linalg.LinAlgError):
            return f"{type(exc).__name__}: {_short(str(exc), 160)}"
        msg = str(exc)
        allowed = [param, *entry.also_names.get(param, ())] + (params if kind in RELATIONAL else [])
        if not any(names(msg, p) for p in allowed):
            return f"ValueError not naming {param!r}: {_short(msg, 160)}"
        if cls == SAME:
            ref_out, ref_exc = reference(bad)
            if not isinstance(ref_exc, ValueError):
                return f"rejected a valid {kind} value: {_short(msg, 160)}"
        return None
    # returned a result
    if cls == REJECT:
        return f"accepted silently (returned {_short(out, 60)})"
    if (param, kind) in entry.nonfinite:
        return None
    problem = nonfinite(floats_of(out), overflow_ok=kind == "huge")
    if problem:
        return f"{problem} in the result {_short(out, 80)}"
    if kind == "huge":  # overflow warnings go with the accepted overflow (+-inf); "invalid value" ones do not
        warns = [w for w in warns if "overflow" not in str(w.message)]
    if warns:
        return f"{warns[0].category.__name__}: {_short(str(warns[0].message), 120)}"
    if cls in (SAME, SAME_IF_ACCEPTED) and bad.has_equiv:
        ref_out, ref_exc = reference(bad)
        if ref_exc is None:
            tol = (1e-9, 1e-12) if kind == "sparse" else (0.0, 0.0)
            if not same(floats_of(out), floats_of(ref_out), *tol):
                return f"result differs from the result for the equivalent {_short(bad.equiv, 40)}"
    return None


# ============================================================================================
# The tests
# ============================================================================================


def _public_names() -> list[str]:
    out = []
    for info in pkgutil.iter_modules(pgbook.__path__):
        if info.name.startswith("_") or info.name.startswith("train"):
            continue
        mod = importlib.import_module(f"pgbook.{info.name}")
        out += [f"{info.name}.{n}" for n in getattr(mod, "__all__", [])]
    return out


def test_registry_covers_every_public_name():
    """Every name of every public module's ``__all__`` has a registry entry (a new function cannot escape)."""
    public = _public_names()
    missing = sorted(set(public) - set(REGISTRY))
    assert not missing, f"names in __all__ without an entry in tests/test_api_fuzz.py REGISTRY: {missing}"
    stale = sorted(k for k in REGISTRY if ".".join(k.split(".")[:2]) not in public)
    assert not stale, f"REGISTRY entries that are not public names (any more): {stale}"
    for n in pgbook.__all__:  # the package's re-exports are the modules' objects
        obj = getattr(pgbook, n)
        assert any(isinstance(e, Fn) and e.fn is obj for e in REGISTRY.values()), f"pgbook.{n} is not registered"
    for key in KNOWN_GAPS:
        assert key[0] in REGISTRY, f"KNOWN_GAPS names an unknown entry {key}"


def test_valid_calls_are_finite():
    """The registry's own calls are valid: no exception, a finite result (else the fuzzing means nothing)."""
    bad = []
    for name, entry in REGISTRY.items():
        if isinstance(entry, Fn) and entry.check_valid:
            out, exc, warns = call(entry.fn, fresh_kwargs(entry))
            if exc is not None:
                bad.append(f"{name}: {type(exc).__name__}: {exc}")
            elif nonfinite(floats_of(out)):
                bad.append(f"{name}: non-finite result")
            elif warns:
                bad.append(f"{name}: {warns[0].message}")
    assert not bad, "\n".join(bad)


def _plan(name: str, entry: Fn):
    """``[(param, kind, class, strategy)]`` for the entry."""
    kw = fresh_kwargs(entry)
    out = []
    for param, valid in kw.items():
        if param in entry.skip:
            continue
        type_ = entry.types.get(param) or value_type(param, valid)
        if type_ is None:
            continue
        for kind, (cls, strategy) in kinds_for(type_, valid).items():
            if param in entry.kinds and kind not in entry.kinds[param]:
                continue
            if kind == "none" and _none_ok(entry.fn, param, valid):
                cls = EITHER
            out.append((param, kind, cls, strategy))
    return out


FUZZED = sorted(k for k, e in REGISTRY.items() if isinstance(e, Fn))


@pytest.mark.parametrize("name", FUZZED)
def test_bad_inputs(name):
    """Each argument, each kind of bad value: a ValueError naming the argument, or a finite (and right) result."""
    entry = REGISTRY[name]
    plan = _plan(name, entry)
    params = list(fresh_kwargs(entry))
    problems: dict[tuple[str, str], str] = {}

    def reference_for(param):
        def reference(bad: Bad):
            kw = fresh_kwargs(entry)
            kw[param] = bad.equiv
            out, exc, _ = call(entry.fn, kw)
            return out, exc

        return reference

    tried: set = set()
    examples = [0]

    @settings(
        max_examples=entry.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data):
        examples[0] += 1
        for param, kind, cls, strategy in plan:
            if isinstance(strategy, _C):  # one value: tried in the first example only
                if examples[0] > 1:
                    continue
                bad = strategy.make()
            else:
                bad = data.draw(strategy, label=f"{param}:{kind}")
                key = (param, kind, _value_key(bad.value))
                if key in tried:  # hypothesis drew a value already tried
                    continue
                tried.add(key)
            kwargs = fresh_kwargs(entry)
            kwargs[param] = bad.value
            problem = judge(entry, name, param, kind, cls, bad, kwargs, params, reference_for(param))
            if problem and (param, kind) not in problems:
                problems[(param, kind)] = f"{param} <- {kind} {_short(bad.value, 50)}: {problem}"

    run()

    gaps = {(p, k): why for (n, p, k), why in KNOWN_GAPS.items() if n == name}

    def gap_of(key):
        return gaps.get(key) or gaps.get((key[0], "*"))

    unexpected = [msg for key, msg in problems.items() if gap_of(key) is None]
    stale = [f"{p} <- {k}" for (p, k) in gaps if not any(key[0] == p and (k == "*" or key[1] == k) for key in problems)]
    report = "\n".join(unexpected)
    assert not unexpected, f"{name}: {len(unexpected)} problem(s):\n{report}"
    assert not stale, f"{name}: KNOWN_GAPS that no longer fail (remove them): {stale}"
    if problems:
        pytest.xfail(f"{name}: known gaps: " + "; ".join(problems[k] for k in problems))
