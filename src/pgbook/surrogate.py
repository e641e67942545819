"""The conservative policy iteration surrogate ``L^CPI`` and what it does and does not say about ``J``.

Chapter 6 (:doc:`/book/ch06_cpi_surrogate`). Notation: ``J(theta) = E[sum_t gamma^t r_t]`` (the
discounted return *without* a ``(1 - gamma)`` factor; this is the ``eta(pi)`` of
Schulman et al. (2015, TRPO)), ``eta_pi(s) = sum_t gamma^t Pr(s_t = s)`` the unnormalised discounted
visitation (:func:`pgbook.mdp.discounted_visits`, the ``rho_pi`` of TRPO) and
``d_pi = (1 - gamma) eta_pi`` the normalised one. ``theta`` is an ``(S, A)`` logit table of the
softmax policy ``pi_theta(a|s) = softmax(theta[s])[a]`` (a linear-softmax policy passes its logit
table ``features @ w``). Equations implemented:

* ``def-cpi`` (the definition; constant chosen so that ``L^CPI(theta_old) = 0``)::

      L^CPI(theta) = 1/(1-gamma) E_{s ~ d_old, a ~ pi_old}[ r_theta(s, a) A_old(s, a) ]
                   = sum_s eta_old(s) sum_a pi_theta(a|s) A_old(s, a),
      r_theta(s, a) = pi_theta(a|s) / pi_old(a|s)

  (:func:`cpi_objective`); TRPO's ``L_{pi_old}(pi) = J(theta_old) + L^CPI(theta)``;
* ``eq-cpi-grad`` — ``grad L^CPI(theta) = sum_s eta_old(s) sum_a pi_theta(a|s)
  grad log pi_theta(a|s) A_old(s, a)`` (:func:`cpi_gradient`);
* ``thm-cpi-gradient-match`` — ``grad L^CPI(theta_old) = grad J(theta_old)``;
* ``eq-cpi-pdl`` — the performance difference lemma ``J(theta) - J(theta_old) =
  sum_s eta_theta(s) sum_a pi_theta(a|s) A_old(s, a)`` (:func:`performance_difference`);
* ``prop-cpi-taylor-in-pi`` — ``L^CPI`` is the first-order Taylor term of ``J`` in the policy
  *table* along the segment from ``pi_old`` to ``pi_theta`` (:func:`policy_segment_return`), not the
  first-order Taylor expansion in ``theta``;
* ``thm-cpi-trpo-bound`` — Schulman et al. (2015, TRPO) Theorem 1 and its KL form::

      J(theta) >= J(theta_old) + L^CPI(theta) - C * max_s KL(pi_old(.|s) || pi_theta(.|s)),
      C = 4 eps gamma / (1 - gamma)^2,   eps = max_{s,a} |A_old(s, a)|

  (:func:`trpo_lower_bound`, :func:`trpo_penalty_coefficient`, :func:`policy_kl`); TRPO's
  practical constraint uses the average instead (:func:`mean_policy_kl`);
* ``thm-clip-avg-divergence`` (chapter 7) — the average-divergence bound of Achiam et al. (2017,
  CPO, Corollary 1 and Proposition 1) in this book's units::

      J(theta) - J(theta_old) >= L^CPI(theta) - 2 gamma eps' / (1 - gamma)^2 * E_{s ~ d_old}[TV_s],
      eps' = max_s |sum_a pi_theta(a|s) A_old(s, a)|

  (:func:`cpo_lower_bound`, :func:`cpo_epsilon`, :func:`mean_policy_tv`) and the floors it gives
  TRPO's average-KL step and the KL penalty (:func:`trust_region_floor`,
  :func:`kl_penalty_floor`): bounded degradation, not monotone improvement.
  :func:`random_sparse_mdp` draws the nearly deterministic MDPs on which wrong versions of the
  bound fail;
* ``eq-cpi-pitfall`` — the gradient that sample-based code computes when it averages
  ``grad log pi(a_t|s_t) A(s_t, a_t)`` uniformly over the time steps of episodes of length ``T``:
  ``sum_s mu_T(s) sum_a pi(a|s) grad log pi(a|s) A(s, a)`` with the *undiscounted* time-averaged
  visitation ``mu_T(s) = (1/T) sum_{t<T} Pr(s_t = s)`` (:func:`discount_pitfall_gradient`,
  :func:`time_averaged_state_distribution`); :func:`time_step_gradient_samples` is that sample
  average (and the correctly discounted one) computed from sampled episodes.

:func:`surrogate_objective` and :func:`surrogate_gradient` take the state weights as an argument,
so that deliberately wrong weightings (uniform, undiscounted, without ``1/(1 - gamma)``) can be
checked against ``grad J`` and shown to fail.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from . import mdp as _mdp
from . import policies
from .gradients import check_theta_tensor, score_contraction
from ._validate import as_float_array, check_distribution, check_positive_int, check_real, check_seed, check_shape

__all__ = [
    "cpi_objective",
    "cpi_gradient",
    "cpi_objective_torch",
    "surrogate_objective",
    "surrogate_gradient",
    "performance_difference",
    "policy_segment_return",
    "policy_kl",
    "softmax_policy_kl",
    "mean_policy_kl",
    "trpo_penalty_coefficient",
    "trpo_lower_bound",
    "time_averaged_state_distribution",
    "discount_pitfall_gradient",
    "time_step_gradient_samples",
    "trap_chain_mdp",
    "policy_tv",
    "mean_policy_tv",
    "cpo_epsilon",
    "cpo_lower_bound",
    "trust_region_floor",
    "kl_penalty_floor",
    "random_sparse_mdp",
]


def _theta_for(mdp: _mdp.MDP, theta, name: str) -> np.ndarray:
    theta = policies.check_theta(theta, name)
    check_shape(theta, (mdp.n_states, mdp.n_actions), name)
    return theta


def _check_mdp(mdp) -> None:
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")


def _state_weights_for(mdp: _mdp.MDP, state_weights) -> np.ndarray:
    w = as_float_array(state_weights, "state_weights", ndim=1)
    check_shape(w, (mdp.n_states,), "state_weights")
    if np.any(w < 0):
        raise ValueError(f"state_weights must be non-negative, got minimum {w.min():.3g}")
    return w


def surrogate_objective(mdp: _mdp.MDP, theta, theta_old, state_weights) -> float:
    """``sum_s w(s) sum_a pi_theta(a|s) A_old(s, a)`` for given state weights ``w``.

    With ``w = eta_old`` (unnormalised discounted visitation of ``pi_old``) this is
    :func:`cpi_objective`. Other weights give the *wrong* surrogates of chapter 6: ``w = d_old``
    (no ``1/(1-gamma)``), ``w`` uniform, or ``w = mu_T`` (undiscounted time average).
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    w = _state_weights_for(mdp, state_weights)
    A_old = _mdp.advantage_values(mdp, policies.probs(theta_old))
    return float(np.einsum("s,sa,sa->", w, policies.probs(theta), A_old))


