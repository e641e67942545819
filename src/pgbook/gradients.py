"""The exact policy gradient and the independent computations that check it.

Chapter 2 (:doc:`/book/ch02_policy_gradient_theorem`), equations ``eq-pg-theorem`` and
``eq-pg-visitation``. For a differentiable policy the theorem gives

    grad J(theta) = sum_s eta(s) sum_a pi(a|s) grad log pi(a|s) Q^pi(s, a),

with ``eta(s) = sum_t gamma^t Pr(s_t = s)`` the unnormalised discounted visitation.
:func:`policy_gradient` evaluates this sum exactly for the tabular softmax policy.
:func:`policy_gradient_dense` is the literal sum: it contracts the analytic score of
:func:`pgbook.policies.score`, an ``(S, A, S, A)`` array, in ``O(S^2 A^2)`` time and memory.
:func:`policy_gradient` performs the same contraction using the block structure of that array
(:func:`score_contraction`: ``score(s, a)`` is zero outside the row ``theta[s, :]`` of its own state),
with ``eta`` and ``Q`` from one factorisation of ``I - gamma P_pi``
(:func:`pgbook.mdp.values_and_visits`): ``O(S^3)`` time and ``O(S^2 A)`` memory for a dense ``P``,
and a sparse LU for a sparse ``P`` (:mod:`pgbook.gridworld` with ``10^4``–``10^5`` states).
:func:`finite_difference_gradient` and :func:`autograd_policy_gradient` compute the same
gradient in two other, independent ways: central differences of the exactly computed ``J``, and
torch autograd through the differentiable linear solve of :func:`expected_return_torch`.
:func:`reinforce_gradients` is the sampled (Monte Carlo) estimator.

The proof of the theorem goes through the finite horizon ``H`` (``lem-pg-finite-horizon``,
``eq-pg-tail-bound``): :func:`finite_horizon_policy_gradient` evaluates
``grad J_H = sum_{t<H} gamma^t E[grad log pi(a_t|s_t) Q_{H-t}(s_t, a_t)]`` exactly (backward and
forward dynamic programming), :func:`autograd_finite_horizon_gradient` differentiates the exact
``J_H`` with torch instead, and :func:`gradient_tail` computes ``grad J - grad J_H`` without
cancellation, as ``gamma^H grad_theta [Pr(s_H = .) . V^pi]``. :func:`gradient_tail_bound` is the
bound of ``eq-pg-tail-bound``; :func:`skip_cycle_mdp` is the example (``rem-pg-tail-factor``) on
which the bound without its ``sqrt(H)`` term fails.
"""

from __future__ import annotations

import numbers
from typing import Callable

import numpy as np
import torch

from . import mdp as _mdp
from . import policies
from ._validate import as_float_array, check_distribution, check_gamma, check_positive_int, check_shape

__all__ = [
    "policy_gradient",
    "policy_gradient_dense",
    "score_contraction",
    "finite_difference_gradient",
    "expected_return_of_theta",
    "expected_return_torch",
    "autograd_policy_gradient",
    "reinforce_gradients",
    "reinforce_estimates",
    "finite_horizon_policy_gradient",
    "finite_horizon_return_torch",
    "autograd_finite_horizon_gradient",
    "gradient_tail",
    "score_norm_max",
    "gradient_tail_bound",
    "skip_cycle_mdp",
]


def _check_theta_for(mdp: _mdp.MDP, theta) -> np.ndarray:
    _check_mdp(mdp)
    theta = policies.check_theta(theta)
    check_shape(theta, (mdp.n_states, mdp.n_actions), "theta")
    return theta


