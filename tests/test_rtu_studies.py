"""The RTU paper's studies: networks sized to another preset's computation or parameters, the
LRU restricted as the RTU is, and studies drawn as panels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtrl import cells
from rtrl.experiments import compute, configuration, presets, study_catalogue
from rtrl.experiments.executors import LocalExecutor
from rtrl.experiments.studies import Grid, Study, plan, run_study


@pytest.mark.parametrize(
    "key, measure",
    [("match_compute", compute.multiply_adds), ("match_parameters", compute.network_parameters)],
)
def test_a_matched_network_has_the_most_units_that_fit(key, measure):
    target = measure(configuration.resolve("rtu-tc-rtu"))
    for truncation in ("1", "4", "16"):
        config = configuration.resolve(
            "rtu-tc-gru-tbptt", {"truncation": truncation, key: "rtu-tc-rtu"}
        )
        assert measure(config) <= target < measure({**config, "units": config["units"] + 1})
    fewer = [configuration.resolve("rtu-tc-lru-tbptt", {"truncation": t, "match_compute":
                                                        "rtu-tc-rtu"})["units"]
             for t in ("1", "4", "16")]  # fmt: skip
    assert fewer == sorted(fewer, reverse=True) and fewer[0] > fewer[-1]


@pytest.mark.parametrize("overrides, message", [
    ({"match_compute": "no-such-preset"}, "unknown preset 'no-such-preset'"),
    ({"match_compute": "ppo-rtu-cartpole-p"}, "must be a prediction preset"),
    ({"match_compute": "rtu-tc-rtu", "units": "4"}, "chooses the units"),
    ({"match_compute": "rtu-tc-rtu", "match_parameters": "rtu-tc-rtu"}, "not both"),
    ({"match_compute": "rtu-tc-rtu", "truncation": "4000"}, "even with 1 unit"),
])  # fmt: skip
def test_matching_refuses_what_it_cannot_do_in_one_line(overrides, message):
    with pytest.raises(ValueError, match=message):
        configuration.resolve("rtu-tc-gru-tbptt", overrides)


def test_nonlinearity_is_for_the_rtu_and_lru_cells():
    from rtrl.experiments.builders import cell_of

    with pytest.raises(ValueError, match="nonlinearity applies to linear_rtu"):
        cell_of(configuration.resolve("rtu-tc-gru-tbptt", {"nonlinearity": "tanh"}))
    with pytest.raises(ValueError, match="unknown activation 'cosh'"):
        cell_of(configuration.resolve("rtu-tc-rtu", {"nonlinearity": "cosh"}))
    assert cell_of(configuration.resolve("rtu-tc-nonlinear-lru")).name == "nonlinear_lru[tanh]"


def test_the_lru_applies_f_to_its_readout_or_inside_its_recurrence():
    x = jax.random.normal(jax.random.PRNGKey(1), (5,))
    plain, readout = (
        cells.online_lru(3, outputs=2),
        cells.online_lru(3, outputs=2, nonlinearity="tanh"),
    )
    inside = cells.nonlinear_lru(3, outputs=2)
    params = plain.init(jax.random.PRNGKey(0), 5)
    state = plain.initial_state(params)
    for _ in range(3):  # the recurrences of plain and readout are the same
        state_plain, y_plain = cells.step(plain, params, state, x)
        _, y_readout = cells.step(readout, params, state, x)
        state_inside, _ = cells.step(inside, params, state, x)
        np.testing.assert_allclose(y_readout, jnp.tanh(y_plain), rtol=1e-6)
        np.testing.assert_allclose(state_inside["h_re"], jnp.tanh(state_plain["h_re"]), rtol=1e-6)
        state = state_plain


TINY = {"steps": "2000", "chunk": "1000", "bin_size": "500", "final_window": "1000"}


@pytest.mark.slow
def test_a_study_in_panels_runs_a_shared_run_once_and_draws_every_panel(tmp_path):
    study = Study(
        "panels", "",
        grids=(Grid(("rtu-tc-rtu",), {"step_size": ("1e-3",)}, panel="over T",
                    column="truncation"),
               Grid(("rtu-tc-gru-tbptt",), {"truncation": ("1", "2"),
                                            "match_compute": ("rtu-tc-rtu",),
                                            "step_size": ("1e-3",)}, panel="over T"),
               Grid(("rtu-tc-rtu",), {"step_size": ("1e-3",)}, panel="shared",
                    column="parameters"),
               Grid(("rtu-tc-lru",), {"units": ("2", "4"), "step_size": ("1e-3",)},
                    panel="shared")),
        paper_grids=(), seeds=1, budget=TINY, figures=("panels",),
    )  # fmt: skip
    runs = plan(study)
    assert len(runs) == 5  # the RTU's run is in both panels, planned once
    assert [run.panels for run in runs if run.preset == "rtu-tc-rtu"] == [("over T", "shared")]
    run_study(study, tmp_path, LocalExecutor(1), progress=False)
    table = (tmp_path / "best.md").read_text()
    assert "| method | truncation 1 | truncation 2 | any |" in table
    assert "| rtu-tc-rtu | – | – | " in table  # the RTU does not truncate: one figure
    assert "| method | parameters | final ± s.e. |" in table and "| rtu-tc-lru units=4 |" in table
    assert (tmp_path / "panels.png").stat().st_size > 0


def test_the_rtu_studies_plan_the_papers_comparisons():
    ablation = plan(study_catalogue.STUDIES["rtu-ablation"])
    panels = {run.panels[0]: set() for run in ablation}
    for run in ablation:
        panels[run.panels[0]].add(run.config["cell"])
    assert panels == {"no nonlinearity": {"linear_rtu", "online_lru"},
                      "tanh on the features": {"linear_rtu", "online_lru"},
                      "tanh in the recurrence": {"nonlinear_rtu", "nonlinear_lru"}}  # fmt: skip
    resources = plan(study_catalogue.STUDIES["rtu-resources"])
    budget = compute.multiply_adds(configuration.resolve("rtu-tc-rtu"))
    matched = [run for run in resources if run.config["match_compute"]]
    assert matched and all(compute.multiply_adds(run.config) <= budget for run in matched)
    control = plan(study_catalogue.STUDIES["rtu-control"], paper=True)
    trunks = {run.config["cell"] + run.config["estimator"] for run in control}
    tasks = {run.config["env"] for run in control}
    assert len(trunks) == len(presets.CONTROL_TRUNKS) and "reacher-p" in tasks
    assert set(presets.MUJOCO_ENVS + presets.POPGYM_ENVS) < tasks
    assert {run.settings["step_size"] for run in control} == {"1e-4", "3e-4", "1e-3"}
