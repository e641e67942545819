"""Reward-to-go and baselines: exact means and covariances of policy-gradient estimators.

Chapter 4 (:doc:`/book/ch04_reward_to_go_baselines`), equations and statements
``eq-rtg-causality``, ``eq-rtg-same-mean``, ``prop-rtg-variance``, ``eq-baseline-unbiased``,
``thm-optimal-baseline``, ``eq-optimal-baseline-gap``, ``cor-optimal-baseline-two-actions``,
``rem-trajectory-baseline``,
``eq-advantage-form`` and ``eq-advantage-one-sample``.

Everything here is **exact**: expectations over trajectories are finite sums over every
trajectory of a finite-horizon MDP (:func:`pgbook.mdp.enumerate_trajectories`), and expectations
over one action are finite sums over the action set. Nothing is sampled.

Finite horizon ``H``, ``J_H(theta) = E[sum_{t<H} gamma^t r_t]``. For one trajectory, with the
score ``g_t = grad_theta log pi_theta(a_t|s_t)`` and the reward-to-go
``G_t = sum_{l=t}^{H-1} gamma^(l-t) r_l``, the estimators of ``grad J_H`` are

* ``"full_return"``:   ``R(tau) sum_t g_t``, with ``R(tau) = sum_t gamma^t r_t``;
* ``"reward_to_go"``:  ``sum_t gamma^t g_t (G_t - b_t(s_t))`` (``b = 0`` unless a baseline is given);
* ``"reward_to_go_no_discount"``: ``sum_t g_t (G_t - b_t(s_t))``, the formula as the notes print
  it (no ``gamma^t``; its mean is not ``grad J_H`` when ``gamma < 1``);
* ``"advantage"``: ``sum_t gamma^t g_t A_t(s_t, a_t)`` with the exact finite-horizon advantage.

"Variance" of a vector-valued estimator ``g`` means the trace of its covariance,
``tr Cov[g] = E||g - E g||^2`` (the expected squared Euclidean distance to the mean).

For one state ``s`` and the estimator ``g(a) = grad log pi(a|s) (Q(s, a) - b)``, ``a ~ pi(.|s)``,
the variance is a quadratic in ``b`` minimised by (``thm-optimal-baseline``)

    b*(s) = E_a[||grad log pi(a|s)||^2 Q(s, a)] / E_a[||grad log pi(a|s)||^2],

which is ``V(s)`` only when ``||grad log pi(a|s)||^2`` and ``A(s, a)`` are uncorrelated under
``pi(.|s)`` (``eq-optimal-baseline-gap``); :func:`optimal_baseline` returns it. With two actions
``b*(s) = pi(2|s) Q(s, 1) + pi(1|s) Q(s, 2)`` and the variance at ``b*`` is zero
(``cor-optimal-baseline-two-actions``).

``b*`` is optimal among *scalar* baselines, one number per state subtracted from ``Q`` in every
coordinate. A baseline per coordinate ``i`` of the parameter, subtracted only in that coordinate,
does at least as well (``prop-coordinate-baseline``):

    b_i(s) = E_a[(d_i log pi(a|s))^2 Q(s, a)] / E_a[(d_i log pi(a|s))^2],

returned by :func:`coordinate_optimal_baseline`, with variance :func:`coordinate_baseline_variance`.
When ``Q`` is replaced by a sampled return ``G`` with ``E[G | s, a] = Q(s, a)`` the variance grows
by ``E_a[||grad log pi||^2 Var(G | s, a)]``, which does not depend on the baseline
(``prop-sampled-baseline``); :func:`sampled_state_variance` computes the sampled variance exactly,
by enumeration. :func:`exact_state_variance` and :func:`exact_optimal_baselines` redo the one-state
computations in rational arithmetic (exercise ``ex-ch04-three-actions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational

import numpy as np

from . import mdp as _mdp
from . import policies
from ._validate import as_float_array, check_gamma, check_positive_int, check_real, check_shape

__all__ = [
    "ESTIMATORS",
    "reward_to_go",
    "finite_horizon_values",
    "estimator_samples",
    "EstimatorMoments",
    "estimator_moments",
    "reward_score_correlations",
    "conditional_expectation",
    "score_sq_norms",
    "state_estimator_variance",
    "optimal_baseline",
    "trajectory_optimal_baseline",
    "payback_mdp",
    "coordinate_optimal_baseline",
    "coordinate_baseline_variance",
    "sampled_state_variance",
    "exact_state_variance",
    "exact_optimal_baselines",
]

#: The estimators :func:`estimator_samples` knows (see the module docstring).
ESTIMATORS = ("full_return", "reward_to_go", "reward_to_go_no_discount", "advantage")


def _check_mdp(mdp) -> _mdp.MDP:
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    return mdp


def _check_theta_for(mdp: _mdp.MDP, theta) -> np.ndarray:
    theta = policies.check_theta(theta)
    check_shape(theta, (mdp.n_states, mdp.n_actions), "theta")
    return theta


def reward_to_go(rewards, gamma: float) -> np.ndarray:
    """``G_t = sum_{l=t}^{H-1} gamma^(l-t) r_l`` along the last axis of ``rewards`` (shape ``(..., H)``)."""
    r = as_float_array(rewards, "rewards")
    if r.ndim == 0 or r.shape[-1] == 0:
        raise ValueError(f"rewards must have shape (..., H) with H >= 1, got {r.shape}")
    gamma = check_gamma(gamma, allow_one=True)
    G = np.empty_like(r)
    running = np.zeros(r.shape[:-1])
    for t in range(r.shape[-1] - 1, -1, -1):
        running = r[..., t] + gamma * running
        G[..., t] = running
    return G


def finite_horizon_values(mdp: _mdp.MDP, pi, horizon: int):
    """Exact time-dependent values of the horizon-``H`` problem, by backward induction.

    Returns ``(V, Q)`` with shapes ``(H, S)`` and ``(H, S, A)``:
    ``V[t, s] = E[G_t | s_t = s]`` and ``Q[t, s, a] = E[G_t | s_t = s, a_t = a]``, where
    ``G_t`` sums the ``H - t`` remaining discounted rewards. ``Q[t] - V[t][:, None]`` is the
    finite-horizon advantage ``A_t``. (As ``H - t`` grows they tend to ``V^pi`` and ``Q^pi``.)
    """
    mdp = _check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    H = check_positive_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    V, Q = np.zeros((H, S)), np.zeros((H, S, A))
    v_next = np.zeros(S)
    for t in range(H - 1, -1, -1):
        Q[t] = mdp.R + mdp.gamma * _mdp.next_state_expectation(mdp, v_next)  # dense or sparse P
        V[t] = (pi * Q[t]).sum(axis=1)
        v_next = V[t]
    return V, Q


def _check_baseline(baseline, H: int, S: int) -> np.ndarray:
    b = as_float_array(baseline, "baseline")
    if b.shape == (S,):
        return np.repeat(b[None, :], H, axis=0)
    if b.shape != (H, S):
        raise ValueError(f"baseline must have shape ({S},) or ({H}, {S}), got {b.shape}")
    return b


def _check_estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    return estimator


def estimator_samples(mdp: _mdp.MDP, theta, horizon: int, estimator: str = "reward_to_go", baseline=None):
    """Every trajectory's probability and its estimate of ``grad J_H``.

    Parameters
    ----------
    mdp, theta, horizon
        The MDP, the softmax logits ``(S, A)`` and the horizon ``H``; all ``(S A)^H`` trajectories
        are enumerated.
    estimator : one of :data:`ESTIMATORS`
    baseline : array ``(S,)`` or ``(H, S)``, optional
        ``b(s)`` or ``b_t(s)``, subtracted from ``G_t`` (reward-to-go estimators only).

    Returns
    -------
    (prob, g)
        ``prob`` of shape ``(N,)`` sums to 1; ``g`` of shape ``(N, S, A)``.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    estimator = _check_estimator(estimator)
    H = check_positive_int(horizon, "horizon")
    S = mdp.n_states
    if baseline is not None and estimator not in ("reward_to_go", "reward_to_go_no_discount"):
        raise ValueError(f"baseline applies to the reward-to-go estimators only, not to {estimator!r}")
    pi = policies.probs(theta)
    traj = _mdp.enumerate_trajectories(mdp, pi, H)
    scores = policies.score(theta)[traj.states, traj.actions]  # (N, H, S, A)
    discounts = mdp.gamma ** np.arange(H)
    if estimator == "full_return":
        weights = np.repeat(traj.discounted_return(mdp.gamma)[:, None], H, axis=1)
    elif estimator == "advantage":
        V, Q = finite_horizon_values(mdp, pi, H)
        t_idx = np.arange(H)[None, :]
        adv = Q[t_idx, traj.states, traj.actions] - V[t_idx, traj.states]
        weights = discounts * adv
    else:
        G = reward_to_go(traj.rewards, mdp.gamma)
        if baseline is not None:
            b = _check_baseline(baseline, H, S)
            G = G - b[np.arange(H)[None, :], traj.states]
        weights = discounts * G if estimator == "reward_to_go" else G
    g = np.einsum("nt,ntxy->nxy", weights, scores)
    return traj.prob, g


