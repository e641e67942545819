"""The notes' rollout code (阶段1：数据收集), run as printed against gymnasium.

The notes' `compute_advantages` (阶段2) is dissected in chapter 8 (tests/test_gae.py) and their
PPO loss (阶段3) in chapter 7 (tests/test_clipping.py). This file runs `collect_experience`.
"""

from __future__ import annotations

import gymnasium as gym
import pytest


# ---- verbatim from the notes (阶段1：数据收集) -------------------------------------------
def collect_experience():
    states, actions, rewards, values, dones = [], [], [], [], []

    state = env.reset()
    for t in range(max_steps):
        # 使用当前策略选择动作
        action, log_prob, entropy = policy_network.get_action(state)
        value = value_network.get_value(state)

        # 执行动作
        next_state, reward, done, _ = env.step(action)

        # 存储经验
        states.append(state)
        actions.append(action)
        rewards.append(reward)
        values.append(value)
        dones.append(done)

        state = next_state
        if done: break

    return states, actions, rewards, values, dones
# ---- end of the notes' code ----------------------------------------------------------------


class _Policy:
    """A stand-in for the notes' networks: always action 0, records the log-probs it hands out."""

    def __init__(self):
        self.log_probs = []

    def get_action(self, state):
        self.log_probs.append(-0.6931)
        return 0, -0.6931, 0.6931

    def get_value(self, state):
        return 0.0


class _OldGymAPI(gym.Wrapper):
    """The pre-2022 Gym interface the notes assume: reset() -> obs, step() -> 4-tuple with one done."""

    def reset(self, **kwargs):
        obs, _ = self.env.reset(**kwargs)
        return obs

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated or truncated, info


def _run(environment, steps=50):
    policy = _Policy()
    globals().update(env=environment, max_steps=steps, policy_network=policy, value_network=policy)
    try:
        return collect_experience(), policy
    finally:
        for name in ("env", "max_steps", "policy_network", "value_network"):
            globals().pop(name, None)


@pytest.mark.claim("err-gym-api", how="reproduction")
def test_notes_rollout_fails_on_gymnasium():
    """With gymnasium's API (5-tuple step), the notes' `next_state, reward, done, _ = env.step(a)` raises."""
    with pytest.raises(ValueError, match="too many values to unpack"):
        _run(gym.make("CartPole-v1"))
    # the same code runs under the old API it was written for: the failure is the API, not the stubs
    (states, *_), _ = _run(_OldGymAPI(gym.make("CartPole-v1")))
    assert len(states) > 0


@pytest.mark.claim("err-old-log-probs", how="reproduction")
def test_notes_rollout_discards_the_log_probs_ppo_needs():
    """collect_experience obtains log_prob at every step but returns no log-probs; ppo_update needs them."""
    result, policy = _run(_OldGymAPI(gym.make("CartPole-v1")))
    states, actions, rewards, values, dones = result
    assert len(policy.log_probs) == len(states) > 0  # computed at every step ...
    assert len(result) == 5  # states, actions, rewards, values, dones ...
    for part in (actions, rewards, values, dones):  # ... none of which is the log-probs
        assert list(part) != policy.log_probs
    import inspect

    assert "old_log_probs" in inspect.signature(_notes_ppo_update_signature).parameters


def _notes_ppo_update_signature(states, actions, old_log_probs, advantages, returns, clip_epsilon=0.2):
    """The signature of the notes' ppo_update (阶段3), which takes the old log-probs."""


@pytest.mark.claim("err-gym-api", how="reproduction")
def test_one_done_flag_hides_truncation():
    """Under the old API a time-limit end and a failure both give done=True: the flag cannot tell them apart."""
    env = _OldGymAPI(gym.make("CartPole-v1", max_episode_steps=5))
    env.reset(seed=0)
    done_at_limit = [env.step(0 if t % 2 else 1)[2] for t in range(5)][-1]
    raw = gym.make("CartPole-v1", max_episode_steps=5)
    raw.reset(seed=0)
    *_, terminated, truncated, _ = [raw.step(0 if t % 2 else 1) for t in range(5)][-1]
    assert done_at_limit and truncated and not terminated
