"""The README's example runs, the demo writes its outputs, the benchmark prints its keys."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str):
    """A script of examples/ as a module (examples use the library; they are not part of it)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_usage_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README should contain a python example"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert float(namespace["loss"]) < 0.5  # it learned the delayed copy (chance level is ~1)


@pytest.mark.slow
def test_delayed_signal_example_writes_curves_summary_and_plot(tmp_path, capsys):
    delayed_signal = _example("delayed_signal")
    summary = delayed_signal.run(
        tmp_path, steps=1000, seeds=2, delay=2, noise=0.1, step_size=3e-3, seed=0
    )
    for name in ("curves.csv", "summary.json", "demo.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert set(summary["models"]) == set(delayed_signal.MODELS)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "noise floor" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        delayed_signal.main(["--steps", "0"])


@pytest.mark.slow
def test_demo_compares_rtrl_and_tbptt(tmp_path, capsys):
    from rtrl.experiments import demo

    results = demo.run(tmp_path, steps=100_000, seeds=2)
    assert set(results) == set(demo.RUNS)
    assert all(r["status"] == "complete" for r in results.values())
    assert (tmp_path / "demo.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "final MSRE" in out and "T-BPTT" in out and "best constant predictor" in out
    with pytest.raises(SystemExit):
        demo.main(["--steps", "1000"])


@pytest.mark.slow
def test_cells_benchmark_json_keys():
    command = [
        sys.executable,
        "-m",
        "rtrl.bench",
        "cells",
        "--json",
        "--cells",
        "linear_rtu",
        "--units",
        "8,16",
        "--streams",
        "1,2",
        "--steps",
        "5",
        "--min-seconds",
        "0",
    ]
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    measured = [r for r in rows if "steps_per_s" in r]
    assert len(measured) == 4
    keys = {
        "cell",
        "estimator",
        "units",
        "inputs",
        "params",
        "streams",
        "steps_per_s",
        "us_per_step",
    }
    assert all(keys <= set(r) for r in measured)
    assert {r["params"] for r in measured} == {2 * 8 * 16 + 16, 2 * 16 * 16 + 32}
    exponents = [r for r in rows if "exponent_time_vs_params" in r]
    assert len(exponents) == 2


def test_benchmark_rejects_unknown_cell():
    command = [sys.executable, "-m", "rtrl.bench", "cells", "--cells", "gru"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode != 0 and "unknown cells ['gru']" in result.stderr


@pytest.mark.slow
def test_estimators_benchmark_json_keys():
    command = [
        sys.executable, "-m", "rtrl.bench", "estimators", "--json",
        "--estimators", "columnar_rtrl,tbptt", "--units", "4,8", "--truncations", "1,2",
        "--tbptt-units", "4", "--steps", "3", "--min-seconds", "0",
    ]  # fmt: skip
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    measured = [r for r in rows if "steps_per_s" in r]
    keys = {"cell", "estimator", "units", "inputs", "params", "streams", "steps_per_s",
            "us_per_step", "truncation"}  # fmt: skip
    assert len(measured) == 6 and all(keys <= set(r) for r in measured)
    assert sorted(r["truncation"] for r in measured if r["sweep"] == "truncation") == [1, 2]
    assert {r["cell"] for r in measured} == {"columnar_lstm", "dense_lstm"}
    fits = [r for r in rows if any(k.startswith("exponent_time_vs_") for k in r)]
    assert {(r["estimator"], r["sweep"]) for r in fits} == {
        ("columnar_rtrl", "units"),
        ("tbptt[8]", "units"),
        ("tbptt", "truncation"),
    }


@pytest.mark.slow
def test_loop_benchmark_json_rows():
    command = [
        sys.executable, "-m", "rtrl.bench", "loop", "--json", "--presets", "tp-linear-rtu",
        "--seeds", "1,2", "--chunk", "20", "--min-seconds", "0",
    ]  # fmt: skip
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["seeds"] for r in rows] == [1, 2]
    assert all(r["steps_per_s_per_seed"] > 0 and r["preset"] == "tp-linear-rtu" for r in rows)


@pytest.mark.slow
def test_rtu_runtime_benchmark_writes_its_table_and_figure(tmp_path):
    command = [
        sys.executable, "-m", "rtrl.bench", "rtu-runtime", "--json", "--units", "4",
        "--truncations", "1,2", "--steps", "10", "--min-seconds", "0", "--ppo-presets", "",
        "--out", str(tmp_path),
    ]  # fmt: skip
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    tbptt = [(r["network"], r["truncation"]) for r in rows if r["truncation"] != ""]
    assert tbptt == [(n, t) for n in ("online LRU, T-BPTT", "GRU, T-BPTT") for t in (1, 2)]
    assert all(r["us_per_update"] > 0 for r in rows) and len(rows) == 6
    assert "| linear RTU, RTRL | – | – | " in (tmp_path / "best.md").read_text()
    assert (tmp_path / "rtu-runtime.png").stat().st_size > 0


def test_peers_benchmark_without_the_harness_says_what_to_build():
    command = [sys.executable, "-m", "rtrl.bench", "peers", "--ccn-cpp", "/nonexistent/bench"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0
    assert "does not exist" in result.stdout and "columnar N S STEPS" in result.stdout


def test_streaming_peers_benchmark_without_memorax_says_how_to_set_it_up():
    from rtrl.bench import streaming_peers

    assert streaming_peers.SCRIPT.is_file()  # the peer's timing script ships with the checkout
    command = [sys.executable, "-m", "rtrl.bench", "streaming-peers", "--memorax-python",
               "/nonexistent/python"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0
    assert "is no file" in result.stdout and "benchmarks/README.md" in result.stdout


@pytest.mark.slow
def test_seed_scaling_benchmark_rows_and_its_stop_rule():
    command = [
        sys.executable, "-m", "rtrl.bench", "gpu", "--json", "--workloads", "ccn-columnar",
        "--seeds", "1,2,4", "--max-call-seconds", "0",
    ]  # fmt: skip
    lines = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    # Every chunk takes longer than 0 s: the workload stops after its first count.
    assert [(r["workload"], r["seeds"]) for r in rows] == [("ccn-columnar", 1)]
    assert rows[0]["steps_per_s_total"] > 0 and rows[0]["device"].startswith("cpu")
    assert "larger counts skipped" in lines[-1]
    wrong = subprocess.run([*command[:6], "ppo-rtu", "--set", "no_such_key=1"],
                           capture_output=True, text=True)  # fmt: skip
    assert wrong.returncode != 0 and "unknown key 'no_such_key'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_the_documentation_site_builds_strictly(tmp_path):
    """Broken links, missing pages or references that do not resolve fail the build."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "api" / "cells" / "index.html").exists()