@dataclass(frozen=True)
class EstimatorMoments:
    """Exact first and second moments of a vector-valued estimator ``g`` (entries of ``(S, A)``).

    ``mean`` has shape ``(S, A)``; ``cov`` is the ``(S A) x (S A)`` covariance of the flattened
    estimate; ``variance = tr(cov) = E||g - mean||^2``.
    """

    mean: np.ndarray
    cov: np.ndarray

    @property
    def variance(self) -> float:
        return float(np.trace(self.cov))


def _moments(prob: np.ndarray, g: np.ndarray) -> EstimatorMoments:
    flat = g.reshape(g.shape[0], -1)
    mean = prob @ flat
    centred = flat - mean
    cov = np.einsum("n,ni,nj->ij", prob, centred, centred)
    return EstimatorMoments(mean.reshape(g.shape[1:]), cov)


def estimator_moments(
    mdp: _mdp.MDP, theta, horizon: int, estimator: str = "reward_to_go", baseline=None
) -> EstimatorMoments:
    """Exact mean and covariance of an estimator by enumeration (see :func:`estimator_samples`)."""
    prob, g = estimator_samples(mdp, theta, horizon, estimator, baseline)
    return _moments(prob, g)


def reward_score_correlations(mdp: _mdp.MDP, theta, horizon: int) -> np.ndarray:
    """``C[l, t] = E[gamma^l r_l grad log pi(a_t|s_t)]`` for all ``l, t < H``; shape ``(H, H, S, A)``.

    The full-return estimator is ``sum_{l,t} gamma^l r_l g_t``, so its mean is ``sum_{l,t} C[l, t]``.
    Causality (eq. ``eq-rtg-causality``): ``C[l, t] = 0`` whenever ``l < t``. Exact, by enumeration.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    H = check_positive_int(horizon, "horizon")
    traj = _mdp.enumerate_trajectories(mdp, policies.probs(theta), H)
    scores = policies.score(theta)[traj.states, traj.actions]
    disc_r = traj.rewards * mdp.gamma ** np.arange(H)
    return np.einsum("n,nl,ntxy->ltxy", traj.prob, disc_r, scores)


def conditional_expectation(traj: _mdp.Trajectories, values, t: int, n_states: int, n_actions: int) -> np.ndarray:
    """``E[values | s_t = s, a_t = a]`` over enumerated trajectories; shape ``(S, A)``.

    ``values`` holds one number per trajectory (shape ``(N,)``). Entries with
    ``Pr(s_t = s, a_t = a) = 0`` are NaN.
    """
    if not isinstance(traj, _mdp.Trajectories):
        raise ValueError(f"traj must be a pgbook.mdp.Trajectories, got {type(traj).__name__}")
    x = as_float_array(values, "values", ndim=1)
    check_shape(x, traj.prob.shape, "values")
    H = traj.states.shape[1]
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < H:
        raise ValueError(f"t must be an integer in [0, {H}), got {t!r}")
    S = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    if traj.states.max() >= S or traj.actions.max() >= A:
        raise ValueError("n_states or n_actions is smaller than the trajectories' state/action indices")
    mass = np.zeros((S, A))
    total = np.zeros((S, A))
    np.add.at(mass, (traj.states[:, t], traj.actions[:, t]), traj.prob)
    np.add.at(total, (traj.states[:, t], traj.actions[:, t]), traj.prob * x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, total / np.where(mass > 0, mass, 1.0), np.nan)


def score_sq_norms(theta) -> np.ndarray:
    """``||grad_theta log pi_theta(a|s)||^2`` (over the whole table theta) for every ``(s, a)``.

    Computed from :func:`pgbook.policies.score`; for the softmax it equals
    ``1 - 2 pi(a|s) + sum_b pi(b|s)^2``. Shape ``(S, A)``.
    """
    return (policies.score(theta) ** 2).sum(axis=(2, 3))


def _state_q(mdp: _mdp.MDP, theta: np.ndarray, Q):
    pi = policies.probs(theta)
    if Q is None:
        return pi, _mdp.action_values(mdp, pi)
    Q = as_float_array(Q, "Q", ndim=2)
    check_shape(Q, (mdp.n_states, mdp.n_actions), "Q")
    return pi, Q


def state_estimator_variance(mdp: _mdp.MDP, theta, b, Q=None) -> np.ndarray:
    """Exact variance of ``grad log pi(a|s) (Q(s, a) - b(s))``, ``a ~ pi(.|s)``, for each state.

    ``Var_s(b) = E_a ||grad log pi(a|s)||^2 (Q(s, a) - b)^2 - ||E_a[grad log pi(a|s) Q(s, a)]||^2``
    (the trace of the covariance; the mean does not depend on ``b``). ``b`` has shape ``(..., S)``
    (e.g. ``(K, S)`` for a grid of ``K`` baselines); the result has the same shape. ``Q`` defaults
    to the exact ``Q^pi`` of the discounted MDP; pass another ``(S, A)`` table (e.g. a
    finite-horizon ``Q_t``) to use that instead.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    pi, Q = _state_q(mdp, theta, Q)
    b = as_float_array(b, "b")
    if b.ndim == 0 or b.shape[-1] != mdp.n_states:
        raise ValueError(f"b must have shape (..., {mdp.n_states}), got {b.shape}")
    score = policies.score(theta)
    mean = np.einsum("sa,saxy,sa->sxy", pi, score, Q)
    w = score_sq_norms(theta)
    second = np.einsum("sa,sa,...sa->...s", pi, w, (Q - b[..., None]) ** 2)
    return second - (mean**2).sum(axis=(1, 2))


