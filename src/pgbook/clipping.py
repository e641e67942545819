"""PPO's clipped surrogate: what the clipping does, and what it does not do.

Chapter 7 (:doc:`/book/ch07_clipping`). For a sample with probability ratio
``r = pi_theta(a|s) / pi_old(a|s)`` and advantage ``A``, the clipped objective of
Schulman et al. (2017) is, elementwise (:func:`clip_objective`),

    l^CLIP(r, A) = min(r A, clip(r, 1 - eps, 1 + eps) A)

and ``L^CLIP`` is its expectation. Equations implemented:

* ``eq-clip-cases`` — the case analysis: ``l^CLIP = (1 + eps) A`` if ``A > 0`` and
  ``r > 1 + eps``; ``(1 - eps) A`` if ``A < 0`` and ``r < 1 - eps``; ``r A`` otherwise;
* ``eq-clip-lower`` — ``l^CLIP(r, A) <= r A`` (a pessimistic bound on the CPI term);
* ``eq-clip-dr`` — ``d l^CLIP / d r = A`` where unclipped, ``0`` where clipped
  (:func:`clip_objective_ratio_grad`);
* ``thm-clip-first-step`` — at ``theta = theta_old`` every ratio is 1, so
  ``grad L^CLIP = grad L^CPI = grad J`` (:func:`expected_clip_objective`, exact expectation);
* ``eq-clip-klpen`` — the KL-penalty variant ``r A - beta KL(pi_old(.|s) || pi_theta(.|s))``
  (:func:`kl_penalty_objective`, :func:`expected_kl_penalty_objective`, and the adaptive
  coefficient rule of the PPO paper, :func:`adapt_kl_coefficient`).

* ``prop-clip-ratio-escape`` — the per-state supremum of the clipped objective
  (:func:`clip_supremum`, :func:`state_clip_maxima`) and where it is approached
  (:func:`clip_sup_policy`). With ``G`` the positive-advantage actions of a state and ``p_G`` their
  old probability: if ``p_G < 1/(1+eps)`` it is ``eps sum_a pi_old |A_old|``, reached only with ratios
  at or beyond ``1 +- eps`` (strictly outside the interval when ``p_G != 1/2``); if
  ``p_G >= 1/(1+eps)`` no policy with full support reaches it, and the ratios off ``G`` tend to 0;
* ``prop-clip-tabular-safe`` — ``f_s(theta) >= 0`` in every state implies ``J(theta) >= J(theta_old)``
  (:func:`state_clip_objectives`).

What clipping does *not* do is shown with :class:`LinearSoftmaxPolicy` (parameters shared across
states) and :func:`run_clip_epochs` (``K`` epochs of minibatch updates on a fixed batch, reporting the
range of the ratios after each epoch, :func:`ratio_range`).

Exact expectations weight states by the unnormalised discounted visitation ``eta_old`` of
``pi_old`` (as :func:`pgbook.surrogate.cpi_objective` does), so that ``L^CLIP(theta_old) = 0`` and
its gradient there is ``grad J(theta_old)``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import mdp as _mdp
from . import policies
from ._validate import (
    as_float_array,
    check_callable,
    check_distribution,
    check_positive_int,
    check_real,
    check_seed,
    check_shape,
)

__all__ = [
    "clip_objective",
    "clip_objective_ratio_grad",
    "kl_penalty_objective",
    "adapt_kl_coefficient",
    "RatioRange",
    "ratio_range",
    "LinearSoftmaxPolicy",
    "expected_clip_objective",
    "expected_kl_penalty_objective",
    "state_clip_objectives",
    "state_clip_maxima",
    "clip_supremum",
    "clip_sup_policy",
    "ClipBatch",
    "make_batch",
    "EpochReport",
    "run_clip_epochs",
]


# --------------------------------------------------------------------------------------------
# Elementwise objectives (numpy or torch in, the same type out)
# --------------------------------------------------------------------------------------------


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0.0 < float(eps) < 1.0):
        raise ValueError(f"eps must be a number in (0, 1), got {eps!r}")
    return float(eps)


def _check_pair(x, y, xname: str, yname: str):
    """Both torch tensors or both array-likes (numpy); same shape; finite. Returns (x, y, is_torch)."""
    x_t, y_t = isinstance(x, torch.Tensor), isinstance(y, torch.Tensor)
    if x_t != y_t:
        raise ValueError(
            f"{xname} and {yname} must both be torch tensors or both numpy arrays, "
            f"got {type(x).__name__} and {type(y).__name__}"
        )
    if x_t:
        if not (x.is_floating_point() and y.is_floating_point()):
            raise ValueError(f"{xname} and {yname} must be floating-point tensors")
        if x.shape != y.shape:
            raise ValueError(f"{yname} must have the shape of {xname} {tuple(x.shape)}, got {tuple(y.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{xname} contains NaN or infinite values")
        if not torch.isfinite(y).all():
            raise ValueError(f"{yname} contains NaN or infinite values")
        return x, y, True
    x = as_float_array(x, xname)
    y = as_float_array(y, yname)
    check_shape(y, x.shape, yname)
    return x, y, False


def _check_ratio_sign(ratio, is_torch: bool) -> None:
    neg = bool((ratio < 0).any()) if is_torch else bool(np.any(ratio < 0))
    if neg:
        raise ValueError("ratio must be non-negative (it is a ratio of probabilities)")


def clip_objective(ratio, advantages, eps: float):
    """Per-sample ``min(r A, clip(r, 1 - eps, 1 + eps) A)`` (eq. ``eq-clip-cases``).

    ``ratio`` and ``advantages`` have the same shape and are both numpy arrays (returns a numpy
    array) or both torch tensors (returns a tensor, differentiable in ``ratio``). ``L^CLIP`` is the
    mean of the result over samples; PPO *maximises* it (its loss is ``-mean``).
    """
    eps = _check_eps(eps)
    ratio, advantages, is_torch = _check_pair(ratio, advantages, "ratio", "advantages")
    _check_ratio_sign(ratio, is_torch)
    if is_torch:
        return torch.minimum(ratio * advantages, torch.clamp(ratio, 1.0 - eps, 1.0 + eps) * advantages)
    return np.minimum(ratio * advantages, np.clip(ratio, 1.0 - eps, 1.0 + eps) * advantages)


def clip_objective_ratio_grad(ratio, advantages, eps: float):
    """``d/dr min(r A, clip(r) A)``: ``A`` where the sample is unclipped, ``0`` where clipped (eq. ``eq-clip-dr``).

    Clipped means ``A > 0, r > 1 + eps`` or ``A < 0, r < 1 - eps``; at the kinks (``r = 1 +- eps``)
    this returns the one-sided value from inside the interval. Numpy or torch, like
    :func:`clip_objective`.
    """
    eps = _check_eps(eps)
    ratio, advantages, is_torch = _check_pair(ratio, advantages, "ratio", "advantages")
    _check_ratio_sign(ratio, is_torch)
    clipped = ((advantages > 0) & (ratio > 1.0 + eps)) | ((advantages < 0) & (ratio < 1.0 - eps))
    if is_torch:
        return torch.where(clipped, torch.zeros_like(advantages), advantages)
    return np.where(clipped, 0.0, advantages)


def kl_penalty_objective(ratio, advantages, kl, beta: float):
    """Per-sample ``r A - beta KL`` (eq. ``eq-clip-klpen``), the KL-penalty variant of the PPO paper.

    ``kl[i] = KL(pi_old(.|s_i) || pi_theta(.|s_i))`` (non-negative). Numpy or torch, like
    :func:`clip_objective`.
    """
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not (float(beta) >= 0 and np.isfinite(beta)):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    ratio, advantages, is_torch = _check_pair(ratio, advantages, "ratio", "advantages")
    _check_ratio_sign(ratio, is_torch)
    _, kl, _ = _check_pair(ratio, kl, "ratio", "kl")
    neg = bool((kl < -1e-12).any()) if is_torch else bool(np.any(kl < -1e-12))
    if neg:
        raise ValueError("kl must be non-negative")
    return ratio * advantages - float(beta) * kl


def adapt_kl_coefficient(beta: float, kl: float, kl_target: float) -> float:
    """The PPO paper's adaptive rule: halve ``beta`` if ``kl < kl_target / 1.5``, double it if ``kl > 1.5 kl_target``."""
    for name, value in (("beta", beta), ("kl", kl), ("kl_target", kl_target)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if kl_target == 0:
        raise ValueError("kl_target must be positive")
    if kl < kl_target / 1.5:
        return beta / 2.0
    if kl > kl_target * 1.5:
        return beta * 2.0
    return float(beta)


@dataclass(frozen=True)
class RatioRange:
    """Summary of a batch of ratios against the interval ``[1 - eps, 1 + eps]``."""

    min: float
    max: float
    frac_outside: float


def ratio_range(ratio, eps: float) -> RatioRange:
    """Minimum, maximum and the fraction of ratios outside ``[1 - eps, 1 + eps]``."""
    eps = _check_eps(eps)
    r = ratio.detach().cpu().numpy() if isinstance(ratio, torch.Tensor) else ratio
    r = as_float_array(r, "ratio")
    if r.size == 0:
        raise ValueError("ratio must not be empty")
    outside = (r < 1.0 - eps) | (r > 1.0 + eps)
    return RatioRange(float(r.min()), float(r.max()), float(outside.mean()))


# --------------------------------------------------------------------------------------------
# A policy with parameters shared across states
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearSoftmaxPolicy:
    """``pi_w(a|s) = softmax(phi(s)^T w)[a]`` with state features ``phi``, shape ``(S, d)``; ``w`` is ``(d, A)``.

    Every state's action probabilities depend on the same ``w``: changing ``w`` to help one state
    changes the others. Its logit table ``features @ w`` is an ``(S, A)`` table, so every function
    of :mod:`pgbook.surrogate`, :mod:`pgbook.gradients` and this module that takes ``theta`` takes
    ``policy.logits(w)``. With ``features = I`` it is the tabular softmax.
    """

    features: np.ndarray
    n_actions: int

    def __post_init__(self):
        phi = as_float_array(self.features, "features", ndim=2)
        if phi.shape[0] == 0 or phi.shape[1] == 0:
            raise ValueError(f"features must have shape (S, d) with S, d >= 1, got {phi.shape}")
        phi.setflags(write=False)
        object.__setattr__(self, "features", phi)
        object.__setattr__(self, "n_actions", check_positive_int(self.n_actions, "n_actions"))

    @property
    def n_states(self) -> int:
        return self.features.shape[0]

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    def _check_w(self, w):
        shape = (self.n_features, self.n_actions)
        if isinstance(w, torch.Tensor):
            if tuple(w.shape) != shape:
                raise ValueError(f"w must have shape {shape}, got {tuple(w.shape)}")
            if not w.is_floating_point():  # an integer w would truncate the features to integers
                raise ValueError(f"w must be a floating-point tensor, got dtype {w.dtype}")
            if not torch.isfinite(w).all():
                raise ValueError("w contains NaN or infinite values")
            return w
        w = as_float_array(w, "w", ndim=2)
        check_shape(w, shape, "w")
        return w

    def logits(self, w):
        """The ``(S, A)`` logit table ``features @ w`` (numpy or torch, like ``w``)."""
        w = self._check_w(w)
        if isinstance(w, torch.Tensor):
            return torch.tensor(np.array(self.features), dtype=w.dtype) @ w
        return self.features @ w

    def param_gradient(self, grad_theta) -> np.ndarray:
        """Chain rule from the logit table to ``w``: ``features^T grad_theta``, shape ``(d, A)``.

        Turns any gradient with respect to the ``(S, A)`` logit table (e.g.
        :func:`pgbook.gradients.policy_gradient`) into the gradient with respect to ``w``.
        """
        g = as_float_array(grad_theta, "grad_theta", ndim=2)
        check_shape(g, (self.n_states, self.n_actions), "grad_theta")
        return self.features.T @ g

    def probs(self, w) -> np.ndarray:
        """``pi_w(a|s)`` as an ``(S, A)`` numpy table."""
        w = self._check_w(w)
        if isinstance(w, torch.Tensor):
            w = w.detach().cpu().numpy()
        return policies.probs(self.features @ w)


# --------------------------------------------------------------------------------------------
# Exact expectations on a tabular MDP (torch-differentiable)
# --------------------------------------------------------------------------------------------


def _old_quantities(mdp: _mdp.MDP, theta_old, dtype):
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    theta_old = policies.check_theta(theta_old, "theta_old")
    check_shape(theta_old, (mdp.n_states, mdp.n_actions), "theta_old")
    pi_old = policies.probs(theta_old)
    eta = _mdp.discounted_visits(mdp, pi_old)
    A = _mdp.advantage_values(mdp, pi_old)
    return (torch.tensor(x, dtype=dtype) for x in (theta_old, pi_old, eta, A))


def _as_logits(mdp: _mdp.MDP, theta):
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    if isinstance(theta, torch.Tensor):
        if tuple(theta.shape) != (mdp.n_states, mdp.n_actions):
            raise ValueError(f"theta must have shape {(mdp.n_states, mdp.n_actions)}, got {tuple(theta.shape)}")
        if not theta.is_floating_point():  # log_softmax has no integer kernel; an integer table has no gradient
            raise ValueError(f"theta must be a floating-point tensor, got dtype {theta.dtype}")
        if not torch.isfinite(theta).all():
            raise ValueError("theta contains NaN or infinite values")
        return theta, True
    theta = policies.check_theta(theta)
    check_shape(theta, (mdp.n_states, mdp.n_actions), "theta")
    return torch.tensor(theta, dtype=torch.float64), False


def expected_clip_objective(mdp: _mdp.MDP, theta, theta_old, eps: float):
    """Exact ``L^CLIP(theta) = sum_s eta_old(s) sum_a pi_old(a|s) min(r A_old, clip(r) A_old)``.

    ``theta``, ``theta_old``: ``(S, A)`` logit tables. A torch ``theta`` gives a differentiable
    tensor (thm. ``thm-clip-first-step``: its gradient at ``theta_old`` is ``grad J``); a numpy
    ``theta`` gives a float. Same scale as :func:`pgbook.surrogate.cpi_objective`, and never above it.
    """
    eps = _check_eps(eps)
    logits, is_torch = _as_logits(mdp, theta)
    theta_old_t, pi_old, eta, A = _old_quantities(mdp, theta_old, logits.dtype)
    value = (eta[:, None] * _weighted_clip_terms(logits, theta_old_t, pi_old, A, eps)).sum()
    return value if is_torch else float(value)


def _weighted_clip_terms(logits, theta_old_t, pi_old, A, eps: float):
    """``pi_old(a|s) min(r A, clip(r) A)`` for every ``(s, a)``, finite for near-deterministic policies.

    Written as ``min(pi_theta A, pi_old clip(r) A)``: equal, because ``pi_old >= 0`` and
    ``pi_old r = pi_theta``. The direct form ``pi_old * clip_objective(pi_theta / pi_old, ...)`` is
    ``0 * inf = nan`` once a probability of ``pi_old`` underflows to 0 (a logit gap above ~745),
    although the term is finite (``pi_theta A`` or 0); so ``pi_old clip(r)`` is taken as
    ``exp(log pi_old + clamp(log r, log(1 - eps), log(1 + eps)))``, finite with a finite gradient. ``tests/test_clipping.py``
    compares both forms on ordinary policies and this one with a 50-digit evaluation on extreme ones.
    """
    log_old = torch.log_softmax(theta_old_t, dim=1)
    log_ratio = torch.log_softmax(logits, dim=1) - log_old
    lo = math.log1p(-eps) if eps < 1.0 else -math.inf  # clip(r) = exp(clamp(log r)): exp is increasing
    hi = math.log1p(eps)
    return torch.minimum(torch.softmax(logits, dim=1) * A, torch.exp(log_old + torch.clamp(log_ratio, lo, hi)) * A)


def state_clip_objectives(mdp: _mdp.MDP, theta, theta_old, eps: float) -> np.ndarray:
    """Per-state ``f_s(theta) = sum_a pi_old(a|s) min(r A_old, clip(r) A_old)``; shape ``(S,)``.

    ``L^CLIP = sum_s eta_old(s) f_s`` (:func:`expected_clip_objective`). By eq. ``eq-clip-lower`` and
    the performance difference lemma, ``f_s(theta) >= 0`` in every state implies
    ``J(theta) >= J(theta_old)`` (prop. ``prop-clip-tabular-safe``).
    """
    eps = _check_eps(eps)
    logits, _ = _as_logits(mdp, theta)
    theta_old_t, pi_old, _, A = _old_quantities(mdp, theta_old, logits.dtype)
    return _weighted_clip_terms(logits, theta_old_t, pi_old, A, eps).sum(dim=1).detach().numpy()


def _check_clip_tables(pi_old, advantages):
    """``pi_old``: ``(S, A)`` rows of positive probabilities; ``advantages``: same shape, mean zero under ``pi_old``."""
    p = as_float_array(pi_old, "pi_old", ndim=2)
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"pi_old must have shape (S, A) with S, A >= 1, got {p.shape}")
    check_distribution(p, "pi_old", axis=1)
    if np.any(p <= 0):
        raise ValueError("pi_old must be positive everywhere (ratios pi / pi_old are taken)")
    A = as_float_array(advantages, "advantages", ndim=2)
    check_shape(A, p.shape, "advantages")
    mean = (p * A).sum(axis=1)
    if np.any(np.abs(mean) > 1e-9 * (1.0 + np.abs(A).max(axis=1))):
        raise ValueError(
            "advantages must have mean zero under pi_old in every state (as the advantages of pi_old have), "
            f"got a largest |mean| of {np.abs(mean).max():.3g}"
        )
    return p, A


