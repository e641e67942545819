"""Tests of the agents' shared machinery (pgbook.agents_common, pgbook.train, the benchmark).

Chapters 9–10 (:doc:`/book/ch09_a2c`, :doc:`/book/ch10_ppo`): configuration checks, episode
handling in the rollout (terminated vs truncated), determinism, the command line, and the
reproduction of the committed benchmark rows.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import math
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgbook import a2c, agents_common as common, ppo, reproducibility, train as cli

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("solve_cartpole", ROOT / "benchmarks" / "solve_cartpole.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["solve_cartpole"] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Configuration and environment checks: bad input fails at once, with the argument's name.
# ---------------------------------------------------------------------------------------------

BAD_COMMON = [
    ({"total_steps": -1}, "total_steps"),
    ({"total_steps": 0}, "total_steps"),
    ({"total_steps": 10}, "total_steps"),  # less than one rollout
    ({"n_envs": 0}, "n_envs"),
    ({"n_steps": 1.5}, "n_steps"),
    ({"gamma": 1.0}, "gamma"),
    ({"gamma": float("nan")}, "gamma"),
    ({"lam": 1.5}, "lam"),
    ({"lr": 0.0}, "lr"),
    ({"vf_coef": -1.0}, "vf_coef"),
    ({"ent_coef": -0.01}, "ent_coef"),
    ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ({"hidden": (64, 0)}, "hidden"),
    ({"hidden": ()}, "hidden"),
    ({"device": "tpu"}, "device"),
    ({"seed": -1}, "seed"),
    ({"anneal_lr": "yes"}, "anneal_lr"),
    ({"env_id": ""}, "env_id"),
    ({"eval_every": -5}, "eval_every"),
    ({"max_episode_steps": 0}, "max_episode_steps"),
]


@pytest.mark.parametrize("cls", [a2c.A2CConfig, ppo.PPOConfig])
@pytest.mark.parametrize("kwargs,name", BAD_COMMON)
def test_config_rejects_bad_values(cls, kwargs, name):
    """Every bad hyper-parameter raises ValueError naming it, at construction."""
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"clip_eps": 0.0}, "clip_eps"),
        ({"clip_eps": -0.2}, "clip_eps"),
        ({"clip_eps": float("nan")}, "clip_eps"),
        ({"n_epochs": 0}, "n_epochs"),
        ({"minibatch_size": 100}, "minibatch_size"),  # does not divide 8 * 32
        ({"adam_eps": 0.0}, "adam_eps"),
        ({"anneal_clip": 1}, "anneal_clip"),
    ],
)
def test_ppo_config_rejects_bad_values(kwargs, name):
    """PPO-specific fields: clip epsilon <= 0, epochs, minibatch size, Adam epsilon."""
    with pytest.raises(ValueError, match=name):
        ppo.PPOConfig(**kwargs)


def test_a2c_config_rejects_bad_optimizer():
    """A2C's optimiser is RMSprop or Adam; anything else fails."""
    with pytest.raises(ValueError, match="optimizer"):
        a2c.A2CConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="optim_eps"):
        a2c.A2CConfig(optim_eps=-1.0)


def test_defaults_are_valid_and_no_clip_is_allowed():
    """The default configurations validate, and clip_eps = inf (no clipping) is accepted."""
    assert ppo.PPOConfig().clip_eps == 0.2 and a2c.A2CConfig().lam == 1.0
    assert ppo.PPOConfig(clip_eps=math.inf).clip_eps == math.inf


@pytest.mark.parametrize(
    "env_id,match",
    [("NoSuchEnv-v0", "not a registered"), ("CartPole-v99", "not a registered"), ("Pendulum-v1", "Discrete"), ("", "env_id")],
)
def test_check_env_rejects_unknown_and_continuous(env_id, match):
    """Unknown ids and continuous-action environments are rejected with a clear message."""
    with pytest.raises(ValueError, match=match):
        common.check_env(env_id)


