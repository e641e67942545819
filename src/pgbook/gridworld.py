"""Gridworld MDPs: walls, goals, slippery moves, dense or sparse transitions.

A bigger, more intuitive example for the exact engine of chapters 2–9 (:mod:`pgbook.mdp`,
:func:`pgbook.gradients.policy_gradient`): a state is a free cell of a ``height x width`` grid,
so quantities such as the visitation ``eta`` (eq. ``eq-visitation``) can be drawn as heat maps
(:meth:`Gridworld.to_grid`). Chapter 9's ``gridworld_4x4`` (Sutton & Barto, Example 4.1,
:func:`pgbook.episodic.gridworld_4x4`) is the special case ``gridworld(4, 4, goals=[(0, 0), (3, 3)],
gamma=1.0)``.

Dynamics (:func:`gridworld`):

* states are the free (non-wall) cells, numbered row by row; actions ``0..3`` are
  up, down, right, left (:data:`ACTIONS`);
* the intended move is executed with probability ``1 - slip``; with probability ``slip`` the move
  is drawn uniformly from all four (the intended one included), so the intended move has
  probability ``1 - 3 slip / 4`` and each other move ``slip / 4``;
* a move into a wall or off the grid leaves the agent where it is;
* goal cells are terminal (absorbing, zero reward; :class:`pgbook.mdp.MDP`'s ``terminal`` mask):
  the episode ends on entering one. Without goals the MDP is continuing (then ``gamma < 1``);
* every step from a non-goal cell pays ``step_reward``, plus ``goal_reward`` when it enters a goal,
  so ``R(s, a) = step_reward + goal_reward * Pr(s' is a goal | s, a)``;
* ``p0`` is uniform over the non-goal free cells, or concentrated on ``start``.

``sparse=True`` stores ``P`` as a ``scipy.sparse`` ``(S*A, S)`` matrix (at most five successors
per state-action pair), which the exact quantities of :mod:`pgbook.mdp` and
:func:`pgbook.gradients.policy_gradient` solve with a sparse LU: a 100 x 100 grid's exact policy
gradient takes well under a second (``benchmarks/exact_scaling.py``). A dense ``P`` needs
``8 S^2 A`` bytes (3.2 GB for 100 x 100).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from . import mdp as _mdp
from ._validate import as_float_array, check_gamma, check_positive_int, check_shape

__all__ = ["ACTIONS", "MOVES", "Gridworld", "gridworld"]

#: The four actions, in the order of :func:`pgbook.episodic.gridworld_4x4` (Sutton & Barto's Example 4.1).
ACTIONS = ("up", "down", "right", "left")
#: ``(d_row, d_col)`` of each action.
MOVES = np.array([(-1, 0), (1, 0), (0, 1), (0, -1)], dtype=np.int64)
MOVES.setflags(write=False)


@dataclass(frozen=True)
class Gridworld:
    """A gridworld MDP and the map between its states and the grid's cells.

    ``index[row, col]`` is the state of a cell (``-1`` on a wall); ``cells[s]`` is the
    ``(row, col)`` of state ``s``; ``goals`` the boolean mask of goal states (the MDP's ``terminal``
    mask, all ``False`` for a continuing gridworld).
    """

    mdp: _mdp.MDP
    index: np.ndarray
    cells: np.ndarray
    goals: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the grid."""
        return self.index.shape

    def state(self, row: int, col: int) -> int:
        """The state of cell ``(row, col)``; ``ValueError`` for a wall or a cell off the grid."""
        (cell,) = _cells((row, col), "cell", *self.shape, single=True)
        s = int(self.index[cell[0], cell[1]])
        if s < 0:
            raise ValueError(f"cell ({row}, {col}) is a wall, not a state")
        return s

    def to_grid(self, values) -> np.ndarray:
        """A per-state array ``(S,)`` laid out on the grid: shape ``(height, width)``, NaN on walls."""
        v = as_float_array(values, "values", ndim=1)
        check_shape(v, (self.mdp.n_states,), "values")
        out = np.full(self.shape, np.nan)
        out[self.cells[:, 0], self.cells[:, 1]] = v
        return out