def _greedy_fill(p: np.ndarray, A: np.ndarray, eps: float) -> np.ndarray:
    """One state: probability 1 given to the positive-advantage actions, best advantage first, each
    up to its cap ``(1 + eps) p_a`` (ties share in proportion to their caps); needs ``(1 + eps) p_G >= 1``."""
    q = np.zeros_like(p)
    good = A > 0
    left = 1.0
    for value in sorted(set(A[good].tolist()), reverse=True):
        group = good & (A == value)
        caps = (1.0 + eps) * p[group]
        take = min(float(caps.sum()), left)
        q[group] = caps * take / caps.sum()
        left -= take
        if left <= 0.0:
            break
    return q


def clip_sup_policy(pi_old, advantages, eps: float) -> np.ndarray:
    """A policy table at which every state's ``f_s`` equals its supremum (prop. ``prop-clip-ratio-escape``).

    ``f_s(pi) = sum_a pi_old(a|s) l^CLIP(pi(a|s)/pi_old(a|s), A(s, a))`` for an ``(S, A)`` table
    ``pi_old`` (positive) and advantages ``A`` with ``sum_a pi_old A = 0`` per state. Per state, with
    ``G = {a : A > 0}`` and ``p_G = pi_old(G|s)``:

    * ``(1 + eps) p_G < 1``: the mass ``m = min(1 - (1+eps) p_G, (1-eps)(1-p_G))`` goes to the actions off
      ``G`` and ``1 - m`` to ``G``, each in proportion to ``pi_old`` — every entry positive, so a softmax
      policy attains the supremum; its mean ratios on and off ``G`` are exactly the bounds of the
      proposition;
    * ``(1 + eps) p_G >= 1``: probability 1 on ``G``, filled best advantage first up to the caps
      ``(1 + eps) pi_old(a|s)`` (:func:`clip_supremum`) and 0 off ``G`` — a policy without full
      support, which softmax policies only approach;
    * no positive advantage (then every ``A = 0``): ``pi_old``.
    """
    eps = _check_eps(eps)
    p, A = _check_clip_tables(pi_old, advantages)
    out = np.empty_like(p)
    for s in range(p.shape[0]):
        good = A[s] > 0
        p_G = float(p[s][good].sum())
        if not good.any():
            out[s] = p[s]
        elif (1.0 + eps) * p_G < 1.0:
            off = min(1.0 - (1.0 + eps) * p_G, (1.0 - eps) * (1.0 - p_G))
            out[s] = np.where(good, p[s] * (1.0 - off) / p_G, p[s] * off / (1.0 - p_G))
        else:
            out[s] = _greedy_fill(p[s], A[s], eps)
    return out