def optimal_baseline(mdp: _mdp.MDP, theta, Q=None) -> np.ndarray:
    """The per-state variance-minimising scalar baseline for the tabular softmax policy; shape ``(S,)``.

    Optimal among scalar baselines only: :func:`coordinate_optimal_baseline` does better.

    For the estimator ``grad log pi(a|s) (Q(s, a) - b(s))`` with ``a ~ pi(.|s)``, whose variance
    is ``tr Cov = E||. - mean||^2`` (:func:`state_estimator_variance`), the minimiser is
    (``thm-optimal-baseline``)

        b*(s) = sum_a pi(a|s) ||grad log pi(a|s)||^2 Q(s, a) / sum_a pi(a|s) ||grad log pi(a|s)||^2.

    ``Q`` defaults to the exact ``Q^pi`` (linear solve). In a state where the policy is
    deterministic to machine precision every baseline gives variance 0; ``V(s)`` is returned there.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    pi, Q = _state_q(mdp, theta, Q)
    w = pi * score_sq_norms(theta)
    num, den = (w * Q).sum(axis=1), w.sum(axis=1)
    V = (pi * Q).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), V)


def trajectory_optimal_baseline(
    mdp: _mdp.MDP, theta, horizon: int, time_dependent: bool = True, estimator: str = "reward_to_go"
) -> np.ndarray:
    """The baseline minimising the exact variance of a whole-trajectory reward-to-go estimator.

    The estimator ``g_b = g_0 - sum_t c_t g_t b_t(s_t)`` (``c_t = gamma^t`` for ``"reward_to_go"``,
    1 for ``"reward_to_go_no_discount"``) is affine in ``b``, and its mean does not depend on ``b``,
    so ``tr Cov[g_b] = E||g_0 - C b||^2 - ||E g_0||^2`` is minimised by the probability-weighted
    least-squares solution ``b`` (``rem-trajectory-baseline``). Returns shape ``(H, S)`` (a
    baseline per time step and state) or ``(S,)`` when ``time_dependent=False``. Components that
    do not affect the estimator (a state never visited at a time) get the minimum-norm value 0.
    """
    if estimator not in ("reward_to_go", "reward_to_go_no_discount"):
        raise ValueError(f"estimator must be 'reward_to_go' or 'reward_to_go_no_discount', got {estimator!r}")
    if not isinstance(time_dependent, bool):
        raise ValueError(f"time_dependent must be a bool, got {time_dependent!r}")
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    H = check_positive_int(horizon, "horizon")
    S, A = mdp.n_states, mdp.n_actions
    prob, g0 = estimator_samples(mdp, theta, H, estimator)
    traj = _mdp.enumerate_trajectories(mdp, policies.probs(theta), H)
    scores = policies.score(theta)[traj.states, traj.actions]  # (N, H, S, A)
    c = mdp.gamma ** np.arange(H) if estimator == "reward_to_go" else np.ones(H)
    onehot = np.eye(S)[traj.states]  # (N, H, S)
    design = np.einsum("t,ntxy,nts->nxyts", c, scores, onehot)  # (N, S, A, H, S)
    if not time_dependent:
        design = design.sum(axis=3)
    N = prob.shape[0]
    sw = np.sqrt(prob)[:, None]
    X = (sw[:, :, None] * design.reshape(N, S * A, -1)).reshape(N * S * A, -1)
    y = (sw * g0.reshape(N, S * A)).reshape(-1)
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    return b.reshape(H, S) if time_dependent else b


def payback_mdp(rho: float, gamma: float) -> _mdp.MDP:
    """A three-state MDP in which later rewards undo the first one; reward-to-go can then *add* variance.

    State 0 (start, ``p0 = e_0``): action 0 pays ``+1`` and moves to state 1, action 1 pays ``-1``
    and moves to state 2. States 1 and 2 are absorbing and pay ``-rho`` and ``+rho`` per step
    whatever the action. So ``r_1 = -rho r_0``. With horizon 2 (``prop-rtg-variance``)

        Var[full return] - Var[reward-to-go] = (1 - 2 gamma rho) E||grad log pi(a_1|s_1)||^2,

    negative (reward-to-go worse) as soon as ``gamma rho > 1/2``.
    """
    rho = check_real(rho, "rho")
    gamma = check_gamma(gamma)
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = 1.0
    R = np.array([[1.0, -1.0], [-rho, -rho], [rho, rho]])
    return _mdp.MDP(P, R, np.array([1.0, 0.0, 0.0]), gamma)


# ---------------------------------------------------------------------------------------------
# A baseline per coordinate, and the sampled return in place of Q
# ---------------------------------------------------------------------------------------------


def _state_scores(theta: np.ndarray) -> np.ndarray:
    """``psi[s, a, i] = d log pi(a|s) / d theta[s, i]``: the only non-zero row of the tabular score."""
    score = policies.score(theta)  # (S, A, S, A)
    S = theta.shape[0]
    return score[np.arange(S), :, np.arange(S), :]  # (S, A, A)


def coordinate_optimal_baseline(mdp: _mdp.MDP, theta, Q=None) -> np.ndarray:
    """The variance-minimising baseline *per coordinate* of the parameter; shape ``(S, A)``.

    For the estimator whose coordinate ``i`` is ``d_i log pi(a|s) (Q(s, a) - b_i(s))``, ``a ~ pi(.|s)``,
    the trace of the covariance is a sum over coordinates of one-dimensional quadratics, each
    minimised by (``prop-coordinate-baseline``)

        b_i(s) = E_a[(d_i log pi(a|s))^2 Q(s, a)] / E_a[(d_i log pi(a|s))^2].

    For the tabular softmax only the row ``theta[s]`` of the score is non-zero in state ``s``, so
    ``b[s, i]`` is the baseline of coordinate ``theta[s, i]`` in state ``s`` (the baselines of the
    other rows multiply zero). Computed from :func:`pgbook.policies.score`. Where
    ``E_a[(d_i log pi)^2] = 0`` (a deterministic policy) every value is optimal; ``V(s)`` is returned.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    pi, Q = _state_q(mdp, theta, Q)
    w = pi[:, :, None] * _state_scores(theta) ** 2  # (S, A, i)
    num, den = np.einsum("sai,sa->si", w, Q), w.sum(axis=1)
    V = (pi * Q).sum(axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), V[:, None])