def score_contraction(pi, state_weights, values) -> np.ndarray:
    """``sum_s w(s) sum_a pi(a|s) grad_theta log pi_theta(a|s) f(s, a)`` for the tabular softmax; shape ``(S, A)``.

    ``pi = softmax(theta)`` (the softmax score depends on ``theta`` only through ``pi``),
    ``w = state_weights`` of shape ``(S,)`` and ``f = values`` of shape ``(S, A)``. This is the sum
    of the policy gradient theorem (``w = eta``, ``f = Q``: eq. ``eq-pg-visitation``) and of every
    score-weighted sum of the later chapters, contracted with the *block structure* of the score
    (eq. ``eq-softmax-score``),

        d log pi(a|s) / d theta[x, y] = 1[s = x] (1[a = y] - pi(y|x)),

    i.e. ``score(s, a)`` is zero outside the row ``theta[s, :]`` of its own state. Summing over
    ``s`` therefore keeps only ``s = x``, and summing over ``a``:

        sum_s w(s) sum_a pi(a|s) score(s, a)[x, y] f(s, a)
            = w(x) sum_a pi(a|x) (1[a = y] - pi(y|x)) f(x, a)
            = w(x) pi(y|x) (f(x, y) - sum_a pi(a|x) f(x, a)).

    With ``f = Q`` the inner sum ``sum_a pi(a|x) Q(x, a)`` is ``V(x)``: ``grad_theta[x, :] J =
    eta(x) pi(.|x) (Q(x, .) - V(x))``. ``O(S A)`` time and memory instead of the ``O(S^2 A^2)`` of
    contracting the full ``(S, A, S, A)`` score (:func:`policy_gradient_dense`).
    """
    pi = as_float_array(pi, "pi", ndim=2)
    check_distribution(pi, "pi", axis=1)
    w = as_float_array(state_weights, "state_weights", ndim=1)
    f = as_float_array(values, "values", ndim=2)
    check_shape(w, (pi.shape[0],), "state_weights")
    check_shape(f, pi.shape, "values")
    return w[:, None] * pi * (f - (pi * f).sum(axis=1, keepdims=True))


def policy_gradient(mdp: _mdp.MDP, theta) -> np.ndarray:
    """Exact ``grad_theta J`` of the tabular softmax policy by the policy gradient theorem.

    Evaluates ``sum_s eta(s) sum_a pi(a|s) score(s, a) Q(s, a)`` (eq. ``eq-pg-visitation``)
    with exact ``eta`` and ``Q`` from one factorisation of ``I - gamma P_pi``
    (:func:`pgbook.mdp.values_and_visits`), contracting the score by its block structure
    (:func:`score_contraction`): ``grad_theta[s, :] J = eta(s) pi(.|s) (Q(s, .) - V(s))``.
    ``O(S^3)`` time and ``O(S^2 A)`` memory for a dense ``P``; a sparse ``P`` uses a sparse LU.
    Returns an array of shape ``(S, A)``; :func:`policy_gradient_dense` is the literal
    ``(S, A, S, A)`` contraction it is tested against.
    """
    theta = _check_theta_for(mdp, theta)
    pi = policies.probs(theta)
    _, Q, eta = _mdp.values_and_visits(mdp, pi)
    return score_contraction(pi, eta, Q)


def policy_gradient_dense(mdp: _mdp.MDP, theta) -> np.ndarray:
    """The reference for :func:`policy_gradient`: the theorem's sum with the full ``(S, A, S, A)`` score.

    ``einsum`` of ``eta``, ``pi``, :func:`pgbook.policies.score` and ``Q`` (each from its own linear
    solve), exactly as eq. ``eq-pg-visitation`` is written; ``O(S^2 A^2)`` time and memory (``S =
    2000``, ``A = 8``: a 2 GB score array), so for small MDPs only.
    """
    theta = _check_theta_for(mdp, theta)
    pi = policies.probs(theta)
    eta = _mdp.discounted_visits(mdp, pi)
    Q = _mdp.action_values(mdp, pi)
    score = policies.score(theta)
    return np.einsum("s,sa,saxy,sa->xy", eta, pi, score, Q)


