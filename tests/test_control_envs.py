"""Control environments: rules, kept observation indices, wrappers and the Gymnasium adapter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import truncated_counter

from rtrl.envs import popgym
from rtrl.envs.cartpole import cartpole, cartpole_p, cartpole_v
from rtrl.envs.control import (
    ControlEnv,
    auto_reset,
    keep_observations,
    normalize_observations,
    record_episode_returns,
    scale_rewards,
    wrap_for_agents,
)
from rtrl.envs.mujoco import MUJOCO_LAYOUT, kept_indices
from rtrl.envs.registry import control_env_names, make_control_env
from rtrl.spaces import Discrete, random_actions


def rollout(env: ControlEnv, key, steps, policy=None):
    """States, observations, actions, rewards, dones and infos of ``steps`` steps (random actions
    by default); ``info`` also holds ``terminated`` and ``truncated``."""
    state, obs = env.reset(key)

    def per_step(carry, step_key):
        state, obs = carry
        k_act, k_env = jax.random.split(step_key)
        action = random_actions(k_act, env.action_space) if policy is None else policy(state)
        new_state, new_obs, reward, terminated, truncated, info = env.step(k_env, state, action)
        info = {**info, "terminated": terminated, "truncated": truncated}
        return (new_state, new_obs), (state, obs, action, reward, terminated | truncated, info)

    return jax.lax.scan(per_step, (state, obs), jax.random.split(key, steps))[1]


# --- CartPole -------------------------------------------------------------------------------


def test_cartpole_matches_gymnasium_physics():
    gymnasium = pytest.importorskip("gymnasium")
    reference = gymnasium.make("CartPole-v1").unwrapped
    env = cartpole()
    state, _ = env.reset(jax.random.PRNGKey(3))
    reference.reset(seed=0)
    reference.state = np.asarray(state.inner, dtype=np.float64)
    actions = [1, 1, 0, 1, 0, 0, 0, 1, 1, 1] * 3
    for t, action in enumerate(actions):
        state, obs, reward, terminated, truncated, _ = env.step(
            jax.random.PRNGKey(t), state, jnp.asarray(action)
        )
        ref_obs, ref_reward, ref_terminated, _, _ = reference.step(action)
        np.testing.assert_allclose(np.asarray(obs), ref_obs, rtol=1e-5, atol=1e-6)
        assert float(reward) == ref_reward and bool(terminated) == ref_terminated
        assert not truncated
        if terminated:
            break


def test_cartpole_p_and_v_keep_the_documented_entries():
    key = jax.random.PRNGKey(0)
    full = rollout(cartpole(), key, 50)
    for env, kept in ((cartpole_p(), [0, 2]), (cartpole_v(), [1, 3])):
        assert env.observation_size == 2
        partial = rollout(env, key, 50)
        np.testing.assert_array_equal(partial[1], full[1][:, kept])
    assert make_control_env("cartpole-p").name == "cartpole-p"


def test_cartpole_time_limit_and_termination():
    state, obs = cartpole().reset(jax.random.PRNGKey(0))
    assert np.all(np.abs(np.asarray(obs)) <= 0.05)
    *_, dones, info = rollout(cartpole(), jax.random.PRNGKey(1), 200, policy=lambda s: 1)
    first_done = int(np.argmax(np.asarray(dones)))  # always pushing right topples the pole
    assert 5 < first_done < 100
    assert info["terminated"][first_done] and not info["truncated"][first_done]
    # Held upright, an episode is truncated (not terminated) after 500 steps.
    upright = cartpole()._replace(step=lambda k, s, a: cartpole().step(
        k, s._replace(inner=jnp.zeros(4)), a))  # fmt: skip
    *_, dones, info = rollout(upright, jax.random.PRNGKey(1), 500, policy=lambda s: 1)
    assert np.flatnonzero(dones).tolist() == [499]
    assert info["truncated"][499] and not info["terminated"][499]


def test_keep_observations_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="within 0..3"):
        keep_observations(cartpole(), [0, 4], "bad")


# --- MuJoCo -P / -V --------------------------------------------------------------------------


def test_mujoco_kept_indices_partition_the_observation():
    for name, (p, v) in MUJOCO_LAYOUT.items():
        pos, vel = kept_indices(name, "p"), kept_indices(name, "v")
        assert pos == list(range(p)) and vel == list(range(p, p + v))
    assert kept_indices("ant", "p")[-1] == 12 and kept_indices("ant", "v") == list(range(13, 27))
    with pytest.raises(ValueError, match="unknown MuJoCo task"):
        kept_indices("humanoid", "p")
    with pytest.raises(ValueError, match="positions"):
        kept_indices("hopper", "x")


def test_brax_pomdp_keeps_positions_or_velocities():
    pytest.importorskip("brax")
    from rtrl.envs.mujoco import brax_env, brax_pomdp

    full = brax_env("halfcheetah")
    assert full.observation_size == sum(MUJOCO_LAYOUT["halfcheetah"])
    state, obs = jax.jit(full.reset)(jax.random.PRNGKey(0))
    q, qd = state.inner.pipeline_state.q, state.inner.pipeline_state.qd
    np.testing.assert_allclose(obs[:8], q[1:])  # positions without the root's x
    np.testing.assert_allclose(obs[8:], qd)
    env_p = brax_pomdp("halfcheetah", "p")
    _, obs_p = jax.jit(env_p.reset)(jax.random.PRNGKey(0))
    np.testing.assert_allclose(obs_p, q[1:])
    assert env_p.name == "halfcheetah-p" and env_p.observation_size == 8
    assert brax_pomdp("ant", "v").observation_size == 14


def test_reacher_p_drops_the_fingertip_velocity_and_ends_after_50_steps():
    pytest.importorskip("brax")
    from rtrl.envs.mujoco import REACHER_P_KEEPS, brax_env
    from rtrl.envs.registry import make_control_env

    full, env = brax_env("reacher", episode_length=50), make_control_env("reacher-p")
    assert env.name == "reacher-p" and env.observation_size == 9
    key = jax.random.PRNGKey(3)
    (_, obs_full), (state, obs) = jax.jit(full.reset)(key), jax.jit(env.reset)(key)
    np.testing.assert_allclose(obs, obs_full[np.array(REACHER_P_KEEPS)])
    np.testing.assert_allclose(obs[:2] ** 2 + obs[2:4] ** 2, 1.0, rtol=1e-5)  # cos, sin
    step = jax.jit(env.step)
    ends = []
    for t in range(50):
        state, obs, _, terminated, truncated, _ = step(key, state, jnp.zeros(2))
        ends.append(bool(terminated | truncated))
    assert ends == [False] * 49 + [True]


def test_gymnasium_mujoco_pomdp_keeps_positions():
    pytest.importorskip("mujoco")
    from rtrl.envs.mujoco import gymnasium_pomdp

    envs = gymnasium_pomdp("hopper", "v", num_envs=1, seed=5)
    obs = envs.reset()
    data = envs.envs[0].unwrapped.data
    np.testing.assert_allclose(obs[0], data.qvel, rtol=1e-6)
    assert envs.observation_size == 6


# --- POPGym-style memory tasks ---------------------------------------------------------------


def suits(cards):
    return (np.asarray(cards) // 13) % 4


def play(env: ControlEnv, policy, key=jax.random.PRNGKey(0)):
    """One whole episode under ``policy(state)``: observations, rewards, dones, states."""
    length = 2 * 52 * 4  # longer than any episode here
    states, obs, _, rewards, dones, _ = rollout(env, key, length, policy)
    end = int(np.argmax(np.asarray(dones))) + 1
    return np.asarray(obs[:end]), np.asarray(rewards[:end]), states, end


def test_repeat_previous_rules():
    env = popgym.popgym_task("repeat_previous-easy")  # one deck, k = 4
    oracle = lambda s: popgym.suit(s.deck[jnp.maximum(s.t + 1 - 4, 0)])  # noqa: E731
    obs, rewards, states, length = play(env, oracle)
    deck = np.asarray(states.deck[0])
    assert length == 51
    np.testing.assert_array_equal(obs.argmax(1), suits(deck[:51]))
    assert np.all(rewards[:3] == 0) and np.allclose(rewards[3:], 1 / 48)
    assert rewards.sum() == pytest.approx(1.0)
    _, wrong, _, _ = play(env, lambda s: (oracle(s) + 1) % 4)
    assert wrong.sum() == pytest.approx(-1.0)


def test_repeat_first_rules():
    env = popgym.popgym_task("repeat_first-medium")  # 8 decks
    obs, rewards, states, length = play(env, lambda s: popgym.suit(s.deck[0]))
    assert length == 8 * 52 - 1 and rewards.sum() == pytest.approx(1.0)
    assert obs[0].argmax() == suits(states.deck[0][:1])[0]


def test_count_recall_rules():
    env = popgym.popgym_task("count_recall-medium")  # 2 decks counted by suit
    assert env.observation_size == 8 and env.action_space == Discrete(2 * 52 // 4 + 1)

    def oracle(s):
        query = popgym.suit(s.second_deck[s.t])
        return jnp.sum((jnp.arange(104) <= s.t) & (popgym.suit(s.deck) == query))

    obs, rewards, states, length = play(env, oracle)
    assert length == 103 and rewards.sum() == pytest.approx(1.0)
    values, queries = suits(states.deck[0][:length]), suits(states.second_deck[0][:length])
    np.testing.assert_array_equal(obs[:, :4].argmax(1), values)
    np.testing.assert_array_equal(obs[:, 4:].argmax(1), queries)
    # The answer at step t counts value cards 0..t of the queried suit (checked by hand).
    t = 10
    assert int(oracle(jax.tree.map(lambda a: a[t], states))) == np.sum(
        values[: t + 1] == queries[t]
    )


def test_autoencode_rules():
    env = popgym.popgym_task("autoencode-easy")
    n = 52

    def oracle(s):
        return popgym.suit(s.deck[jnp.clip(n - 1 - (s.t - (n - 1)), 0, n - 1)])

    obs, rewards, states, length = play(env, oracle)
    deck = np.asarray(states.deck[0])
    assert length == 2 * n - 1
    np.testing.assert_array_equal(obs[: n - 1, 0], 1)  # watching
    np.testing.assert_array_equal(obs[n - 1 :, 0], 0)  # playing
    np.testing.assert_array_equal(obs[:n, 1:].argmax(1), suits(deck))
    assert np.all(obs[n:, 1:] == 0)
    assert np.all(rewards[: n - 1] == 0) and rewards.sum() == pytest.approx(1.0)


def test_higher_lower_rules():
    env = popgym.popgym_task("higher_lower-easy")

    def oracle(s):  # 0: the next card ranks higher
        return jnp.where(popgym.rank(s.deck[s.t + 1]) > popgym.rank(s.deck[s.t]), 0, 1)

    obs, rewards, states, length = play(env, oracle)
    ranks = np.asarray(states.deck[0]) % 13
    ties = np.sum(ranks[1:] == ranks[:-1])
    assert length == 51
    np.testing.assert_array_equal(obs.argmax(1), ranks[:51])
    assert rewards.sum() == pytest.approx((51 - ties) / 52)


def test_concentration_rules():
    """A player who knows the deck flips matching pairs: 26 turns of +1/26, the episode ends
    when every card is up. Flipping one card twice is a failed turn (-2/L); flipping a card
    already up ends the turn (-1/L per card in it). Observations show face-up and just-flipped
    cards' colours, and the previous action."""
    env = popgym.popgym_task("concentration-easy")  # one deck, colours
    length = 104  # ceil(2 * 52 - 52 / 103)

    def pairs(deck):  # positions, paired by colour in order of appearance
        colours = popgym.colour(deck)
        red, black = jnp.argsort(colours, stable=True)[:26], jnp.argsort(colours, stable=True)[26:]
        return jnp.concatenate([jnp.stack([red[:13], red[13:]], 1),
                                jnp.stack([black[:13], black[13:]], 1)]).reshape(-1)  # fmt: skip

    obs, rewards, states, end = play(env, lambda s: pairs(s.deck)[s.t])
    assert end == 52 and rewards.sum() == pytest.approx(1.0)
    assert np.allclose(rewards[1::2], 1 / 26) and np.all(rewards[0::2] == 0)
    cards = obs[:, : 52 * 3].reshape(end, 52, 3)
    assert np.all(cards[0, :, 2] == 1)  # all face down at the start
    deck = np.asarray(states.deck[0])
    first = int(pairs(jnp.asarray(deck))[0])
    assert cards[1, first].argmax() == deck[first] // 13 // 2  # the flipped card is shown
    assert obs[1, 52 * 3 + first] == 1  # and the previous action

    after_first_pair = jax.tree.map(lambda a: a[2], states)
    _, _, r_up, *_ = env.step(None, after_first_pair, first)  # a card already face up
    assert float(r_up) == pytest.approx(-1 / length)
    state, _ = env.reset(jax.random.PRNGKey(1))
    state, _, r1, *_ = env.step(None, state, 5)
    state, _, r2, *_ = env.step(None, state, 5)  # the same card twice
    assert float(r1) == 0 and float(r2) == pytest.approx(-2 / length)
    _, _, stuck, terminated, truncated, _ = play_steps(env, length)
    assert not terminated and truncated  # the time limit ends an episode that never matches


