"""Studies and their executors: planning, choosing the best setting, resuming, the local process
pool, and a real Ray cluster on this machine that loses a node while a run is in flight."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import pytest

from rtrl import cli
from rtrl.experiments import (
    configuration,
    engine,
    executors,
    grouping,
    studies,
    study_catalogue,
)
from rtrl.experiments.executors import LocalExecutor, Task
from rtrl.experiments.run_loop import DivergedError
from rtrl.experiments.studies import Grid, Study, plan, run_study

TINY = {"steps": "4000", "chunk": "1000", "bin_size": "500", "final_window": "1000",
        "units": "2", "stage_size": "2"}  # fmt: skip
TINY_STUDY = Study("tiny", "two presets over two step sizes",
                   grids=(Grid(("ccn-columnar", "ccn-tbptt-3-10"),
                               {"step_size": ("1e-2", "1e-3")}),),
                   paper_grids=(Grid(("ccn-columnar",), {"step_size": ("1e-2",)}),),
                   seeds=2, paper_seeds=5, budget=TINY)  # fmt: skip


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def outputs(study_dir: Path) -> dict[str, str]:
    """Every run's metrics and summary, by path relative to the study directory."""
    files = sorted(study_dir.rglob("metrics.csv")) + sorted(study_dir.rglob("summary.json"))
    return {str(p.relative_to(study_dir)): p.read_text() for p in files}


def test_plan_expands_the_grids_with_the_budget_or_the_papers():
    runs = plan(TINY_STUDY)
    assert [r.task.directory for r in runs] == [
        "ccn-columnar/step_size=1e-2", "ccn-columnar/step_size=1e-3",
        "ccn-tbptt-3-10/step_size=1e-2", "ccn-tbptt-3-10/step_size=1e-3",
    ]  # fmt: skip
    assert runs[0].config["steps"] == 4000 and runs[0].config["step_size"] == 1e-2
    assert runs[0].task.seeds == 2 and runs[0].task.stream_steps == 8000
    paper = plan(TINY_STUDY, paper=True)
    assert len(paper) == 1 and paper[0].task.seeds == 5
    assert paper[0].config["steps"] == configuration.resolve("ccn-columnar")["paper_steps"]
    assert plan(TINY_STUDY, seeds=7, overrides={"steps": "8000"})[0].config["steps"] == 8000
    with pytest.raises(KeyError, match="unknown key 'nope'"):
        plan(TINY_STUDY, overrides={"nope": "1"})
    with pytest.raises(ValueError, match="--games is for Atari prediction presets"):
        plan(TINY_STUDY, games=["Pong"])


def test_every_named_study_plans_its_default_and_paper_grids():
    for name, study in study_catalogue.STUDIES.items():
        sizes = studies.describe(study)
        assert 0 < sizes["default"]["runs"] <= sizes["paper"]["runs"], name
        assert sizes["default"]["stream_steps"] < sizes["paper"]["stream_steps"], name
    ccn = studies.describe(study_catalogue.STUDIES["ccn-trace-patterning"])["paper"]
    assert ccn["runs"] == 3 * 6 + 8 * 4 and ccn["seeds"] == 30
    atari = plan(study_catalogue.STUDIES["atari-prediction"], paper=True)
    assert len(atari[0].task.games) == 58


def _planned(preset, value, final, status="complete"):
    task = Task(configuration.resolve(preset), 1, f"{preset}/{value}")
    run = studies.PlannedRun(preset, {"step_size": value}, task)
    return run, {"status": status, "final": final, "final_stderr": 0.0, "lifetime": final}


def test_best_setting_is_the_lowest_error_or_the_highest_return():
    control = "ppo-rtu-cartpole-p"
    pairs = [_planned("ccn", "1", 0.3), _planned("ccn", "2", 0.1),
             _planned("ccn", "3", 0.0, "diverged"),
             _planned(control, "1", 50.0), _planned(control, "2", 80.0)]  # fmt: skip
    runs = [run for run, _ in pairs]
    rows = {run.task.directory: row for run, row in pairs}
    best = studies.best_runs(runs, rows, ("step_size",))
    assert [(run.preset, run.settings["step_size"]) for run, _ in best] == [
        ("ccn", "2"), (control, "2")]  # fmt: skip
    # Without choosing over the step size, every setting is its own method.
    assert len(studies.best_runs(runs, rows, ())) == 4