@pytest.mark.parametrize("train,cls,env_id,match", [
    (a2c.train, a2c.A2CConfig, "MountainCarContinuous-v0", "Discrete"),  # A2C: discrete actions only
    (ppo.train, ppo.PPOConfig, "Blackjack-v1", "flat Box"),  # PPO: Discrete or a flat, bounded Box
])
def test_train_fails_at_start_on_bad_env(train, cls, env_id, match, monkeypatch):
    """train() rejects an environment it cannot drive before creating any environment or network."""
    monkeypatch.setattr(common, "make_vec_env", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=match):
        train(cls(env_id=env_id))
    with pytest.raises(ValueError, match="must be"):
        train(object())


def test_public_functions_reject_bad_input():
    """Bad shapes and arguments of the shared building blocks raise ValueError."""
    with pytest.raises(ValueError, match="n_actions"):
        common.ActorCritic(4, 1)
    with pytest.raises(ValueError, match="obs_dim"):
        common.ActorCritic(0, 2)
    with pytest.raises(ValueError, match="n_steps"):
        common.RolloutStorage(0, 2, 4)
    with pytest.raises(ValueError, match="n_envs"):
        common.make_vec_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="n_envs"):
        common.EpisodeTracker(0)
    with pytest.raises(ValueError, match="max_norm"):
        common.clip_grad_norm([], -1.0)
    with pytest.raises(ValueError, match="device"):
        ppo.PPOConfig(device="tpu")
    model = common.ActorCritic(4, 2)
    with pytest.raises(ValueError, match="n_episodes"):
        common.evaluate(model, "CartPole-v1", n_episodes=0)
    with pytest.raises(ValueError, match="not a registered"):
        common.evaluate(model, "Nope-v0")
    default = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])  # NEXT_STEP autoreset
    storage = common.RolloutStorage(4, 1, 4)
    with pytest.raises(ValueError, match="SAME_STEP"):
        common.collect_rollout(default, model, storage, np.zeros((1, 4), np.float32), common.EpisodeTracker(1))
    envs = common.make_vec_env("CartPole-v1", 1)
    with pytest.raises(ValueError, match="obs must have shape"):
        common.collect_rollout(envs, model, storage, np.zeros((2, 4), np.float32), common.EpisodeTracker(1))


def test_normalized_categorical_is_the_categorical_distribution():
    """NormalizedCategorical is a torch Categorical with the same log-probabilities, probabilities and entropy."""
    from torch.distributions import Categorical

    torch.manual_seed(0)
    logits = 4.0 * torch.randn(500, 3)
    ref, ours = Categorical(logits=logits), common.NormalizedCategorical(logits)
    assert isinstance(ours, Categorical) and ours.batch_shape == ref.batch_shape
    actions = ref.sample()
    assert torch.allclose(ours.log_prob(actions), ref.log_prob(actions), atol=1e-5)
    assert torch.allclose(ours.probs, ref.probs, atol=1e-6)
    assert torch.allclose(ours.entropy(), ref.entropy(), atol=1e-5)
    # sampling frequencies match the probabilities (Monte Carlo, n = 200000, seed 0, 99.9% CI per cell)
    p = torch.tensor([0.2, 0.5, 0.3])
    torch.manual_seed(0)
    draws = common.NormalizedCategorical(p.log().expand(200_000, 3)).sample()
    freq = torch.bincount(draws, minlength=3).double() / 200_000
    half_width = 3.3 * torch.sqrt(p.double() * (1 - p.double()) / 200_000)
    assert bool(((freq - p.double()).abs() < half_width).all())


