"""Shared test utilities: random problems and leaf-wise relative errors."""

import jax
import jax.numpy as jnp

NUM_INPUTS = 3


def squared_error(head, features, target):
    return 0.5 * (head["w"] @ features + head["b"] - target) ** 2


def random_problem(cell, key, steps=12, reset_at=None, num_inputs=NUM_INPUTS):
    """Parameters, head, inputs, resets and targets for a short regression stream."""
    k_params, k_x, k_y, k_head = jax.random.split(key, 4)
    params = cell.init(k_params, num_inputs)
    xs = jax.random.normal(k_x, (steps, num_inputs))
    resets = jnp.zeros(steps, dtype=bool)
    if reset_at is not None:
        resets = resets.at[reset_at].set(True)
    targets = jax.random.normal(k_y, (steps,))
    head = {"w": jax.random.normal(k_head, (cell.num_features,)), "b": jnp.asarray(0.3)}
    return params, head, xs, resets, targets


def relative_errors(estimate, truth):
    """Leaf-wise [(path, ||estimate - truth|| / ||truth||)], absolute error where the truth is 0."""
    assert jax.tree.structure(estimate) == jax.tree.structure(truth)
    paths_and_truth, _ = jax.tree_util.tree_flatten_with_path(truth)
    errors = []
    for (path, b), a in zip(paths_and_truth, jax.tree.leaves(estimate)):
        scale, diff = float(jnp.linalg.norm(b)), float(jnp.linalg.norm(a - b))
        errors.append((jax.tree_util.keystr(path), diff / scale if scale > 0 else diff))
    return errors


def assert_trees_close(estimate, truth, tol=1e-6):
    bad = [(path, err) for path, err in relative_errors(estimate, truth) if not err <= tol]
    assert not bad, f"relative error above {tol}: {bad}"


def truncated_counter(limit: int):
    """A control environment that never terminates: observation [t] at step t of an episode,
    reward 1, truncated after ``limit`` steps (so its final observation is [limit])."""
    from rtrl.envs.control import ControlEnv, time_limit
    from rtrl.spaces import Discrete

    def reset(key):
        return jnp.zeros(()), jnp.zeros(1)

    def step(key, count, action):
        never = jnp.zeros((), bool)
        return count + 1.0, jnp.reshape(count + 1.0, (1,)), jnp.ones(()), never, never, {}

    return time_limit(ControlEnv("counter", 1, Discrete(2), reset, step), limit)