def play_steps(env, steps):
    """``steps`` steps flipping card 0 and card 0 again (a failed turn every two steps)."""
    state, obs = env.reset(jax.random.PRNGKey(2))
    for _ in range(steps):
        state, obs, reward, terminated, truncated, info = env.step(None, state, 0)
    return state, obs, reward, terminated, truncated, info


def test_every_popgym_level_builds_with_a_valid_layout():
    for name in popgym.TASKS:
        env = popgym.popgym_task(name)
        _, obs = env.reset(jax.random.PRNGKey(0))
        assert obs.shape == (env.observation_size,) and float(obs.sum()) >= 1
    with pytest.raises(ValueError, match="unknown POPGym task"):
        popgym.popgym_task("repeat_previous-extreme")
    with pytest.raises(ValueError, match="unknown environment"):
        make_control_env("pong-p")
    assert "halfcheetah-p" in control_env_names() and "autoencode-hard" in control_env_names()


# --- wrappers --------------------------------------------------------------------------------


def test_auto_reset_and_episode_returns():
    env = record_episode_returns(auto_reset(cartpole()))
    states, obs, _, rewards, dones, info = rollout(env, jax.random.PRNGKey(2), 400)
    dones, rewards, returns = map(np.asarray, (dones, rewards, info["episode_return"]))
    ends = np.flatnonzero(dones)
    assert len(ends) > 5
    lengths = np.diff(np.concatenate([[-1], ends]))
    np.testing.assert_allclose(returns[ends], lengths)  # reward 1 per step
    # The observation after an end is a fresh episode's first one; the one the episode ended
    # in (a fallen pole) is kept.
    assert np.all(np.abs(np.asarray(obs)[ends[:-1] + 1]) <= 0.05)
    final = np.asarray(info["final_observation"])
    assert np.all((np.abs(final[ends, 0]) > 2.4) | (np.abs(final[ends, 2]) > 0.2094))
    between = np.setdiff1d(np.arange(399), ends)
    np.testing.assert_array_equal(final[between], np.asarray(obs)[between + 1])