def clip_supremum(pi_old, advantages, eps: float) -> np.ndarray:
    """``sup_pi f_s(pi)`` per state, shape ``(S,)`` (prop. ``prop-clip-ratio-escape``).

    ``sup f_s = (1 - eps) sum_{a not in G} pi_old A + max{ sum_{a in G} A q_a : 0 <= q_a <= (1+eps) pi_old(a|s),
    sum_{a in G} q_a <= 1 }``, the maximum being a fractional knapsack filled best advantage first.
    It equals the bound ``eps sum_a pi_old |A|`` exactly when ``(1 + eps) p_G <= 1``, and is smaller
    (by at least ``((1+eps) p_G - 1) min_G A``) when ``(1 + eps) p_G > 1``. The supremum over softmax
    policies is the same number (they are dense in the policies); it is attained by one iff
    ``(1 + eps) p_G < 1``. Inputs as for :func:`clip_sup_policy`, which returns where it is reached.
    """
    eps = _check_eps(eps)
    p, A = _check_clip_tables(pi_old, advantages)
    pi = clip_sup_policy(p, A, eps)
    return (p * clip_objective(pi / p, A, eps)).sum(axis=1)


def state_clip_maxima(mdp: _mdp.MDP, theta_old, eps: float) -> np.ndarray:
    """``sup_theta f_s(theta)`` per state for the exact advantages ``A_old``; shape ``(S,)``.

    Each term of ``f_s`` is at most ``(1 + eps) A`` for ``A > 0`` and ``(1 - eps) A`` for ``A < 0``
    (eq. ``eq-clip-cases``); since ``sum_a pi_old A_old = 0`` the sum of these caps is
    ``eps sum_a pi_old |A_old|``. That bound is the supremum when the positive-advantage actions have
    old probability ``p_G <= 1/(1 + eps)``, reached only with every positive-advantage ratio
    ``>= 1 + eps`` and every negative-advantage ratio ``<= 1 - eps``; when ``p_G > 1/(1 + eps)`` the
    supremum is smaller and is not attained (prop. ``prop-clip-ratio-escape``). Computed by
    :func:`clip_supremum`.

    A near-deterministic ``theta_old`` (a logit gap above ~745) has old probabilities that underflow
    to 0. An action of old probability ``p`` adds at most ``(1 + eps) p |A|`` to ``f_s`` whatever
    ``theta`` is, which is 0 in float64 for those; so each state's supremum is taken over the actions
    of positive old probability (the others contribute 0), where :func:`clip_supremum` applies.
    """
    eps = _check_eps(eps)
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    theta_old = policies.check_theta(theta_old, "theta_old")
    check_shape(theta_old, (mdp.n_states, mdp.n_actions), "theta_old")
    pi_old = policies.probs(theta_old)
    A = _mdp.advantage_values(mdp, pi_old)
    support = pi_old > 0.0
    if support.all():
        return clip_supremum(pi_old, A, eps)
    return np.array([clip_supremum(pi_old[s, m][None], A[s, m][None], eps)[0] for s, m in enumerate(support)])


