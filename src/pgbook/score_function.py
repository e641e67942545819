"""The score-function identity ``E_{a ~ pi_theta(.|s)}[grad_theta log pi_theta(a|s)] = 0``.

Chapter 3 (:doc:`/book/ch03_score_function`), equations and statements ``thm-score-zero-mean``,
``eq-score-softmax``, ``eq-score-gaussian``, ``eq-score-other-sampling``, ``rem-score-support``,
``eq-score-baseline`` and ``prop-score-action-baseline``.

Three independent ways to check the identity live here:

* **symbolically** (sympy): :func:`softmax_expected_score_symbolic` for a softmax over ``K``
  symbolic logits, :func:`gaussian_expected_score_symbolic` for ``N(mu, sigma^2)`` in the mean and
  the log standard deviation (a symbolic integral over the real line), and
  :func:`uniform_support_counterexample`, where the support depends on the parameter and the
  identity fails;
* **exactly** for the tabular softmax policy (:func:`expected_score`, a finite sum over actions of
  :func:`pgbook.policies.score`) and for any torch parametrisation (:func:`expected_score_autograd`
  with the actions of a finite action set, or the nodes of :func:`gauss_hermite`, which integrates
  the Gaussian score — a polynomial of degree 2 in ``a`` — exactly);
* **by sampling** (:func:`sample_scores`, :func:`sample_gaussian_scores`), for Monte Carlo checks
  with :func:`pgbook.montecarlo.mean_ci`.

The same functions take a *different* sampling distribution ``q`` and action weights (a baseline),
to show what the identity needs: ``a ~ pi_theta`` and weights that do not depend on ``a``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import sympy as sp
import torch

from . import policies
from ._validate import (
    as_float_array,
    check_callable,
    check_distribution,
    check_positive_int,
    check_real,
    check_seed,
    check_shape,
    check_torch_seed,
)

__all__ = [
    "softmax_score_symbolic",
    "softmax_expected_score_symbolic",
    "gaussian_score_symbolic",
    "gaussian_expected_score_symbolic",
    "uniform_support_counterexample",
    "expected_score",
    "sample_scores",
    "sample_gaussian_scores",
    "gauss_hermite",
    "expected_score_autograd",
]


# ---------------------------------------------------------------------------------------------
# Symbolic (sympy)
# ---------------------------------------------------------------------------------------------


def _sympify(x, name: str) -> sp.Expr:
    """``x`` as a scalar sympy expression that may be real (a number or a real expression)."""
    try:
        e = sp.sympify(x, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise ValueError(f"{name} must be a number or a sympy expression, got {x!r}") from exc
    if not isinstance(e, sp.Expr) or e.is_real is False or e.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        raise ValueError(f"{name} must be a finite real scalar expression, got {x!r}")
    return e


def softmax_score_symbolic(K: int):
    """Symbolic softmax over ``K`` logits and its score.

    Returns ``(z, pi, score)``: the logit symbols ``z_1..z_K`` (real), the probabilities
    ``pi_a = exp(z_a) / sum_b exp(z_b)`` and the ``K x K`` matrix
    ``score[a, j] = d log pi_a / d z_j``, obtained by sympy differentiation of ``log pi_a``
    (eq. ``eq-score-softmax`` states its closed form ``1[a = j] - pi_j``).
    """
    K = check_positive_int(K, "K", minimum=2)
    z = sp.symbols(f"z1:{K + 1}", real=True)
    denom = sum(sp.exp(zj) for zj in z)
    pi = [sp.exp(za) / denom for za in z]
    log_pi = [za - sp.log(denom) for za in z]
    score = sp.Matrix(K, K, lambda a, j: sp.diff(log_pi[a], z[j]))
    return z, pi, score


def softmax_expected_score_symbolic(K: int, weights: Sequence | None = None) -> sp.Matrix:
    """``sum_a weights_a * d log pi_a / d z`` for a softmax over ``K`` symbolic logits, simplified.

    With ``weights=None`` the weights are ``pi_a`` themselves: the expectation
    ``E_{a ~ pi}[grad_z log pi_a]`` (eq. ``eq-score-softmax``), which simplifies to the zero vector.
    Pass the probabilities of another distribution ``q`` to get ``E_{a ~ q}[...]``
    (eq. ``eq-score-other-sampling``), or ``pi_a b_a`` for an action-dependent baseline
    (``prop-score-action-baseline``). Returns a ``K x 1`` sympy matrix.
    """
    z, pi, score = softmax_score_symbolic(K)
    if weights is None:
        weights = pi
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise ValueError(f"weights must be a sequence of K={K} numbers or expressions, got {type(weights).__name__}")
    if len(weights) != K:
        raise ValueError(f"weights must have length K={K}, got {len(weights)}")
    w = [_sympify(x, "weights") for x in weights]
    out = sp.zeros(K, 1)
    for j in range(K):
        out[j] = sp.simplify(sum(w[a] * score[a, j] for a in range(K)))
    return out


def gaussian_score_symbolic():
    """The Gaussian policy ``N(mu, sigma^2)`` with ``sigma = exp(log_std)``, symbolically.

    Returns ``(a, mu, log_std, logpdf, score)`` with ``score = {"mu": d logpdf / d mu,
    "log_std": d logpdf / d log_std}`` (eq. ``eq-score-gaussian``).
    """
    a, mu, log_std = sp.symbols("a mu s", real=True)
    logpdf = -((a - mu) ** 2) / (2 * sp.exp(2 * log_std)) - log_std - sp.log(2 * sp.pi) / 2
    score = {"mu": sp.expand(sp.diff(logpdf, mu)), "log_std": sp.expand(sp.diff(logpdf, log_std))}
    return a, mu, log_std, logpdf, score


def gaussian_expected_score_symbolic(sample_mean=None, sample_log_std=None) -> dict:
    """``E_{a ~ N(m, exp(t)^2)}[grad log N(a; mu, exp(s)^2)]`` as a symbolic integral over the line.

    The score is taken with respect to the policy's mean ``mu`` and log standard deviation ``s``.
    By default the sampling distribution is the policy itself (``m = mu``, ``t = s``) and both
    components simplify to 0 (eq. ``eq-score-gaussian``). Pass sympy expressions (e.g. new symbols)
    for ``sample_mean`` and ``sample_log_std`` to sample from another Gaussian
    (eq. ``eq-score-other-sampling``). Returns ``{"mu": expr, "log_std": expr}``, simplified; each
    is ``sympy.integrate`` of density times score over ``(-oo, oo)``, not a numeric quadrature.
    """
    a, mu, s, _, score = gaussian_score_symbolic()
    m = mu if sample_mean is None else _sympify(sample_mean, "sample_mean")
    t = s if sample_log_std is None else _sympify(sample_log_std, "sample_log_std")
    density = sp.exp(-((a - m) ** 2) / (2 * sp.exp(2 * t)) - t) / sp.sqrt(2 * sp.pi)
    out = {}
    for name, sc in score.items():
        integral = sp.integrate(density * sc, (a, -sp.oo, sp.oo), conds="none")
        out[name] = sp.factor(sp.simplify(integral))
    return out


def uniform_support_counterexample() -> dict:
    """The family ``Uniform(0, theta)``: its support moves with ``theta`` and the identity fails.

    Returns sympy expressions (``rem-score-support``):

    * ``"total_mass"``: ``int_0^theta (1/theta) da`` (= 1 for every theta);
    * ``"d_total_mass"``: its derivative in ``theta`` (= 0);
    * ``"expected_score"``: ``int_0^theta (1/theta) d/dtheta log(1/theta) da`` (= ``-1/theta``, not 0);
    * ``"boundary_term"``: ``p(theta; theta) * 1`` (= ``1/theta``), the Leibniz-rule term that the
      exchange of derivative and integral drops. ``expected_score + boundary_term = d_total_mass``.
    """
    a = sp.Symbol("a", real=True)
    theta = sp.Symbol("theta", positive=True)
    density = 1 / theta
    total = sp.integrate(density, (a, 0, theta))
    expected = sp.integrate(density * sp.diff(sp.log(density), theta), (a, 0, theta))
    return {
        "theta": theta,
        "total_mass": sp.simplify(total),
        "d_total_mass": sp.simplify(sp.diff(total, theta)),
        "expected_score": sp.simplify(expected),
        "boundary_term": sp.simplify(density.subs(a, theta)),
    }


# ---------------------------------------------------------------------------------------------
# Exact (tabular softmax, finite sums over actions)
# ---------------------------------------------------------------------------------------------


def _check_sampling(sampling, shape) -> np.ndarray:
    q = as_float_array(sampling, "sampling", ndim=2)
    check_shape(q, shape, "sampling")
    check_distribution(q, "sampling", axis=1)
    return q


def expected_score(theta, sampling=None, weights=None) -> np.ndarray:
    """``E_{a ~ q(.|s)}[w(s, a) grad_theta log pi_theta(a|s)]`` for every state, exactly.

    Parameters
    ----------
    theta : array ``(S, A)``
        Logits of the tabular softmax policy.
    sampling : array ``(S, A)``, optional
        The distribution ``q(a|s)`` the action is drawn from; default ``pi_theta`` itself.
    weights : array ``(S,)`` or ``(S, A)``, optional
        ``w(s)`` (a state baseline) or ``w(s, a)`` (action-dependent); default 1.

    Returns
    -------
    array ``(S, S, A)``
        ``out[s]`` is the expected gradient with respect to the whole table ``theta``, the finite
        sum ``sum_a q(a|s) w(s, a) score[s, a]`` of :func:`pgbook.policies.score` (no closed form
        used). Zero for ``q = pi_theta`` and ``w`` independent of ``a`` (``thm-score-zero-mean``,
        ``eq-score-baseline``); ``q - pi_theta`` in row ``s`` for ``w = 1``
        (``eq-score-other-sampling``); ``pi (w - E_pi w)`` for action-dependent ``w``
        (``prop-score-action-baseline``).
    """
    theta = policies.check_theta(theta)
    S, A = theta.shape
    q = policies.probs(theta) if sampling is None else _check_sampling(sampling, (S, A))
    if weights is None:
        w = np.ones((S, A))
    else:
        w = as_float_array(weights, "weights")
        if w.shape == (S,):
            w = np.repeat(w[:, None], A, axis=1)
        elif w.shape != (S, A):
            raise ValueError(f"weights must have shape ({S},) or ({S}, {A}), got {w.shape}")
    return np.einsum("sa,sa,saxy->sxy", q, w, policies.score(theta))


def sample_scores(theta, state: int, n: int, seed: int, sampling=None) -> np.ndarray:
    """Scores ``grad log pi_theta(a|state)`` of ``n`` i.i.d. actions ``a ~ q(.|state)``; shape ``(n, A)``.

    Only row ``state`` of the ``(S, A)`` gradient is returned: the other rows of the tabular
    softmax score are identically zero. ``q`` is ``pi_theta`` unless ``sampling`` (an ``(S, A)``
    table of distributions) is given. Seeded: the same arguments give the same array.
    """
    theta = policies.check_theta(theta)
    S, A = theta.shape
    if isinstance(state, bool) or not isinstance(state, (int, np.integer)) or not 0 <= state < S:
        raise ValueError(f"state must be an integer in [0, {S}), got {state!r}")
    n = check_positive_int(n, "n")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    states = np.full(n, state, dtype=np.int64)
    if sampling is None:
        actions = policies.sample_actions(theta, states, seed)
    else:
        q = _check_sampling(sampling, (S, A))
        u = np.random.default_rng(check_seed(seed)).random(n)
        actions = np.minimum((u[:, None] >= np.cumsum(q[state])).sum(axis=1), A - 1)
    return policies.score(theta)[state, actions, state, :]


def sample_gaussian_scores(
    mu: float, log_std: float, n: int, seed: int, sample_mean: float | None = None, sample_log_std: float | None = None
) -> np.ndarray:
    """Per-sample scores of ``N(mu, exp(log_std)^2)`` in ``(mu, log_std)``, by torch autograd.

    Draws ``n`` actions from ``N(sample_mean, exp(sample_log_std)^2)`` (default: the policy itself)
    with ``torch.distributions.Normal`` under ``torch.Generator().manual_seed(seed)`` (``0 <= seed < 2**64``), and returns
    the gradients of each ``log_prob`` with respect to ``mu`` and ``log_std``; shape ``(n, 2)``.
    """
    mu, log_std = check_real(mu, "mu"), check_real(log_std, "log_std")
    if sample_mean is not None:
        sample_mean = check_real(sample_mean, "sample_mean")
    if sample_log_std is not None:
        sample_log_std = check_real(sample_log_std, "sample_log_std")
    for name, v in (("log_std", log_std), ("sample_log_std", sample_log_std)):
        if v is not None and abs(v) > 300:  # sigma^2 = exp(2 log_std) must stay a finite, non-zero float64
            raise ValueError(f"{name} must lie in [-300, 300] (exp(2 * log_std) overflows or underflows), got {v!r}")
    n = check_positive_int(n, "n")
    seed = check_torch_seed(seed)
    m = mu if sample_mean is None else sample_mean
    t = log_std if sample_log_std is None else sample_log_std
    gen = torch.Generator().manual_seed(seed)
    actions = float(m) + float(np.exp(t)) * torch.randn(n, generator=gen, dtype=torch.float64)
    mu_t = torch.full((n,), float(mu), dtype=torch.float64, requires_grad=True)
    ls_t = torch.full((n,), float(log_std), dtype=torch.float64, requires_grad=True)
    torch.distributions.Normal(mu_t, ls_t.exp()).log_prob(actions).sum().backward()
    # Sample i only touches entry i of mu_t and ls_t, so the gradient entries are per-sample scores.
    return torch.stack([mu_t.grad, ls_t.grad], dim=1).numpy()


def gauss_hermite(mean: float, std: float, n_nodes: int = 8):
    """Nodes and weights with ``sum_i w_i f(x_i) = E_{x ~ N(mean, std^2)}[f(x)]`` for polynomials.

    Exact for polynomials ``f`` of degree ``<= 2 n_nodes - 1`` (probabilists' Gauss–Hermite rule).
    The Gaussian score is a polynomial of degree 2 in the action, so any ``n_nodes >= 2``
    integrates it exactly. Returns two float64 arrays of length ``n_nodes``; weights sum to 1.
    """
    mean, std = check_real(mean, "mean"), check_real(std, "std")
    if std <= 0:
        raise ValueError(f"std must be positive, got {std!r}")
    n_nodes = check_positive_int(n_nodes, "n_nodes")
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    return mean + std * x, w / w.sum()


def _as_list(x, name: str) -> list:
    if isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be a sequence, got {type(x).__name__}")
    try:
        return list(x)
    except TypeError as exc:  # not iterable (None, a number, a 0-d tensor)
        raise ValueError(f"{name} must be a sequence, got {type(x).__name__}") from exc


def _as_action(a, i: int) -> torch.Tensor:
    """One action as a (detached) tensor: real numbers (a scalar or an array), finite; no bools."""
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(a))
        except (TypeError, RuntimeError, ValueError) as exc:
            raise ValueError(f"actions[{i}] must be a number, an array or a tensor, got {a!r}") from exc
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype in _INT_DTYPES):
        raise ValueError(f"actions[{i}] must be real numbers (integers or floats), got {a!r}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"actions[{i}] contains NaN or infinite values: {a!r}")
    return t


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def expected_score_autograd(
    log_prob: Callable[[torch.Tensor], torch.Tensor], params: Sequence[torch.Tensor], actions, weights
) -> list[torch.Tensor]:
    """``sum_i weights[i] * grad_params log_prob(actions[i])`` by torch autograd.

    ``log_prob(action)`` must return a scalar tensor that depends on ``params`` (any torch
    parametrisation: a network, a linear map, ...). The actions are constants (detached). With the
    actions of a finite action set and ``weights = pi(a)`` this is ``E_{a ~ pi}[grad log pi]``
    exactly; with :func:`gauss_hermite` nodes and weights it is the Gaussian expectation exactly.
    Returns one tensor per parameter, shaped like it.
    """
    check_callable(log_prob, "log_prob")
    params = _as_list(params, "params")
    if not params or not all(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        raise ValueError("params must be a non-empty sequence of tensors with requires_grad=True")
    actions = [_as_action(a, i) for i, a in enumerate(_as_list(actions, "actions"))]
    w = as_float_array(weights, "weights", ndim=1)
    if len(actions) != w.shape[0] or not actions:
        raise ValueError(f"actions and weights must have the same non-zero length, got {len(actions)} and {w.shape[0]}")
    total = [torch.zeros_like(p) for p in params]
    for i, (action, wi) in enumerate(zip(actions, w)):
        lp = log_prob(action)
        if not isinstance(lp, torch.Tensor) or lp.numel() != 1:
            raise ValueError("log_prob must return a scalar tensor")
        if not bool(torch.isfinite(lp.detach()).all()):
            raise ValueError(f"log_prob returned {float(lp.detach().reshape(()))} at actions[{i}]: log-probabilities must be finite")
        grads = torch.autograd.grad(lp.reshape(()), params, allow_unused=True)
        for k, g in enumerate(grads):
            if g is not None:
                total[k] = total[k] + float(wi) * g
    return total