def finite_difference_gradient(f: Callable[[np.ndarray], object], x, eps: float = 1e-5) -> np.ndarray:
    """Central finite differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` for every entry.

    ``f`` maps an array ``x`` to a scalar or an array; the result has shape
    ``np.shape(f(x)) + x.shape`` (the Jacobian; for a scalar ``f``, the gradient). With an
    exactly computed ``f`` the error is ``O(eps^2)`` truncation plus ``O(machine eps / eps)``
    rounding, about ``1e-10`` relative for ``eps = 1e-5`` on the objectives of this book.
    ``ValueError`` naming ``f`` (and ``x``, ``eps``) when a value of ``f`` at ``x`` or ``x +- eps e_i``
    is not finite (e.g. ``f`` overflows for an ``x`` or an ``eps`` too large for it).
    """
    x = as_float_array(x, "x")
    if not callable(f):
        raise ValueError(f"f must be a callable (x -> scalar or array), got {type(f).__name__}")
    if isinstance(eps, bool) or not (isinstance(eps, numbers.Real) and np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    eps = float(eps)

    def f_at(point, where):
        value = np.asarray(f(point), dtype=float)
        if not np.all(np.isfinite(value)):
            raise ValueError(
                f"f({where}) is not finite: f must be finite at x and x +- eps e_i, so x or eps is too large "
                "for f (or f overflows there)"
            )
        return value

    out_shape = np.shape(f_at(x, "x"))
    grad = np.zeros(out_shape + x.shape)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        diff = (f_at(x + step, f"x + eps e_{i}") - f_at(x - step, f"x - eps e_{i}")) / (2.0 * eps)
        grad[(Ellipsis,) + i] = diff
    return grad


def expected_return_of_theta(mdp: _mdp.MDP, theta) -> float:
    """``J(theta)`` of the tabular softmax policy, exact (linear solve)."""
    theta = _check_theta_for(mdp, theta)
    return _mdp.expected_return(mdp, policies.probs(theta))


def check_theta_tensor(mdp: _mdp.MDP, theta) -> None:
    """Raise unless ``theta`` is a finite torch tensor of shape ``(S, A)`` for ``mdp``."""
    _check_mdp(mdp)
    if not isinstance(theta, torch.Tensor):
        raise ValueError(f"theta must be a torch.Tensor, got {type(theta).__name__}")
    if theta.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"theta must be a float32 or float64 tensor, got dtype {theta.dtype}")
    if tuple(theta.shape) != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"theta must have shape {(mdp.n_states, mdp.n_actions)}, got {tuple(theta.shape)}")
    if not torch.isfinite(theta).all():
        raise ValueError("theta contains NaN or infinite values")