def surrogate_gradient(mdp: _mdp.MDP, theta, theta_old, state_weights) -> np.ndarray:
    """Analytic ``grad_theta`` of :func:`surrogate_objective`; shape ``(S, A)``.

    ``sum_s w(s) sum_a pi_theta(a|s) grad log pi_theta(a|s) A_old(s, a)`` (eq. ``eq-cpi-grad``),
    contracting the analytic score :func:`pgbook.policies.score` by its block structure
    (:func:`pgbook.gradients.score_contraction`; no ``(S, A, S, A)`` array).
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    w = _state_weights_for(mdp, state_weights)
    A_old = _mdp.advantage_values(mdp, policies.probs(theta_old))
    return score_contraction(policies.probs(theta), w, A_old)


def cpi_objective(mdp: _mdp.MDP, theta, theta_old) -> float:
    """Exact ``L^CPI(theta)`` (definition ``def-cpi``), normalised so that ``L^CPI(theta_old) = 0``.

    ``L^CPI(theta) = 1/(1-gamma) E_{s~d_old, a~pi_old}[pi_theta(a|s)/pi_old(a|s) A_old(s, a)]
    = sum_s eta_old(s) sum_a pi_theta(a|s) A_old(s, a)``, where ``d_old`` is the normalised
    discounted state distribution of ``pi_old = softmax(theta_old)`` and ``A_old`` its exact
    advantage. At ``theta = theta_old`` the inner sum is ``E_{a~pi_old}[A_old] = 0`` in every state.
    The surrogate of Schulman et al. (2015, TRPO) is ``J(theta_old) + L^CPI(theta)``; compare
    ``L^CPI(theta)`` with ``J(theta) - J(theta_old)``.
    """
    _check_mdp(mdp)
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    eta_old = _mdp.discounted_visits(mdp, policies.probs(theta_old))
    return surrogate_objective(mdp, theta, theta_old, eta_old)


def cpi_gradient(mdp: _mdp.MDP, theta, theta_old) -> np.ndarray:
    """Exact ``grad_theta L^CPI(theta)`` (eq. ``eq-cpi-grad``); equals ``grad J`` at ``theta_old``."""
    _check_mdp(mdp)
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    eta_old = _mdp.discounted_visits(mdp, policies.probs(theta_old))
    return surrogate_gradient(mdp, theta, theta_old, eta_old)


def cpi_objective_torch(mdp: _mdp.MDP, theta: torch.Tensor, theta_old) -> torch.Tensor:
    """Differentiable ``L^CPI(theta)`` in torch (float64); ``theta_old`` is held fixed (numpy)."""
    _check_mdp(mdp)
    check_theta_tensor(mdp, theta)
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    pi_old = policies.probs(theta_old)
    eta_old = torch.tensor(_mdp.discounted_visits(mdp, pi_old), dtype=theta.dtype)
    A_old = torch.tensor(_mdp.advantage_values(mdp, pi_old), dtype=theta.dtype)
    return torch.einsum("s,sa,sa->", eta_old, torch.softmax(theta, dim=1), A_old)


def performance_difference(mdp: _mdp.MDP, theta, theta_old) -> float:
    """Right-hand side of the performance difference lemma (eq. ``eq-cpi-pdl``).

    ``sum_s eta_theta(s) sum_a pi_theta(a|s) A_old(s, a)``: the same sum as :func:`cpi_objective`
    but with the visitation of the *new* policy. Equals ``J(theta) - J(theta_old)`` exactly
    (Kakade & Langford 2002).
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    eta_new = _mdp.discounted_visits(mdp, policies.probs(theta))
    return surrogate_objective(mdp, theta, theta_old, eta_new)


