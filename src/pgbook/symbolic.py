"""Symbolic (sympy) derivations of the policy gradient theorem on a 2-state, 2-action MDP.

Chapter 2 (:doc:`/book/ch02_policy_gradient_theorem`), theorem ``thm-policy-gradient``.
The rewards ``r_sa``, the discount ``gamma`` and the logits are symbols; the transition
probabilities and the initial distribution are exact rationals (fully symbolic dynamics also
works but takes minutes). Writing ``u_sa = exp(theta_sa)`` makes every quantity a rational
function, so ``d/dtheta_sa = u_sa d/du_sa`` and ``sympy.cancel`` decides equality exactly.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import sympy as sp

__all__ = ["TwoStateMDP", "two_state_mdp", "theorem_minus_derivative"]


@dataclass(frozen=True)
class TwoStateMDP:
    """Symbols and exact expressions of the 2-state, 2-action example."""

    u: sp.Matrix  # exp(theta), positive symbols
    r: sp.Matrix  # rewards r[s, a], real symbols
    gamma: sp.Symbol
    pi: sp.Matrix
    V: sp.Matrix
    Q: sp.Matrix
    eta: sp.Matrix  # unnormalised discounted visitation
    J: sp.Expr

    def d_dtheta(self, expr: sp.Expr, s: int, a: int) -> sp.Expr:
        """``d expr / d theta[s, a]`` by the chain rule through ``u = exp(theta)``."""
        s, a = _check_index(s, "s"), _check_index(a, "a")
        try:
            expr = sp.sympify(expr, strict=True)
        except (sp.SympifyError, TypeError) as exc:
            raise ValueError(f"expr must be a sympy expression (or a number), got {expr!r}") from exc
        if not isinstance(expr, sp.Expr):
            raise ValueError(f"expr must be a sympy expression (or a number), got {type(expr).__name__}")
        return self.u[s, a] * sp.diff(expr, self.u[s, a])


def _check_index(i, name: str) -> int:
    """A state or action index of the 2-state, 2-action example: 0 or 1 (an int, not a bool)."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral) or not 0 <= i <= 1:
        raise ValueError(f"{name} must be 0 or 1 (an integer index of the 2-state, 2-action example), got {i!r}")
    return int(i)


def _check_probability(x, name: str) -> sp.Expr:
    """A probability: a number in [0, 1], made exact (floats with ``nsimplify``), or a real symbolic
    expression (symbolic dynamics; its range cannot be checked)."""
    if isinstance(x, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name} must be a probability in [0, 1], got {x!r}")
    try:
        e = sp.sympify(x, strict=True)
        e = sp.nsimplify(e) if e.is_number else e
    except (sp.SympifyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{name} must be a probability in [0, 1], got {x!r}") from exc
    if not isinstance(e, sp.Expr) or e.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or e.is_real is False:
        raise ValueError(f"{name} must be a probability in [0, 1], got {x!r}")
    if e.is_number and not (e.is_real and 0 <= e <= 1):
        raise ValueError(f"{name} must be a probability in [0, 1], got {x!r}")
    return e


def two_state_mdp(P0=None, p0=None) -> TwoStateMDP:
    """Build the example. ``P0[s][a]`` = Pr(s' = 0 | s, a) (rationals); ``p0`` = Pr(s_0 = 0).

    ``P0`` is a 2 x 2 nested sequence and ``p0`` a number, all probabilities in [0, 1] (floats are
    made exact with ``sympy.nsimplify``) or real sympy expressions (symbolic dynamics, slow).
    Defaults: ``P0 = [[1/3, 3/4], [1/5, 2/3]]``, ``p0 = 2/5``.
    """
    if P0 is None:
        P0 = [[sp.Rational(1, 3), sp.Rational(3, 4)], [sp.Rational(1, 5), sp.Rational(2, 3)]]
    rows = list(P0) if isinstance(P0, (list, tuple)) else None
    if rows is None or len(rows) != 2 or not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in rows):
        raise ValueError(f"P0 must be a 2 x 2 nested list of probabilities P0[s][a] = Pr(s' = 0 | s, a), got {P0!r}")
    P0 = [[_check_probability(x, f"P0[{i}][{j}]") for j, x in enumerate(r)] for i, r in enumerate(rows)]
    p0 = sp.Rational(2, 5) if p0 is None else _check_probability(p0, "p0")
    u = sp.Matrix(2, 2, sp.symbols("u_00 u_01 u_10 u_11", positive=True))
    r = sp.Matrix(2, 2, sp.symbols("r_00 r_01 r_10 r_11", real=True))
    gamma = sp.Symbol("gamma", positive=True)
    pi = sp.Matrix(2, 2, lambda s, a: u[s, a] / (u[s, 0] + u[s, 1]))

    def P(s, a, s2):
        return P0[s][a] if s2 == 0 else 1 - P0[s][a]

    P_pi = sp.Matrix(2, 2, lambda s, s2: sum(pi[s, a] * P(s, a, s2) for a in range(2)))
    r_pi = sp.Matrix(2, 1, lambda s, _: sum(pi[s, a] * r[s, a] for a in range(2)))
    M = sp.eye(2) - gamma * P_pi
    V = M.LUsolve(r_pi)
    Q = sp.Matrix(2, 2, lambda s, a: r[s, a] + gamma * sum(P(s, a, s2) * V[s2] for s2 in range(2)))
    p0_row = sp.Matrix([[p0, 1 - p0]])
    eta = M.T.LUsolve(p0_row.T)
    J = (p0_row * V)[0]
    return TwoStateMDP(u, r, gamma, pi, V, Q, eta, J)


def theorem_minus_derivative(ex: TwoStateMDP, s: int, a: int) -> sp.Expr:
    """``dJ/dtheta[s, a]`` minus the theorem's ``sum_s' eta sum_a' pi dlog pi/dtheta Q``, cancelled.

    Returns the expression after ``sympy.cancel``: exactly ``0`` when the theorem holds.
    """
    if not isinstance(ex, TwoStateMDP):
        raise ValueError(f"ex must be a TwoStateMDP (from two_state_mdp()), got {type(ex).__name__}")
    s, a = _check_index(s, "s"), _check_index(a, "a")
    derivative = ex.d_dtheta(ex.J, s, a)
    theorem = sum(
        ex.eta[s2] * ex.pi[s2, a2] * ex.d_dtheta(sp.log(ex.pi[s2, a2]), s, a) * ex.Q[s2, a2]
        for s2 in range(2)
        for a2 in range(2)
    )
    return sp.cancel(sp.together(derivative - theorem))