def policy_chain_torch(mdp: _mdp.MDP, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(P_pi, r_pi)`` of the softmax policy of ``theta`` as differentiable torch tensors (``theta``'s dtype).

    ``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` and ``r_pi[s] = sum_a pi(a|s) R(s, a)``: the chain and
    reward every torch version of an exact objective (J, J_H, the gradient tail, the episodic J_1)
    differentiates through.
    """
    P = torch.tensor(_mdp.transition_array(mdp), dtype=theta.dtype)  # a sparse P is densified
    R = torch.tensor(mdp.R, dtype=theta.dtype)
    pi = torch.softmax(theta, dim=1)
    return torch.einsum("sa,sat->st", pi, P), (pi * R).sum(dim=1)


def expected_return_torch(mdp: _mdp.MDP, theta: torch.Tensor) -> torch.Tensor:
    """Differentiable exact ``J(theta)`` in torch (float64): softmax, then a linear solve.

    ``J = p0 . (I - gamma P_pi)^{-1} r_pi``; autograd differentiates through
    ``torch.linalg.solve``, which gives an independent check of :func:`policy_gradient`.
    """
    check_theta_tensor(mdp, theta)
    p0 = torch.tensor(mdp.p0, dtype=theta.dtype)
    P_pi, r_pi = policy_chain_torch(mdp, theta)
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
    return reinforce_estimates(theta, states, actions, rewards, mdp.gamma, estimator)


def reinforce_estimates(theta, states, actions, rewards, gamma: float, estimator: str = "reward_to_go") -> np.ndarray:
    """The REINFORCE estimate of each given trajectory, shape ``(N, S, A)``.

    ``states``, ``actions``, ``rewards`` have shape ``(N, H)`` (e.g. from
    :func:`pgbook.mdp.sample_trajectories`, or every trajectory from
    :func:`pgbook.mdp.enumerate_trajectories`, which makes the expectation exact).
    ``"reward_to_go"``: ``sum_t gamma^t G_t grad log pi(a_t|s_t)``; ``"full_return"``:
    ``R(tau) sum_t grad log pi(a_t|s_t)``. Both have expectation ``grad J_H`` (eq. ``eq-pg-log-trick``).
    """
    if estimator not in ("reward_to_go", "full_return"):
        raise ValueError(f"estimator must be 'reward_to_go' or 'full_return', got {estimator!r}")
    gamma = check_gamma(gamma, allow_one=True)
    rewards = as_float_array(rewards, "rewards", ndim=2)
    if np.ndim(states) == 2:  # (otherwise weighted_score_sum rejects states)
        check_shape(rewards, np.shape(states), "rewards")
    H = rewards.shape[1]
    discounts = gamma ** np.arange(H)
    if estimator == "reward_to_go":
        disc_rewards = rewards * discounts
        # gamma^t G_t = sum_{l >= t} gamma^l r_l : a reversed cumulative sum
        weights = np.cumsum(disc_rewards[:, ::-1], axis=1)[:, ::-1]
    else:
        weights = np.repeat((rewards @ discounts)[:, None], H, axis=1)
    return policies.weighted_score_sum(theta, states, actions, weights)


# ---------------------------------------------------------------------------------------------
# The finite horizon and the truncation bound (proof of thm-policy-gradient)
# ---------------------------------------------------------------------------------------------


def _check_mdp(mdp) -> _mdp.MDP:
    if not isinstance(mdp, _mdp.MDP):
        raise ValueError(f"mdp must be a pgbook.mdp.MDP, got {type(mdp).__name__}")
    return mdp


def finite_horizon_policy_gradient(mdp: _mdp.MDP, theta, horizon: int) -> np.ndarray:
    """Exact ``grad J_H`` of the tabular softmax policy by the finite-horizon theorem; shape ``(S, A)``.

    ``J_H = E[sum_{t<H} gamma^t r_t]`` and (``lem-pg-finite-horizon``)

        grad J_H = sum_{t<H} gamma^t sum_s Pr(s_t = s) sum_a pi(a|s) grad log pi(a|s) Q_{H-t}(s, a),

    with ``Q_k`` the action value with ``k`` steps to go (backward dynamic programming,
    :func:`pgbook.mdp.finite_horizon_action_values`) and ``Pr(s_t = .) = p0 P_pi^t`` (forward). It
    never differentiates ``J_H``; :func:`autograd_finite_horizon_gradient` does, independently.
    """
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    H = check_positive_int(horizon, "horizon")
    pi = policies.probs(theta)
    Q = _mdp.finite_horizon_action_values(mdp, pi, H)  # Q[t] has H - t steps to go
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    grad = np.zeros(theta.shape)
    marginal = mdp.p0.copy()
    for t in range(H):
        # sum_s Pr(s_t = s) sum_a pi grad log pi Q_{H-t}, contracted by the score's block structure
        grad += mdp.gamma**t * score_contraction(pi, marginal, Q[t])
        marginal = marginal @ P_pi
    return grad


def finite_horizon_return_torch(mdp: _mdp.MDP, theta: torch.Tensor, horizon: int) -> torch.Tensor:
    """Differentiable exact ``J_H(theta)`` in torch: softmax, then ``H`` backward Bellman steps."""
    mdp = _check_mdp(mdp)
    check_theta_tensor(mdp, theta)
    H = check_positive_int(horizon, "horizon")
    P_pi, r_pi = policy_chain_torch(mdp, theta)
    V = torch.zeros(mdp.n_states, dtype=theta.dtype)
    for _ in range(H):
        V = r_pi + mdp.gamma * P_pi @ V
    return torch.tensor(mdp.p0, dtype=theta.dtype) @ V


def autograd_finite_horizon_gradient(mdp: _mdp.MDP, theta, horizon: int) -> np.ndarray:
    """``grad_theta J_H`` by torch autograd through :func:`finite_horizon_return_torch`; shape ``(S, A)``."""
    mdp = _check_mdp(mdp)
    theta = _check_theta_for(mdp, theta)
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    finite_horizon_return_torch(mdp, t, horizon).backward()
    return t.grad.numpy()


def gradient_tail(mdp: _mdp.MDP, theta, horizon: int) -> np.ndarray:
    """``grad J - grad J_H`` without cancellation; shape ``(S, A)``.

    ``J - J_H = gamma^H E[V^pi(s_H)] = gamma^H (p0 P_pi^H) . V^pi`` (Markov property), so the
    difference of the gradients is ``gamma^H`` times the autograd gradient of
    ``(p0 P_pi^H) . V^pi`` — accurate to round-off *relative to its own size*, also when
    ``gamma^H`` is far below the round-off of ``grad J`` itself.
    """
    mdp = _check_mdp(mdp)
    if not mdp.gamma < 1.0:
        raise ValueError(f"mdp must be discounted (gamma < 1) for grad J to be defined, got gamma = {mdp.gamma}")
    theta = _check_theta_for(mdp, theta)
    H = check_positive_int(horizon, "horizon")
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    P_pi, r_pi = policy_chain_torch(mdp, th)
    V = torch.linalg.solve(torch.eye(mdp.n_states, dtype=torch.float64) - mdp.gamma * P_pi, r_pi)
    marginal = torch.tensor(mdp.p0, dtype=torch.float64)
    for _ in range(H):
        marginal = marginal @ P_pi
    (marginal @ V).backward()
    return mdp.gamma**H * th.grad.numpy()


def score_norm_max(theta) -> float:
    """``max_{s,a} ||grad_theta log pi_theta(a|s)||`` over the whole table (at most ``sqrt(2)`` for the softmax)."""
    theta = policies.check_theta(theta)
    pi = policies.probs(theta)
    # ||score(s, a)||^2 = sum_b (1[a = b] - pi(b|s))^2 = 1 - 2 pi(a|s) + sum_b pi(b|s)^2: the score's
    # only non-zero block is row s (eq-softmax-score), so the (S, A, S, A) array is not needed
    return float(np.sqrt((1.0 - 2.0 * pi + (pi**2).sum(axis=1, keepdims=True)).max()))


def _check_nonnegative(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not np.isfinite(x) or x < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {x!r}")
    return float(x)


def gradient_tail_bound(gamma: float, horizon: int, r_max: float, score_max: float) -> float:
    """The bound of ``eq-pg-tail-bound`` on ``||grad J - grad J_H||`` (Euclidean norm over the table).

        gamma^H * score_max * r_max * (sqrt(H) / (1 - gamma) + 1 / (1 - gamma)^2)

    with ``r_max = max |r(s, a)|`` and ``score_max = max ||grad log pi(a|s)||``
    (:func:`score_norm_max`). The ``sqrt(H)`` term bounds the error of the truncated action values,
    the other the steps ``t >= H``; it is at most ``(H + 1) gamma^H score_max r_max / (1 - gamma)^2``.
    """
    gamma = check_gamma(gamma)
    H = check_positive_int(horizon, "horizon")
    r_max = _check_nonnegative(r_max, "r_max")
    score_max = _check_nonnegative(score_max, "score_max")
    return gamma**H * score_max * r_max * (np.sqrt(H) / (1.0 - gamma) + 1.0 / (1.0 - gamma) ** 2)


def skip_cycle_mdp(rewards, gamma: float) -> _mdp.MDP:
    """A cycle of ``n = len(rewards)`` states in which state 0 may skip state 1 (``rem-pg-tail-factor``).

    State ``s`` moves to ``s + 1 (mod n)`` whatever the action, except that in state 0 action 1
    moves to state 2. The reward is ``rewards[s]`` in state ``s`` for both actions; ``p0 = e_0``.
    Each visit to state 0 decides the phase of the walk around the cycle, so ``Pr(s_H = .)``
    depends on all the decisions made before ``H`` — on about ``H / n`` of them — and at some
    horizons the gradient of the truncation error exceeds the bound without its ``sqrt(H)`` term
    (by a constant factor: 1.21 with 4 states, 2.10 with 8, in chapter 2).
    """
    r = as_float_array(rewards, "rewards", ndim=1)
    n = r.shape[0]
    if n < 3:
        raise ValueError(f"rewards must have at least 3 entries (states), got {n}")
    gamma = check_gamma(gamma)
    P = np.zeros((n, 2, n))
    for s in range(n):
        P[s, :, (s + 1) % n] = 1.0
    P[0, 1, 1] = 0.0
    P[0, 1, 2] = 1.0
    p0 = np.zeros(n)
    p0[0] = 1.0
    return _mdp.MDP(P, np.repeat(r[:, None], 2, axis=1), p0, gamma)