def test_policy_entropy_and_greedy_probability():
    """policy_entropy and greedy_probability: closed forms for a state-independent policy, and float64
    numpy computations from the actor's logits for a state-dependent one; bad input raises ValueError."""
    obs = np.random.default_rng(0).normal(size=(50, 4))
    torch.manual_seed(0)
    model = common.ActorCritic(4, 2)
    # a policy head with zero weights and bias b is softmax(b) in every state: p = sigmoid(b0 - b1)
    for b0, b1 in ((0.0, 0.0), (3.0, -1.0), (-2.0, 0.5), (12.0, 0.0)):
        with torch.no_grad():
            model.actor[-1].weight.zero_()
            model.actor[-1].bias.copy_(torch.tensor([b0, b1]))
        p = 1.0 / (1.0 + math.exp(-(b0 - b1)))
        entropy = -(p * math.log(p) + (1 - p) * math.log(1 - p))
        h, g = common.policy_entropy(model, obs), common.greedy_probability(model, obs)
        assert h.shape == g.shape == (50,) and h.dtype == g.dtype == np.float64
        np.testing.assert_allclose(h, entropy, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(g, max(p, 1 - p), rtol=1e-6)
    # state-dependent: a 3-action policy whose head is scaled up, from near-uniform to near-deterministic
    model = common.ActorCritic(4, 3)
    with torch.no_grad():
        model.actor[-1].weight.mul_(2000.0)
        z = model.actor(torch.as_tensor(obs, dtype=torch.float32)).double().numpy()
    log_pi = z - z.max(1, keepdims=True)
    log_pi -= np.log(np.exp(log_pi).sum(1, keepdims=True))
    h, g = common.policy_entropy(model, obs), common.greedy_probability(model, obs)
    assert h.min() < 0.05 and h.max() > 0.5  # the batch covers both regimes
    np.testing.assert_allclose(h, -(np.exp(log_pi) * log_pi).sum(1), atol=2e-6)
    np.testing.assert_allclose(g, np.exp(log_pi).max(1), atol=1e-6)
    assert np.all(h <= math.log(3) + 1e-6) and np.all((g >= 1 / 3 - 1e-6) & (g <= 1))
    huge = np.full((2, 4), 1e300)  # finite in float64, inf in the float32 actor
    for bad, match in ((obs[:, :3], "obs"), (obs[0], "obs"), (obs[:0], "obs"), (np.full((2, 4), np.nan), "obs"), (huge, "obs")):
        with pytest.raises(ValueError, match=match):
            common.policy_entropy(model, bad)
        with pytest.raises(ValueError, match=match):
            common.greedy_probability(model, bad)
    with pytest.raises(ValueError, match="model"):
        common.policy_entropy(model.actor, obs)


def test_clip_grad_norm_matches_torch_bit_for_bit():
    """agents_common.clip_grad_norm gives exactly torch.nn.utils.clip_grad_norm_'s norm and gradients."""
    torch.manual_seed(0)
    for scale in (0.01, 100.0):  # below and above the threshold
        m1 = common.ActorCritic(4, 2)
        m2 = common.ActorCritic(4, 2)
        m2.load_state_dict(m1.state_dict())
        x = torch.randn(32, 4)
        for m in (m1, m2):
            logits, v = m(x)
            (scale * (logits.pow(2).sum() + v.sum())).backward()
        n1 = torch.nn.utils.clip_grad_norm_(m1.parameters(), 0.5)
        n2 = common.clip_grad_norm(list(m2.parameters()), 0.5)
        assert torch.equal(n1, n2)
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(m1.parameters(), m2.parameters()))


def test_orthogonal_init():
    """Orthogonal init: W W^T = gain^2 I (rows orthonormal up to the gain), zero biases, 0.01 policy head."""
    torch.manual_seed(0)
    model = common.ActorCritic(4, 2, (64, 64))
    first = model.actor[0].weight  # (64, 4): orthonormal columns times sqrt 2
    assert torch.allclose(first.T @ first, 2.0 * torch.eye(4), atol=1e-5)
    head = model.actor[-1].weight  # (2, 64): orthonormal rows times 0.01
    assert torch.allclose(head @ head.T, 1e-4 * torch.eye(2), atol=1e-9)
    assert all(m.bias.detach().abs().max().item() == 0.0 for m in model.modules() if isinstance(m, torch.nn.Linear))


# ---------------------------------------------------------------------------------------------
# Episode ends in the rollout: terminated vs truncated (eq-a2c-truncation).
# ---------------------------------------------------------------------------------------------