def test_executor_options_and_their_errors(monkeypatch):
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        executors.make_executor("local", workers=0)
    with pytest.raises(ValueError, match="--address is for --backend ray"):
        executors.make_executor("local", address="auto")
    with pytest.raises(ValueError, match="give auto, HOST:PORT"):
        executors.unreachable("nohost")
    with socket.socket() as listener:  # a port nothing listens on
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    assert executors.unreachable(f"127.0.0.1:{port}")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install 'rtrl\[ray\]'"):
        executors.make_executor("ray", "auto")


def test_run_directories_travel_as_bytes(tmp_path):
    (tmp_path / "a" / "game").mkdir(parents=True)
    (tmp_path / "a" / "config.json").write_text("{}")
    (tmp_path / "a" / "game" / "metrics.csv").write_bytes(b"seed,step\n")
    files = executors.pack(tmp_path / "a")
    assert files == {"config.json": b"{}", "game/metrics.csv": b"seed,step\n"}
    executors.unpack(files, tmp_path / "b")
    assert executors.pack(tmp_path / "b") == files
    assert executors.pack(tmp_path / "missing") == {}


@pytest.mark.slow
def test_local_study_resumes_and_matches_one_process(tmp_path):
    # A run left half-done by an interruption, continued by the study from its checkpoint.
    first = plan(TINY_STUDY)[0]
    engine.run(first.config, 2, tmp_path / "pool" / first.task.directory, progress=False,
               stop_after=2)  # fmt: skip
    best = run_study(TINY_STUDY, tmp_path / "pool", LocalExecutor(2), progress=False)
    run_study(TINY_STUDY, tmp_path / "serial", LocalExecutor(1), progress=False)
    assert outputs(tmp_path / "pool") == outputs(tmp_path / "serial")
    rows = read_rows(tmp_path / "pool" / "study.csv")
    assert [r["status"] for r in rows] == ["complete"] * 4
    assert {r["preset"] for r in best} == {"ccn-columnar", "ccn-tbptt-3-10"}
    for preset in ("ccn-columnar", "ccn-tbptt-3-10"):
        lowest = min((r for r in rows if r["preset"] == preset), key=lambda r: float(r["final"]))
        assert lowest["step_size"] in {b["step_size"] for b in best if b["preset"] == preset}
    assert "| ccn-columnar | 1e-" in (tmp_path / "pool" / "best.md").read_text()
    assert (tmp_path / "pool" / "best.png").stat().st_size > 0
    # Again: every run is finished, so nothing runs, and the wall times recorded stay.
    took = [r["seconds"] for r in rows]
    assert all(float(seconds) > 0 for seconds in took)
    run_study(TINY_STUDY, tmp_path / "pool", LocalExecutor(2), progress=False)
    assert [r["seconds"] for r in read_rows(tmp_path / "pool" / "study.csv")] == took


@pytest.mark.slow
def test_study_refuses_a_directory_holding_other_runs(tmp_path):
    run = plan(TINY_STUDY)[0]
    engine.run({**run.config, "seed": 5}, 2, tmp_path / run.task.directory, progress=False)
    with pytest.raises(ValueError, match="holds a run with a different configuration"):
        run_study(TINY_STUDY, tmp_path, LocalExecutor(1), progress=False)
    assert not (tmp_path / "study.csv").exists()  # refused before anything ran


