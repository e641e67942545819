"""The gridworld constructor (pgbook.gridworld): its dynamics by enumeration, its values by value iteration.

Every check recomputes the gridworld from its definition with separate code (coordinates and
dictionaries, no shared helper): the successor of each move, the slip mixture, the goal reward,
and ``V`` by value iteration on the grid itself.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from helpers import random_theta, relative_error
from pgbook import episodic as E
from pgbook import gradients as G
from pgbook import mdp as M
from pgbook import policies
from pgbook.gridworld import ACTIONS, gridworld

STEP = {"up": (-1, 0), "down": (1, 0), "right": (0, 1), "left": (0, -1)}
WALLS = [(1, 1), (1, 2), (3, 0)]
GOALS = [(0, 3), (3, 3)]


def enumerated_dynamics(height, width, walls, goals, slip, step_reward, goal_reward):
    """``{(cell, action): {next cell: probability}}`` and ``{(cell, action): reward}`` from the rules."""
    free = [(r, c) for r in range(height) for c in range(width) if (r, c) not in walls]
    P, R = {}, {}
    for cell, a in itertools.product(free, range(4)):
        out = {}
        if cell in goals:
            out[cell] = 1.0
        else:
            for executed in range(4):  # slip: the executed move is uniform over the four
                p = (1 - slip) * (executed == a) + slip / 4
                dr, dc = STEP[ACTIONS[executed]]
                nxt = (cell[0] + dr, cell[1] + dc)
                if not (0 <= nxt[0] < height and 0 <= nxt[1] < width) or nxt in walls:
                    nxt = cell
                out[nxt] = out.get(nxt, 0.0) + p
        P[cell, a] = out
        R[cell, a] = 0.0 if cell in goals else step_reward + goal_reward * sum(p for c, p in out.items() if c in goals)
    return free, P, R


@pytest.mark.parametrize("slip", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("sparse", [False, True])
def test_dynamics_and_rewards_match_the_rules_by_enumeration(slip, sparse):
    """Every P(s'|s, a) and R(s, a) of a 4 x 4 grid with walls and two goals, enumerated from the rules."""
    gw = gridworld(4, 4, goals=GOALS, walls=WALLS, slip=slip, gamma=0.9, step_reward=-1.0, goal_reward=5.0, sparse=sparse)
    free, P, R = enumerated_dynamics(4, 4, WALLS, GOALS, slip, -1.0, 5.0)
    assert gw.mdp.is_sparse == sparse and gw.mdp.n_states == len(free) == 13
    assert [tuple(c) for c in gw.cells] == free  # states are the free cells, row by row
    dense = M.transition_array(gw.mdp)
    for (cell, a), out in P.items():
        s = gw.state(*cell)
        want = np.zeros(len(free))
        for nxt, p in out.items():
            want[free.index(nxt)] = p
        np.testing.assert_allclose(dense[s, a], want, rtol=0, atol=1e-15)
        assert abs(gw.mdp.R[s, a] - R[cell, a]) <= 1e-14
    np.testing.assert_allclose(dense.sum(axis=2), 1.0, rtol=0, atol=1e-15)
    assert gw.mdp.terminal.tolist() == [tuple(c) in GOALS for c in gw.cells]
    np.testing.assert_allclose(gw.mdp.p0, np.where(gw.mdp.terminal, 0.0, 1 / 11))


def test_walls_are_not_states_and_are_never_entered():
    """Walls have no state index, no transition enters them, and a move into a wall stays put."""
    gw = gridworld(5, 6, goals=[(4, 5)], walls=[(2, c) for c in range(5)], slip=0.2, gamma=0.95)
    assert gw.mdp.n_states == 30 - 5 and (gw.index[2, :5] == -1).all()
    grid = gw.to_grid(np.arange(25.0))
    assert np.isnan(grid[2, :5]).all() and grid[4, 5] == gw.state(4, 5)
    with pytest.raises(ValueError, match="is a wall"):
        gw.state(2, 0)
    P = M.transition_array(gw.mdp)
    for s, a in itertools.product(range(25), range(4)):
        for nxt in np.flatnonzero(P[s, a]):
            assert abs(gw.cells[nxt] - gw.cells[s]).sum() <= 1  # one step at most, onto a free cell
    s = gw.state(1, 3)  # the wall is below (2, 3): "down" stays with 1 - slip + slip / 4
    assert abs(P[s, ACTIONS.index("down"), s] - (0.8 + 0.05)) <= 1e-15


def test_dense_and_sparse_gridworlds_are_the_same_mdp():
    kwargs = dict(goals=[(0, 5), (4, 0)], walls=[(2, 2), (2, 3)], slip=0.15, gamma=1.0, goal_reward=3.0)
    dense, sparse = gridworld(5, 6, **kwargs), gridworld(5, 6, sparse=True, **kwargs)
    np.testing.assert_allclose(M.transition_array(sparse.mdp), dense.mdp.P, rtol=0, atol=1e-16)
    np.testing.assert_array_equal(sparse.mdp.R, dense.mdp.R)
    assert sparse.mdp.P.nnz <= 5 * 4 * sparse.mdp.n_states


def test_gridworld_4x4_is_sutton_and_barto_example_4_1():
    """The 4x4 gridworld rebuilt on the constructor is, entry for entry, Example 4.1 written out in loops."""
    P, R = np.zeros((16, 4, 16)), np.zeros((16, 4))
    terminal = np.isin(np.arange(16), [0, 15])
    for s in range(16):
        if terminal[s]:
            P[s, :, s] = 1.0
            continue
        row, col = divmod(s, 4)
        for a, (dr, dc) in enumerate([(-1, 0), (1, 0), (0, 1), (0, -1)]):
            r2, c2 = row + dr, col + dc
            P[s, a, 4 * r2 + c2 if 0 <= r2 < 4 and 0 <= c2 < 4 else s] = 1.0
            R[s, a] = -1.0
    mdp = E.gridworld_4x4()
    np.testing.assert_array_equal(mdp.P, P)
    np.testing.assert_array_equal(mdp.R, R)
    np.testing.assert_array_equal(mdp.terminal, terminal)
    np.testing.assert_array_equal(mdp.p0, np.where(terminal, 0.0, 1.0 / 14.0))
    assert mdp.gamma == 1.0 and E.gridworld_4x4(0.9).gamma == 0.9


def value_iteration(height, width, walls, goals, slip, gamma, step_reward, goal_reward, policy, sweeps):
    """V of ``policy[(cell)] = action probabilities`` by repeated Bellman backups on the grid (no P)."""
    free, P, R = enumerated_dynamics(height, width, walls, goals, slip, step_reward, goal_reward)
    V = {c: 0.0 for c in free}
    for _ in range(sweeps):
        V = {
            c: 0.0 if c in goals else sum(policy[c][a] * (R[c, a] + gamma * sum(p * V[n] for n, p in P[c, a].items())) for a in range(4))
            for c in free
        }
    return np.array([V[c] for c in free])


@pytest.mark.claim("eq-bellman-v", how="exact")
@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_values_equal_value_iteration(gamma):
    """V of a softmax policy on a slippery 4 x 5 grid (sparse P) equals value iteration on the grid, to 1e-10."""
    walls, goals = [(1, 1), (2, 3)], [(3, 4)]
    gw = gridworld(4, 5, goals=goals, walls=walls, slip=0.25, gamma=gamma, step_reward=-0.5, goal_reward=2.0, sparse=True)
    pi = policies.probs(random_theta(gw.mdp.n_states, 4, 3))
    policy = {tuple(c): pi[s] for s, c in enumerate(gw.cells)}
    sweeps = 400 if gamma < 1 else 3000
    want = value_iteration(4, 5, walls, goals, 0.25, gamma, -0.5, 2.0, policy, sweeps)
    got = M.state_values(gw.mdp, pi)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    # power: without the slip, or with the goal reward dropped, the values differ
    assert np.abs(M.state_values(gridworld(4, 5, goals=goals, walls=walls, gamma=gamma, step_reward=-0.5, goal_reward=2.0).mdp, pi) - want).max() > 1e-2
    assert np.abs(M.state_values(gridworld(4, 5, goals=goals, walls=walls, slip=0.25, gamma=gamma, step_reward=-0.5).mdp, pi) - want).max() > 1e-2


@pytest.mark.claim("eq-episodic-pg", "eq-pg-visitation", how="autograd")
def test_sparse_gridworld_gradient_equals_autograd():
    """grad J_1 of a sparse 5 x 5 gridworld (gamma = 1, walls, slip) equals autograd of the dense one, 1e-10."""
    kwargs = dict(goals=[(4, 4)], walls=[(1, 1), (2, 2), (3, 1)], slip=0.1, gamma=1.0, goal_reward=1.0)
    sparse, dense = gridworld(5, 5, sparse=True, **kwargs), gridworld(5, 5, **kwargs)
    theta = random_theta(sparse.mdp.n_states, 4, 8)
    truth = E.autograd_gradient(dense.mdp, theta)
    assert relative_error(G.policy_gradient(sparse.mdp, theta), truth) <= 1e-10
    assert relative_error(G.policy_gradient_dense(dense.mdp, theta), truth) <= 1e-10


def test_start_cell_and_continuing_gridworld():
    gw = gridworld(3, 3, goals=(), start=(2, 0), gamma=0.5, step_reward=1.0)
    assert gw.mdp.terminal is None and gw.mdp.p0[gw.state(2, 0)] == 1.0
    np.testing.assert_allclose(M.state_values(gw.mdp, np.full((9, 4), 0.25)), 2.0, rtol=0, atol=1e-14)  # 1/(1-gamma)
    assert gridworld(2, 3).mdp.terminal.tolist() == [False] * 5 + [True]  # default goal: bottom-right corner


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(height=0), "height must be an integer"),
        (dict(width=2.5), "width must be an integer"),
        (dict(slip=1.5), "slip must be a number in"),
        (dict(slip=True), "slip must be a number in"),
        (dict(walls=[(5, 0)]), "walls has cells off the"),
        (dict(walls=[(0.5, 1)]), "walls must be"),
        (dict(walls=np.zeros((2, 2), dtype=bool)), "walls must have shape"),
        (dict(goals=[(1, 1)], walls=[(1, 1)]), r"goals \[\[1, 1\]\] are walls"),
        (dict(goals=[(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]), "no free non-goal cell"),
        (dict(goals=(), gamma=1.0), r"gamma must lie in \[0, 1\)"),
        (dict(gamma=1.5), "gamma must lie in"),
        (dict(walls=[(1, 2), (2, 1)], gamma=1.0, goals=[(2, 2)]), "walls cut cells"),
        (dict(start=(2, 2)), "start .* must be a free, non-goal cell"),
        (dict(start=()), r"start must be a \(row, col\) pair"),
        (dict(start=(True, 0)), r"start must be a \(row, col\) pair"),
        (dict(walls=5), r"walls must be \(row, col\) integer pairs"),
        (dict(goals=[(1, 1.0)]), r"goals must be \(row, col\) integer pairs"),
        (dict(step_reward=float("nan")), "step_reward must be a finite number"),
        (dict(goal_reward="1"), "goal_reward must be a finite number"),
        (dict(sparse=1), "sparse must be True or False"),
    ],
)
def test_invalid_arguments_raise_naming_them(kwargs, match):
    args = dict(height=3, width=3) | kwargs
    with pytest.raises(ValueError, match=match):
        gridworld(**args)


def test_walls_that_only_matter_at_gamma_one():
    """An enclosed cell is fine when discounting (gamma < 1), and rejected at gamma = 1."""
    gw = gridworld(3, 3, goals=[(2, 2)], walls=[(0, 1), (1, 0)], gamma=0.9)
    assert np.isfinite(M.state_values(gw.mdp, np.full((gw.mdp.n_states, 4), 0.25))).all()
    with pytest.raises(ValueError, match=r"walls cut cells \[\[0, 0\]\] off from every goal"):
        gridworld(3, 3, goals=[(2, 2)], walls=[(0, 1), (1, 0)], gamma=1.0)
    with pytest.raises(ValueError, match="values must have shape"):
        gw.to_grid(np.ones(3))