def _recorded_rollout(bootstrap_truncated: bool, T=80, N=4, max_steps=16, seed=3):
    """Collect one rollout while recording every raw vector-env step."""
    torch.manual_seed(seed)
    envs = common.make_vec_env("CartPole-v1", N, max_episode_steps=max_steps)
    model = common.ActorCritic(4, 2, orthogonal_init=False)
    storage = common.RolloutStorage(T, N, 4)
    tracker = common.EpisodeTracker(N)
    raw = []
    step = envs.step

    def recording_step(actions):
        out = step(actions)
        raw.append(copy.deepcopy(out))  # the vector env reuses its observation buffer
        return out

    envs.step = recording_step
    obs, _ = envs.reset(seed=seed)
    last = common.collect_rollout(envs, model, storage, obs, tracker, bootstrap_truncated)
    return model, storage, raw, last, tracker


@pytest.mark.claim("err-a2c-bootstrap", "eq-a2c-truncation", how="exact")
def test_rollout_bootstraps_truncation_from_true_final_observation():
    """Truncated steps bootstrap from V(final obs), terminated ones from 0, others from V(next obs)."""
    model, st, raw, last, _ = _recorded_rollout(bootstrap_truncated=True)
    T, N = st.rewards.shape
    n_trunc = n_term = 0
    with torch.no_grad():
        for t, (obs, reward, term, trunc, infos) in enumerate(raw):
            assert np.array_equal(st.rewards[t].numpy(), reward.astype(np.float32))
            for i in range(N):
                nv = float(st.next_values[t, i])
                if trunc[i] and not term[i]:
                    n_trunc += 1
                    final = torch.as_tensor(infos["final_obs"][i], dtype=torch.float32)[None]
                    assert nv == pytest.approx(float(model.value(final)[0]), abs=1e-6)
                    # the reset observation (next row) has a different value: using it would be wrong
                    reset_value = float(st.values[t + 1, i]) if t + 1 < T else float(model.value(torch.as_tensor(last))[i])
                    assert abs(nv - reset_value) > 1e-4
                    assert st.terminated[t, i] == 0 and st.episode_end[t, i] == 1
                elif term[i]:
                    n_term += 1
                    assert st.terminated[t, i] == 1 and st.episode_end[t, i] == 1
                    assert nv == 0.0
                else:
                    assert st.episode_end[t, i] == 0
                    expected = st.values[t + 1, i] if t + 1 < T else model.value(torch.as_tensor(last))[i]
                    assert nv == pytest.approx(float(expected), abs=1e-6)
                    # the observation of step t+1 is the one returned by step t
                    if t + 1 < T:
                        assert np.array_equal(st.obs[t + 1, i].numpy(), obs[i])
    assert n_trunc >= 3 and n_term >= 3, (n_trunc, n_term)  # both kinds of episode end occurred


@pytest.mark.claim("err-a2c-bootstrap", "eq-a2c-truncation", how="exact")
def test_truncation_as_termination_ablation_drops_the_bootstrap():
    """bootstrap_truncated=False marks time-limit ends as terminal: GAE then ignores V(final obs)."""
    _, st, raw, _, _ = _recorded_rollout(bootstrap_truncated=False)
    for t, (_, _, term, trunc, _) in enumerate(raw):
        ends = term | trunc
        assert np.array_equal(st.terminated[t].numpy().astype(bool), ends)
    assert any(np.any(r[3] & ~r[2]) for r in raw)  # truncations did occur


def test_episode_tracker_matches_env_episodes():
    """The tracked training returns are the undiscounted sums of rewards of finished episodes."""
    _, st, raw, _, tracker = _recorded_rollout(bootstrap_truncated=True)
    # episode returns in CartPole are the episode lengths (reward 1 per step)
    assert tracker.finished and all(r == n for _, r, n in tracker.finished)
    ends = st.episode_end.sum().item()
    assert len(tracker.finished) == ends


# ---------------------------------------------------------------------------------------------
# Determinism: same seed, same curve (rem-agents-deterministic).
# ---------------------------------------------------------------------------------------------