def policy_segment_return(mdp: _mdp.MDP, theta, theta_old, t: float) -> float:
    """``J`` of the mixture policy table ``(1 - t) pi_old + t pi_theta`` (prop. ``prop-cpi-taylor-in-pi``).

    For ``t`` in ``[0, 1]`` the mixture is a policy; slightly outside, with ``pi_old > 0``, it still
    is, so a central difference at ``t = 0`` is defined. Its derivative at ``t = 0`` is
    ``L^CPI(theta)``: ``L^CPI`` is the first-order Taylor term of ``J`` in the policy table.
    A ``t`` for which some entry of the mixture is negative raises ``ValueError`` naming ``t``, with
    the interval of ``t`` that gives a policy.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Real) or not np.isfinite(float(t)):
        raise ValueError(f"t must be a finite number, got {t!r}")
    t = float(t)
    p, q = policies.probs(theta_old), policies.probs(theta)
    pi_t = (1.0 - t) * p + t * q
    if np.any(pi_t < 0.0):
        # p + t (q - p) >= 0 entrywise: t >= -p / (q - p) where q > p, t <= p / (p - q) where q < p
        up, down = q > p, q < p
        t_lo = float(np.max(-p[up] / (q[up] - p[up]))) if up.any() else -math.inf
        t_hi = float(np.min(p[down] / (p[down] - q[down]))) if down.any() else math.inf
        if not (t_lo <= t <= t_hi):
            raise ValueError(
                f"t must keep the mixture (1 - t) pi_old + t pi_theta a policy (no negative probabilities): "
                f"t in [{t_lo:.6g}, {t_hi:.6g}], got {t!r}"
            )
        pi_t = np.maximum(pi_t, 0.0)  # rounding at the ends of the interval
    return _mdp.expected_return(mdp, pi_t)


def policy_kl(pi_old, pi) -> np.ndarray:
    """Per-state ``KL(pi_old(.|s) || pi(.|s)) = sum_a pi_old log(pi_old / pi)``; shape ``(S,)``.

    ``pi_old`` and ``pi`` are ``(S, A)`` tables of distributions; ``pi`` must be positive wherever
    ``pi_old`` is (else the KL is infinite and a ``ValueError`` is raised).
    """
    p = as_float_array(pi_old, "pi_old", ndim=2)
    q = as_float_array(pi, "pi", ndim=2)
    check_shape(q, p.shape, "pi")
    check_distribution(p, "pi_old", axis=1)
    check_distribution(q, "pi", axis=1)
    pos = p > 0
    if np.any(q[pos] == 0):
        raise ValueError("pi must be positive wherever pi_old is (the KL would be infinite)")
    terms = np.zeros_like(p)
    terms[pos] = p[pos] * (np.log(p[pos]) - np.log(q[pos]))
    return np.maximum(terms.sum(axis=1), 0.0)


def softmax_policy_kl(theta_old, theta) -> np.ndarray:
    """Per-state ``KL(pi_old(.|s) || pi_theta(.|s))`` of two softmax logit tables; shape ``(S,)``.

    The same quantity as :func:`policy_kl` of their probability tables, computed from
    log-probabilities, so it stays finite (and right) for near-deterministic policies whose
    probabilities underflow to 0 (a logit gap above ~745): ``KL`` of ``[0, 0]`` against
    ``[800, 0]`` is ``400 - log 2 + ...``, not infinite.
    """
    theta_old = policies.check_theta(theta_old, "theta_old")
    theta = policies.check_theta(theta)
    check_shape(theta, theta_old.shape, "theta")
    lp_old, lp = policies.log_probs(theta_old), policies.log_probs(theta)
    return np.maximum((np.exp(lp_old) * (lp_old - lp)).sum(axis=1), 0.0)


def mean_policy_kl(mdp: _mdp.MDP, theta, theta_old) -> float:
    """``E_{s ~ d_old}[KL(pi_old(.|s) || pi_theta(.|s))]``: the average KL of TRPO's practical constraint.

    ``d_old`` is the normalised discounted state distribution of ``pi_old``. Theorem 1 needs the
    *maximum* over states instead; the average is the heuristic that TRPO (and the notes) use.
    The KL is :func:`softmax_policy_kl` (finite for near-deterministic policies).
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    d_old = _mdp.discounted_state_distribution(mdp, policies.probs(theta_old))
    return float(d_old @ softmax_policy_kl(theta_old, theta))