def coordinate_baseline_variance(mdp: _mdp.MDP, theta, b, Q=None) -> np.ndarray:
    """Exact ``tr Cov`` of the per-coordinate estimator ``d_i log pi(a|s) (Q(s, a) - b[s, i])``, per state.

    ``b`` has shape ``(..., S, A)`` (a grid of per-coordinate baselines); the result has shape
    ``(..., S)``. A scalar baseline ``b(s)`` is the case ``b[s, i] = b(s)`` for every ``i``, and then
    the result equals :func:`state_estimator_variance`. ``Q`` defaults to the exact ``Q^pi``.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    pi, Q = _state_q(mdp, theta, Q)
    b = as_float_array(b, "b")
    if b.ndim < 2 or b.shape[-2:] != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"b must have shape (..., {mdp.n_states}, {mdp.n_actions}), got {b.shape}")
    psi = _state_scores(theta)  # (S, A, i)
    mean = np.einsum("sa,sai,sa->si", pi, psi, Q)
    second = np.einsum("sa,sai,...sai->...s", pi, psi**2, (Q[:, :, None] - b[..., :, None, :]) ** 2)
    return second - (mean**2).sum(axis=1)


def sampled_state_variance(mdp: _mdp.MDP, theta, horizon: int, t: int, b, per_coordinate: bool = False) -> np.ndarray:
    """Exact ``tr Cov[grad log pi(a_t|s_t) (G_t - b) | s_t = s]`` with the *sampled* reward-to-go ``G_t``.

    Enumerates every trajectory of horizon ``H`` (:func:`pgbook.mdp.enumerate_trajectories`) and
    conditions on ``s_t = s``: the randomness is that of ``a_t`` *and* of the rewards after it.
    ``b`` is a scalar baseline per state, shape ``(..., S)``, or with ``per_coordinate=True`` a
    baseline per coordinate, shape ``(..., S, A)`` (coordinate ``theta[s, i]`` in state ``s``, as in
    :func:`coordinate_optimal_baseline`). Returns shape ``(..., S)``; NaN where ``Pr(s_t = s) = 0``.
    By ``prop-sampled-baseline`` it exceeds the variance with ``Q_t`` in place of ``G_t``
    (:func:`state_estimator_variance`, :func:`coordinate_baseline_variance` with
    ``Q = finite_horizon_values(...)[1][t]``) by an amount that does not depend on ``b``.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    H = check_positive_int(horizon, "horizon")
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < H:
        raise ValueError(f"t must be an integer in [0, {H}), got {t!r}")
    if not isinstance(per_coordinate, bool):
        raise ValueError(f"per_coordinate must be a bool, got {per_coordinate!r}")
    S, A = mdp.n_states, mdp.n_actions
    b = as_float_array(b, "b")
    want = (S, A) if per_coordinate else (S,)
    if b.ndim < len(want) or b.shape[b.ndim - len(want):] != want:
        raise ValueError(f"b must have shape (..., {', '.join(map(str, want))}), got {b.shape}")
    traj = _mdp.enumerate_trajectories(mdp, policies.probs(theta), H)
    s_t, a_t = traj.states[:, t], traj.actions[:, t]
    G = reward_to_go(traj.rewards, mdp.gamma)[:, t]
    psi = _state_scores(theta)[s_t, a_t]  # (N, i): row s_t of the score
    if per_coordinate:
        weight = G[:, None] - b[..., s_t, :]  # (..., N, i)
    else:
        weight = (G - b[..., s_t])[..., None]  # (..., N, 1)
    est = psi * weight  # (..., N, i)
    out = np.full(b.shape[: b.ndim - len(want)] + (S,), np.nan)
    for s in range(S):
        sel = s_t == s
        mass = traj.prob[sel].sum()
        if mass <= 0:
            continue
        p = traj.prob[sel] / mass
        e = est[..., sel, :]
        mean = np.einsum("n,...ni->...i", p, e)
        out[..., s] = np.einsum("n,...ni->...", p, (e - mean[..., None, :]) ** 2)
    return out


