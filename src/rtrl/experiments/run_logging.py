"""Watching runs live: the rows a run appends to its metrics CSV, also written to TensorBoard
(``--log tensorboard``, through tensorboardX) or Weights & Biases (``--log wandb``, offline unless
``WANDB_MODE`` says otherwise) as each chunk finishes.

The CSV stays the record that resuming, studies and plots read; a logger mirrors it. Each
numeric column becomes a scalar at the row's ``step``: ``COLUMN/seed_S`` where the rows have a
``seed`` column (prediction: ``msre/seed_0``; the copy task: ``train_loss/seed_0``, ...), the
column's own name where the columns are the seeds (control: ``seed_0`` holds seed 0's return).
TensorBoard's files go in ``RUN/tensorboard``, Weights & Biases' in ``RUN/wandb``.

The loggers a run uses are set around it (``logging_to(names)``), so that the run loop, which
knows nothing of them otherwise, opens them for whichever run it drives.
"""

from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator

# logger name -> (module it needs, extra that installs it)
LOGGERS = {"tensorboard": ("tensorboardX", "tensorboard"), "wandb": ("wandb", "wandb")}
_ACTIVE: ContextVar[tuple[str, ...]] = ContextVar("rtrl_run_loggers", default=())


def parse_loggers(text: str | None) -> tuple[str, ...]:
    """``--log tensorboard,wandb`` as names, each checked and importable, or a one-line error."""
    names = tuple(name.strip() for name in (text or "").split(",") if name.strip())
    for name in names:
        if name not in LOGGERS:
            raise ValueError(f"unknown logger {name!r}; choose {' or '.join(LOGGERS)} (--log "
                             "tensorboard,wandb for both)")  # fmt: skip
        module, extra = LOGGERS[name]
        try:
            __import__(module)
        except ImportError:
            raise ValueError(f"--log {name} needs {module}: pip install 'rtrl[{extra}]'") from None
    return names


@contextmanager
def logging_to(names: tuple[str, ...]) -> Iterator[None]:
    """Runs inside the block write their metrics to these loggers too."""
    token = _ACTIVE.set(tuple(names))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def scalars(header: list[str], rows: list[list[Any]]) -> Iterator[tuple[int, str, float]]:
    """(step, tag, value) of every finite number in ``rows`` (the naming in the docstring)."""
    for values in rows:
        row = dict(zip(header, values))
        step = int(row.pop("step"))
        seed = row.pop("seed", None)
        for column, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(number):
                yield step, column if seed is None else f"{column}/seed_{int(seed)}", number


class TensorBoardLogger:
    def __init__(self, out: Path, record: dict[str, Any]):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(logdir=str(out / "tensorboard"))

    def write(self, header: list[str], rows: list[list[Any]]) -> None:
        for step, tag, value in scalars(header, rows):
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, out: Path, record: dict[str, Any]):
        import os

        import wandb

        # One run id per run directory, so that a resumed run continues its own W&B run.
        run_id = "".join(c if c.isalnum() else "-" for c in str(out.resolve()))[-120:]
        self.run = wandb.init(project="rtrl", name=out.name, dir=str(out), config=record,
                              id=run_id, resume="allow",
                              mode=os.environ.get("WANDB_MODE", "offline"))  # fmt: skip

    def write(self, header: list[str], rows: list[list[Any]]) -> None:
        by_step: dict[int, dict[str, float]] = {}
        for step, tag, value in scalars(header, rows):
            by_step.setdefault(step, {})[tag] = value
        for step in sorted(by_step):  # W&B wants each step once, in order
            self.run.log(by_step[step], step=step)

    def close(self) -> None:
        self.run.finish()


_OPENERS = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger}


@contextmanager
def open_loggers(out: Path, record: dict[str, Any]) -> Iterator[list]:
    """The loggers set around this run (``logging_to``), open on its directory for the block
    and closed after it, however it ends."""
    with ExitStack() as stack:
        loggers = []
        for name in _ACTIVE.get():
            logger = _OPENERS[name](out, record)
            stack.callback(logger.close)
            loggers.append(logger)
        yield loggers