def test_time_limit_truncates_and_the_final_observation_is_normalized_like_the_rest():
    """A counter that never terminates, cut every 3 steps: truncated (not terminated) at the
    limit, the final observation is the pre-reset count, normalised with the same statistics."""

    counter = truncated_counter(3)
    _, obs, _, _, dones, info = rollout(auto_reset(counter), jax.random.PRNGKey(0), 7)
    np.testing.assert_array_equal(np.flatnonzero(dones), [2, 5])
    assert not np.any(info["terminated"]) and np.all(info["truncated"] == dones)
    np.testing.assert_array_equal(np.asarray(info["final_observation"])[:, 0],
                                  [1, 2, 3, 1, 2, 3, 1])  # fmt: skip
    np.testing.assert_array_equal(np.asarray(obs)[:, 0], [0, 1, 2, 0, 1, 2, 0])
    normalized = normalize_observations(auto_reset(counter))
    states, obs, _, _, _, info = rollout(normalized, jax.random.PRNGKey(0), 7)
    moments = jax.tree.map(lambda a: a[1:], states.moments)  # after each step
    expected = (np.array([1, 2, 3, 1, 2, 3]) - moments.mean[:, 0]) / np.sqrt(
        moments.variance[:, 0] + 1e-8
    )
    np.testing.assert_allclose(np.asarray(info["final_observation"])[:6, 0],
                               np.clip(expected, -10, 10), rtol=1e-5)  # fmt: skip


