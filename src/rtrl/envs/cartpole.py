"""CartPole (Barto, Sutton & Anderson 1983; the constants of Gymnasium's CartPole-v1) in JAX,
and CartPole-P, which observes positions only.

Observation: [cart position, cart velocity, pole angle, pole angular velocity]. Actions: 0 pushes
left, 1 pushes right. Reward 1 per step; the episode ends when |x| > 2.4, |angle| > 12 degrees,
or is truncated after 500 steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rtrl.envs.control import ControlEnv, keep_observations, time_limit
from rtrl.spaces import Discrete

GRAVITY = 9.8
CART_MASS = 1.0
POLE_MASS = 0.1
HALF_POLE_LENGTH = 0.5
FORCE = 10.0
TAU = 0.02  # seconds per step (explicit Euler)
X_LIMIT = 2.4
ANGLE_LIMIT = 12 * 2 * jnp.pi / 360
MAX_STEPS = 500

# The observation entries CartPole-P keeps: cart position and pole angle.
CARTPOLE_POSITIONS = (0, 2)
CARTPOLE_VELOCITIES = (1, 3)


def cartpole_dynamics(state: jax.Array, action: jax.Array) -> jax.Array:
    x, x_dot, angle, angle_dot = state
    force = jnp.where(action == 1, FORCE, -FORCE)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    total_mass = CART_MASS + POLE_MASS
    pole_moment = POLE_MASS * HALF_POLE_LENGTH
    temp = (force + pole_moment * angle_dot**2 * sin) / total_mass
    angle_acc = (GRAVITY * sin - cos * temp) / (
        HALF_POLE_LENGTH * (4.0 / 3.0 - POLE_MASS * cos**2 / total_mass)
    )
    x_acc = temp - pole_moment * angle_acc * cos / total_mass
    return jnp.stack(
        [x + TAU * x_dot, x_dot + TAU * x_acc, angle + TAU * angle_dot, angle_dot + TAU * angle_acc]
    )


def cartpole() -> ControlEnv:
    """Fully observed CartPole-v1."""

    def reset(key):
        state = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        return state, state

    def step(key, state, action):
        state = cartpole_dynamics(state, action)
        fallen = (jnp.abs(state[0]) > X_LIMIT) | (jnp.abs(state[2]) > ANGLE_LIMIT)
        return state, state, jnp.ones(()), fallen, jnp.zeros((), bool), {}

    env = ControlEnv("cartpole", 4, Discrete(2), reset, step)
    return time_limit(env, MAX_STEPS)


def cartpole_p() -> ControlEnv:
    """CartPole-P: cart position and pole angle only (velocities must be inferred)."""
    return keep_observations(cartpole(), CARTPOLE_POSITIONS, "cartpole-p")


def cartpole_v() -> ControlEnv:
    """CartPole-V: cart velocity and pole angular velocity only."""
    return keep_observations(cartpole(), CARTPOLE_VELOCITIES, "cartpole-v")
