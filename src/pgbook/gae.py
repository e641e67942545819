"""Generalized advantage estimation, with termination and truncation kept apart.

Chapter 8 (:doc:`/book/ch08_gae`): definition ``def-gae`` and equations ``eq-gae-recursion``,
``eq-gae-lambda-zero``, ``eq-gae-lambda-one``, ``eq-gae-lambda-return``, ``eq-gae-mean``,
``eq-gae-second-moment`` and ``eq-gae-truncation``.
The agents of chapters 9 and 10 call :func:`gae`; the other functions evaluate the definitions
literally and exist so that the chapter and the tests can check :func:`gae` against them.

A rollout of ``T`` steps (one column per environment for shape ``(T, n_envs)``) is described by

* ``rewards[t]`` = r_t;
* ``values[t]`` = V(s_t);
* ``next_values[t]`` = V(s_{t+1}). When step ``t`` ended its episode by *truncation* (a time
  limit), s_{t+1} is the true final observation of that episode, not the observation the
  environment returned after its reset;
* ``terminated[t]``: s_{t+1} is a terminal state, whose value is 0 by definition (no bootstrap);
* ``episode_end[t]``: step ``t`` was the last of its episode, by termination *or* truncation
  (the sum over future TD errors stops there). ``terminated[t]`` implies ``episode_end[t]``.

Then (definition ``def-gae`` and eq. ``eq-gae-recursion``)

    delta_t = r_t + gamma (1 - terminated_t) next_values_t - values_t,
    A_t     = delta_t + gamma lam (1 - episode_end_t) A_{t+1},      A_T = 0,

and ``returns = advantages + values`` is the lambda-return (eq. ``eq-gae-lambda-return``). The
last step of a rollout that did not end an episode bootstraps through ``next_values[T-1]``.

Inside an episode the functions assume ``next_values[t] == values[t + 1]`` (both are V of the
same state); :func:`gae` uses only ``next_values`` in delta_t, exactly as written above.
"""

from __future__ import annotations


import numpy as np
import torch

from . import mdp as _mdp
from . import policies as _policies
from .gradients import score_contraction
from ._validate import as_float_array, check_gamma, check_mdp, check_positive_int, check_shape

__all__ = [
    "gae",
    "td_errors",
    "gae_definition",
    "n_step_return",
    "lambda_return",
    "tabular_gae_moments",
    "gae_policy_gradient",
]

_FLOAT_NAMES = ("rewards", "values", "next_values")
_FLAG_NAMES = ("terminated", "episode_end")


def _check_flags_np(flag: np.ndarray, name: str) -> np.ndarray:
    if flag.dtype == np.bool_:
        return flag
    if not np.issubdtype(flag.dtype, np.number):
        raise ValueError(f"{name} must be an array of booleans or 0/1 numbers, got dtype {flag.dtype}")
    if not np.all((flag == 0) | (flag == 1)):
        raise ValueError(f"{name} must contain only 0/1 (or booleans); got other values")
    return flag.astype(bool)


def _check_flags_torch(flag: torch.Tensor, name: str) -> torch.Tensor:
    if flag.dtype == torch.bool:
        return flag
    if flag.is_complex():
        raise ValueError(f"{name} must be a tensor of booleans or 0/1 numbers, got dtype {flag.dtype}")
    if not bool(((flag == 0) | (flag == 1)).all()):
        raise ValueError(f"{name} must contain only 0/1 (or booleans); got other values")
    return flag.bool()


def _check_shapes(arrays: dict) -> None:
    shape = tuple(arrays["rewards"].shape)
    if len(shape) not in (1, 2) or shape[0] == 0:
        raise ValueError(f"rewards must have shape (T,) or (T, n_envs) with T >= 1, got {shape}")
    for name, arr in arrays.items():
        if tuple(arr.shape) != shape:
            raise ValueError(f"{name} must have the shape of rewards {shape}, got {tuple(arr.shape)}")


