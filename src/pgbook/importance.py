"""Importance sampling: the identity, its support condition and variance, and the IS policy gradient.

Chapter 5 (:doc:`/book/ch05_importance_sampling`). Equations implemented:

* ``eq-is-identity`` — ``E_p[f] = E_q[(p/q) f]`` when ``q > 0`` wherever ``p f != 0``
  (:func:`is_expectation`, :func:`is_samples`);
* ``eq-is-support-limit`` — without that support, ``E_q[w f] = sum_{x: q(x) > 0} p(x) f(x)``;
* ``eq-is-variance`` — ``Var_q[w f] = sum_{x: q(x) > 0} p(x)^2 f(x)^2 / q(x) - (E_q[w f])^2`` with
  ``E_q[w f] = sum_{x: q(x) > 0} p(x) f(x)``, which is ``E_p[f]`` only under the support condition
  (:func:`is_variance`);
* ``thm-is-kl-variance`` — ``Var_q[w] = chi2(p||q) >= exp(KL(p||q)) - 1``, so the effective
  sample size fraction ``1 / E_q[w^2]`` is at most ``exp(-KL)`` (:func:`kl_divergence`,
  :func:`chi2_divergence`, :func:`ess_fraction`, :func:`effective_sample_size`);
* ``eq-is-traj-ratio`` — ``p(tau; pi) / p(tau; pi_old) = prod_t pi(a_t|s_t) / pi_old(a_t|s_t)``
  (:func:`per_step_ratios`, :func:`trajectory_ratio`);
* ``eq-is-traj-kl``, ``rem-is-traj-kl-growth`` — the trajectory KL is the sum over ``t < H`` of
  ``k_t = E_{s_t ~ pi}[KL(pi(.|s_t) || pi_old(.|s_t))]`` (:func:`trajectory_kl_increments`); it grows
  like ``H`` times the stationary mean ``d_inf . KL`` only asymptotically (:func:`stationary_distribution`,
  :func:`trajectory_kl_rate`);
* ``eq-is-pg-notes`` — the importance-weighted policy gradient as the source notes write it, with
  the discounted state weighting ``gamma^t``::

      g_IS(theta; theta_old) = E_{tau ~ pi_old}[ sum_t gamma^t r_t(theta) grad log pi_theta(a_t|s_t)
                                                   A^{pi_old}(s_t, a_t) ]
                             = sum_s eta_old(s) sum_a pi_old(a|s) r(theta) grad log pi_theta(a|s) A_old(s, a),

  with ``r(theta) = pi_theta(a|s) / pi_old(a|s)`` and ``eta_old(s) = sum_t gamma^t Pr_old(s_t = s)``
  (:func:`is_policy_gradient`, exact; :func:`is_gradient_samples`, sampled);
* ``eq-is-pg-gap`` — its gap to the exact ``grad J(theta)`` split into a state-distribution-shift
  part and an advantage-shift part (:func:`is_gradient_gap`);
* ``thm-is-pg-at-old`` — the gap is ``g_IS(theta_old + eps u) - grad J(theta_old + eps u) = eps D u + O(eps^2)``
  with ``D = (hess L - hess J)(theta_old)`` (:func:`is_gradient_gap_derivative`);
* ``eq-is-pg-trajectory`` — the exact trajectory-level correction ``grad J_H(theta) =
  E_{tau ~ pi_old}[rho(tau) R(tau) sum_t grad log pi_theta(a_t|s_t)]`` by enumeration
  (:func:`trajectory_is_gradient`).

Distributions ``p``, ``q`` are 1-D probability vectors over a finite set of outcomes and ``f`` the
function's values on those outcomes; policies are tables ``pi[s, a]``; ``theta`` is the logit table
of the tabular softmax policy (:mod:`pgbook.policies`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import mdp as _mdp
from . import policies
from ._validate import (
    as_float_array,
    check_distribution,
    check_gamma,
    check_mdp,
    check_positive_int,
    check_seed,
    check_shape,
)

__all__ = [
    "importance_weights",
    "is_expectation",
    "is_variance",
    "is_samples",
    "kl_divergence",
    "chi2_divergence",
    "ess_fraction",
    "effective_sample_size",
    "per_step_ratios",
    "trajectory_ratio",
    "stationary_distribution",
    "trajectory_kl_increments",
    "trajectory_kl_rate",
    "finite_visits",
    "is_policy_gradient",
    "is_gradient_samples",
    "ISGradientGap",
    "is_gradient_gap",
    "is_gradient_gap_derivative",
    "trajectory_is_gradient",
]


# --------------------------------------------------------------------------------------------
# Importance sampling over a finite set of outcomes
# --------------------------------------------------------------------------------------------


def _check_pq(p, q) -> tuple[np.ndarray, np.ndarray]:
    p = as_float_array(p, "p", ndim=1)
    q = as_float_array(q, "q", ndim=1)
    if p.shape[0] == 0:
        raise ValueError("p must have at least one outcome, got shape (0,)")
    check_shape(q, p.shape, "q")
    check_distribution(p, "p")
    check_distribution(q, "q")
    return p, q


def _check_f(f, p: np.ndarray) -> np.ndarray:
    f = as_float_array(f, "f", ndim=1)
    check_shape(f, p.shape, "f")
    return f


def importance_weights(p, q) -> np.ndarray:
    """The importance weights ``w(x) = p(x) / q(x)``; shape ``(K,)``.

    Where ``q(x) = 0`` the outcome is never drawn from ``q`` and its weight is never used: it is
    returned as 0, so that ``E_q[w f] = sum_{q > 0} p f`` (eq. ``eq-is-support-limit``).
    """
    p, q = _check_pq(p, q)
    w = np.zeros_like(p)
    pos = q > 0
    w[pos] = p[pos] / q[pos]
    return w


def is_expectation(f, p, q) -> float:
    """The exact mean of the importance-sampling estimator, ``E_{x~q}[w(x) f(x)]``.

    Computed as the finite sum ``sum_x q(x) w(x) f(x)`` over the outcomes ``q`` can draw. It
    equals ``E_p[f]`` when ``q > 0`` wherever ``p f != 0`` (eq. ``eq-is-identity``); otherwise it
    equals ``sum_{x: q(x) > 0} p(x) f(x)`` (eq. ``eq-is-support-limit``).
    """
    p, q = _check_pq(p, q)
    f = _check_f(f, p)
    return float(np.sum(q * importance_weights(p, q) * f))


def is_variance(f, p, q) -> float:
    """Exact variance of one weighted sample ``w(x) f(x)``, ``x ~ q`` (eq. ``eq-is-variance``).

    ``Var_q[w f] = sum_{q > 0} p^2 f^2 / q - (E_q[w f])^2`` with ``E_q[w f] = sum_{q > 0} p f``
    (:func:`is_expectation`): both sums run over the outcomes ``q`` can draw. The mean is ``E_p[f]``
    only under the support condition; subtracting ``(E_p f)^2`` without it is wrong and can even be
    negative (``-622/75`` instead of ``8/75`` on the chapter's support counterexample).

    Computed in the centred form ``sum_{q > 0} q (w f - E_q[w f])^2``: the same number without the
    cancellation of the difference of moments, and non-negative term by term, so no clamp is needed.
    The mean of ``n`` independent weighted samples has variance ``is_variance(f, p, q) / n``.
    """
    p, q = _check_pq(p, q)
    f = _check_f(f, p)
    pos = q > 0
    wf = p[pos] / q[pos] * f[pos]  # the values q can draw, with probabilities q[pos]
    mean = float(np.sum(q[pos] * wf))
    return float(np.sum(q[pos] * (wf - mean) ** 2))


def is_samples(f, p, q, n: int, seed: int) -> np.ndarray:
    """``n`` independent importance-sampling terms ``w(x_i) f(x_i)`` with ``x_i ~ q``; shape ``(n,)``.

    Their mean is the importance-sampling estimate of ``E_p[f]``; pass them to
    :func:`pgbook.montecarlo.mean_ci` for a confidence interval.
    """
    p, q = _check_pq(p, q)
    f = _check_f(f, p)
    n = check_positive_int(n, "n")
    rng = np.random.default_rng(check_seed(seed))
    x = rng.choice(p.shape[0], size=n, p=q / q.sum())
    return importance_weights(p, q)[x] * f[x]


def kl_divergence(p, q) -> float:
    """``KL(p || q) = sum_x p(x) log(p(x) / q(x))``; ``inf`` when ``q = 0`` somewhere ``p > 0``."""
    p, q = _check_pq(p, q)
    pos = p > 0
    if np.any(q[pos] == 0):
        return float("inf")
    return float(np.sum(p[pos] * (np.log(p[pos]) - np.log(q[pos]))))


def chi2_divergence(p, q) -> float:
    """``chi2(p || q) = sum_x p(x)^2 / q(x) - 1 = Var_q[w]``; ``inf`` when the support fails."""
    p, q = _check_pq(p, q)
    pos = p > 0
    if np.any(q[pos] == 0):
        return float("inf")
    return float(np.sum(p[pos] ** 2 / q[pos]) - 1.0)


def ess_fraction(p, q) -> float:
    """The effective-sample-size fraction ``1 / E_q[w^2] = 1 / (1 + chi2(p || q))``.

    The large-``n`` limit of :func:`effective_sample_size` divided by ``n`` (thm.
    ``thm-is-kl-variance``: it is at most ``exp(-KL(p || q))``). 0 when the support fails.
    """
    return 1.0 / (1.0 + chi2_divergence(p, q))


def effective_sample_size(weights) -> float:
    """Kish's effective sample size ``(sum_i w_i)^2 / sum_i w_i^2`` of observed weights.

    ``n`` for equal weights, 1 when a single weight dominates.
    """
    w = as_float_array(weights, "weights", ndim=1)
    if w.shape[0] == 0:
        raise ValueError("weights must contain at least one weight, got shape (0,)")
    if np.any(w < 0):
        raise ValueError(f"weights must be non-negative (min {w.min():.3g})")
    scale = float(w.max())
    if scale == 0.0:
        raise ValueError("weights are all zero: the effective sample size is undefined")
    w = w / scale  # the ratio is scale-free; scaling first keeps w**2 finite for 1e200 and non-zero for 1e-200
    return float(np.sum(w) ** 2 / np.sum(w**2))


# --------------------------------------------------------------------------------------------
# Trajectory-level ratios
# --------------------------------------------------------------------------------------------


def _check_state_actions(pi: np.ndarray, states, actions) -> tuple[np.ndarray, np.ndarray]:
    states = np.asarray(states)
    actions = np.asarray(actions)
    S, A = pi.shape
    if states.dtype.kind not in "iu" or np.any(states < 0) or np.any(states >= S):
        raise ValueError(f"states must be integers in [0, {S})")
    if actions.dtype.kind not in "iu" or np.any(actions < 0) or np.any(actions >= A):
        raise ValueError(f"actions must be integers in [0, {A})")
    if states.shape != actions.shape:
        raise ValueError(f"states and actions must have the same shape, got {states.shape} and {actions.shape}")
    return states, actions


def _check_policy_table(pi, name: str) -> np.ndarray:
    pi = as_float_array(pi, name, ndim=2)
    if pi.shape[0] == 0 or pi.shape[1] == 0:
        raise ValueError(f"{name} must have shape (S, A) with S, A >= 1, got {pi.shape}")
    check_distribution(pi, name, axis=1)
    return pi


def per_step_ratios(pi, pi_old, states, actions) -> np.ndarray:
    """``r_t = pi(a_t|s_t) / pi_old(a_t|s_t)`` for every step; the shape of ``states``.

    Raises ``ValueError`` if ``pi_old(a_t|s_t) = 0`` at a visited pair (the behaviour policy
    cannot have produced it).
    """
    pi = _check_policy_table(pi, "pi")
    pi_old = _check_policy_table(pi_old, "pi_old")
    check_shape(pi_old, pi.shape, "pi_old")
    states, actions = _check_state_actions(pi, states, actions)
    den = pi_old[states, actions]
    if np.any(den == 0):
        raise ValueError("pi_old gives probability 0 to a visited (state, action) pair")
    return pi[states, actions] / den


def trajectory_ratio(pi, pi_old, states, actions) -> np.ndarray:
    """``prod_t pi(a_t|s_t) / pi_old(a_t|s_t)`` along the last axis (eq. ``eq-is-traj-ratio``).

    For trajectories of one MDP this is ``p(tau; pi) / p(tau; pi_old)``: the initial distribution
    and the transition probabilities are the same in numerator and denominator and cancel.
    """
    return np.prod(per_step_ratios(pi, pi_old, states, actions), axis=-1)


def _policy_kls(pi: np.ndarray, pi_old: np.ndarray) -> np.ndarray:
    """Per-state ``KL(pi(.|s) || pi_old(.|s))``; ``ValueError`` if ``pi_old = 0`` where ``pi > 0``."""
    pos = pi > 0
    if np.any(pi_old[pos] == 0):
        raise ValueError("pi_old must be positive wherever pi is (the KL would be infinite)")
    terms = np.zeros_like(pi)
    terms[pos] = pi[pos] * (np.log(pi[pos]) - np.log(pi_old[pos]))
    return terms.sum(axis=1)


def stationary_distribution(mdp: _mdp.MDP, pi) -> np.ndarray:
    """The stationary distribution ``d`` of the state chain of ``pi``: ``d P_pi = d``, ``sum d = 1``.

    Solves ``d (I - P_pi + 1 1^T) = 1^T``, whose matrix is invertible exactly when the stationary
    distribution is unique (one closed communicating class); raises ``ValueError`` otherwise.
    """
    check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    S = mdp.n_states
    mat = np.eye(S) - P_pi + np.ones((S, S))
    if np.linalg.cond(mat) > 1e12:
        raise ValueError("pi: its state chain has no unique stationary distribution")
    d = np.linalg.solve(mat.T, np.ones(S))
    return d


def trajectory_kl_increments(mdp: _mdp.MDP, pi, pi_old, horizon: int) -> np.ndarray:
    """``k_t = E_{s_t ~ pi}[KL(pi(.|s_t) || pi_old(.|s_t))]`` for ``t < horizon``; shape ``(horizon,)``.

    Their sum is the KL divergence between the trajectory distributions of ``pi`` and ``pi_old`` over
    ``horizon`` steps (eq. ``eq-is-traj-kl``). ``k_t`` depends on ``t`` through the state distribution
    ``Pr_pi(s_t = .)``: the sum is linear in the horizon if that distribution is the same at
    every step (and, generically, only then) (rem. ``rem-is-traj-kl-growth``).
    """
    check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    pi_old = _mdp.check_policy(mdp, pi_old, "pi_old")
    H = check_positive_int(horizon, "horizon")
    kl = _policy_kls(pi, pi_old)
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    dist = np.array(mdp.p0, dtype=float)
    out = np.zeros(H)
    for t in range(H):
        out[t] = dist @ kl
        dist = dist @ P_pi
    return out


def trajectory_kl_rate(mdp: _mdp.MDP, pi, pi_old) -> float:
    """``lim_H KL_H / H = sum_s d(s) KL(pi(.|s) || pi_old(.|s))`` with ``d`` the stationary distribution.

    The asymptotic slope of the trajectory KL (rem. ``rem-is-traj-kl-growth``); ``ValueError`` when
    the stationary distribution of ``pi``'s state chain is not unique.
    """
    check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    pi_old = _mdp.check_policy(mdp, pi_old, "pi_old")
    return float(stationary_distribution(mdp, pi) @ _policy_kls(pi, pi_old))


# --------------------------------------------------------------------------------------------
# The importance-weighted policy gradient of the notes, exactly
# --------------------------------------------------------------------------------------------


def finite_visits(mdp: _mdp.MDP, pi, horizon: int, discount: float) -> np.ndarray:
    """``sum_{t < horizon} discount^t Pr_pi(s_t = s)``; shape ``(S,)``.

    With ``discount = gamma`` and ``horizon -> inf`` this is :func:`pgbook.mdp.discounted_visits`;
    ``discount = 1`` is the undiscounted count of visits over ``horizon`` steps.
    """
    check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    H = check_positive_int(horizon, "horizon")
    disc = check_gamma(discount, "discount", allow_one=True)
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    dist = np.array(mdp.p0, dtype=float)
    out = np.zeros(mdp.n_states)
    for t in range(H):
        out += disc**t * dist
        dist = dist @ P_pi
    return out


def _check_theta_for(mdp: _mdp.MDP, theta, name: str) -> np.ndarray:
    check_mdp(mdp)
    theta = policies.check_theta(theta, name)
    check_shape(theta, (mdp.n_states, mdp.n_actions), name)
    return theta


def is_policy_gradient(
    mdp: _mdp.MDP, theta, theta_old, horizon: int | None = None, discount_states: bool = True
) -> np.ndarray:
    """The importance-weighted policy gradient as the notes write it, exactly (eq. ``eq-is-pg-notes``).

    ``g_IS = sum_s eta_old(s) sum_a pi_old(a|s) r(theta) grad log pi_theta(a|s) A^{pi_old}(s, a)``,
    the expectation over trajectories of ``pi_old`` of ``sum_t gamma^t r_t(theta) grad log
    pi_theta(a_t|s_t) A^{pi_old}(s_t, a_t)``. Shape ``(S, A)``.

    State weights ``eta_old``: by default the infinite-horizon discounted visitation of ``pi_old``
    (the weighting under which ``g_IS(theta_old; theta_old) = grad J(theta_old)``); with
    ``horizon=H`` the truncated sum ``sum_{t<H} c^t Pr_old(s_t = s)`` with ``c = gamma`` or, if
    ``discount_states=False``, ``c = 1`` (the notes' formula read literally, without ``gamma^t``).
    """
    theta = _check_theta_for(mdp, theta, "theta")
    theta_old = _check_theta_for(mdp, theta_old, "theta_old")
    if not isinstance(discount_states, bool):
        raise ValueError(f"discount_states must be a bool, got {discount_states!r}")
    pi_old = policies.probs(theta_old)
    if horizon is None:
        if not discount_states:
            raise ValueError("discount_states=False needs a finite horizon (the undiscounted sum diverges)")
        eta_old = _mdp.discounted_visits(mdp, pi_old)
    else:
        eta_old = finite_visits(mdp, pi_old, horizon, mdp.gamma if discount_states else 1.0)
    log_pi_old = policies.log_probs(theta_old)
    log_ratio = policies.log_probs(theta) - log_pi_old
    # pi_old * r(theta) as exp(log pi_old + log r): the product pi_old * exp(log r) is 0 * inf = nan
    # once pi_old underflows (a logit gap above ~745), while the weight itself is finite
    weight = np.exp(log_pi_old + log_ratio)
    A_old = _mdp.advantage_values(mdp, pi_old)
    return np.einsum("s,sa,saxy,sa->xy", eta_old, weight, policies.score(theta), A_old)


def is_gradient_samples(mdp: _mdp.MDP, theta, theta_old, n_episodes: int, horizon: int, seed: int) -> np.ndarray:
    """Per-episode samples of the notes' estimator, trajectories drawn from ``pi_old``; ``(N, S, A)``.

    Episode ``n`` gives ``sum_{t<H} gamma^t r_t(theta) grad log pi_theta(a_t|s_t) A^{pi_old}(s_t, a_t)``
    with the exact ``A^{pi_old}`` (so the only randomness is the trajectory). Their mean converges to
    :func:`is_policy_gradient` up to the truncation ``O(gamma^H)`` — not to ``grad J(theta)``.
    """
    theta = _check_theta_for(mdp, theta, "theta")
    theta_old = _check_theta_for(mdp, theta_old, "theta_old")
    N = check_positive_int(n_episodes, "n_episodes")
    H = check_positive_int(horizon, "horizon")
    pi_old = policies.probs(theta_old)
    states, actions, _ = _mdp.sample_trajectories(mdp, pi_old, N, H, seed)
    ratio = np.exp((policies.log_probs(theta) - policies.log_probs(theta_old))[states, actions])  # visited pairs only
    A_old = _mdp.advantage_values(mdp, pi_old)[states, actions]
    weights = mdp.gamma ** np.arange(H) * ratio * A_old  # (N, H)
    return policies.weighted_score_sum(theta, states, actions, weights)


@dataclass(frozen=True)
class ISGradientGap:
    """The gap ``g_IS(theta; theta_old) - grad J(theta)`` and its two sources (eq. ``eq-is-pg-gap``).

    ``state_shift = sum_s (eta_old - eta_theta)(s) sum_a grad pi_theta(a|s) A^{pi_old}(s, a)``: the
    states are weighted by the old policy's visitation instead of the new one's.
    ``advantage_shift = sum_s eta_theta(s) sum_a grad pi_theta(a|s) (A^{pi_old} - A^{pi_theta})(s, a)``:
    the old policy's advantages instead of the new one's. ``gap = state_shift + advantage_shift``.
    """

    is_gradient: np.ndarray
    exact_gradient: np.ndarray
    state_shift: np.ndarray
    advantage_shift: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return self.is_gradient - self.exact_gradient


def is_gradient_gap(mdp: _mdp.MDP, theta, theta_old) -> ISGradientGap:
    """Split ``g_IS(theta; theta_old) - grad J(theta)`` into its two sources, exactly.

    The intermediate quantity ``sum_s eta_theta(s) sum_a grad pi_theta(a|s) A^{pi_old}(s, a)`` (new
    states, old advantages) separates the state-distribution shift from the advantage shift. Both
    parts vanish at ``theta = theta_old``. ``exact_gradient`` is :func:`pgbook.gradients.policy_gradient`.
    """
    from .gradients import policy_gradient

    theta = _check_theta_for(mdp, theta, "theta")
    theta_old = _check_theta_for(mdp, theta_old, "theta_old")
    pi = policies.probs(theta)
    g_is = is_policy_gradient(mdp, theta, theta_old)
    exact = policy_gradient(mdp, theta)
    eta_new = _mdp.discounted_visits(mdp, pi)
    eta_old = _mdp.discounted_visits(mdp, policies.probs(theta_old))
    A_old = _mdp.advantage_values(mdp, policies.probs(theta_old))
    A_new = _mdp.advantage_values(mdp, pi)
    grad_pi = pi[:, :, None, None] * policies.score(theta)  # grad pi_theta(a|s), (S, A, S, A)
    state_shift = np.einsum("s,saxy,sa->xy", eta_old - eta_new, grad_pi, A_old)
    advantage_shift = np.einsum("s,saxy,sa->xy", eta_new, grad_pi, A_old - A_new)
    return ISGradientGap(g_is, exact, state_shift, advantage_shift)


def is_gradient_gap_derivative(mdp: _mdp.MDP, theta_old) -> np.ndarray:
    """``D = hess L(theta_old) - hess J(theta_old)``, shape ``(S*A, S*A)`` (thm. ``thm-is-pg-at-old``).

    ``L(theta) = sum_s eta_old(s) sum_a pi_theta(a|s) A^{pi_old}(s, a)`` is the surrogate whose gradient
    is ``g_IS(theta; theta_old)`` (eq. ``eq-is-pg-notes``). Since ``grad L = grad J`` at ``theta_old``,
    ``g_IS(theta_old + eps u; theta_old) - grad J(theta_old + eps u) = eps D u + O(eps^2)``, with ``u``
    flattened row-major (``D @ u.ravel()``). Both Hessians by torch autograd in float64, ``J`` through
    the exact linear solve of :func:`pgbook.gradients.expected_return_torch`. ``D`` is symmetric and
    ``D u = 0`` for every ``u`` that adds a constant to the logits of one state.
    """
    import torch

    from .gradients import expected_return_torch

    theta_old = _check_theta_for(mdp, theta_old, "theta_old")
    S, A = theta_old.shape
    pi_old = policies.probs(theta_old)
    eta_old = torch.tensor(_mdp.discounted_visits(mdp, pi_old), dtype=torch.float64)
    A_old = torch.tensor(_mdp.advantage_values(mdp, pi_old), dtype=torch.float64)

    def l_minus_j(x):
        th = x.reshape(S, A)
        return torch.einsum("s,sa,sa->", eta_old, torch.softmax(th, dim=1), A_old) - expected_return_torch(mdp, th)

    x0 = torch.tensor(theta_old.ravel(), dtype=torch.float64)
    return torch.autograd.functional.hessian(l_minus_j, x0).numpy().copy()


def trajectory_is_gradient(mdp: _mdp.MDP, theta, theta_old, horizon: int) -> np.ndarray:
    """``E_{tau ~ pi_old}[rho(tau) R(tau) sum_t grad log pi_theta(a_t|s_t)]`` by enumeration.

    ``rho(tau)`` is :func:`trajectory_ratio` and ``R(tau) = sum_{t<H} gamma^t r_t``: the exact
    (full-trajectory) importance-sampling correction of the REINFORCE gradient of the
    finite-horizon return ``J_H`` (eq. ``eq-is-pg-trajectory``). Shape ``(S, A)``.
    """
    theta = _check_theta_for(mdp, theta, "theta")
    theta_old = _check_theta_for(mdp, theta_old, "theta_old")
    traj = _mdp.enumerate_trajectories(mdp, policies.probs(theta_old), horizon)
    s, a = traj.states, traj.actions
    log_pi, log_pi_old = policies.log_probs(theta), policies.log_probs(theta_old)
    # p_old(tau) rho(tau) = exp(log p_old(tau) + log rho(tau)), from log-probabilities: the product of
    # p_old(tau) and trajectory_ratio is 0 * inf = nan (or "probability 0") once pi_old underflows
    log_rho = (log_pi[s, a] - log_pi_old[s, a]).sum(axis=1)
    with np.errstate(invalid="ignore"):  # log_dynamics = -inf where the dynamics exclude tau: weight 0
        log_p_old = traj.log_dynamics + log_pi_old[s, a].sum(axis=1)
        weight = np.where(np.isneginf(traj.log_dynamics), 0.0, np.exp(log_p_old + log_rho))
    weight = weight * traj.discounted_return(mdp.gamma)  # (N,)
    # sum_t grad log pi_theta(a_t|s_t) of every trajectory, weighted by p_old(tau) rho(tau) R(tau)
    H = s.shape[1]
    per_traj = policies.weighted_score_sum(theta, s, a, np.repeat(weight[:, None], H, axis=1))
    return per_traj.sum(axis=0)
