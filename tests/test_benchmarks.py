"""The MuJoCo benchmark's harness (benchmarks/continuous_vs_peers.py): its evaluation is the
package's, and each pair of arms really runs the same hyper-parameters.

The harness imports only the standard library and numpy at module level, so it loads without
Stable-Baselines3, CleanRL or MuJoCo (none of which the test environment has).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.wrappers.utils import RunningMeanStd

from pgbook import evaluation, networks, ppo

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("continuous_vs_peers", ROOT / "benchmarks" / "continuous_vs_peers.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_harness_evaluation_is_the_packages():
    """The harness's protocol (its own loop, its normalisation of raw observations) gives exactly
    the returns of pgbook.evaluation.evaluate for the same model, statistics and seeds, with actions
    clipped (a model whose mean often leaves [-2, 2])."""
    torch.manual_seed(3)
    model = networks.ActorCritic(3, hidden=(8,), action_dim=1, orthogonal_init=False)
    with torch.no_grad():
        model.actor[1].weight.mul_(40.0)  # means far outside the bounds: clipping matters
    rms = RunningMeanStd(shape=(3,))
    rms.update(np.random.default_rng(0).normal([0.3, -0.2, 1.0], [0.5, 0.7, 2.0], size=(50, 3)))

    @torch.no_grad()
    def act(obs):
        obs = (obs - rms.mean) / np.sqrt(rms.var + 1e-8)
        return model.head.mode(model.policy_params(torch.as_tensor(obs, dtype=torch.float32))).numpy()

    ours = bench.evaluate_policy("Pendulum-v1", act, 4, 10_300)
    ref = evaluation.evaluate(model, "Pendulum-v1", 4, 10_300, None, rms)
    assert np.array_equal(ours, ref)

    @torch.no_grad()
    def act_raw(obs):  # the same model fed raw observations: the test sees the normalisation
        return model.head.mode(model.policy_params(torch.as_tensor(obs, dtype=torch.float32))).numpy()

    assert not np.array_equal(bench.evaluate_policy("Pendulum-v1", act_raw, 4, 10_300), ref)


#: SB3 keyword -> PPOConfig field, for the zoo entries
_SB3_TO_OURS = {
    "n_steps": "n_steps", "batch_size": "minibatch_size", "gamma": "gamma", "learning_rate": "lr",
    "ent_coef": "ent_coef", "clip_range": "clip_eps", "n_epochs": "n_epochs", "gae_lambda": "lam",
    "max_grad_norm": "max_grad_norm", "vf_coef": "vf_coef", "n_envs": "n_envs",
}


#: SB3's defaults for what the zoo's entries leave implicit: MlpPolicy's network and initialisation,
#: PPO's keyword defaults (a float learning rate or clip range is a constant schedule)
_SB3_DEFAULTS = {
    "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "batch_size": 64, "normalize": False,
    "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "tanh", "ortho_init": True, "log_std_init": 0.0},
}
#: zoo keywords this book's agent does not have: Pendulum's state-dependent exploration (gSDE)
_NOT_IMPLEMENTED = {"use_sde", "sde_sample_freq"}


def test_sb3_zoo_is_the_zoos_file():
    """SB3_ZOO (the harness's transcription) against the zoo's own entries, verbatim in
    tests/data/rl_zoo_ppo_22e3ff2.yml: every key, ``policy_kwargs`` evaluated as the zoo evaluates it
    (``nn.ReLU`` read as "relu"); ``normalize`` absent means False; ``policy`` (MlpPolicy) and
    ``n_timesteps`` (the zoo's budget, not a hyper-parameter of the pair) are left out."""
    import types

    import yaml

    zoo = yaml.safe_load((ROOT / "tests" / "data" / "rl_zoo_ppo_22e3ff2.yml").read_text())
    names = {"Pendulum-v1": "Pendulum-v1", "HalfCheetah-v4": "HalfCheetah-v5", "Hopper-v4": "Hopper-v5"}
    assert set(zoo) == set(names) and set(names.values()) == set(bench.SB3_ZOO)
    nn = types.SimpleNamespace(ReLU="relu", Tanh="tanh")
    for zoo_name, env_id in names.items():
        entry = dict(zoo[zoo_name])
        assert entry.pop("policy") == "MlpPolicy"
        entry.pop("n_timesteps")
        entry.setdefault("normalize", False)
        if "policy_kwargs" in entry:
            entry["policy_kwargs"] = eval(entry["policy_kwargs"], {"__builtins__": {}, "dict": dict, "nn": nn})
        assert entry == bench.SB3_ZOO[env_id], env_id


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "HalfCheetah-v5", "Hopper-v5"])
def test_the_zoo_pair_runs_the_same_hyper_parameters(env_id):
    """ppo.ZOO_SETTINGS (the 'ours' arm) against the SB3 arm's SB3_ZOO entry, field by field, with
    the SB3 defaults the zoo leaves implicit (constant learning rate and clip range, MlpPolicy's
    network); every key of the zoo's entry is either compared or declared not implemented."""
    zoo = {**_SB3_DEFAULTS, **bench.SB3_ZOO[env_id]}
    cfg = ppo.PPOConfig(env_id=env_id, **{**ppo.CONTINUOUS_DEFAULTS, **ppo.ZOO_SETTINGS[env_id]})
    for sb3_name, ours_name in _SB3_TO_OURS.items():
        assert getattr(cfg, ours_name) == zoo[sb3_name], (sb3_name, getattr(cfg, ours_name), zoo[sb3_name])
    assert cfg.anneal_lr is False and cfg.anneal_clip is False  # SB3: a float is a constant schedule
    assert cfg.normalize_obs is cfg.normalize_reward is zoo["normalize"]
    pk = zoo["policy_kwargs"]
    assert cfg.hidden == tuple(pk["net_arch"]["pi"]) == tuple(pk["net_arch"]["vf"])
    assert (cfg.activation, cfg.orthogonal_init) == (pk["activation_fn"], pk["ortho_init"])
    if not zoo.get("use_sde"):  # under gSDE SB3's log_std_init parametrises another noise: not comparable
        assert cfg.log_std_init == pk["log_std_init"]
    assert set(bench.SB3_ZOO[env_id]) <= set(_SB3_TO_OURS) | {"normalize", "policy_kwargs"} | _NOT_IMPLEMENTED
    assert (env_id == "Pendulum-v1") == bool(_NOT_IMPLEMENTED & set(bench.SB3_ZOO[env_id]))  # only there