def expected_kl_penalty_objective(mdp: _mdp.MDP, theta, theta_old, beta: float):
    """Exact ``sum_s eta_old(s) [ sum_a pi_theta(a|s) A_old(s, a) - beta KL(pi_old(.|s) || pi_theta(.|s)) ]``.

    The expectation of :func:`kl_penalty_objective` with the scale of ``L^CPI`` (so
    ``= L^CPI - beta/(1-gamma) E_{s~d_old}[KL]``). Torch (differentiable) or numpy, like
    :func:`expected_clip_objective`. The KL is that of the two categorical distributions, computed
    from log-probabilities.
    """
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not (float(beta) >= 0 and np.isfinite(beta)):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    logits, is_torch = _as_logits(mdp, theta)
    theta_old_t, pi_old, eta, A = _old_quantities(mdp, theta_old, logits.dtype)
    # sum_a pi_old (log pi_old - log pi_theta) from log_softmax, not torch.distributions.kl_divergence:
    # torch's categorical KL sets a term to inf wherever pi_theta's probability underflows to 0
    # (measured: logits [800, 0] against [0, 0] give inf; the KL is 400.0), a finite KL here.
    log_old = torch.log_softmax(theta_old_t, dim=1)
    kl = (pi_old * (log_old - torch.log_softmax(logits, dim=1))).sum(dim=1).clamp_min(0.0)
    value = (eta * ((torch.softmax(logits, dim=1) * A).sum(dim=1) - float(beta) * kl)).sum()
    return value if is_torch else float(value)