def _mean_over_d_old(mdp: _mdp.MDP, theta, theta_old, divergence) -> float:
    """``E_{s ~ d_old}[divergence(pi_old(.|s), pi_theta(.|s))]`` for a per-state ``divergence(p, q)``."""
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    pi_old = policies.probs(theta_old)
    d_old = _mdp.discounted_state_distribution(mdp, pi_old)
    return float(d_old @ divergence(pi_old, policies.probs(theta)))


def trpo_penalty_coefficient(mdp: _mdp.MDP, theta_old) -> float:
    """``C = 4 eps gamma / (1 - gamma)^2`` with ``eps = max_{s,a} |A_old(s, a)|`` (TRPO, Theorem 1)."""
    _check_mdp(mdp)
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    eps = float(np.max(np.abs(_mdp.advantage_values(mdp, policies.probs(theta_old)))))
    return 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2


def trpo_lower_bound(mdp: _mdp.MDP, theta, theta_old, divergence: str = "kl") -> float:
    """The lower bound on ``J(theta)`` of Schulman et al. (2015, TRPO), Theorem 1 (thm. ``thm-cpi-trpo-bound``).

    ``divergence="kl"``: ``J(theta_old) + L^CPI(theta) - C max_s KL(pi_old(.|s) || pi_theta(.|s))``
    (their eq. 9); ``divergence="tv"``: ``J(theta_old) + L^CPI(theta) - C alpha^2`` with
    ``alpha = max_s TV(pi_old(.|s), pi_theta(.|s))``, ``TV = (1/2) sum_a |p - q|`` (their Theorem 1
    as stated; tighter, since ``TV^2 <= KL``). ``C`` is :func:`trpo_penalty_coefficient`.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    pi, pi_old = policies.probs(theta), policies.probs(theta_old)
    if divergence == "kl":
        penalty = float(np.max(softmax_policy_kl(theta_old, theta)))
    elif divergence == "tv":
        penalty = float(np.max(0.5 * np.abs(pi - pi_old).sum(axis=1))) ** 2
    else:
        raise ValueError(f"divergence must be 'kl' or 'tv', got {divergence!r}")
    J_old = _mdp.expected_return(mdp, pi_old)
    C = trpo_penalty_coefficient(mdp, theta_old)
    return J_old + cpi_objective(mdp, theta, theta_old) - C * penalty


def time_averaged_state_distribution(mdp: _mdp.MDP, pi, horizon: int) -> np.ndarray:
    """``mu_T(s) = (1/T) sum_{t<T} Pr(s_t = s)`` under ``pi``: the *undiscounted* time average.

    This is the state distribution of a time step drawn uniformly from episodes of length
    ``T = horizon``, i.e. what a sample average over all collected ``(s_t, a_t)`` weights states by.
    As ``T`` grows it tends to the stationary distribution of ``P_pi`` (when that is unique).
    """
    _check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    T = check_positive_int(horizon, "horizon")
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    p = mdp.p0.copy()
    total = np.zeros(mdp.n_states)
    for _ in range(T):
        total += p
        p = p @ P_pi
    return total / T


def discount_pitfall_gradient(mdp: _mdp.MDP, theta, horizon: int) -> np.ndarray:
    """The expected value of the uniform time-step average of ``grad log pi(a_t|s_t) A(s_t, a_t)``.

    Eq. ``eq-cpi-pitfall``: ``sum_s mu_T(s) sum_a pi(a|s) grad log pi(a|s) A^pi(s, a)`` with
    :func:`time_averaged_state_distribution`. This is what code computes that collects episodes
    of length ``T`` with ``pi_theta`` and takes ``mean_t [grad log pi(a_t|s_t) A_t]`` without the
    ``gamma^t`` weights; it is *not* ``grad J`` (nor ``(1 - gamma) grad J``) in general.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    mu = time_averaged_state_distribution(mdp, policies.probs(theta), horizon)
    return surrogate_gradient(mdp, theta, theta, mu)


