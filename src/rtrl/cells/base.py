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

Unit-form cells describe unit k's update on its own slice, which is what lets RTRL-style
estimators cost O(parameters). Their parameters are

- ``params["inputs"][name]``: input-projection rows of shape ``(units, *gates, num_inputs)``;
- ``params["recurrent"][name]`` (coupled and dense cells only): rows of shape
  ``(units, *gates, K)`` over the K previous-step state values unit k reads (``Coupling``);
- ``params["unit"][name]``: private per-unit parameters of shape ``(units, ...)``;
- state: a dict of arrays of shape ``(units,)`` (a few scalars per unit).

Unit k sees ``u[name][k] = inputs[name][k] @ x_t (+ recurrent[name][k] @ v_k)`` where v_k are the
values it reads from the previous state, and ``unit_step(unit_params_k, state_k, u_k) -> state_k``
is its update; ``transition`` is derived from these. A cell without ``params["recurrent"]`` is
*element-wise*: unit k depends on nothing but its own state and the shared input.

Streams last: every function also takes many independent streams at once when every array
(parameters, state, input) carries the same trailing stream axes, e.g. x of shape (d, S) and
``inputs["W"]`` of shape (units, 4, d, S). This is how compiled online loops batch streams on
CPU, where XLA vectorises the minor axis (a leading vmap axis leaves tiny minor axes and adds
transposes and batched dots). A unit's update needs nothing for this: written on a unit's
scalars, it broadcasts over trailing axes. Contractions go through ``contract``, and the number
of stream axes is read off the input: ``x.ndim - 1``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

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
    # Unit-form cells only (None otherwise): the per-unit update, and which previous-step
    # state values each unit reads besides its own state (None: element-wise).
    unit_step: Callable[[Params, State, dict[str, jax.Array]], State] | None = None
    coupling: "Coupling | None" = None
    # The state variables a unit exposes to units that read it (its output, e.g. ("h",)).
    exposed: tuple[str, ...] = ()
    # Whether compiled loops should run many streams with the stream axis last (the layout XLA
    # vectorises on CPU) rather than vmapped; measured per cell (benchmarks/README.md).
    streams_last_fast: bool = True


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: usable as a static argument
class Coupling:
    """Static description of which previous-step values each unit reads.

    ``reads``: the state variables other units can read (e.g. ("h",)); they form the vector
    v = concat([state[r] for r in reads]) of length len(reads) * units.
    ``sources``: int array (units, K): unit k reads v[sources[k]] through its recurrent rows.
    """

    reads: tuple[str, ...]
    sources: np.ndarray


def is_unit_form(cell: Cell) -> bool:
    return cell.unit_step is not None


def is_elementwise(cell: Cell) -> bool:
    return is_unit_form(cell) and cell.coupling is None


# Per-stream weight count from which ``contract`` uses a batched matrix-vector product.
LARGE_CONTRACTION = 32768


def contract(w: jax.Array, v: jax.Array, stream_axes: int = 0) -> jax.Array:
    """w (..., k, *B) times v (k, *B) over k, stream axes B trailing: ``w @ v`` per stream.

    With streams, a multiply and a sum over a non-minor axis, which XLA fuses and vectorises over
    the streams (rather than a batched matrix-vector product over tiny matrices)."""
    if stream_axes == 0:
        return jnp.tensordot(w, v, axes=1)
    streams = int(np.prod(v.shape[1:]))
    if w.size // streams >= LARGE_CONTRACTION:  # a matrix-vector product per stream pays off
        k = w.ndim - v.ndim  # the contracted axis of w
        batch = tuple(range(k + 1, w.ndim))
        out = jax.lax.dot_general(w, v, (((k,), (0,)), (batch, tuple(range(1, v.ndim)))))
        return jnp.moveaxis(out, tuple(range(stream_axes)), tuple(range(-stream_axes, 0)))
    return jnp.sum(w * v, axis=-(stream_axes + 1))


def streams_last(tree: Any) -> Any:
    """Move the leading stream axis of every leaf (as ``jax.vmap`` makes them) to the end."""
    return jax.tree.map(lambda a: jnp.moveaxis(a, 0, -1), tree)


def stream_axes_of(x: jax.Array) -> int:
    """Trailing stream axes of a cell input (one stream's input is a vector)."""
    return x.ndim - 1


def step(cell: Cell, params: Params, state: State, x: jax.Array) -> tuple[State, jax.Array]:
    """One forward step without any gradient bookkeeping: ``(new_state, features)``."""
    new_state = cell.transition(params, state, x)
    return new_state, cell.readout(params["readout"], new_state, x)


def num_inputs_of(params: Params, stream_axes: int = 0) -> int:
    """The input size an element-wise cell's parameters were built for."""
    return next(iter(params["inputs"].values())).shape[-1 - stream_axes]