def _short(cls, seed, **kw):
    base = {"total_steps": 1024, "seed": seed, "device": "cpu"} if cls is ppo.PPOConfig else {"total_steps": 2000, "seed": seed, "device": "cpu"}
    return cls(**{**base, **kw})


@pytest.mark.claim("rem-agents-deterministic", how="reproduction")
@pytest.mark.parametrize("train,cls", [(a2c.train, a2c.A2CConfig), (ppo.train, ppo.PPOConfig)])
def test_same_seed_same_curve(train, cls):
    """Two runs with one seed give identical logs, episodes and parameters; another seed does not."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    r1 = train(_short(cls, 7))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left alone
    r2 = train(_short(cls, 7))
    r3 = train(_short(cls, 8))
    strip = lambda log: [{k: v for k, v in row.items()} for row in log]  # noqa: E731
    assert strip(r1.log) == strip(r2.log)
    assert r1.episodes == r2.episodes
    for p, q in zip(r1.model.parameters(), r2.model.parameters()):
        assert torch.equal(p, q)
    assert r1.episodes != r3.episodes


# ---------------------------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------------------------


def test_cli_trains_writes_log_and_curve(tmp_path, capsys):
    """`python -m pgbook.train ppo ...` writes log.csv, episodes.csv, a PNG and prints the evaluation."""
    out = tmp_path / "run"
    code = cli.main(["ppo", "--env", "CartPole-v1", "--seed", "0", "--steps", "512", "--out", str(out), "--no-progress", "--eval-episodes", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "final evaluation (greedy, 3 episodes): mean return" in printed
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [256, 512]
    assert {"approx_kl", "clip_frac", "ratio_min", "ratio_max"} <= set(rows[0])
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "episodes.csv").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ppo", "--steps", "-100"], "total_steps"),
        (["ppo", "--set", "clip_eps=0"], "clip_eps"),
        (["a2c", "--env", "NoSuchEnv-v0"], "not a registered"),
        (["a2c", "--env", "Pendulum-v1"], "Discrete"),
        (["ppo", "--set", "clip_epsilon=0.1"], "no field"),
        (["a2c", "--set", "normalize_advantages=maybe"], "true/false"),
    ],
)
def test_cli_rejects_bad_config_before_training(argv, message, capsys, monkeypatch):
    """A bad command line exits with status 2 and a one-line message, before any training."""
    monkeypatch.setattr(common, "make_vec_env", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_set_parses_types():
    """--set converts values to the field's type (bool, int, float, tuple, None)."""
    cfg = cli.build_config("ppo", "CartPole-v1", 3, 2048, ["anneal_lr=false", "n_epochs=4", "lam=0.95", "hidden=32,32", "max_grad_norm=none", "clip_eps=inf"])
    assert (cfg.anneal_lr, cfg.n_epochs, cfg.lam, cfg.hidden, cfg.max_grad_norm, cfg.clip_eps) == (False, 4, 0.95, (32, 32), None, math.inf)


# ---------------------------------------------------------------------------------------------
# The committed benchmark: every default seed of each agent re-run. Its rows are reproduced
# exactly where the environment they record matches this one; elsewhere the kernels differ, the
# trajectory differs, and what must still hold is that the seed solves within the budget.
# ---------------------------------------------------------------------------------------------

BENCHMARK_SEEDS = (0, 1, 2, 3, 4)  # benchmarks/solve_cartpole.py SEEDS (checked below)
# the portability pass re-runs seed 0 only: the other kernels' trajectory differs anyway, and one
# seed shows that training still solves under them (five would add about a minute to make test)
_SEED_PARAMS = [seed if seed == 0 else pytest.param(seed, marks=pytest.mark.main_pass_only(
    reason="the portability pass re-runs seed 0 of each agent only")) for seed in BENCHMARK_SEEDS]


@pytest.mark.claim("rem-a2c-solves-cartpole", how="reproduction")
@pytest.mark.parametrize("seed", _SEED_PARAMS)
def test_benchmark_reproduces_a2c(seed):
    """Re-running A2C seed `seed` of benchmarks/solve_cartpole.py: its committed rows exactly (same environment), else solved within the budget."""
    _check_reproduction("a2c", seed)


