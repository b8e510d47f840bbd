"""Run logging: the real TensorBoard and Weights & Biases writers, read back and compared with
the metrics CSV they mirror."""

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from rtrl import cli
from rtrl.experiments.run_logging import parse_loggers, scalars

SHORT = ["--steps", "30000", "--seeds", "2", "--set", "chunk=10000", "--set", "bin_size=5000",
         "--set", "final_window=10000"]  # fmt: skip


def csv_scalars(run: Path) -> dict[tuple[int, str], float]:
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {(int(r["step"]), f"msre/seed_{r['seed']}"): float(r["msre"]) for r in rows}


def tensorboard_scalars(run: Path) -> dict[tuple[int, str], float]:
    """The scalars of the run's event file, parsed as TFRecords of Event protos."""
    from tensorboardX.proto import event_pb2

    (path,) = (run / "tensorboard").glob("events.out.tfevents.*")
    data, position, found = path.read_bytes(), 0, {}
    while position < len(data):
        (length,) = struct.unpack("<Q", data[position : position + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[position + 12 : position + 12 + length])
        position += 12 + length + 4  # length, its CRC, the record, its CRC
        for value in event.summary.value:
            found[event.step, value.tag] = value.simple_value
    return found


def wandb_history(run: Path) -> list[dict]:
    """The history records of the offline run's .wandb file (LevelDB log records of Record
    protos after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = (run / "wandb").glob("offline-run-*/*.wandb")
    data, position, pending, history = path.read_bytes(), 7, b"", []
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        length, kind = (
            int.from_bytes(data[position + 4 : position + 6], "little"),
            data[position + 6],
        )
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in record.history.item})  # fmt: skip
        elif kind in (2, 3):
            pending += chunk
        else:
            break
    return history


@pytest.mark.slow
def test_tensorboard_holds_the_scalars_of_the_metrics_file(tmp_path):
    run = tmp_path / "run"
    assert cli.main(["run", "rtu-tc-rtu", *SHORT, "--log", "tensorboard", "--out", str(run)]) == 0
    expected, logged = csv_scalars(run), tensorboard_scalars(run)
    assert len(expected) == 10 and logged.keys() == expected.keys()
    np.testing.assert_allclose([logged[k] for k in expected], list(expected.values()), rtol=1e-6)


@pytest.mark.slow
def test_wandb_offline_holds_the_scalars_of_the_metrics_file(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline unless said otherwise
    run = tmp_path / "run"
    assert cli.main(["run", "rtu-tc-rtu", *SHORT, "--log", "wandb", "--out", str(run)]) == 0
    expected = csv_scalars(run)
    logged = {(entry["_step"], key): value for entry in wandb_history(run) if "_step" in entry
              for key, value in entry.items() if not key.startswith("_")}  # fmt: skip
    assert logged.keys() == expected.keys()
    np.testing.assert_allclose([logged[k] for k in expected], list(expected.values()), rtol=1e-6)


@pytest.mark.slow
def test_a_logged_sweep_runs_each_step_size_as_its_own_logged_run(tmp_path):
    out = tmp_path / "sweep"
    command = ["sweep", "rtu-tc-rtu", "--grid", "step_size=1e-3,3e-4", *SHORT, "--workers", "1",
               "--log", "tensorboard", "--out", str(out)]  # fmt: skip
    assert cli.main(command) == 0
    for value in ("1e-3", "3e-4"):
        run = out / "rtu-tc-rtu" / f"step_size={value}"
        assert tensorboard_scalars(run).keys() == csv_scalars(run).keys()


def test_scalars_name_columns_by_seed_and_skip_what_is_not_a_number():
    prediction = list(scalars(["seed", "step", "msre"], [[1, 500, 0.25]]))
    control = list(scalars(["step", "seed_0", "seed_1"], [[2048, 10.5, ""], [4096, "nan", 3]]))
    assert prediction == [(500, "msre/seed_1", 0.25)]
    assert control == [(2048, "seed_0", 10.5), (4096, "seed_1", 3.0)]


def test_an_unknown_logger_is_a_one_line_error(capsys):
    assert cli.main(["run", "rtu-tc-rtu", "--log", "tensorbored", "--out", "/nonexistent"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rtrl run: unknown logger 'tensorbored'; choose tensorboard or wandb (--log "
        "tensorboard,wandb for both)"
    )
    assert parse_loggers("tensorboard, wandb") == ("tensorboard", "wandb")
    assert parse_loggers(None) == ()