def check_input(cell: Cell, params: Params, x: jax.Array) -> None:
    """Raise a clear error when one stream's input does not match the cell (shapes are static)."""
    stream_axes = max(x.ndim - 1, 0)
    expected = num_inputs_of(params, stream_axes) if "inputs" in params else None
    if x.ndim == 0 or (expected is not None and x.shape[0] != expected):
        raise ValueError(
            f"{cell.name}: expected one stream's input of shape ({expected},), got {x.shape}; "
            "for many streams at once either put them last in every array (input "
            f"({expected}, streams), parameters and state alike) or batch them with jax.vmap"
        )


def project_inputs(input_weights: dict[str, jax.Array], x: jax.Array) -> dict[str, jax.Array]:
    """u[name] = W[name] @ x for every input-projection matrix (shape (units, *gates))."""
    return {name: contract(w, x, stream_axes_of(x)) for name, w in input_weights.items()}


def gather_reads(coupling: Coupling, state: State) -> jax.Array:
    """(units, K, *streams): the previous-step values each unit reads."""
    v = jnp.concatenate([state[r] for r in coupling.reads])
    units = coupling.sources.shape[0]
    if coupling.sources.shape[1] == v.shape[0] and np.array_equal(
        coupling.sources, np.broadcast_to(np.arange(v.shape[0]), coupling.sources.shape)
    ):  # static: every unit reads every value in order (dense cells), a broadcast, not a gather
        return jnp.broadcast_to(v, (units,) + v.shape)
    return v[coupling.sources]


def project_reads(
    recurrent_weights: dict[str, jax.Array], reads: jax.Array
) -> dict[str, jax.Array]:
    """u[name][k] = R[name][k] @ reads[k] (one read vector per unit)."""
    stream_axes = reads.ndim - 2

    def project(w: jax.Array) -> jax.Array:
        if stream_axes == 0:
            return jnp.einsum("n...k,nk->n...", w, reads)
        gates = w.ndim - reads.ndim
        per_unit = reads.reshape(reads.shape[:1] + (1,) * gates + reads.shape[1:])
        return jnp.sum(w * per_unit, axis=-(stream_axes + 1))

    return {name: project(w) for name, w in recurrent_weights.items()}


def unit_inputs(cell: Cell, params: Params, state: State, x: jax.Array):
    """Everything unit k's update sees besides its state: (u, reads or None)."""
    check_input(cell, params, x)
    u = project_inputs(params["inputs"], x)
    if cell.coupling is None:
        return u, None
    reads = gather_reads(cell.coupling, state)
    for name, value in project_reads(params["recurrent"], reads).items():
        u[name] = u[name] + value if name in u else value
    return u, reads


def unit_form_cell(
    *,
    name: str,
    units: int,
    num_features: int,
    init: Callable[[jax.Array, int], Params],
    state_names: tuple[str, ...],
    unit_step: Callable[[Params, State, dict[str, jax.Array]], State],
    readout: Callable[[Params, State, jax.Array], jax.Array],
    exposed: tuple[str, ...],
    coupling: Coupling | None = None,
    streams_last_fast: bool = True,
) -> Cell:
    """Build a Cell from the per-unit update (element-wise when ``coupling`` is None)."""

    @functools.cache
    def one_stream_unit_shapes() -> dict[str, tuple[int, ...]]:
        shapes = jax.eval_shape(lambda: init(jax.random.PRNGKey(0), 1))["unit"]
        return {k: v.shape for k, v in shapes.items()}

    def initial_state(params: Params) -> State:
        name, leaf = next(iter(params["unit"].items()))
        # Streams last: the unit parameters' axes beyond one stream's are the stream axes.
        streams = leaf.shape[len(one_stream_unit_shapes()[name]) :]
        return {s: jnp.zeros((units,) + streams, leaf.dtype) for s in state_names}

    return with_unit_transition(
        Cell(
            name=name,
            units=units,
            num_features=num_features,
            init=init,
            initial_state=initial_state,
            transition=None,
            readout=readout,
            unit_step=unit_step,
            coupling=coupling,
            exposed=exposed,
            streams_last_fast=streams_last_fast,
        )
    )


def with_unit_transition(cell: Cell) -> Cell:
    """Derive ``transition`` from a unit-form cell's ``unit_step`` and ``coupling``."""

    def transition(params: Params, state: State, x: jax.Array) -> State:
        u, _ = unit_inputs(derived, params, state, x)
        return jax.vmap(derived.unit_step)(params["unit"], state, u)

    derived = cell._replace(transition=transition)
    return derived


def count_params(tree: Any) -> int:
    return sum(int(leaf.size) for leaf in jax.tree.leaves(tree))


def recurrent_params(params: Params) -> Params:
    """Every parameter that influences the state (all but ``params["readout"]``)."""
    return {k: v for k, v in params.items() if k != "readout"}


def lecun_normal(key: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    return jax.random.normal(key, shape) / jnp.sqrt(fan_in)