def time_step_gradient_samples(
    mdp: _mdp.MDP, theta, n_episodes: int, horizon: int, seed: int, weighting: str
) -> np.ndarray:
    """Per-episode sums of ``w_t grad log pi(a_t|s_t) A^pi(s_t, a_t)`` over sampled episodes; ``(N, S, A)``.

    Episodes of length ``T = horizon`` are sampled with ``pi = softmax(theta)``; ``A^pi`` is looked
    up in the exact advantage table, so only the visited ``(s_t, a_t)`` are random.
    ``weighting="uniform"``: ``w_t = 1/T`` (the mean over time steps that sample-based code takes;
    its expectation is :func:`discount_pitfall_gradient`); ``weighting="discounted"``:
    ``w_t = gamma^t`` (its expectation is ``grad J`` up to the truncation ``O(gamma^T)``). The
    episodes are independent, so :func:`pgbook.montecarlo.mean_ci` over axis 0 gives a valid interval.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    if weighting not in ("uniform", "discounted"):
        raise ValueError(f"weighting must be 'uniform' or 'discounted', got {weighting!r}")
    N = check_positive_int(n_episodes, "n_episodes")
    T = check_positive_int(horizon, "horizon")
    pi = policies.probs(theta)
    A = _mdp.advantage_values(mdp, pi)
    states, actions, _ = _mdp.sample_trajectories(mdp, pi, N, T, seed)
    w_t = np.full(T, 1.0 / T) if weighting == "uniform" else mdp.gamma ** np.arange(T)
    weights = w_t[None, :] * A[states, actions]  # (N, T)
    # score(s_t, a_t)[s, b] = 1[s = s_t] (1[b = a_t] - pi(b|s_t))
    contrib = -weights[..., None] * pi[states]  # (N, T, A)
    contrib[np.arange(N)[:, None], np.arange(T)[None, :], actions] += weights
    out = np.zeros((N, mdp.n_states, mdp.n_actions))
    rows = np.repeat(np.arange(N), T)
    np.add.at(out, (rows, states.ravel()), contrib.reshape(N * T, mdp.n_actions))
    return out


def trap_chain_mdp(length: int, bonus: float, penalty: float, gamma: float) -> _mdp.MDP:
    """A chain with a trap at its end: the worked example of chapters 6 and 7.

    States ``0, ..., length``; the episode starts in state 0. Action 0 ("back") returns to state 0
    with reward 0. Action 1 ("go") in state ``i < length`` pays ``bonus`` and moves to ``i + 1``; in
    the last state (the trap) it pays ``-penalty`` and stays there. A policy that must use the same
    probability of "go" in every state (a linear-softmax policy with one constant feature) is torn
    between the bonus early in the chain and the penalty at its end.
    """
    k = check_positive_int(length, "length")
    bonus, penalty = check_real(bonus, "bonus"), check_real(penalty, "penalty")
    n = k + 1
    P = np.zeros((n, 2, n))
    R = np.zeros((n, 2))
    P[:, 0, 0] = 1.0
    for i in range(k):
        P[i, 1, i + 1] = 1.0
        R[i, 1] = bonus
    P[k, 1, k] = 1.0
    R[k, 1] = -penalty
    p0 = np.zeros(n)
    p0[0] = 1.0
    return _mdp.MDP(P, R, p0, gamma)


# --------------------------------------------------------------------------------------------
# Average-divergence bounds (Achiam et al. 2017, CPO): bounded degradation (chapter 7)
# --------------------------------------------------------------------------------------------


def policy_tv(pi_old, pi) -> np.ndarray:
    """Per-state total variation ``TV(pi(.|s), pi_old(.|s)) = (1/2) sum_a |pi - pi_old|``; shape ``(S,)``."""
    p = as_float_array(pi_old, "pi_old", ndim=2)
    q = as_float_array(pi, "pi", ndim=2)
    check_shape(q, p.shape, "pi")
    check_distribution(p, "pi_old", axis=1)
    check_distribution(q, "pi", axis=1)
    return 0.5 * np.abs(q - p).sum(axis=1)


def mean_policy_tv(mdp: _mdp.MDP, theta, theta_old) -> float:
    """``E_{s ~ d_old}[TV(pi_theta(.|s), pi_old(.|s))]``, the average total variation of thm. ``thm-clip-avg-divergence``."""
    return _mean_over_d_old(mdp, theta, theta_old, policy_tv)


def cpo_epsilon(mdp: _mdp.MDP, theta, theta_old) -> float:
    """``eps' = max_s |sum_a pi_theta(a|s) A_old(s, a)|``: the largest expected old advantage under the new policy.

    The constant of Achiam et al. (2017), Corollary 1; ``eps' <= max_{s,a} |A_old(s, a)|`` (the ``eps`` of
    :func:`trpo_penalty_coefficient`), and ``eps' = 0`` at ``theta = theta_old``.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    A_old = _mdp.advantage_values(mdp, policies.probs(theta_old))
    return float(np.max(np.abs((policies.probs(theta) * A_old).sum(axis=1))))


