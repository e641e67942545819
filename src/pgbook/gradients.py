"""The exact policy gradient and the independent computations that check it.

Chapter 2 (:doc:`/book/ch02_policy_gradient_theorem`), equations ``eq-pg-theorem`` and
``eq-pg-visitation``. For a differentiable policy the theorem gives

    grad J(theta) = sum_s eta(s) sum_a pi(a|s) grad log pi(a|s) Q^pi(s, a),

with ``eta(s) = sum_t gamma^t Pr(s_t = s)`` the unnormalised discounted visitation.
:func:`policy_gradient` evaluates this sum exactly for the tabular softmax policy (contracting
the analytic score of :func:`pgbook.policies.score`, not a hand-simplified formula).
:func:`finite_difference_gradient` and :func:`autograd_policy_gradient` compute the same
gradient in two other, independent ways: central differences of the exactly computed ``J``, and
torch autograd through the differentiable linear solve of :func:`expected_return_torch`.
:func:`reinforce_gradients` is the sampled (Monte Carlo) estimator.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from . import mdp as _mdp
from . import policies
from ._validate import as_float_array, check_positive_int, check_shape

__all__ = [
    "policy_gradient",
    "finite_difference_gradient",
    "expected_return_of_theta",
    "expected_return_torch",
    "autograd_policy_gradient",
    "reinforce_gradients",
]


def _check_theta_for(mdp: _mdp.MDP, theta) -> np.ndarray:
    theta = policies.check_theta(theta)
    check_shape(theta, (mdp.n_states, mdp.n_actions), "theta")
    return theta


def policy_gradient(mdp: _mdp.MDP, theta) -> np.ndarray:
    """Exact ``grad_theta J`` of the tabular softmax policy by the policy gradient theorem.

    Evaluates ``sum_s eta(s) sum_a pi(a|s) score(s, a) Q(s, a)`` (eq. ``eq-pg-visitation``)
    with exact ``eta`` and ``Q`` from linear solves. Returns an array of shape ``(S, A)``.
    """
    theta = _check_theta_for(mdp, theta)
    pi = policies.probs(theta)
    eta = _mdp.discounted_visits(mdp, pi)
    Q = _mdp.action_values(mdp, pi)
    return np.einsum("s,sa,saxy,sa->xy", eta, pi, policies.score(theta), Q)


def finite_difference_gradient(f: Callable[[np.ndarray], object], x, eps: float = 1e-5) -> np.ndarray:
    """Central finite differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every entry.

    ``f`` maps an array ``x`` to a scalar or an array; the result has shape
    ``np.shape(f(x)) + x.shape`` (the Jacobian; for a scalar ``f``, the gradient). With an
    exactly computed ``f`` the error is ``O(eps^2)`` truncation plus ``O(machine eps / eps)``
    rounding, about ``1e-10`` relative for ``eps = 1e-5`` on the objectives of this book.
    """
    x = as_float_array(x, "x")
    if not (isinstance(eps, (int, float)) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    out_shape = np.shape(f(x))
    grad = np.zeros(out_shape + x.shape)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        diff = (np.asarray(f(x + step), dtype=float) - np.asarray(f(x - step), dtype=float)) / (2.0 * eps)
        grad[(Ellipsis,) + i] = diff
    return grad


def expected_return_of_theta(mdp: _mdp.MDP, theta) -> float:
    """``J(theta)`` of the tabular softmax policy, exact (linear solve)."""
    theta = _check_theta_for(mdp, theta)
    return _mdp.expected_return(mdp, policies.probs(theta))


def check_theta_tensor(mdp: _mdp.MDP, theta) -> None:
    """Raise unless ``theta`` is a finite torch tensor of shape ``(S, A)`` for ``mdp``."""
    if not isinstance(theta, torch.Tensor):
        raise ValueError(f"theta must be a torch.Tensor, got {type(theta).__name__}")
    if tuple(theta.shape) != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"theta must have shape {(mdp.n_states, mdp.n_actions)}, got {tuple(theta.shape)}")
    if not torch.isfinite(theta).all():
        raise ValueError("theta contains NaN or infinite values")


def expected_return_torch(mdp: _mdp.MDP, theta: torch.Tensor) -> torch.Tensor:
    """Differentiable exact ``J(theta)`` in torch (float64): softmax, then a linear solve.

    ``J = p0 . (I - gamma P_pi)^{-1} r_pi``; autograd differentiates through
    ``torch.linalg.solve``, which gives an independent check of :func:`policy_gradient`.
    """
    check_theta_tensor(mdp, theta)
    P = torch.tensor(mdp.P, dtype=theta.dtype)
    R = torch.tensor(mdp.R, dtype=theta.dtype)
    p0 = torch.tensor(mdp.p0, dtype=theta.dtype)
    pi = torch.softmax(theta, dim=1)
    P_pi = torch.einsum("sa,sat->st", pi, P)
    r_pi = (pi * R).sum(dim=1)
    eye = torch.eye(mdp.n_states, dtype=theta.dtype)
    V = torch.linalg.solve(eye - mdp.gamma * P_pi, r_pi)
    return p0 @ V


def autograd_policy_gradient(mdp: _mdp.MDP, theta) -> np.ndarray:
    """``grad_theta J`` by torch autograd through :func:`expected_return_torch`; shape ``(S, A)``."""
    theta = _check_theta_for(mdp, theta)
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    expected_return_torch(mdp, t).backward()
    return t.grad.numpy()


def reinforce_gradients(
    mdp: _mdp.MDP, theta, n_episodes: int, horizon: int, seed: int, estimator: str = "reward_to_go"
) -> np.ndarray:
    """Per-episode REINFORCE estimates of ``grad J``; shape ``(n_episodes, S, A)``.

    ``estimator="reward_to_go"``: ``sum_t gamma^t grad log pi(a_t|s_t) G_t`` with
    ``G_t = sum_{l>=t} gamma^(l-t) r_l`` (the sampled form of eq. ``eq-pg-theorem``);
    ``estimator="full_return"``: ``R(tau) sum_t grad log pi(a_t|s_t)``. Episodes are truncated
    at ``horizon``; the mean over episodes converges to the exact gradient at rate
    ``1/sqrt(n_episodes)`` up to the truncation bias ``O(gamma^horizon)``.
    """
    theta = _check_theta_for(mdp, theta)
    if estimator not in ("reward_to_go", "full_return"):
        raise ValueError(f"estimator must be 'reward_to_go' or 'full_return', got {estimator!r}")
    N = check_positive_int(n_episodes, "n_episodes")
    H = check_positive_int(horizon, "horizon")
    pi = policies.probs(theta)
    states, actions, rewards = _mdp.sample_trajectories(mdp, pi, N, H, seed)
    discounts = mdp.gamma ** np.arange(H)
    if estimator == "reward_to_go":
        disc_rewards = rewards * discounts
        # gamma^t G_t = sum_{l >= t} gamma^l r_l : a reversed cumulative sum
        weights = np.cumsum(disc_rewards[:, ::-1], axis=1)[:, ::-1]
    else:
        weights = np.repeat((rewards @ discounts)[:, None], H, axis=1)
    return policies.weighted_score_sum(theta, states, actions, weights)