def _check_consistent_flags(terminated, episode_end) -> None:
    if bool((terminated & ~episode_end).any()):
        raise ValueError("episode_end must be true wherever terminated is true (a termination ends the episode)")


def _prepare(rewards, values, next_values, terminated, episode_end):
    """Validate and return ``(backend, floats dict, terminated, episode_end)``.

    The torch backend is used when any of the three float inputs is a tensor; all tensors must
    then share one device, and the result has the promoted floating dtype of the float inputs.
    """
    raw = dict(zip(_FLOAT_NAMES + _FLAG_NAMES, (rewards, values, next_values, terminated, episode_end)))
    use_torch = any(isinstance(raw[n], torch.Tensor) for n in _FLOAT_NAMES)
    if use_torch:
        tensors = [v for v in raw.values() if isinstance(v, torch.Tensor)]
        device = tensors[0].device
        for name, v in raw.items():
            if isinstance(v, torch.Tensor) and v.device != device:
                raise ValueError(f"{name} is on device {v.device}, but the other tensors are on {device}")
        out = {}
        for name, v in raw.items():
            try:
                out[name] = v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v), device=device)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ValueError(f"{name} must be an array of numbers, got {type(v).__name__}") from exc
        dtype = out["rewards"].dtype
        for name in _FLOAT_NAMES:
            if out[name].dtype == torch.bool or out[name].is_complex():
                raise ValueError(f"{name} must hold real numbers, got dtype {out[name].dtype}")
            dtype = torch.promote_types(dtype, out[name].dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        _check_shapes(out)
        floats = {}
        for name in _FLOAT_NAMES:
            x = out[name].to(dtype)
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} contains NaN or infinite values")
            floats[name] = x
        term = _check_flags_torch(out["terminated"], "terminated")
        end = _check_flags_torch(out["episode_end"], "episode_end")
        _check_consistent_flags(term, end)
        return "torch", floats, term, end

    out = {}
    for name, v in raw.items():
        try:
            arr = np.asarray(v)
        except (TypeError, ValueError) as exc:  # pragma: no cover - numpy accepts almost anything
            raise ValueError(f"{name} must be an array of numbers, got {type(v).__name__}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{name} must be an array of numbers, got {type(v).__name__} of dtype {arr.dtype}")
        out[name] = arr
    _check_shapes(out)
    floats = {}
    for name in _FLOAT_NAMES:
        if np.iscomplexobj(out[name]) or out[name].dtype == np.bool_:
            raise ValueError(f"{name} must hold real numbers, got dtype {out[name].dtype}")
        x = out[name].astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or infinite values")
        floats[name] = x
    term = _check_flags_np(out["terminated"], "terminated")
    end = _check_flags_np(out["episode_end"], "episode_end")
    _check_consistent_flags(term, end)
    return "numpy", floats, term, end


def _check_lam(lam) -> float:
    return check_gamma(lam, name="lam", allow_one=True)


def _deltas(floats, term, gamma):
    not_term = ~term
    if isinstance(not_term, torch.Tensor):
        not_term = not_term.to(floats["rewards"].dtype)
    else:
        not_term = not_term.astype(np.float64)
    return floats["rewards"] + gamma * not_term * floats["next_values"] - floats["values"]


def td_errors(rewards, values, next_values, terminated, episode_end, gamma):
    """TD errors ``delta_t = r_t + gamma (1 - terminated_t) next_values_t - values_t``.

    Definition ``def-gae``. Same inputs, shapes and backends as :func:`gae` (``episode_end`` is
    validated but does not enter delta_t).
    """
    gamma = check_gamma(gamma, allow_one=True)
    backend, floats, term, _ = _prepare(rewards, values, next_values, terminated, episode_end)
    if backend == "torch":
        with torch.no_grad():
            return _deltas(floats, term, gamma)
    return _deltas(floats, term, gamma)


