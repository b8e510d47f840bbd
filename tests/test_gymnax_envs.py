"""The gymnax adapter (env=gymnax:NAME): gymnax's own step on fixed keys, MemoryChain's rules
and quirk, and one-line errors for bad names and lengths."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrl import cli
from rtrl.envs.control import auto_reset
from rtrl.envs.registry import make_control_env
from rtrl.experiments import configuration
from rtrl.spaces import Box, Discrete, random_actions

gymnax = pytest.importorskip("gymnax")


def _both_rollouts(name: str, steps: int, memory_length: int | None = None):
    """The adapter (auto-reset by ``auto_reset``) and gymnax's ``step`` on the same keys and
    actions: per step (observation, reward, terminated, truncated, final observation)."""
    ours = auto_reset(make_control_env(f"gymnax:{name}", memory_length=memory_length))
    env, params = gymnax.make(name)
    if memory_length is not None:
        params = params.replace(memory_length=memory_length)
    key = jax.random.PRNGKey(3)
    state, obs = ours.reset(key)
    gobs, gstate = env.reset(key, params)
    np.testing.assert_array_equal(obs, np.ravel(gobs))

    def per_step(carry, step_key):
        state, gstate = carry
        k_act, k_env = jax.random.split(step_key)
        action = random_actions(k_act, ours.action_space)
        state, obs, reward, terminated, truncated, info = ours.step(k_env, state, action)
        gobs, gstate, greward, gterm, gtrunc, ginfo = env.step(k_env, gstate, action, params)
        mine = (obs, reward, terminated, truncated, info["final_observation"])
        theirs = (jnp.ravel(gobs).astype(jnp.float32), greward, gterm, gtrunc,
                  jnp.ravel(ginfo["final_observation"]).astype(jnp.float32))  # fmt: skip
        return (state, gstate), (mine, theirs)

    _, (mine, theirs) = jax.lax.scan(per_step, (state, gstate), jax.random.split(key, steps))
    return mine, theirs


@pytest.mark.parametrize(
    "name, memory_length, steps",
    [("MemoryChain-bsuite", 3, 60), ("MemoryChain-bsuite", 16, 200),
     ("Breakout-MinAtar", None, 300), ("CartPole-v1", None, 600), ("Pendulum-v1", None, 450)],
)  # fmt: skip
def test_adapter_steps_as_gymnax_does(name, memory_length, steps):
    mine, theirs = _both_rollouts(name, steps, memory_length)
    for label, a, b in zip(("observation", "reward", "terminated", "truncated", "final"),
                           mine, theirs):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), err_msg=label)
    ended = np.asarray(mine[2]) | np.asarray(mine[3])
    assert ended.any(), "the rollout should cross an episode end"
    if name == "Pendulum-v1":  # a time limit, not a terminal state
        assert np.asarray(mine[3]).any() and not np.asarray(mine[2]).any()


def test_spaces_and_flattened_observations():
    breakout = make_control_env("gymnax:Breakout-MinAtar")
    assert breakout.observation_size == 10 * 10 * 4 and breakout.action_space == Discrete(3)
    _, obs = breakout.reset(jax.random.PRNGKey(0))
    assert obs.shape == (400,) and obs.dtype == jnp.float32
    assert make_control_env("gymnax:Pendulum-v1").action_space == Box(1, -2.0, 2.0)


@pytest.mark.parametrize("memory_length", [1, 4, 9])
def test_memory_chain_rules(memory_length):
    """m + 1 actions per episode, only the last rewarded (+1 for the cue's bit, else -1); the cue
    shows in the first observation and, by gymnax's quirk, in the one after the first action;
    the decision is taken on the observation of time m - 1 (time feature 1/m)."""
    m = memory_length
    env = make_control_env("gymnax:MemoryChain-bsuite", memory_length=m)
    assert env.observation_size == 3 and env.action_space == Discrete(2)
    for seed in range(6):
        state, obs = env.reset(jax.random.PRNGKey(seed))
        cue = float(obs[2])
        assert cue in (-1.0, 1.0) and float(obs[0]) == 1.0
        right = int(cue > 0)
        observations = [obs]
        for t in range(m + 1):
            last = t == m
            action = right if (last and seed % 2 == 0) else 1 - right
            state, obs, reward, terminated, truncated, _ = env.step(
                jax.random.PRNGKey(100 + t), state, action
            )
            observations.append(obs)
            assert bool(terminated) == last and not bool(truncated)
            expected = (1.0 if seed % 2 == 0 else -1.0) if last else 0.0
            assert float(reward) == expected
        assert float(observations[1][2]) == cue  # the quirk: step 1 shows time 0 again
        assert all(float(o[2]) == 0.0 for o in observations[2:])
        decision = observations[m]  # the observation the last action is taken on
        np.testing.assert_allclose(float(decision[0]), 1.0 / m, rtol=1e-6)


def test_errors_name_the_fix(capsys, tmp_path):
    with pytest.raises(ValueError, match="gymnax.registered_envs .*MemoryChain-bsuite"):
        make_control_env("gymnax:MemoryChainn")
    with pytest.raises(ValueError, match="memory_length must be at least 1"):
        make_control_env("gymnax:MemoryChain-bsuite", memory_length=0)
    with pytest.raises(ValueError, match="memory_length applies to MemoryChain-bsuite"):
        make_control_env("gymnax:CartPole-v1", memory_length=8)
    with pytest.raises(ValueError, match="memory_length applies to gymnax:MemoryChain-bsuite"):
        make_control_env("cartpole-p", memory_length=8)
    runs = [
        (["--set", "env=gymnax:Nope"], "unknown gymnax environment 'Nope'"),
        (["--set", "env=gymnax:MemoryChain-bsuite", "--set", "memory_length=0"],
         "memory_length must be at least 1"),
        (["--set", "memory_length=8"], "memory_length applies to gymnax:MemoryChain-bsuite"),
    ]  # fmt: skip
    for i, (args, message) in enumerate(runs):
        out = tmp_path / str(i)
        assert cli.main(["run", "r2ac-ff-repeat_previous-easy", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
        assert not out.exists()


@pytest.mark.slow
def test_r2ac_elstm_holds_the_memory_chain_cue(tmp_path):
    """The memory preset's eLSTM starts with its forget gates near 0.95: with the reference's
    initialisation (every gate near 0.5) it forgets the cue within a few steps and stays at
    chance (return 0) on MemoryChain, where the same agent with forget bias 3 learns it."""
    from rtrl.experiments.control_runs import run_control

    sets = {"memory_length": "16", "steps": "20480", "chunk": "10240"}
    config = configuration.resolve("memory-r2ac-elstm", sets)
    assert run_control(config, 1, tmp_path / "preset", progress=False)["final_return_mean"] > 0.6
    forgetful = configuration.resolve("memory-r2ac-elstm", {**sets, "forget_bias": "0"})
    assert run_control(forgetful, 1, tmp_path / "f05", progress=False)["final_return_mean"] < 0.2