# --------------------------------------------------------------------------------------------
# K epochs of minibatch updates on one fixed batch (what PPO does between data collections)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipBatch:
    """A fixed batch of samples collected with ``pi_old``: integer ``states``, ``actions``,
    float64 ``advantages`` and ``old_log_probs = log pi_old(a|s)``, all torch tensors of shape ``(N,)``.

    Checked on construction: integer (not bool) non-negative indices, finite real floats. The batch
    does not know ``S`` and ``A``; :func:`run_clip_epochs` checks its indices against the logit table."""

    states: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    old_log_probs: torch.Tensor

    def __post_init__(self):
        n = self.states.shape[0] if isinstance(self.states, torch.Tensor) else None
        for name in ("states", "actions", "advantages", "old_log_probs"):
            v = getattr(self, name)
            if not isinstance(v, torch.Tensor) or v.ndim != 1 or v.shape[0] != n or n == 0:
                raise ValueError(f"{name} must be a non-empty 1-D torch tensor of the batch length")
        for name in ("states", "actions"):
            v = getattr(self, name)
            if v.is_floating_point() or v.is_complex() or v.dtype == torch.bool:
                raise ValueError(f"states and actions must be integer tensors, got {name} of dtype {v.dtype}")
            if int(v.min()) < 0:
                raise ValueError(f"{name} must be non-negative indices, got a minimum of {int(v.min())}")
        for name in ("advantages", "old_log_probs"):
            v = getattr(self, name)
            if not v.is_floating_point():
                raise ValueError(f"{name} must be a real floating-point tensor, got dtype {v.dtype}")
            if not torch.isfinite(v).all():
                raise ValueError(f"{name} contains NaN or infinite values")

    def __len__(self) -> int:
        return int(self.states.shape[0])