def cpo_lower_bound(mdp: _mdp.MDP, theta, theta_old, divergence: str = "tv") -> float:
    """The lower bound on ``J(theta)`` of Achiam et al. (2017, CPO), Corollary 1 (thm. ``thm-clip-avg-divergence``).

    ``divergence="tv"``: ``J(theta_old) + L^CPI(theta) - 2 gamma eps' / (1 - gamma)^2 * E_{d_old}[TV]``;
    ``divergence="kl"``: the same with Pinsker's inequality and Jensen's,
    ``E_{d_old}[TV] <= sqrt(E_{d_old}[KL(pi_old || pi_theta)] / 2)`` (weaker). ``eps'`` is
    :func:`cpo_epsilon`; ``d_old`` the normalised discounted state distribution of ``pi_old``. Valid
    for every pair of policies: the state weights are an *average*, not TRPO's maximum over states.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    if divergence == "tv":
        spread = mean_policy_tv(mdp, theta, theta_old)
    elif divergence == "kl":
        spread = float(np.sqrt(mean_policy_kl(mdp, theta, theta_old) / 2.0))
    else:
        raise ValueError(f"divergence must be 'tv' or 'kl', got {divergence!r}")
    g = mdp.gamma
    J_old = _mdp.expected_return(mdp, policies.probs(theta_old))
    penalty = 2.0 * g * cpo_epsilon(mdp, theta, theta_old) / (1.0 - g) ** 2 * spread
    return J_old + cpi_objective(mdp, theta, theta_old) - penalty


def _check_positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _slack(mdp: _mdp.MDP, theta_old) -> float:
    """Round-off allowance for the preconditions below: 1e-12 of the scale of ``L^CPI``."""
    A_old = _mdp.advantage_values(mdp, policies.probs(theta_old))
    return 1e-12 * (1.0 + float(np.max(np.abs(A_old)))) / (1.0 - mdp.gamma)


def trust_region_floor(mdp: _mdp.MDP, theta, theta_old, delta: float) -> float:
    """``J(theta_old) - sqrt(2 delta) gamma eps' / (1 - gamma)^2``: a floor under ``J`` after TRPO's practical step.

    Achiam et al. (2017), Proposition 1 (thm. ``thm-clip-avg-divergence``, part 1): if
    ``E_{d_old}[KL(pi_old || pi_theta)] <= delta`` and ``L^CPI(theta) >= 0`` — true of every maximiser
    of ``L^CPI`` over a set of policies that contains ``pi_old`` — then ``J(theta)`` is at least this.
    Raises ``ValueError`` (naming ``theta``) if ``theta`` does not satisfy the two conditions.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    delta = _check_positive_number(delta, "delta")
    slack = _slack(mdp, theta_old)
    if mean_policy_kl(mdp, theta, theta_old) > delta * (1.0 + 1e-12):
        raise ValueError("theta must satisfy the constraint E_{d_old}[KL(pi_old || pi_theta)] <= delta")
    if cpi_objective(mdp, theta, theta_old) < -slack:
        raise ValueError("theta must have L^CPI(theta) >= 0 (as a maximiser over a set containing theta_old has)")
    g = mdp.gamma
    J_old = _mdp.expected_return(mdp, policies.probs(theta_old))
    return J_old - np.sqrt(2.0 * delta) * g * cpo_epsilon(mdp, theta, theta_old) / (1.0 - g) ** 2


