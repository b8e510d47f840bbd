"""Control learners: PPO with RTRL traces against autodiff and BPTT, GAE, resets, distributions,
and real-time actor-critic learning CartPole-P."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import assert_trees_close, truncated_counter

from rtrl import cells
from rtrl.cells import make_cell
from rtrl.envs.cartpole import cartpole_p
from rtrl.envs.control import wrap_for_agents
from rtrl.gradients import columnar_rtrl
from rtrl.gradients.base import reset_then_step
from rtrl.gradients.columnar import stack_per_unit
from rtrl.learners.actor_critic import actor_critic
from rtrl.learners.policies import categorical, diagonal_gaussian, mlp_apply
from rtrl.learners.ppo import PPOConfig, gae, ppo
from rtrl.learners.trunks import bptt_trunk, rtrl_trunk
from rtrl.spaces import Discrete

pytestmark = pytest.mark.float64

SMALL = PPOConfig(rollout_length=16, num_envs=2, minibatches=2, hidden=6, epochs=1,
                  sequence_length=8)  # fmt: skip


def test_gae_against_a_hand_computed_example():
    gamma, lam = 0.9, 0.5
    rewards = jnp.array([1.0, 0.0, 2.0, 1.0])
    values = jnp.array([0.5, 1.0, 1.5, 2.0])
    dones = jnp.array([False, True, False, False])
    last = jnp.asarray(3.0)
    # Backwards by hand; the episode ends after step 1, so steps 0-1 do not see steps 2-3.
    d3 = 1.0 + 0.9 * 3.0 - 2.0  # 1.7
    d2 = 2.0 + 0.9 * 2.0 - 1.5  # 2.3
    d1 = 0.0 - 1.0  # done: no bootstrap
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    a3 = d3
    a2 = d2 + 0.45 * a3
    a1 = d1
    a0 = d0 + 0.45 * a1
    advantages, returns = gae(rewards, values, dones, last, gamma, lam)
    np.testing.assert_allclose(advantages, [a0, a1, a2, a3], rtol=1e-12)
    np.testing.assert_allclose(returns, np.array([a0, a1, a2, a3]) + values, rtol=1e-12)
    # Batched over environments (time first).
    batched, _ = gae(rewards[:, None].repeat(3, 1), values[:, None].repeat(3, 1),
                     dones[:, None].repeat(3, 1), jnp.full(3, 3.0), gamma, lam)  # fmt: skip
    np.testing.assert_allclose(batched, np.array([[a0, a1, a2, a3]] * 3).T, rtol=1e-12)


def test_gae_bootstraps_a_truncated_episode_from_its_final_value():
    """Step 1 ends a truncated episode whose final observation has value 4: its TD error
    bootstraps from gamma * 4, and (as at any episode end) no later advantage flows back."""
    gamma, lam = 0.9, 0.5
    rewards = jnp.array([1.0, 0.0, 2.0, 1.0])
    values = jnp.array([0.5, 1.0, 1.5, 2.0])
    dones = jnp.array([False, True, False, False])
    truncation_values = jnp.array([0.0, 4.0, 0.0, 0.0])
    d3 = 1.0 + 0.9 * 3.0 - 2.0
    d2 = 2.0 + 0.9 * 2.0 - 1.5
    d1 = 0.0 + 0.9 * 4.0 - 1.0  # 2.6: bootstrapped from the final observation's value
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    a3 = d3
    a2 = d2 + 0.45 * a3
    a1 = d1
    a0 = d0 + 0.45 * a1
    advantages, returns = gae(rewards, values, dones, jnp.asarray(3.0), gamma, lam,
                              truncation_values)  # fmt: skip
    np.testing.assert_allclose(advantages, [a0, a1, a2, a3], rtol=1e-12)
    np.testing.assert_allclose(returns, np.array([a0, a1, a2, a3]) + values, rtol=1e-12)


@pytest.mark.parametrize("bootstrap", [True, False])
def test_ppo_stores_the_value_of_a_truncated_episodes_final_observation(bootstrap):
    """On a counter truncated after 5 steps (observations 0..4, final observation 5): at each
    truncation, V(5) read by the trunk from the pre-reset state (the episode unrolled by hand);
    zero elsewhere, and everywhere with the option off."""
    env = wrap_for_agents(truncated_counter(5))
    cell = make_cell("linear_rtu", 3)
    agent = ppo(env, bptt_trunk(cell), SMALL._replace(bootstrap_truncation=bootstrap))
    state, rollout = collected(agent)
    truncated = np.asarray(rollout.done)
    assert np.flatnonzero(truncated[:, 0]).tolist() == [4, 9, 14]
    values = np.asarray(rollout.truncation_value)
    if not bootstrap:
        assert not np.any(values)
        return
    params = state.params
    cell_state = cell.initial_state(params["cell"])
    for count in range(6):
        x = mlp_apply(params["encoder"], jnp.array([float(count)]), activate_last=True)
        cell_state, features = cells.step(cell, params["cell"], cell_state, x)
    want = float(mlp_apply(params["critic"], features)[0])
    np.testing.assert_allclose(values[truncated], want, rtol=1e-9)
    assert not np.any(values[~truncated])


def test_actor_critic_bootstraps_a_truncated_episode_from_its_final_value():
    """With step sizes 0, the TD error of the step that reads a new episode's first observation
    is r + gamma V(final observation) - V(last observation) after a truncation (V(final) read
    from the pre-reset trunk), r - V(last observation) after a termination or with the option
    off; values computed by unrolling the trunk by hand."""
    from rtrl.gradients import bptt

    gamma = 0.9
    cell = make_cell("linear_rtu", 3)
    xs = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    final = jnp.array([0.3, -0.7])
    for bootstrap, truncated in ((True, True), (True, False), (False, True)):
        learner = actor_critic(columnar_rtrl(cell), Discrete(2), optax.sgd(0.0), optax.sgd(0.0),
                               gamma=gamma, bootstrap_truncation=bootstrap)  # fmt: skip
        state = learner.init(jax.random.PRNGKey(0), 2)
        for t in range(3):
            state, _, _ = learner.step(state, jax.random.PRNGKey(t), xs[t], 0.0, t == 0)
        # x_3 starts a new episode; the last one ended in ``final`` after x_2.
        _, _, metrics = learner.step(state, jax.random.PRNGKey(3), xs[3], 1.5,
                                     not truncated, truncated, final)  # fmt: skip

        def value(inputs):
            features = bptt.unroll(cell, state.params["trunk"], inputs, jnp.zeros(len(inputs)))[0]
            return float(mlp_apply(state.params["critic"], features[-1])[0])

        last, after_end = value(xs[:3]), value(jnp.concatenate([xs[:3], final[None]]))
        want = 1.5 - last + (gamma * after_end if bootstrap and truncated else 0.0)
        assert float(metrics["td_error"]) == pytest.approx(want, rel=1e-9)


@pytest.mark.float64
def test_stream_actor_critic_takes_obgd_bounded_steps_of_its_traces():
    """With ObGD, each step moves the parameters by the critic's bounded step of delta e^v plus
    the actor's of delta e^pi (entropy off), each bounded by its own kappa and trace; with the
    entropy weighted by |delta|, the first step (no TD error yet) does not move them."""
    from rtrl.learners.optim import obgd

    def flat(tree):
        return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])

    cell = make_cell("linear_rtu", 3)
    learner = actor_critic(columnar_rtrl(cell), Discrete(2), obgd(1.0, 3.0), obgd(1.0, 2.0),
                           gamma=0.9, lambda_=0.8, shared_trunk=False,
                           entropy_by_td_error=True)  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), 2)
    step = jax.jit(learner.step)
    xs = jax.random.normal(jax.random.PRNGKey(1), (8, 2))
    cut = 0
    for t in range(8):
        new, _, metrics = step(state, jax.random.PRNGKey(t), xs[t], 1.0 - t % 3, t == 4)
        delta = float(metrics["td_error"])
        moved = flat(new.params) - flat(state.params)
        expected = 0.0
        for trace, kappa in ((flat(state.critic_trace), 2.0), (flat(state.actor_trace), 3.0)):
            bound = kappa * max(abs(delta), 1.0) * np.abs(trace).sum()
            cut += bound > 1
            expected = expected + delta * trace / max(bound, 1.0)
        np.testing.assert_allclose(moved, expected, atol=1e-12)
        state = new
    assert cut > 0
    entropic = actor_critic(columnar_rtrl(cell), Discrete(2), obgd(1.0, 3.0), obgd(1.0, 2.0),
                            entropy_coef=0.5, entropy_by_td_error=True)  # fmt: skip
    first = entropic.init(jax.random.PRNGKey(0), 2)
    after, _, _ = entropic.step(first, jax.random.PRNGKey(0), xs[0], 0.0, False)
    np.testing.assert_array_equal(flat(after.params), flat(first.params))
    from rtrl.experiments import configuration

    with pytest.raises(ValueError, match="ac_optimizer must be one of adam, obgd, adaptive_obgd"):
        configuration.resolve("ac-rtu-cartpole-p", {"ac_optimizer": "sgd"})


def test_distributions_against_closed_forms():
    gauss = diagonal_gaussian(2)
    output = jnp.array([0.3, -0.2, 0.1, -0.5])  # mean, log std
    action = jnp.array([0.0, 0.4])
    expected = jax.scipy.stats.norm.logpdf(action, output[:2], jnp.exp(output[2:])).sum()
    assert float(gauss.log_prob(output, action)) == pytest.approx(float(expected))
    entropy = np.sum(0.5 * np.log(2 * np.pi * np.e * np.exp(2 * np.asarray(output[2:]))))
    assert float(gauss.entropy(output)) == pytest.approx(entropy)
    cat = categorical(3)
    logits = jnp.array([0.1, 2.0, -1.0])
    probs = jax.nn.softmax(logits)
    assert float(cat.log_prob(logits, 1)) == pytest.approx(float(jnp.log(probs[1])))
    assert float(cat.entropy(logits)) == pytest.approx(float(-(probs * jnp.log(probs)).sum()))
    samples = jax.vmap(cat.sample, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0),
                                                                        4000), logits)  # fmt: skip
    np.testing.assert_allclose(np.bincount(samples, minlength=3) / 4000, probs, atol=0.03)


def make_agent(trunk_kind: str, config: PPOConfig = SMALL, cell_name: str = "linear_rtu"):
    env = wrap_for_agents(cartpole_p(), normalize_obs=True)
    cell = make_cell(cell_name, 3)
    trunk = rtrl_trunk(columnar_rtrl(cell)) if trunk_kind == "rtrl" else bptt_trunk(cell)
    return ppo(env, trunk, config), cell


def collected(agent, key=jax.random.PRNGKey(0)):
    state = agent.init(key)
    _, rollout, last_values = agent.collect(state.params, state.envs, jax.random.PRNGKey(1))
    return state, rollout


def perturbed(params, key=jax.random.PRNGKey(7), scale=0.05):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    noise = [scale * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)]
    return jax.tree.unflatten(treedef, [leaf + n for leaf, n in zip(leaves, noise)])


def linearized_state(cell_params, est_state):
    """The stored previous state s_0 as a function of the recurrent parameters whose derivative
    is the stored RTRL traces: s(theta) = s_0 + traces . (theta - stop_gradient(theta))."""
    base = stack_per_unit(est_state.cell_state)
    shift = jnp.zeros_like(base)
    for group, traces in est_state.traces.items():
        for name, trace in traces.items():
            delta = cell_params[group][name] - jax.lax.stop_gradient(cell_params[group][name])
            axes = tuple(range(2, trace.ndim))
            shift = shift + jnp.sum(trace * jnp.expand_dims(delta, 1), axis=axes)
    state = base + shift
    leaves, treedef = jax.tree.flatten(est_state.cell_state)
    return jax.tree.unflatten(treedef, [state[:, i] for i in range(len(leaves))])


def test_rtrl_ppo_gradient_from_a_stored_carry_equals_autodiff_with_the_stored_traces():
    agent, cell = make_agent("rtrl")
    state, rollout = collected(agent)
    params = perturbed(state.params)  # the loss is taken after the parameters moved
    t, env = 9, 1
    sample = jax.tree.map(lambda a: a[t, env], rollout)
    batch = jax.tree.map(lambda a: a[None], sample)

    def ppo_sample_loss(params):
        log_prob, entropy, value = agent.evaluate(params, batch)
        return jnp.sum(2.0 * log_prob + 0.3 * entropy - value**2)

    dist = categorical(2)

    def reference_loss(params):
        # Autodiff through one plain cell step whose previous state depends on the recurrent
        # parameters through the stored traces.
        x = mlp_apply(params["encoder"], sample.observation, activate_last=True)
        previous = linearized_state(params["cell"], sample.carry)
        _, features = reset_then_step(cell, params["cell"], previous, x, sample.reset)
        output = mlp_apply(params["actor"], features)
        value = mlp_apply(params["critic"], features)[0]
        log_prob = dist.log_prob(output, sample.action)
        return 2.0 * log_prob + 0.3 * dist.entropy(output) - value**2

    assert not bool(sample.reset)
    got = jax.grad(ppo_sample_loss)(params)
    want = jax.grad(reference_loss)(params)
    assert_trees_close(got, want, tol=1e-9)


def test_rtrl_ppo_fresh_traces_equal_bptt_over_the_rollout_prefix():
    agent, cell = make_agent("rtrl", SMALL._replace(traces="fresh"))
    bptt_agent, _ = make_agent("bptt")
    state, rollout = collected(agent)
    assert bool(rollout.reset[0].all())  # the rollout starts episodes: BPTT's prefix is exact
    params = perturbed(state.params)
    carries = agent.recompute_carries(params, rollout)  # what each "fresh" epoch uses
    env = 0
    for t in (5, 12):
        sample = jax.tree.map(lambda a: a[t, env][None], rollout._replace(carry=carries))

        def rtrl_loss(params):
            log_prob, _, value = agent.evaluate(params, sample)
            return jnp.sum(log_prob + 0.5 * value)

        prefix = jax.tree.map(lambda a: a[: t + 1, env][None], rollout)
        prefix = prefix._replace(carry=jax.tree.map(
            lambda a: jnp.broadcast_to(a, (1, t + 1, *a.shape)), cell.initial_state(params["cell"])
        ))  # fmt: skip

        def bptt_loss(params):
            log_prob, _, value = bptt_agent.evaluate(params, prefix)
            return log_prob[0, t] + 0.5 * value[0, t]

        got, want = jax.grad(rtrl_loss)(params), jax.grad(bptt_loss)(params)
        # The encoder gets a one-step gradient under RTRL, the full one under BPTT.
        for key in ("cell", "actor", "critic"):
            assert_trees_close(got[key], want[key], tol=1e-9)


def test_resets_restart_state_and_traces_at_the_first_step_of_an_episode():
    agent, cell = make_agent("rtrl", SMALL._replace(rollout_length=64))
    state, rollout = collected(agent)
    resets, dones = np.asarray(rollout.reset), np.asarray(rollout.done)
    np.testing.assert_array_equal(resets[1:], dones[:-1])  # a done starts the next step anew
    assert resets[0].all() and dones.sum() >= 2
    estimator = columnar_rtrl(cell)
    fresh = estimator.init(state.params["cell"])
    for t, env in zip(*np.nonzero(resets[:-1])):
        x = mlp_apply(state.params["encoder"], rollout.observation[t, env], activate_last=True)
        after = jax.tree.map(lambda a: a[t + 1, env], rollout.carry)
        _, from_scratch = estimator.step(state.params["cell"], fresh, x, False)
        assert_trees_close(after, from_scratch, tol=1e-10)
        # ... while the step after it continues the episode (its traces are not restarted).
        if not resets[t + 1, env]:
            x_next = mlp_apply(state.params["encoder"], rollout.observation[t + 1, env], True)
            _, restarted = estimator.step(state.params["cell"], fresh, x_next, False)
            following = jax.tree.map(lambda a: a[t + 2, env], rollout.carry)
            assert not np.allclose(following.traces["inputs"]["W1"],
                                   restarted.traces["inputs"]["W1"])  # fmt: skip


@pytest.mark.slow
def test_ppo_iterations_run_for_every_trunk_and_reject_bad_batching():
    for kind, cell_name in (("rtrl", "nonlinear_rtu"), ("rtrl", "online_lru"),
                            ("bptt", "dense_gru"), ("bptt", "dense_lstm")):  # fmt: skip
        agent, _ = make_agent(kind, cell_name=cell_name)
        state = agent.init(jax.random.PRNGKey(0))
        state, metrics = jax.jit(agent.iteration)(state)
        assert np.isfinite(float(metrics["policy_loss"]))
        assert set(metrics) >= {"episode_return", "episodes", "approx_kl", "value_loss"}
    with pytest.raises(ValueError, match="minibatches"):
        make_agent("rtrl", SMALL._replace(minibatches=5))
    with pytest.raises(ValueError, match="sequence_length"):
        make_agent("bptt", SMALL._replace(sequence_length=5))
    with pytest.raises(ValueError, match="stale"):
        make_agent("rtrl", SMALL._replace(traces="old"))


@pytest.mark.slow
def test_actor_critic_learns_cartpole_p():
    """Past a mean return of 60 (random play: about 22) within 30k steps, 4 seeds."""
    env = wrap_for_agents(cartpole_p(), normalize_obs=True)
    learner = actor_critic(columnar_rtrl(make_cell("linear_rtu", 32)), env.action_space,
                           optax.adam(1e-3), optax.adam(1e-3), gamma=0.99, lambda_=0.9)  # fmt: skip

    def run(key):
        k_init, k_env, k_steps = jax.random.split(key, 3)
        agent = learner.init(k_init, env.observation_size)
        env_state, obs = env.reset(k_env)

        def per_step(carry, step_key):
            agent, env_state, obs, received = carry
            k_act, k_env = jax.random.split(step_key)
            agent, action, _ = learner.step(agent, k_act, obs, *received)
            env_state, obs, reward, terminated, truncated, info = env.step(k_env, env_state,
                                                                           action)  # fmt: skip
            received = (reward, terminated, truncated, info["final_observation"])
            return (agent, env_state, obs, received), (terminated | truncated,
                                                       info["episode_return"])  # fmt: skip

        never = jnp.zeros((), bool)
        start = (agent, env_state, obs, (jnp.zeros(()), never, never, obs))
        return jax.lax.scan(per_step, start, jax.random.split(k_steps, 30_000))[1]

    dones, returns = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 4))
    dones, returns = np.asarray(dones), np.asarray(returns)
    late = returns[:, 15_000:][dones[:, 15_000:]]
    first = np.concatenate([r[d][:5] for r, d in zip(returns, dones)])  # 5 episodes per seed
    assert first.mean() < 40
    assert late.mean() > 60, late.mean()


@pytest.mark.parametrize("shared_trunk,encoder", [(True, False), (False, False), (False, True)])
def test_actor_critic_traces_equal_autodiff_through_the_unrolled_trunk(shared_trunk, encoder):
    """With the step sizes at zero, e^v_t = sum_k (gamma lambda)^k grad V_{t-k} and
    e^pi_t = sum_k (gamma lambda)^k grad log pi(a_{t-k} | h_{t-k}), cut at episode starts, where
    each gradient is autodiff through the whole unrolled trunk (Gaussian policy). With stream-x's
    encoder (LayerNorm, sparse initialisation) before each trunk, the encoder gets the immediate
    gradient through the trunk's input."""
    from rtrl.gradients import bptt
    from rtrl.learners.streaming import encode
    from rtrl.spaces import Box

    gamma, lam, steps = 0.9, 0.8, 9
    cell = make_cell("linear_rtu", 3)
    space = Box(2)
    options = {"encoder_sizes": (5,), "layer_norm": True, "sparsity": 0.5} if encoder else {}
    learner = actor_critic(columnar_rtrl(cell), space, optax.sgd(0.0), optax.sgd(0.0),
                           gamma=gamma, lambda_=lam, shared_trunk=shared_trunk,
                           head_hidden=4, **options)  # fmt: skip
    state = learner.init(jax.random.PRNGKey(0), 3)
    xs = jax.random.normal(jax.random.PRNGKey(1), (steps, 3))
    dones = jnp.zeros(steps, bool).at[5].set(True)  # x_5 starts a new episode
    actions = []
    for t in range(steps):
        state, action, _ = learner.step(state, jax.random.PRNGKey(10 + t), xs[t], 0.5, dones[t])
        actions.append(action)
    params = state.params
    dist = diagonal_gaussian(2)
    trunks = ("trunk",) if shared_trunk else ("actor_trunk", "critic_trunk")

    def at_step(params, t):
        """V_t and log pi(a_t | h_t) by autodiff through the trunk unrolled from the start."""
        features = []
        for name in trunks:
            layers = params["encoders"][name]
            inputs = jax.vmap(lambda x, layers=layers: encode(layers, x, True))(xs[: t + 1])
            inputs = jax.lax.stop_gradient(inputs).at[t].set(encode(layers, xs[t], True))
            features.append(bptt.unroll(cell, params[name], inputs, dones[: t + 1])[0][t])
        value = mlp_apply(params["critic"], features[-1])[0]
        output = jnp.concatenate([mlp_apply(params["actor"], features[0]), params["log_std"]])
        return value, dist.log_prob(output, actions[t])

    zeros = jax.tree.map(jnp.zeros_like, params)
    critic_trace, actor_trace = zeros, zeros
    for t in range(steps):
        decay = 0.0 if (t == 0 or dones[t]) else gamma * lam
        value_grad = jax.grad(lambda p: at_step(p, t)[0])(params)
        log_prob_grad = jax.grad(lambda p: at_step(p, t)[1])(params)
        critic_trace = jax.tree.map(lambda e, g: decay * e + g, critic_trace, value_grad)
        actor_trace = jax.tree.map(lambda e, g: decay * e + g, actor_trace, log_prob_grad)
    assert_trees_close(state.critic_trace, critic_trace, tol=1e-9)
    assert_trees_close(state.actor_trace, actor_trace, tol=1e-9)
