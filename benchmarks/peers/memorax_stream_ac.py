"""memorax's stream AC(lambda) with an exact-RTRL RTU on MemoryChain, timed; run it with the
Python of a scratch environment that has memorax (never the library's own environment).

    PYTHON benchmarks/peers/memorax_stream_ac.py --streams 1 --units 64 --memory-length 15

Prints one JSON line: environment steps per second over all streams, median of the rounds.
memorax's streams share one parameter vector (its updates are averaged over the streams);
the library's seeds are independent agents, each with its own parameters.
"""

import argparse
import json
import statistics
import time

import flax.linen as nn
import jax
from memorax.algorithms import StreamAC, StreamACConfig
from memorax.environments.gymnax import make
from memorax.networks import RNN, RTRL, FeatureExtractor, Network, heads
from memorax.networks.sequence_models.rtu import RTUCell, RTUConfig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--encoder", type=int, default=64)
    parser.add_argument("--memory-length", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20_000, help="per stream, per call")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    env, env_params = make("MemoryChain-bsuite")
    env_params = env_params.replace(
        memory_length=args.memory_length, max_steps_in_episode=max(1000, args.memory_length + 1)
    )

    def network(head):
        rtu = RTUCell(config=RTUConfig(features=args.encoder, hidden_dim=args.units))
        return Network(
            feature_extractor=FeatureExtractor(
                observation_extractor=nn.Sequential((nn.Dense(args.encoder), nn.relu))
            ),
            torso=RTRL(sequence_model=RNN(cell=rtu)),
            head=head,
        )

    config = StreamACConfig(
        num_envs=args.streams,
        gamma=0.99,
        trace_lambda=0.8,
        actor_lr=1.0,
        critic_lr=1.0,
        actor_kappa=3.0,
        critic_kappa=2.0,
        entropy_coefficient=0.01,
    )
    agent = StreamAC(
        config,
        env,
        env_params,
        network(heads.Categorical(action_dim=env.action_space(env_params).n)),
        network(heads.VNetwork()),
    )
    state = jax.jit(agent.init)(jax.random.key(0))
    train = jax.jit(agent.train, static_argnames=["num_steps"])
    total = args.steps * args.streams
    key = jax.random.key(1)
    state = jax.block_until_ready(train(key, state, total))  # compiles
    rates = []
    for _ in range(args.rounds):
        key, k = jax.random.split(key)
        start = time.perf_counter()
        state = jax.block_until_ready(train(k, state, total))
        rates.append(total / (time.perf_counter() - start))
    print(
        json.dumps(
            {
                "peer": "memorax",
                "streams": args.streams,
                "units": args.units,
                "steps_per_s_total": statistics.median(rates),
            }
        )
    )


if __name__ == "__main__":
    main()
