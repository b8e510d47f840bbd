"""The cell interface shared by every recurrent architecture.

A cell is a NamedTuple of pure functions over plain pytrees (dicts of arrays):

- ``init(key, num_inputs) -> params``
- ``initial_state(params) -> state``          (one stream; batch with ``jax.vmap``)
- ``transition(params, state, x) -> state``   (the recurrence; must not read ``params["readout"]``)
- ``readout(readout_params, state, x) -> features``  (feed-forward, outside the recurrence)

Parameter convention: ``params["readout"]`` holds the feed-forward output parameters (possibly
an empty dict); every other entry is a *recurrent* parameter, i.e. it influences the state.
Gradient estimators rely on this split: readout parameters get ordinary backprop at every step,
recurrent ones get the estimator's credit assignment through time.

Element-wise cells (unit k's next state depends only on its own state, its own parameters and
the shared input) additionally expose ``unit_step`` and store their parameters as

- ``params["inputs"][name]``: input-projection matrices of shape ``(units, *gates, num_inputs)``;
  unit k sees ``u[name][k] = params["inputs"][name][k] @ x``;
- ``params["unit"][name]``: private per-unit parameters of shape ``(units, ...)``;
- state: a dict of arrays of shape ``(units,)`` (a few scalars per unit).

``unit_step(unit_params_k, state_k, u_k) -> state_k`` is the update of one unit on its own slice;
``transition`` is derived from it. This factorization is what lets exact RTRL cost O(parameters).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Params = dict[str, Any]
State = dict[str, jax.Array]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "identity": lambda a: a,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Look up an element-wise activation by name, with an error that lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


class Cell(NamedTuple):
    """A recurrent architecture as pure functions (see the module docstring)."""

    name: str
    units: int
    num_features: int
    init: Callable[[jax.Array, int], Params]
    initial_state: Callable[[Params], State]
    transition: Callable[[Params, State, jax.Array], State]
    readout: Callable[[Params, State, jax.Array], jax.Array]
    # Element-wise cells only: the per-unit update (None for dense cells).
    unit_step: Callable[[Params, State, dict[str, jax.Array]], State] | None = None


def is_elementwise(cell: Cell) -> bool:
    return cell.unit_step is not None


def step(cell: Cell, params: Params, state: State, x: jax.Array) -> tuple[State, jax.Array]:
    """One forward step without any gradient bookkeeping: ``(new_state, features)``."""
    new_state = cell.transition(params, state, x)
    return new_state, cell.readout(params["readout"], new_state, x)


def num_inputs_of(params: Params) -> int:
    """The input size an element-wise cell's parameters were built for."""
    return next(iter(params["inputs"].values())).shape[-1]


def check_input(cell: Cell, params: Params, x: jax.Array) -> None:
    """Raise a clear error when one stream's input does not match the cell (shapes are static)."""
    expected = num_inputs_of(params) if "inputs" in params else None
    if x.ndim != 1 or (expected is not None and x.shape[0] != expected):
        raise ValueError(
            f"{cell.name}: expected one stream's input of shape ({expected},), got {x.shape}; "
            "batch several streams with jax.vmap rather than passing a batch dimension"
        )


def project_inputs(input_weights: dict[str, jax.Array], x: jax.Array) -> dict[str, jax.Array]:
    """u[name] = W[name] @ x for every input-projection matrix (shape (units, *gates))."""
    return {name: jnp.tensordot(w, x, axes=1) for name, w in input_weights.items()}


def elementwise_cell(
    *,
    name: str,
    units: int,
    num_features: int,
    init: Callable[[jax.Array, int], Params],
    state_names: tuple[str, ...],
    unit_step: Callable[[Params, State, dict[str, jax.Array]], State],
    readout: Callable[[Params, State, jax.Array], jax.Array],
) -> Cell:
    """Build a Cell from the per-unit update of an element-wise architecture."""

    def initial_state(params: Params) -> State:
        dtype = next(iter(params["unit"].values())).dtype
        return {s: jnp.zeros((units,), dtype) for s in state_names}

    def transition(params: Params, state: State, x: jax.Array) -> State:
        check_input(cell, params, x)
        u = project_inputs(params["inputs"], x)
        return jax.vmap(unit_step)(params["unit"], state, u)

    cell = Cell(
        name=name,
        units=units,
        num_features=num_features,
        init=init,
        initial_state=initial_state,
        transition=transition,
        readout=readout,
        unit_step=unit_step,
    )
    return cell


def count_params(tree: Any) -> int:
    return sum(int(leaf.size) for leaf in jax.tree.leaves(tree))


def recurrent_params(params: Params) -> Params:
    """Every parameter that influences the state (all but ``params["readout"]``)."""
    return {k: v for k, v in params.items() if k != "readout"}


def lecun_normal(key: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    return jax.random.normal(key, shape) / jnp.sqrt(fan_in)