def make_batch(mdp: _mdp.MDP, theta_old, n_episodes: int, horizon: int, seed: int, advantages=None) -> ClipBatch:
    """Sample ``n_episodes`` episodes of length ``horizon`` with ``pi_old = softmax(theta_old)``.

    Each visited ``(s_t, a_t)`` becomes a sample. ``advantages`` is an ``(S, A)`` table to look the
    advantages up in (default: the exact ``A^{pi_old}``), so that the only randomness is which
    ``(s, a)`` were visited.
    """
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    theta_old = policies.check_theta(theta_old, "theta_old")
    check_shape(theta_old, (mdp.n_states, mdp.n_actions), "theta_old")
    pi_old = policies.probs(theta_old)
    if advantages is None:
        advantages = _mdp.advantage_values(mdp, pi_old)
    advantages = as_float_array(advantages, "advantages", ndim=2)
    check_shape(advantages, (mdp.n_states, mdp.n_actions), "advantages")
    states, actions, _ = _mdp.sample_trajectories(mdp, pi_old, n_episodes, horizon, seed)
    s, a = states.ravel(), actions.ravel()
    return ClipBatch(
        states=torch.as_tensor(s),
        actions=torch.as_tensor(a),
        advantages=torch.as_tensor(advantages[s, a], dtype=torch.float64),
        old_log_probs=torch.as_tensor(policies.log_probs(theta_old)[s, a], dtype=torch.float64),
    )