def _as_rationals(x, name: str) -> list:
    try:
        items = list(x)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of rational numbers, got {type(x).__name__}") from exc
    if not items or not all(isinstance(v, Rational) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{name} must be a non-empty sequence of int or Fraction, got {x!r}")
    return [Fraction(v) for v in items]


def _check_exact_policy(pi, Q):
    p = _as_rationals(pi, "pi")
    if any(v <= 0 for v in p) or sum(p) != 1:
        raise ValueError(f"pi must be positive and sum exactly to 1, got {pi!r}")
    q = _as_rationals(Q, "Q")
    if len(q) != len(p):
        raise ValueError(f"Q must have {len(p)} entries like pi, got {len(q)}")
    return p, q


def exact_state_variance(pi, Q, b) -> Fraction:
    """``tr Cov`` of ``grad log pi(a) (Q(a) - b)`` for one state of a softmax policy, in exact rationals.

    ``pi`` and ``Q`` are sequences of ints or :class:`fractions.Fraction` (``pi`` positive, summing to
    exactly 1). The score of action ``a`` with respect to the logits is ``e_a - pi``. ``b`` is a
    scalar baseline (a rational) or a baseline per coordinate (a sequence of ``len(pi)`` rationals).
    Computed from the definition ``E||g - E g||^2``, without the formulas for the optimal baselines.
    """
    p, q = _check_exact_policy(pi, Q)
    A = len(p)
    if isinstance(b, Rational) and not isinstance(b, bool):
        bs = [Fraction(b)] * A
    else:
        bs = _as_rationals(b, "b")
        if len(bs) != A:
            raise ValueError(f"b must be a rational or a sequence of {A} rationals, got {b!r}")
    vecs = [[(int(a == i) - p[i]) * (q[a] - bs[i]) for i in range(A)] for a in range(A)]
    mean = [sum(p[a] * vecs[a][i] for a in range(A)) for i in range(A)]
    return sum(p[a] * sum((vecs[a][i] - mean[i]) ** 2 for i in range(A)) for a in range(A))


def exact_optimal_baselines(pi, Q) -> tuple[Fraction, tuple[Fraction, ...]]:
    """``(b*, (b_1, ..., b_A))``: the optimal scalar and per-coordinate baselines of one state, exactly.

    ``b* = E[w Q] / E[w]`` with ``w(a) = ||e_a - pi||^2`` (``thm-optimal-baseline``) and
    ``b_i = E[(e_a - pi)_i^2 Q] / E[(e_a - pi)_i^2]`` (``prop-coordinate-baseline``), in rationals.
    """
    p, q = _check_exact_policy(pi, Q)
    A = len(p)
    sq = [[(int(a == i) - p[i]) ** 2 for i in range(A)] for a in range(A)]
    w = [sum(row) for row in sq]
    b_star = sum(p[a] * w[a] * q[a] for a in range(A)) / sum(p[a] * w[a] for a in range(A))
    coord = tuple(
        sum(p[a] * sq[a][i] * q[a] for a in range(A)) / sum(p[a] * sq[a][i] for a in range(A)) for i in range(A)
    )
    return b_star, coord