def test_the_sb3_arms_differ_only_in_gsde():
    """sb3 runs the zoo's entry as it is; sb3_nosde drops use_sde and sde_sample_freq and nothing
    else (Pendulum, the only entry with gSDE; the MuJoCo entries are the same for both arms)."""
    with_sde, without = bench.sb3_hyperparameters("Pendulum-v1"), bench.sb3_hyperparameters("Pendulum-v1", sde=False)
    assert with_sde == bench.SB3_ZOO["Pendulum-v1"] and with_sde["use_sde"] is True and with_sde["sde_sample_freq"] == 4
    assert without == {k: v for k, v in with_sde.items() if k not in ("use_sde", "sde_sample_freq")}
    for env_id in ("HalfCheetah-v5", "Hopper-v5"):
        assert bench.sb3_hyperparameters(env_id, sde=False) == bench.sb3_hyperparameters(env_id) == bench.SB3_ZOO[env_id]
    copy = bench.sb3_hyperparameters("HalfCheetah-v5")
    copy["policy_kwargs"]["activation_fn"] = "tanh"  # a copy: the table itself is not changed
    assert bench.SB3_ZOO["HalfCheetah-v5"]["policy_kwargs"]["activation_fn"] == "relu"


def test_the_cleanrl_pair_runs_the_same_hyper_parameters():
    """CONTINUOUS_DEFAULTS (the 'ours_cleanrl' arm) against the defaults of CleanRL's Args, as the
    harness's docstring and ppo.CONTINUOUS_DEFAULTS state them (the script itself is not vendored)."""
    d = ppo.CONTINUOUS_DEFAULTS
    cleanrl = {"n_envs": 1, "n_steps": 2048, "lr": 3e-4, "anneal_lr": True, "gamma": 0.99, "lam": 0.95,
               "n_epochs": 10, "minibatch_size": 2048 // 32, "clip_eps": 0.2, "ent_coef": 0.0, "vf_coef": 0.5,
               "max_grad_norm": 0.5, "hidden": (64, 64), "normalize_obs": True, "normalize_reward": True}
    assert {k: d[k] for k in cleanrl} == cleanrl and d["anneal_clip"] is False


def test_presets_follow_the_benchmark():
    """HalfCheetah-v5's preset is the zoo's entry (far ahead of CleanRL's setting there); Hopper-v5
    has none (the zoo's entry ended near 1000, far below CleanRL's setting), so it gets the defaults."""
    assert ppo.ENV_PRESETS["HalfCheetah-v5"] == ppo.ZOO_SETTINGS["HalfCheetah-v5"]
    assert "Hopper-v5" not in ppo.ENV_PRESETS


def test_the_arms_of_this_book_build_the_configurations_they_name():
    """ours = the zoo's entry over the continuous defaults; ours_cleanrl = the defaults;
    ours_cleanrl_timeout = ours_cleanrl but for bootstrap_truncated (False), its one difference."""
    from dataclasses import asdict

    args = ("Pendulum-v1", 3, 204_800, 1)
    ours, clean, timeout = (asdict(bench.ours_config(impl, *args)) for impl in ("ours", "ours_cleanrl", "ours_cleanrl_timeout"))
    common = {"env_id": "Pendulum-v1", "seed": 3, "total_steps": 204_800, "device": "cpu", "torch_threads": 1}
    assert ours == asdict(ppo.PPOConfig(**{**ppo.CONTINUOUS_DEFAULTS, **ppo.ZOO_SETTINGS["Pendulum-v1"]}, **common))
    assert clean == asdict(ppo.PPOConfig(**ppo.CONTINUOUS_DEFAULTS, **common))
    assert {k for k in clean if clean[k] != timeout[k]} == {"bootstrap_truncated"}
    assert clean["bootstrap_truncated"] is True and timeout["bootstrap_truncated"] is False
    with pytest.raises(ValueError, match="impl"):
        bench.ours_config("sb3", *args)


def test_readme_speed_table_is_the_speed_report_of_the_committed_runs(capsys):
    """README.md's table between the speed-table markers is what ``--speed-report`` prints for the
    committed speed runs."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- speed-table")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- /speed-table -->")]
    assert bench.speed_report(bench.DEFAULT_SPEED_OUT) == 0
    assert block.strip() == capsys.readouterr().out.strip()


def test_readme_table_is_the_report_of_the_committed_runs(capsys):
    """README.md's table between the continuous-table markers is what ``--report`` prints for the
    committed CSV (so the two cannot drift apart)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- continuous-table")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- /continuous-table -->")]
    assert bench.report(bench.DEFAULT_OUT) == 0
    assert block.strip() == capsys.readouterr().out.strip()