def gae(rewards, values, next_values, terminated, episode_end, gamma, lam):
    """Generalized advantage estimates and lambda-returns by the backward recursion.

    Parameters
    ----------
    rewards, values, next_values : arrays of shape ``(T,)`` or ``(T, n_envs)``
        r_t, V(s_t) and V(s_{t+1}) (for a truncated step, V of the true final observation).
        Time is the *first* axis, as in a rollout buffer filled step by step: an array laid out
        ``(n_envs, T)`` is read as ``T = n_envs`` steps of ``T`` environments and gives wrong
        advantages without any error (no shape check can tell the two apart when both are 2-D);
        transpose it first.
    terminated, episode_end : boolean (or 0/1) arrays of the same shape
        s_{t+1} terminal (no bootstrap); step t ended its episode (termination or truncation).
    gamma, lam : floats in [0, 1]
        Discount factor and GAE parameter.

    Returns
    -------
    (advantages, returns)
        ``A_t = delta_t + gamma lam (1 - episode_end_t) A_{t+1}`` (eq. ``eq-gae-recursion``) and
        ``returns = advantages + values``. numpy in, float64 numpy out; torch in (any of the
        float inputs a tensor), torch out with the promoted floating dtype and the device of the
        inputs. The torch path runs under ``torch.no_grad()``: advantages and returns are
        constants of the loss (they use the values recorded at collection time).

    Raises
    ------
    ValueError
        Shapes that differ or are not ``(T,)``/``(T, n_envs)``, NaN or infinite entries, flags
        that are not 0/1, ``terminated`` without ``episode_end``, gamma or lam outside [0, 1].
    """
    gamma = check_gamma(gamma, allow_one=True)
    lam = _check_lam(lam)
    backend, floats, term, end = _prepare(rewards, values, next_values, terminated, episode_end)
    if backend == "torch":
        with torch.no_grad():
            deltas = _deltas(floats, term, gamma)
            advantages = _backward(deltas, (gamma * lam) * (~end).to(deltas.dtype))
            return advantages, advantages + floats["values"]  # constants: no autograd history
    deltas = _deltas(floats, term, gamma)
    advantages = _backward(deltas, (gamma * lam) * (~end).astype(np.float64))
    return advantages, advantages + floats["values"]


def _backward(deltas, decay):
    """``A_t = delta_t + decay_t A_{t+1}`` with ``A_T = 0``, for numpy arrays or torch tensors."""
    advantages = deltas.clone() if isinstance(deltas, torch.Tensor) else deltas.copy()
    for t in range(deltas.shape[0] - 2, -1, -1):
        advantages[t] = deltas[t] + decay[t] * advantages[t + 1]
    return advantages


# ---------------------------------------------------------------------------------------------
# Reference implementations: the definitions evaluated literally (numpy float64, plain loops).
# ---------------------------------------------------------------------------------------------


def _reference_inputs(rewards, values, next_values, terminated, episode_end):
    """Validated float64 numpy copies, always 2-D ``(T, N)``, plus whether the input was 1-D."""
    def to_np(x):
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x

    args = [to_np(x) for x in (rewards, values, next_values, terminated, episode_end)]
    _, floats, term, end = _prepare(*args)
    one_d = floats["rewards"].ndim == 1

    def col(x):
        return x[:, None] if one_d else x

    return col(floats["rewards"]), col(floats["values"]), col(floats["next_values"]), col(term), col(end), one_d


def _segment_end(end: np.ndarray, t: int) -> int:
    """Index of the last step of the episode segment that contains step ``t`` (within the rollout)."""
    T = end.shape[0]
    k = t
    while k < T - 1 and not end[k]:
        k += 1
    return k


def gae_definition(rewards, values, next_values, terminated, episode_end, gamma, lam):
    """``A_t = sum_l (gamma lam)^l delta_{t+l}``, the sum stopping at the end of t's episode.

    Definition ``def-gae``, evaluated term by term with explicit powers (a brute-force reference for
    :func:`gae`, O(T^2)). The sum runs over l = 0, ..., k - t where k is the first step >= t with
    ``episode_end[k]`` (or the last step of the rollout). Returns float64 numpy of the input's shape.
    """
    gamma = check_gamma(gamma, allow_one=True)
    lam = _check_lam(lam)
    r, v, nv, term, end, one_d = _reference_inputs(rewards, values, next_values, terminated, episode_end)
    T, N = r.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            k = _segment_end(end[:, n], t)
            total = 0.0
            for l in range(k - t + 1):
                u = t + l
                bootstrap = 0.0 if term[u, n] else nv[u, n]
                delta = r[u, n] + gamma * bootstrap - v[u, n]
                total += (gamma * lam) ** l * delta
            out[t, n] = total
    return out[:, 0] if one_d else out