def kl_penalty_floor(mdp: _mdp.MDP, theta, theta_old, beta: float) -> float:
    """``J(theta_old) - gamma^2 eps'^2 / (2 beta (1 - gamma)^3)``: a floor under ``J`` after a KL-penalty step.

    Thm. ``thm-clip-avg-divergence``, part 2: if ``L^KLPEN(theta) = L^CPI(theta) - beta sum_s eta_old(s)
    KL(pi_old(.|s) || pi_theta(.|s)) >= 0`` — true of every maximiser of ``L^KLPEN`` over a set of
    policies that contains ``pi_old`` — then ``J(theta)`` is at least this (``eps'`` is
    :func:`cpo_epsilon`). Raises ``ValueError`` (naming ``theta``) otherwise.
    """
    _check_mdp(mdp)
    theta = _theta_for(mdp, theta, "theta")
    theta_old = _theta_for(mdp, theta_old, "theta_old")
    beta = _check_positive_number(beta, "beta")
    g = mdp.gamma
    klpen = cpi_objective(mdp, theta, theta_old) - beta / (1.0 - g) * mean_policy_kl(mdp, theta, theta_old)
    if klpen < -_slack(mdp, theta_old) * (1.0 + beta):
        raise ValueError("theta must have L^KLPEN(theta) >= 0 (as a maximiser over a set containing theta_old has)")
    J_old = _mdp.expected_return(mdp, policies.probs(theta_old))
    return J_old - (g * cpo_epsilon(mdp, theta, theta_old)) ** 2 / (2.0 * beta * (1.0 - g) ** 3)


def random_sparse_mdp(n_states: int, n_actions: int, gamma: float, seed: int, concentration: float = 0.1) -> _mdp.MDP:
    """A random MDP with Dirichlet(``concentration``) transitions and initial state, standard normal rewards.

    :func:`pgbook.mdp.random_mdp` is the case ``concentration = 1``. Small concentrations give nearly
    deterministic transitions, where changing the policy in one state moves the state distribution
    far — the regime in which the constants of thm. ``thm-clip-avg-divergence`` matter and wrong
    versions of it fail.
    """
    S = check_positive_int(n_states, "n_states")
    A = check_positive_int(n_actions, "n_actions")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    concentration = check_real(concentration, "concentration", 0.01)
    rng = np.random.default_rng(check_seed(seed))
    P = rng.dirichlet(np.full(S, float(concentration)), size=(S, A))
    R = rng.standard_normal((S, A))
    p0 = rng.dirichlet(np.full(S, float(concentration)))
    return _mdp.MDP(P / P.sum(axis=-1, keepdims=True), R, p0 / p0.sum(), gamma)
