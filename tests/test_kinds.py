"""Experiment kinds (rtrl.experiments.kinds): the engine is a lookup of the kind, every preset
has exactly its kind's keys, and an unknown kind is a one-line error."""

from pathlib import Path

import pytest

from rtrl.experiments import configuration, engine, kinds
from rtrl.experiments.kinds import KINDS, Kind, kind_of


def test_every_preset_has_exactly_its_kinds_keys():
    for name in configuration.preset_names():
        config = configuration.resolve(name)
        assert set(config) == set(kind_of(config).defaults), name


def test_a_registered_kind_runs_through_the_engine(tmp_path, monkeypatch):
    ran = []

    def run(config, seeds, out, games=None, progress=True, stop_after=None):
        ran.append((config["value"], seeds, out))
        return {"status": "complete", "value": config["value"]}

    toy = Kind(name="toy", defaults={"kind": "toy", "value": 1.0}, run=run,
               scores=lambda config, summary: {"status": "complete", "final": summary["value"]},
               headline=lambda config, summary, out: f"value {summary['value']} ({out})",
               plot=lambda run_dirs, out, log_scale, smooth: "",
               figure_name=lambda config, games: "value")  # fmt: skip
    monkeypatch.setitem(KINDS, "toy", toy)
    config = {"kind": "toy", "value": 2.5}
    summary = engine.run(config, 3, tmp_path)
    assert ran == [(2.5, 3, tmp_path)]
    assert engine.scores(config, summary) == {"status": "complete", "final": 2.5}
    assert engine.result_line(config, summary, Path("x")) == "value 2.5 (x)"


def test_an_unknown_kind_is_a_one_line_error():
    with pytest.raises(ValueError, match="unknown experiment kind 'nope'; choose one of"):
        kinds.kind_of({"kind": "nope"})