@pytest.mark.claim("rem-ppo-solves-cartpole", how="reproduction")
@pytest.mark.parametrize("seed", _SEED_PARAMS)
def test_benchmark_reproduces_ppo(seed):
    """Re-running PPO seed `seed` of benchmarks/solve_cartpole.py: its committed rows exactly (same environment), else solved within the budget."""
    _check_reproduction("ppo", seed)


def _check_reproduction(agent, seed):
    bench = _load_benchmark()
    assert tuple(bench.SEEDS) == BENCHMARK_SEEDS
    solve = [
        r
        for r in bench.read_csv(bench.SOLVE_CSV)
        if r["agent"] == agent and r["variant"] == "default" and int(r["seed"]) in bench.SEEDS
    ]
    assert sorted(int(r["seed"]) for r in solve) == list(BENCHMARK_SEEDS)
    # the committed table meets the target: solved within the budget in at least 4 of 5 seeds
    assert sum(1 for r in solve if r["steps_to_solve"]) >= 4
    committed = next(r for r in solve if r["seed"] == str(seed))
    assert committed["steps_to_solve"], f"seed {seed} must be a solved run to be re-run until it is solved"
    row, curves, _ = bench.run_one(agent, "default", seed, stop_when_solved=True)
    recorded_env = {k: committed[k] for k in reproducibility.ENVIRONMENT_FIELDS}
    current_env = {k: row[k] for k in reproducibility.ENVIRONMENT_FIELDS}
    assert current_env == reproducibility.environment(int(committed["torch_threads"]))
    # what holds in every environment: the seed solves within the budget, at its last evaluation
    assert row["budget"] == committed["budget"] and row["eval_every"] == committed["eval_every"]
    assert row["steps_to_solve"] and int(row["steps_to_solve"]) <= int(row["budget"])
    assert float(row["eval_mean_at_solve"]) >= bench.THRESHOLD
    assert int(curves[-1]["step"]) == int(row["steps_to_solve"])
    assert all(float(c["eval_mean"]) < bench.THRESHOLD for c in curves[:-1])
    if not reproducibility.same_environment(recorded_env, current_env):
        differs = [k for k in reproducibility.ENVIRONMENT_FIELDS if recorded_env[k] != current_env[k]]
        warnings.warn(f"{agent} seed {seed}: environment differs in {differs}; checked 'solved within the budget' only")
        return
    # the environment the rows were measured in: every number reproduced bit for bit
    assert row == committed
    stored = [
        r
        for r in bench.read_csv(bench.CURVES_CSV)
        if r["agent"] == agent and r["variant"] == "default" and r["seed"] == str(seed) and r["kind"] == "eval"
    ]
    assert curves == stored[: len(curves)]


def test_committed_benchmark_rows_record_their_environment():
    """Every solve row names the environment it was measured in (so a re-run knows whether to expect the same bits)."""
    bench = _load_benchmark()
    rows = bench.read_csv(bench.SOLVE_CSV)
    assert rows and list(rows[0]) == bench.SOLVE_FIELDS
    for r in rows:
        assert all(r[k] for k in reproducibility.ENVIRONMENT_FIELDS), r


def test_same_environment_needs_every_field_equal():
    """same_environment: equal in all fields -> True; one field different or missing -> False."""
    env = reproducibility.environment()
    assert reproducibility.same_environment(env, dict(env))
    for k in reproducibility.ENVIRONMENT_FIELDS:
        assert not reproducibility.same_environment({**env, k: env[k] + "x"}, env)
        assert not reproducibility.same_environment({**env, k: ""}, {**env, k: ""})
        assert not reproducibility.same_environment({j: v for j, v in env.items() if j != k}, env)
    assert env["torch_threads"] == "1" and reproducibility.environment(4)["torch_threads"] == "4"
    with pytest.raises(ValueError, match="torch_threads"):
        reproducibility.environment(0)