def _cells(spec, name: str, height: int, width: int, single: bool = False) -> np.ndarray:
    """``spec`` (pairs ``(row, col)`` or a boolean ``(height, width)`` mask) as an ``(k, 2)`` int array.

    ``single``: ``spec`` is one pair (returned as a ``(1, 2)`` array).
    """
    shown = spec
    if single:
        usage = f"{name} must be a (row, col) pair of integers"
        spec = [spec]
    else:
        usage = f"{name} must be (row, col) integer pairs or a boolean ({height}, {width}) mask"
        if isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
            raise ValueError(f"{usage}, got {shown!r}")
        try:
            mask = np.asarray(spec)
        except ValueError:  # ragged nesting: not a mask
            mask = None
        if mask is not None and mask.dtype == bool:
            check_shape(mask, (height, width), name)
            return np.argwhere(mask)
    pairs = []
    for pair in spec:
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2 or not all(
            isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_)) for x in pair
        ):
            raise ValueError(f"{usage}, got {shown!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    bad = (arr[:, 0] < 0) | (arr[:, 0] >= height) | (arr[:, 1] < 0) | (arr[:, 1] >= width)
    if bad.any():
        raise ValueError(f"{name} has cells off the {height} x {width} grid: {arr[bad].tolist()}")
    return arr


def _finite(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real) or not np.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return float(x)


def gridworld(
    height: int,
    width: int,
    goals=None,
    walls=(),
    slip: float = 0.0,
    gamma: float = 0.99,
    step_reward: float = -1.0,
    goal_reward: float = 0.0,
    start=None,
    sparse: bool = False,
) -> Gridworld:
    """A ``height x width`` gridworld (dynamics in the module docstring); returns a :class:`Gridworld`.

    Parameters
    ----------
    goals : sequence of ``(row, col)``, boolean ``(height, width)`` mask, or None
        Terminal cells; ``None`` means the bottom-right corner, ``()`` a continuing gridworld.
    walls : sequence of ``(row, col)`` or boolean mask
        Cells that are not states; moves into them leave the agent in place.
    slip : float in [0, 1]
        Probability that the executed move is drawn uniformly from the four instead.
    gamma : float
        Discount factor, in [0, 1] with goals (``gamma = 1`` needs every free cell to be able to
        reach a goal) and in [0, 1) without.
    step_reward, goal_reward : float
        Reward of every step from a non-goal cell, and the extra reward for entering a goal.
    start : ``(row, col)`` or None
        Start cell; ``None``: ``p0`` uniform over the non-goal free cells.
    sparse : bool
        Store ``P`` as a sparse ``(S*A, S)`` matrix.
    """
    H = check_positive_int(height, "height")
    W = check_positive_int(width, "width")
    if not isinstance(sparse, bool):
        raise ValueError(f"sparse must be True or False, got {sparse!r}")
    if isinstance(slip, bool) or not isinstance(slip, numbers.Real) or not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must be a number in [0, 1], got {slip!r}")
    slip = float(slip)
    step_reward = _finite(step_reward, "step_reward")
    goal_reward = _finite(goal_reward, "goal_reward")

    wall = np.zeros((H, W), dtype=bool)
    wall_cells = _cells(walls, "walls", H, W)
    wall[wall_cells[:, 0], wall_cells[:, 1]] = True
    goal_cells = _cells([(H - 1, W - 1)] if goals is None else goals, "goals", H, W)
    on_wall = wall[goal_cells[:, 0], goal_cells[:, 1]]
    if on_wall.any():
        raise ValueError(f"goals {goal_cells[on_wall].tolist()} are walls")
    gamma = check_gamma(gamma, allow_one=goal_cells.size > 0)

    index = np.full((H, W), -1, dtype=np.int64)
    cells = np.argwhere(~wall)  # row by row
    S, A = cells.shape[0], len(ACTIONS)
    index[cells[:, 0], cells[:, 1]] = np.arange(S)
    goal = np.zeros(S, dtype=bool)
    goal[index[goal_cells[:, 0], goal_cells[:, 1]]] = True
    if goal.all():
        raise ValueError("goals and walls leave no free non-goal cell to start from")

    # nxt[s, b]: the state move b leads to from s (itself when blocked by a wall or the edge)
    r2, c2 = cells[:, None, 0] + MOVES[None, :, 0], cells[:, None, 1] + MOVES[None, :, 1]
    inside = (r2 >= 0) & (r2 < H) & (c2 >= 0) & (c2 < W)
    target = np.where(inside, index[np.clip(r2, 0, H - 1), np.clip(c2, 0, W - 1)], -1)
    nxt = np.where(target >= 0, target, np.arange(S)[:, None])

    if gamma == 1.0:  # every free cell must be able to reach a goal, or no policy is proper
        cut = np.flatnonzero(~_mdp._reaching(_move_graph(nxt), np.flatnonzero(goal)))
        if cut.size:
            raise ValueError(
                f"walls cut cells {cells[cut][:20].tolist()} off from every goal: with gamma = 1 no policy "
                "is proper (use gamma < 1, or open the walls)"
            )

    # transitions as (row s*A + a, column s', probability) triples; duplicates are summed
    live = np.flatnonzero(~goal)
    rows_live = (live[:, None] * A + np.arange(A)).ravel()
    rows = [rows_live, (np.flatnonzero(goal)[:, None] * A + np.arange(A)).ravel()]
    cols = [nxt[live].ravel(), np.repeat(np.flatnonzero(goal), A)]
    data = [np.full(rows_live.size, 1.0 - slip), np.ones(rows[1].size)]
    if slip > 0.0:
        for b in range(A):
            rows.append(rows_live)
            cols.append(np.repeat(nxt[live, b], A))
            data.append(np.full(rows_live.size, slip / A))
    rows, cols, data = np.concatenate(rows), np.concatenate(cols), np.concatenate(data)
    keep = data > 0.0
    rows, cols, data = rows[keep], cols[keep], data[keep]

    p_goal = np.zeros(S * A)
    np.add.at(p_goal, rows, data * goal[cols])
    R = np.where(goal[:, None], 0.0, step_reward + goal_reward * p_goal.reshape(S, A))
    if sparse:
        P = scipy.sparse.csr_array((data, (rows, cols)), shape=(S * A, S))
    else:
        P = np.zeros((S * A, S))
        np.add.at(P, (rows, cols), data)
        P = P.reshape(S, A, S)

    if start is None:
        p0 = np.where(goal, 0.0, 1.0 / (S - goal.sum()))
    else:
        (cell,) = _cells(start, "start", H, W, single=True)
        s0 = int(index[cell[0], cell[1]])
        if s0 < 0 or goal[s0]:
            raise ValueError(f"start {tuple(cell.tolist())} must be a free, non-goal cell")
        p0 = np.zeros(S)
        p0[s0] = 1.0
    terminal = goal if goal.any() else None
    mdp = _mdp.MDP(P, R, p0, gamma, terminal)
    for arr in (index, cells, goal):
        arr.setflags(write=False)
    return Gridworld(mdp=mdp, index=index, cells=cells, goals=goal)


def _move_graph(nxt: np.ndarray) -> scipy.sparse.csr_array:
    """Adjacency ``s -> nxt[s, b]`` of the four moves (the support of ``P_pi`` of any softmax policy)."""
    S, A = nxt.shape
    return scipy.sparse.csr_array((np.ones(S * A), (np.repeat(np.arange(S), A), nxt.ravel())), shape=(S, S))