def scaled_env() -> ControlEnv:
    """Features on very different scales, to catch one statistic shared by all features."""
    scales = jnp.array([0.01, 1.0, 100.0])

    def reset(key):
        return jnp.zeros(()), jnp.zeros(3)

    def step(key, state, action):
        obs = scales * (1.0 + jax.random.normal(key, (3,)))
        never = jnp.zeros((), bool)
        return state, obs, 5.0 + jax.random.normal(key), never, never, {}

    return ControlEnv("scaled", 3, Discrete(2), reset, step)


def test_normalizers_keep_per_feature_statistics():
    env = scale_rewards(normalize_observations(scaled_env()), gamma=0.9)
    states, obs, _, rewards, _, _ = rollout(env, jax.random.PRNGKey(0), 3000)
    moments = jax.tree.map(lambda a: a[-1], states.inner.moments)
    assert moments.mean.shape == (3,)
    np.testing.assert_allclose(moments.mean, [0.01, 1.0, 100.0], rtol=0.1)
    np.testing.assert_allclose(np.sqrt(moments.variance), [0.01, 1.0, 100.0], rtol=0.1)
    late = np.asarray(obs[1000:])
    np.testing.assert_allclose(late.mean(0), 0.0, atol=0.1)
    np.testing.assert_allclose(late.std(0), 1.0, atol=0.1)
    # Rewards are divided by the spread of the discounted return (mean 5 / (1 - 0.9) = 50).
    raw_rewards = np.asarray(rollout(scaled_env(), jax.random.PRNGKey(0), 3000)[3])
    discounted, history = 0.0, []
    for r in raw_rewards:
        discounted = 0.9 * discounted + r
        history.append(discounted)
    expected = raw_rewards[-1] / np.std(history)
    assert float(rewards[-1]) == pytest.approx(expected, rel=0.05)