@dataclass(frozen=True)
class EpochReport:
    """State after one epoch: the ratios over the whole batch and the batch objective."""

    epoch: int
    ratio: RatioRange
    objective: float


def run_clip_epochs(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    params,
    batch: ClipBatch,
    eps: float,
    epochs: int,
    minibatch_size: int,
    lr: float,
    seed: int,
    objective: str = "clip",
    beta: float = 0.0,
) -> tuple[np.ndarray, list[EpochReport]]:
    """``epochs`` passes of shuffled minibatch Adam ascent on the batch objective; returns ``(params, reports)``.

    ``logits_fn(params)`` maps the parameter tensor to the ``(S, A)`` logit table (identity for the
    tabular softmax, :meth:`LinearSoftmaxPolicy.logits` for shared parameters). ``objective``:
    ``"clip"`` (mean of :func:`clip_objective`), ``"cpi"`` (mean ``r A``) or ``"kl"`` (mean of
    :func:`kl_penalty_objective` with coefficient ``beta``). After each epoch the ratios of the whole
    batch are summarised with :func:`ratio_range` — the quantity that, contrary to a common claim,
    is not kept inside ``[1 - eps, 1 + eps]``.
    """
    eps = _check_eps(eps)
    K = check_positive_int(epochs, "epochs")
    B = check_positive_int(minibatch_size, "minibatch_size")
    if not isinstance(batch, ClipBatch):
        raise ValueError(f"batch must be a ClipBatch, got {type(batch).__name__}")
    lr = check_real(lr, "lr", 0.0, low_open=True)
    if objective not in ("clip", "cpi", "kl"):
        raise ValueError(f"objective must be 'clip', 'cpi' or 'kl', got {objective!r}")
    beta = check_real(beta, "beta", 0.0)
    check_callable(logits_fn, "logits_fn")
    w = torch.tensor(as_float_array(params, "params"), dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        logits_old = logits_fn(w)
        if not isinstance(logits_old, torch.Tensor) or logits_old.ndim != 2 or not logits_old.is_floating_point():
            got = (
                f"shape {tuple(logits_old.shape)}, dtype {logits_old.dtype}"
                if isinstance(logits_old, torch.Tensor)
                else type(logits_old).__name__
            )
            raise ValueError(f"logits_fn(params) must be an (S, A) floating-point tensor of logits, got {got}")
        need = (int(batch.states.max()) + 1, int(batch.actions.max()) + 1)
        if logits_old.shape[0] < need[0] or logits_old.shape[1] < need[1]:
            raise ValueError(
                f"params gives a logit table logits_fn(params) of shape {tuple(logits_old.shape)}, too small for the "
                f"batch (its states and actions need at least {need})"
            )
        if not torch.isfinite(logits_old).all():
            raise ValueError("params gives non-finite logits logits_fn(params)")
        logits_old = logits_old.detach().clone()
    old_dist_all = torch.distributions.Categorical(logits=logits_old)

    def batch_objective(idx):
        logits = logits_fn(w)
        s, a = batch.states[idx], batch.actions[idx]
        logp = torch.log_softmax(logits, dim=1)[s, a]
        ratio = torch.exp(logp - batch.old_log_probs[idx])
        adv = batch.advantages[idx]
        if objective == "clip":
            return clip_objective(ratio, adv, eps).mean(), ratio
        if objective == "cpi":
            return (ratio * adv).mean(), ratio
        kl_s = torch.distributions.kl_divergence(
            torch.distributions.Categorical(logits=old_dist_all.logits[s]),
            torch.distributions.Categorical(logits=logits[s]),
        )
        return kl_penalty_objective(ratio, adv, kl_s, beta).mean(), ratio

    gen = torch.Generator().manual_seed(check_seed(seed))
    opt = torch.optim.Adam([w], lr=float(lr))
    n = len(batch)
    everything = torch.arange(n)
    reports = []
    for k in range(K):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, B):
            idx = perm[start : start + B]
            opt.zero_grad()
            value, _ = batch_objective(idx)
            (-value).backward()  # ascent on the objective = descent on its negative
            opt.step()
        with torch.no_grad():
            value, ratio = batch_objective(everything)
        reports.append(EpochReport(k + 1, ratio_range(ratio, eps), float(value)))
    return w.detach().numpy().copy(), reports
