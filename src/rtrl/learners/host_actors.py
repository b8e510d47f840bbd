"""IMPALA's actors and learner in a host loop, for environments stepped from Python in batches
(EnvPool's Atari and ProcGen): the actors act with jitted steps of every seed's agents and the
learner updates every seed at once per segment (``rtrl.learners.impala``), as separate actor
processes and a learner would.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rtrl import compiled
from rtrl.learners.impala import Impala, Segment
from rtrl.learners.trunks import Step


class HostActors:
    """IMPALA's actors and learner for every seed on batched host environments (``num_envs``
    per seed, in one batch of ``envs``, e.g. EnvPool's), stepped from Python: ``act``, one
    jitted step of every seed's actors per environment step; ``collect``, a segment of every
    seed with the parameters it is given; ``update``, one jitted update of every seed per
    segment; ``train``, segments of collecting then updating. ``collect`` and ``update`` are
    what separate actor processes and a learner would call.

    With ``behaviour_lag`` = 0 the actors act with the learner's current parameters, so each
    segment waits for the update before it. With ``behaviour_lag`` = N the actors act with the
    parameters of N updates before, as IMPALA's separate actors do (V-trace corrects for it),
    and JAX may start collecting before the update ends (it dispatches the update without
    waiting). On two cores that gained nothing measurable: the update already uses both."""

    def __init__(self, learner: Impala, envs, seeds: int, num_envs: int, segment_length: int,
                 behaviour_lag: int = 0, bootstrap_truncation: bool = True,
                 seed: int = 0):  # fmt: skip
        """``envs``: ``seeds * num_envs`` environments with the interface of
        ``rtrl.envs.envpool_games.EnvPoolEnvs`` (``reset()``, ``step(actions) -> HostStep``)."""
        self.seeds, self.num_envs, self.envs = seeds, num_envs, envs
        self.segment_length, self.behaviour_lag = segment_length, behaviour_lag
        self.bootstrap_truncation = bootstrap_truncation
        agent, dist, num_envs = learner.agent, learner.agent.dist, self.num_envs

        def init_seed(key):
            k_learner, key = jax.random.split(key)
            params, opt_state = learner.init_learner(k_learner)
            carry = agent.trunk.init_carry(params["cell"])
            carries = jax.tree.map(lambda a: jnp.broadcast_to(a, (num_envs, *a.shape)), carry)
            return params, opt_state, carries, key

        def act_seed(params, carries, observations, resets, key):
            key, k_act = jax.random.split(key)
            outputs, values, carries = jax.vmap(agent.step, in_axes=(None, 0, 0, 0))(
                params, carries, observations, resets
            )
            actions = jax.vmap(dist.sample)(jax.random.split(k_act, num_envs), outputs)
            return actions, jax.vmap(dist.log_prob)(outputs, actions), values, carries, key

        def final_values_seed(params, carries, observations):
            return jax.vmap(agent.value_after, in_axes=(None, 0, 0))(params, carries, observations)

        self._init_all = compiled.jit(jax.vmap(init_seed))
        self.act = compiled.jit(jax.vmap(act_seed))
        self._final_values = compiled.jit(jax.vmap(final_values_seed))
        self.update = compiled.jit(jax.vmap(learner.update))
        self._seed_keys = jax.random.split(jax.random.PRNGKey(seed), seeds)

    def _per_seed(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(self.seeds, self.num_envs, *a.shape[1:])

    def init(self):
        """(learner, actors): learner = (params, opt_state, behaviour), every seed's, behaviour
        the last ``behaviour_lag`` + 1 parameters (the actors act with the first); actors =
        (carries, observations, resets, keys) of the freshly reset environments."""
        params, opt_state, carries, keys = self._init_all(self._seed_keys)
        observations = self._per_seed(self.envs.reset())
        resets = np.ones((self.seeds, self.num_envs), bool)
        behaviour = (params,) * (self.behaviour_lag + 1)
        return (params, opt_state, behaviour), (carries, observations, resets, keys)

    def train(self, learner, actors, segments: int):
        """``segments`` times: collect a segment with the behaviour parameters, then update.
        Returns (learner, actors, metrics), metrics (seeds, segments) arrays in NumPy."""
        params, opt_state, behaviour = learner
        metrics = []
        for _ in range(segments):
            segment, actors = self.collect(behaviour[0], actors)
            params, opt_state, segment_metrics = self.update(params, opt_state, segment)
            behaviour = (*behaviour[1:], params)
            metrics.append(segment_metrics)  # read after the loop: reading waits for the update
        stacked = jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a], 1), *metrics)
        return (params, opt_state, behaviour), actors, stacked

    def collect(self, params, actors) -> tuple[Segment, tuple]:
        """One segment of ``segment_length`` steps of every environment with ``params``."""
        carries, observations, resets, keys = actors
        first_carries, steps = carries, []
        for _ in range(self.segment_length):
            actions, log_probs, values, carries, keys = self.act(
                params, carries, observations, resets, keys
            )
            result = self.envs.step(np.asarray(actions).reshape(-1))
            terminated = self._per_seed(result.terminated)
            truncated = self._per_seed(result.truncated)
            done = terminated | truncated
            truncation_value = np.zeros((self.seeds, self.num_envs), np.float32)
            cut = truncated & ~terminated
            if self.bootstrap_truncation and cut.any():
                final = self._per_seed(result.final_observation)
                value = np.asarray(self._final_values(params, carries, final))
                truncation_value = np.where(cut, value, 0.0)
            finished = np.nan_to_num(self._per_seed(result.episode_return))
            steps.append(Step(observations, resets, actions, log_probs, values,
                              self._per_seed(result.reward).astype(np.float32), done,
                              truncation_value, finished))  # fmt: skip
            observations, resets = self._per_seed(result.observation), done
        stacked = jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a], 1), *steps)
        segment = Segment(stacked, first_carries, observations, resets)
        return segment, (carries, observations, resets, keys)