def n_step_return(rewards, values, next_values, terminated, episode_end, gamma, n):
    """The n-step return ``G_t^(n)``, from its definition.

    ``G_t^(n) = sum_{k<m} gamma^k r_{t+k} + gamma^m (1 - terminated_{t+m-1}) V(s_{t+m})`` with
    ``m = min(n, k_end - t + 1)``: the sum stops early at the end of t's episode (or of the
    rollout), and bootstraps with ``V(s_{t+m}) = next_values[t+m-1]`` unless that state is
    terminal. ``n`` is an integer >= 1. Returns float64 numpy of the input's shape.
    """
    gamma = check_gamma(gamma, allow_one=True)
    n = check_positive_int(n, "n")
    r, _v, nv, term, end, one_d = _reference_inputs(rewards, values, next_values, terminated, episode_end)
    T, N = r.shape
    out = np.zeros((T, N))
    for j in range(N):
        for t in range(T):
            m = min(n, _segment_end(end[:, j], t) - t + 1)
            G = sum(gamma**k * r[t + k, j] for k in range(m))
            last = t + m - 1
            if not term[last, j]:
                G += gamma**m * nv[last, j]
            out[t, j] = G
    return out[:, 0] if one_d else out


def lambda_return(rewards, values, next_values, terminated, episode_end, gamma, lam):
    """The lambda-return ``G_t^lam``, from its definition as a mixture of n-step returns.

    ``G_t^lam = (1 - lam) sum_{n=1}^{M-1} lam^{n-1} G_t^(n) + lam^{M-1} G_t^(M)`` where ``M`` is
    the number of steps from t to the end of its episode segment: every n-step return with
    n >= M equals ``G_t^(M)``, so the infinite mixture's tail weight ``lam^{M-1}`` collects on it
    (eq. ``eq-gae-lambda-return``). Returns float64 numpy of the input's shape.
    """
    gamma = check_gamma(gamma, allow_one=True)
    lam = _check_lam(lam)
    r, v, nv, term, end, one_d = _reference_inputs(rewards, values, next_values, terminated, episode_end)
    T, N = r.shape
    M_max = T
    G = np.stack([n_step_return(r, v, nv, term, end, gamma, k) for k in range(1, M_max + 1)])  # (n, T, N)
    out = np.zeros((T, N))
    for j in range(N):
        for t in range(T):
            M = _segment_end(end[:, j], t) - t + 1
            mix = sum((1 - lam) * lam ** (k - 1) * G[k - 1, t, j] for k in range(1, M))
            out[t, j] = mix + lam ** (M - 1) * G[M - 1, t, j]
    return out[:, 0] if one_d else out


# ---------------------------------------------------------------------------------------------
# Exact bias and variance on a tabular MDP (continuing task, no episode ends).
# ---------------------------------------------------------------------------------------------


