"""Benchmarks: ``python -m rtrl.bench SUITE [--json]``, SUITE one of cells, estimators, loop,
peers, streaming-peers, profile, atari, control, r2ac, gpu, rtu-runtime."""

from __future__ import annotations

import argparse

from rtrl.bench import (
    atari_suite,
    cells_suite,
    control_suite,
    estimators,
    gpu,
    loop_suite,
    peers,
    profile,
    r2ac,
    rtu_runtime,
    streaming_peers,
)

SUITES = {"cells": cells_suite, "estimators": estimators, "loop": loop_suite, "peers": peers,
          "streaming-peers": streaming_peers, "profile": profile, "atari": atari_suite,
          "control": control_suite, "r2ac": r2ac, "gpu": gpu,
          "rtu-runtime": rtu_runtime}  # fmt: skip


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rtrl.bench", description=__doc__)
    sub = parser.add_subparsers(dest="suite", required=True)
    for name, module in SUITES.items():
        suite_parser = sub.add_parser(name, help=module.__doc__.strip().splitlines()[0])
        suite_parser.add_argument("--json", action="store_true", help="one JSON object per line")
        module.add_arguments(suite_parser)
    args = parser.parse_args(argv)
    SUITES[args.suite].run(args)


if __name__ == "__main__":
    main()