def test_vmapped_streams_keep_their_own_statistics():
    env = wrap_for_agents(cartpole(), normalize_obs=True)
    states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 2))
    assert states.moments.mean.shape == (2, 4)


# --- Gymnasium host adapter ------------------------------------------------------------------


def test_host_envs_keep_indices_and_auto_reset():
    pytest.importorskip("gymnasium")
    from rtrl.envs.host import HostEnvs

    full, partial = HostEnvs("CartPole-v1", 2, seed=3), HostEnvs("CartPole-v1", 2, 3, keep=[0, 2])
    assert partial.observation_size == 2 and partial.action_space == Discrete(2)
    obs_full, obs_partial = full.reset(), partial.reset()
    np.testing.assert_array_equal(obs_partial, obs_full[:, [0, 2]])
    lengths, finished_returns = np.zeros(2), []
    for _ in range(300):
        result = full.step(np.ones(2, int))
        obs_partial = partial.step(np.ones(2, int)).observation
        np.testing.assert_array_equal(obs_partial, result.observation[:, [0, 2]])
        lengths += result.reward
        dones = result.terminated | result.truncated
        for i in np.flatnonzero(dones):
            assert result.episode_return[i] == lengths[i]
            finished_returns.append(result.episode_return[i])
            lengths[i] = 0
            # The next episode's first observation, and the fallen pole it ended with.
            assert np.all(np.abs(result.observation[i]) <= 0.05)
            assert (
                abs(result.final_observation[i, 2]) > 0.2
                or abs(result.final_observation[i, 0]) > 2.4
            )
        np.testing.assert_array_equal(result.final_observation[~dones], result.observation[~dones])
        assert np.all(np.isnan(result.episode_return[~dones]))
        assert result.terminated.all() or not result.truncated.any()  # no time limit yet
    assert len(finished_returns) > 4
    # Gymnasium's time limit is reported as a truncation.
    limited = HostEnvs("CartPole-v1", 1, seed=3, max_episode_steps=4)
    limited.reset()
    truncated = [limited.step(np.array([i % 2])).truncated[0] for i in range(8)]
    assert truncated == [False, False, False, True] * 2
    with pytest.raises(ValueError, match="exceed"):
        HostEnvs("CartPole-v1", 1, keep=[7])


def test_previous_reward_follows_the_observation():
    """The last reward (clipped to [-1, 1]) after the observation; 0 where an episode starts;
    the final observation of a finished episode carries that step's reward."""
    from rtrl.envs.control import append_previous_reward

    counter = truncated_counter(3)

    def rewarding(key, state, action):  # reward 2 (clipped to 1) on every step
        state, obs, _, terminated, truncated, info = counter.step(key, state, action)
        return state, obs, jnp.asarray(2.0), terminated, truncated, info

    env = append_previous_reward(auto_reset(counter._replace(step=rewarding)))
    assert env.observation_size == 2
    state, obs = env.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(obs, [0.0, 0.0])
    seen = []
    for t in range(4):
        state, obs, reward, terminated, truncated, info = env.step(jax.random.PRNGKey(t), state, 0)
        seen.append((obs.tolist(), info["final_observation"].tolist(), bool(truncated)))
    assert seen == [([1.0, 1.0], [1.0, 1.0], False), ([2.0, 1.0], [2.0, 1.0], False),
                    ([0.0, 0.0], [3.0, 1.0], True), ([1.0, 1.0], [1.0, 1.0], False)]  # fmt: skip
    wrapped = wrap_for_agents(cartpole_p(), previous_reward=True)
    assert wrapped.observation_size == cartpole_p().observation_size + 1


def test_an_unknown_gymnasium_id_is_a_one_line_error(capsys, tmp_path):
    pytest.importorskip("gymnasium")
    from rtrl.cli import main

    args = ["run", "ppo-rtu-cartpole-p", "--steps", "10", "--set", "env=gym:NoSuchEnv-v0",
            "--set", "learner=actor_critic", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "cannot make Gymnasium environment 'NoSuchEnv-v0'" in err and "pprint_registry" in err
    assert err.count("\n") == 1 and "Traceback" not in err