def tabular_gae_moments(mdp: _mdp.MDP, pi, values, lam):
    """Exact conditional mean and variance of the GAE estimate given ``(s_t, a_t) = (s, a)``.

    For the continuing (infinite-horizon) task of ``mdp`` under policy ``pi`` and an arbitrary
    value table ``values`` (the critic V, not necessarily V^pi), with c = gamma lam and
    ``delta(s, a, s') = R(s, a) + gamma V(s') - V(s)``, the estimate from (s, a) is
    ``delta(s, a, s_1) + c * Ahat(s_1)`` where ``Ahat(s_1)`` is the estimate from the next state
    (its action drawn from pi), independent of the past given s_1 (Markov property). Hence

    * mean (eq. ``eq-gae-mean``): ``m(s) = (I - c P_pi)^{-1} dbar_pi`` and
      ``mean(s, a) = dbar(s, a) + c P(.|s, a) . m``, with ``dbar(s, a) = E[delta | s, a]``;
    * second moment (eq. ``eq-gae-second-moment``): ``q(s) = (I - c^2 P_pi)^{-1} b_pi`` with
      ``b(s, a) = sum_s' P(s'|s, a) [delta^2 + 2 c delta m(s')]`` and
      ``second(s, a) = b(s, a) + c^2 P(.|s, a) . q``.

    Returns ``(mean, variance)``, both of shape ``(S, A)``, with ``variance = second - mean^2``.
    A sparse ``mdp`` is densified (:meth:`pgbook.mdp.MDP.as_dense`). Rewards or values beyond
    ``1e100`` in magnitude are scaled by a power of two first (exact), so that the squares inside the
    second moment do not overflow into ``inf - inf``; a variance beyond float64 is then ``inf``.
    """
    mdp = check_mdp(mdp)
    pi = _mdp.check_policy(mdp, pi)
    V = as_float_array(values, "values", ndim=1)
    check_shape(V, (mdp.n_states,), "values")
    lam = _check_lam(lam)
    return _gae_moments(mdp.as_dense(), pi, V, lam, second_moment=True)


def _gae_moments(mdp: _mdp.MDP, pi: np.ndarray, V: np.ndarray, lam: float, second_moment: bool):
    """:func:`tabular_gae_moments` on validated input (a dense ``mdp``); ``(mean, variance or None)``."""
    scale = max(float(np.abs(mdp.R).max()), float(np.abs(V).max()))
    k = 2.0 ** int(np.frexp(scale)[1]) if scale > 1e100 else 1.0  # a power of two: scaling is exact
    R, V = mdp.R / k, V / k
    S = mdp.n_states
    c = mdp.gamma * lam
    delta = R[:, :, None] + mdp.gamma * V[None, None, :] - V[:, None, None]  # (S, A, S')
    dbar = np.einsum("sat,sat->sa", mdp.P, delta)
    P_pi = _mdp.policy_transition_matrix(mdp, pi)
    m = np.linalg.solve(np.eye(S) - c * P_pi, (pi * dbar).sum(1))
    mean = dbar + c * mdp.P @ m
    if not second_moment:
        return k * mean, None
    b = np.einsum("sat,sat->sa", mdp.P, delta**2 + 2.0 * c * delta * m[None, None, :])
    q = np.linalg.solve(np.eye(S) - c**2 * P_pi, (pi * b).sum(1))
    second = b + c**2 * mdp.P @ q
    return k * mean, k * (k * (second - mean**2))


def gae_policy_gradient(mdp: _mdp.MDP, theta, values, lam) -> np.ndarray:
    """Expected policy-gradient estimate when GAE replaces the advantage; exact, shape ``(S, A)``.

    ``E[sum_t gamma^t grad log pi(a_t|s_t) Ahat_t] = sum_s eta(s) sum_a pi(a|s) score(s, a)
    mean(s, a)`` with ``mean`` from :func:`tabular_gae_moments` for the tabular softmax policy
    ``pi = softmax(theta)``, the score contracted by its block structure
    (:func:`pgbook.gradients.score_contraction`). Equal to :func:`pgbook.gradients.policy_gradient` exactly when the
    estimator is unbiased for the gradient.
    """
    mdp = check_mdp(mdp)
    theta = _policies.check_theta(theta)
    check_shape(theta, (mdp.n_states, mdp.n_actions), "theta")
    pi = _policies.probs(theta)
    V = as_float_array(values, "values", ndim=1)
    check_shape(V, (mdp.n_states,), "values")
    lam = _check_lam(lam)
    mean, _ = _gae_moments(mdp.as_dense(), pi, V, lam, second_moment=False)
    eta = _mdp.discounted_visits(mdp, pi)
    return score_contraction(pi, eta, mean)