@pytest.mark.slow
def test_cli_study_run_and_its_errors(tmp_path, capsys):
    args = ["study", "run", "gradient-alignment", "--seeds", "3", "--steps", "6",
            "--set", "columns=3", "--set", "inputs=4", "--set", "estimators=full_rtrl,tbptt_1",
            "--out", str(tmp_path), "--workers", "1"]  # fmt: skip
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "| density | full_rtrl | tbptt_1 |" in out and "| 0.5 | 1.000 (1.000) |" in out
    assert (tmp_path / "alignment.png").stat().st_size > 0
    assert cli.main(["study", "run", "nope"]) == 2
    assert "unknown study 'nope'" in capsys.readouterr().err
    assert cli.main(["study", "run", "ccn-isi", "--games", "Pong", "--out", str(tmp_path)]) == 2
    assert "--games is for Atari prediction presets" in capsys.readouterr().err
    assert cli.main(["study", "run", "ccn-isi", "--set", "estimators=uoro"]) == 2
    assert "unknown key 'estimators'" in capsys.readouterr().err
    assert cli.main(["study", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in study_catalogue.STUDIES)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(*args: str) -> subprocess.Popen:
    """``ray start --block`` in its own session (killed with its process group)."""
    ray_command = str(Path(sys.executable).parent / "ray")
    return subprocess.Popen(
        [ray_command, "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
         "--disable-usage-stats", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )  # fmt: skip


def _node_processes(node: subprocess.Popen) -> list:
    import psutil

    try:
        root = psutil.Process(node.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill_node(node: subprocess.Popen) -> None:
    import psutil

    processes = _node_processes(node)
    for process in processes:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    node.wait(timeout=30)


def _running_a_run(node: subprocess.Popen) -> bool:
    """Whether one of the node's worker processes is executing a study run (Ray titles a
    worker by the task it runs)."""
    import psutil

    for process in _node_processes(node):
        try:
            if "run_shipped_task" in " ".join(process.cmdline()):
                return True
        except psutil.Error:
            pass
    return False


@pytest.fixture
def ray_cluster():
    """A head and a worker node, one CPU each, on the loopback interface."""
    ray = pytest.importorskip("ray")
    port = _free_port()
    head = _start_node("--head", f"--port={port}", "--include-dashboard=false")
    nodes = [head]
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while executors.unreachable(address, timeout=1):
            assert time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        worker = _start_node(f"--address={address}")
        nodes.append(worker)
        yield address, worker
    finally:
        ray.shutdown()
        for node in nodes:
            _kill_node(node)


@pytest.mark.slow
def test_ray_study_survives_a_lost_node_with_the_local_numbers(ray_cluster, tmp_path):
    address, worker = ray_cluster
    study = Study("ray", "three runs long enough to lose a node under",
                  grids=(Grid(("ccn-columnar",), {"step_size": ("1e-2", "3e-3", "1e-3")}),),
                  paper_grids=(), seeds=2,
                  budget={**TINY, "steps": "300000", "chunk": "20000", "bin_size": "10000",
                          "final_window": "100000"})  # fmt: skip
    executor = executors.RayExecutor(address)
    import ray

    deadline = time.monotonic() + 60
    while ray.cluster_resources().get("CPU", 0) < 2:  # both nodes joined
        assert time.monotonic() < deadline, "the Ray worker node did not join"
        time.sleep(0.5)
    killed = threading.Event()

    def kill_worker_node_mid_run():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _running_a_run(worker):
            time.sleep(0.1)
        if _running_a_run(worker):
            _kill_node(worker)
            killed.set()

    killer = threading.Thread(target=kill_worker_node_mid_run, daemon=True)
    killer.start()
    run_study(study, tmp_path / "ray", executor, progress=False)
    killer.join()
    assert killed.is_set(), "no run was seen in flight on the worker node"
    assert [r["status"] for r in read_rows(tmp_path / "ray" / "study.csv")] == ["complete"] * 3
    run_study(study, tmp_path / "local", LocalExecutor(2), progress=False)
    ray_outputs, local_outputs = outputs(tmp_path / "ray"), outputs(tmp_path / "local")
    assert len(ray_outputs) == 6 and ray_outputs == local_outputs
    assert json.loads(ray_outputs["ccn-columnar/step_size=1e-2/summary.json"])["status"] == (
        "complete"
    )


@pytest.mark.slow
def test_control_study_keeps_the_highest_return_per_trunk_and_task(tmp_path):
    """The rtu-control study's shape at a tiny size: trunks as rows, tasks as columns, one
    return figure per task."""
    tiny_ppo = {"rollout_length": "32", "num_envs": "2", "minibatches": "2", "hidden": "8",
                "units": "4", "chunk": "128", "epochs": "1", "steps": "256",
                "sequence_length": "16"}  # fmt: skip
    rtu_control = study_catalogue.STUDIES["rtu-control"]
    study = Study("control", "", grids=(Grid(("ppo-rtu-cartpole-p", "ppo-gru-bptt-cartpole-p"),
                                             {"step_size": ("1e-3", "3e-2")}),),
                  paper_grids=(), seeds=2, budget=tiny_ppo, column=rtu_control.column)  # fmt: skip
    best = run_study(study, tmp_path, LocalExecutor(2), progress=False)
    rows = read_rows(tmp_path / "study.csv")
    for preset in ("ppo-rtu-cartpole-p", "ppo-gru-bptt-cartpole-p"):
        highest = max((r for r in rows if r["preset"] == preset), key=lambda r: float(r["final"]))
        assert [b["step_size"] for b in best if b["preset"] == preset] == [highest["step_size"]]
    table = (tmp_path / "best.md").read_text()
    assert "| method | env cartpole-p |" in table and "| ppo-gru-bptt | " in table
    assert (tmp_path / "returns-cartpole-p.png").stat().st_size > 0


def test_the_r2ac_study_puts_agents_in_rows_and_games_in_columns():
    """Atari and ProcGen presets name their family, not the game: the method drops it."""
    runs = plan(study_catalogue.STUDIES["r2ac-pixels"])
    labels = {(studies.method_label(run, "env"), run.config["env"]) for run in runs}
    agents = ("r2ac-elstm", "r2ac-lstm-tbptt", "r2ac-ff")
    games = ("atari:Frostbite", "atari:DoubleDunk", "procgen:heist", "procgen:maze")
    assert labels == {(agent, game) for agent in agents for game in games}
    assert all(run.config["torso"] == "nature" and run.config["num_envs"] == 8 for run in runs)
    paper = plan(study_catalogue.STUDIES["r2ac-pixels"], paper=True)
    assert all(run.config["torso"] == "resnet" and run.config["steps"] == 200_000_000
               for run in paper)  # fmt: skip


def test_memory_study_plans_lengths_learners_and_the_papers_tasks():
    runs = plan(study_catalogue.STUDIES["memory-control"])
    assert {run.config["memory_length"] for run in runs} == {4, 16, 64}
    assert {run.config["learner"] for run in runs} == {"impala", "ppo", "actor_critic"}
    assert all(run.config["env"] == "gymnax:MemoryChain-bsuite" for run in runs)
    truncated = {run.config["segment_length"] for run in runs if run.config["estimator"] == "bptt"
                 and run.config["learner"] == "impala"}  # fmt: skip
    assert truncated == {4, 16}
    paper = plan(study_catalogue.STUDIES["memory-control"], paper=True)
    assert {run.config["memory_length"] for run in paper} == {4, 8, 16, 32, 64, 128, 5}
    assert {"repeat_first-hard", "count_recall-medium"} <= {run.config["env"] for run in paper}


def test_a_column_set_as_an_override_stays_in_the_method_name():
    """T-BPTT 4 at memory length 4 is still T-BPTT 4, not a method without a truncation."""
    runs = plan(study_catalogue.STUDIES["memory-control"])
    names = {(studies.method_name(run, "memory_length", ("step_size",)),
              run.config["memory_length"]) for run in runs}  # fmt: skip
    assert ("memory-r2ac-lstm-tbptt-4", 4) in names and ("memory-r2ac-lstm-tbptt-16", 16) in names
    assert not any(name == "memory-r2ac-lstm-tbptt" for name, _ in names)


@pytest.mark.slow
def test_memory_study_writes_success_against_memory_length(tmp_path):
    """MemoryChain runs of two agents at two lengths: a table with lengths as columns, the
    success-rate figure; success is (return + 1) / 2."""
    tiny = {"steps": "2048", "chunk": "1024", "units": "8", "hidden": "8", "num_envs": "2",
            "segment_length": "4", "bin_size": "512"}  # fmt: skip
    study = Study("memory", "", grids=(Grid(("memory-r2ac-rtu", "memory-r2ac-ff"),
                                            {"memory_length": ("2", "4"),
                                             "step_size": ("1e-3", "3e-3")}),),
                  paper_grids=(), seeds=2, budget=tiny, column="memory_length",
                  more_columns=("env",), figures=("success",))  # fmt: skip
    best = run_study(study, tmp_path, LocalExecutor(1), progress=False)
    assert len(best) == 4
    table = (tmp_path / "best.md").read_text()
    assert "| method | memory_length 2 | memory_length 4 |" in table
    assert "| memory-r2ac-ff |" in table and "env " not in table
    assert (tmp_path / "success-vs-memory_length.png").stat().st_size > 0
    assert studies.success_rate(-1.0) == 0.0 and studies.success_rate(0.5) == 0.75


@pytest.mark.slow
def test_copy_study_reports_recalled_length_per_method(tmp_path):
    tiny = {"steps": "64", "chunk": "32", "batch_size": "16", "units": "4",
            "validation_size": "16"}  # fmt: skip
    study = Study("copy", "", grids=(Grid(("copy-elstm-rtrl", "copy-elstm-bptt"),
                                          {"max_length": ("2", "3")}),
                                     Grid(("copy-lstm-tbptt",), {"max_length": ("2",),
                                                                 "truncation": ("1", "2")})),
                  paper_grids=(), choose=(), seeds=1, budget=tiny, column="max_length",
                  figures=("column",))  # fmt: skip
    run_study(study, tmp_path, LocalExecutor(1), progress=False)
    table = (tmp_path / "best.md").read_text()
    assert "recalled length |" in table and "Recalled length:" in table
    for truncation in ("1", "2"):
        assert f"| copy-lstm-tbptt truncation={truncation} |" in table
    rows = {(r["preset"], r["max_length"]): r for r in read_rows(tmp_path / "study.csv")}
    # The eLSTM's exact RTRL and its whole-sequence backpropagation follow the same gradient.
    for length in ("2", "3"):
        assert rows["copy-elstm-rtrl", length]["final"] == rows["copy-elstm-bptt", length]["final"]
    assert (tmp_path / "accuracy-vs-max_length.png").stat().st_size > 0


def test_step_sizes_run_as_one_program_give_the_numbers_of_separate_runs(tmp_path):
    # 0.25 diverges after a few chunks: the group runs on, and its member stops where a run of
    # its own stops, with the same rows and summary.
    budget = {**TINY, "optimizer": "sgd"}
    study = Study("grouped", "one preset over step sizes",
                  grids=(Grid(("ccn-columnar",), {"step_size": ("0.25", "0.1", "1e-2")}),),
                  paper_grids=(), seeds=2, budget=budget)  # fmt: skip
    runs = plan(study)
    tasks = grouping.group_tasks([run.task for run in runs], tmp_path / "study", 1)
    assert len(tasks) == 1 and len(tasks[0].members) == 3
    assert tasks[0].config["step_size"] == [0.25, 0.1, 1e-2]
    run_study(study, tmp_path / "study", LocalExecutor(1), progress=False)
    assert not (tmp_path / "study" / grouping.GROUPS_DIRECTORY).exists()
    for run in runs:
        with pytest.raises(DivergedError) if run.settings["step_size"] == "0.25" else nullcontext():
            engine.run(run.config, 2, tmp_path / "alone" / run.task.directory, progress=False)
    assert outputs(tmp_path / "study") == outputs(tmp_path / "alone")
    statuses = [r["status"] for r in read_rows(tmp_path / "study" / "study.csv")]
    assert statuses == ["diverged", "complete", "complete"]
    # Two workers: a group of two and a run of its own; a run already started resumes alone.
    assert [len(t.members) for t in grouping.group_tasks([r.task for r in runs], tmp_path, 2)
            ] == [2, 0]  # fmt: skip
    (tmp_path / runs[0].task.directory).mkdir(parents=True)
    assert [t.members for t in grouping.group_tasks([r.task for r in runs], tmp_path, 1)
            ][0] == ()  # fmt: skip
