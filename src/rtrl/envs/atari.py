"""The Atari prediction benchmark (Javed et al. 2023): policy evaluation of expert agents.

A recorded action stream of an expert agent is replayed in the Arcade Learning Environment and
the learner predicts the discounted sum of future clipped rewards, online, from pixels.

Recorded streams (one ``<Game>NoFrameskip-v4.txt`` per game, one byte per emulator frame):
``R`` resets the game (no action, no reward, the step starts a new episode); ``a``..``r`` is the
index ``byte - 97`` into the game's minimal action set. They are not part of the package: the
directory is ``--data DIR``, else ``$RTRL_DATA``, else ``~/.cache/rtrl/atari-policies``.

Replay (deterministic): ALE ``random_seed`` 1731038949, ``repeat_action_probability`` 0,
``frame_skip`` 1. The first byte is an ``R`` and the emulator starts freshly loaded, so step 0
is the first episode's first frame; every later ``R`` calls ``reset_game``. Under these settings
Pong's expert wins every episode 21-0.

Observation of step t (275 values at the default 16x16):

- ``[0, n*n)``: the grayscale screen (ALE's luminance, 210x160) resized to n x n, rounded to
  uint8 and divided by 256, so in [0, 1). ``resize="area"`` (the default) averages: each output
  pixel is the mean of the source pixels its cell covers, partly covered pixels weighted by the
  covered fraction, like OpenCV's INTER_AREA. ``resize="bilinear"`` is the CCN reference's
  ``cv::resize`` default (INTER_LINEAR): each output pixel interpolates the 2x2 source pixels
  around its centre, so at 16x16 it reads 4 of the ~130 pixels of its cell and a small object
  (Pong's ball, 2x4 pixels) is seen only when it crosses one of the sampled rows and columns.
  Area averaging keeps every pixel's contribution, which is why it is the default;
  bilinear reproduces the reference's input (up to OpenCV's fixed-point rounding, +-1 level);
- ``[n*n, n*n + 18)``: one-hot of the minimal-action index just taken (all zero on a reset);
- ``n*n + 18``: the clipped reward received on entering step t.

The cumulant of step t is that clipped reward; its discount is ``gamma`` within an episode and 0
on the step that starts a new one (the return of an episode's last step is 0).

Because the policy is fixed, the stream does not depend on the learner: it is generated once
per game and cached (uint8 frames, actions, rewards; a few MB per game, compressed) in
``$RTRL_CACHE`` or ``~/.cache/rtrl/atari-streams``. The cache file is keyed by the game, the
preprocessing settings, the ale-py version and the recorded file's SHA-256, and is rebuilt when
any of them changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rtrl.envs.base import Transition
from rtrl.files import atomic_path

# The 58 games of the benchmark, by their Gym name (the file is <Game>NoFrameskip-v4.txt).
GAMES = (
    "AirRaid", "Alien", "Amidar", "Assault", "Asterix", "Asteroids", "Atlantis", "BankHeist",
    "BattleZone", "BeamRider", "Berzerk", "Bowling", "Boxing", "Breakout", "Carnival",
    "Centipede", "ChopperCommand", "CrazyClimber", "DemonAttack", "DoubleDunk", "Enduro",
    "FishingDerby", "Freeway", "Frostbite", "Gopher", "Gravitar", "Hero", "IceHockey",
    "Jamesbond", "JourneyEscape", "Kangaroo", "Krull", "KungFuMaster", "MontezumaRevenge",
    "MsPacman", "Phoenix", "Pitfall", "Pong", "Pooyan", "PrivateEye", "Qbert", "Riverraid",
    "RoadRunner", "Robotank", "Seaquest", "Skiing", "Solaris", "SpaceInvaders", "StarGunner",
    "Tennis", "TimePilot", "Tutankham", "UpNDown", "Venture", "VideoPinball", "WizardOfWor",
    "YarsRevenge", "Zaxxon",
)  # fmt: skip
REPLAY_SEED = 1731038949
SCREEN_SHAPE = (210, 160)
NUM_ACTION_SLOTS = 18  # the full ALE action set; a minimal-set index is always below it
RECORDED_LENGTH = 250_000  # steps (bytes) in each of the benchmark's recorded streams
RESET_BYTE = ord("R")
FIRST_ACTION_BYTE = ord("a")
CACHE_FORMAT = 1  # bump when the cache layout or the preprocessing changes
DATA_HELP = (
    "the recorded streams come from the Atari prediction benchmark of Javed et al. (2023); "
    "pass their directory with --data DIR or set RTRL_DATA"
)


class DataError(ValueError):
    """A recorded stream is missing or corrupt; the message names the file and the fix."""


def file_name(game: str) -> str:
    return f"{game}NoFrameskip-v4.txt"


def rom_id(game: str) -> str:
    """ale-py's ROM name of a benchmark game: ``MontezumaRevenge`` -> ``montezuma_revenge``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def parse_games(text: str) -> list[str]:
    """``"Pong,Breakout"`` or ``"all"`` -> game names, with an error that lists the valid ones."""
    if text.strip().lower() == "all":
        return list(GAMES)
    games = [g.strip() for g in text.split(",") if g.strip()]
    by_lower = {g.lower(): g for g in GAMES}
    unknown = [g for g in games if g.lower() not in by_lower]
    if unknown or not games:
        raise ValueError(
            f"unknown game(s) {', '.join(unknown) or repr(text)}; "
            f"valid: all, or a comma-separated list of {', '.join(GAMES)}"
        )
    return [by_lower[g.lower()] for g in games]


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rtrl"


def data_directory(explicit: str | os.PathLike | None = None) -> Path:
    """Where the recorded streams are: ``explicit``, else $RTRL_DATA, else the user cache."""
    if explicit:
        return Path(explicit)
    if os.environ.get("RTRL_DATA"):
        return Path(os.environ["RTRL_DATA"])
    return _user_cache() / "atari-policies"


def cache_directory() -> Path:
    """Where generated streams are cached: $RTRL_CACHE, else the user cache."""
    if os.environ.get("RTRL_CACHE"):
        return Path(os.environ["RTRL_CACHE"])
    return _user_cache() / "atari-streams"


def _ale_py():
    try:
        import ale_py
        import ale_py.roms
    except ImportError:
        raise ImportError(
            "the Atari benchmark needs ale-py (which ships the ROMs): pip install 'rtrl[atari]'"
        ) from None
    return ale_py


def make_emulator(game: str):
    """An ALE interface with the benchmark's deterministic replay settings, ROM loaded."""
    ale_py = _ale_py()
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)
    ale = ale_py.ALEInterface()
    ale.setInt("random_seed", REPLAY_SEED)
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("frame_skip", 1)
    ale.loadROM(ale_py.roms.get_rom_path(rom_id(game)))
    return ale


def minimal_action_count(game: str) -> int:
    return len(make_emulator(game).getMinimalActionSet())


# ---------------------------------------------------------------------------------------------
# Validation of the recorded files


def find_problems(data: bytes, num_actions: int, limit: int = 10) -> list[str]:
    """Problems of one recorded stream, each with its byte offset (at most ``limit`` listed)."""
    codes = np.frombuffer(data, np.uint8)
    if codes.size == 0:
        return ["the file is empty"]
    is_reset = codes == RESET_BYTE
    action = codes.astype(np.int64) - FIRST_ACTION_BYTE
    bad_byte = ~is_reset & ((action < 0) | (action >= NUM_ACTION_SLOTS))
    bad_action = ~is_reset & ~bad_byte & (action >= num_actions)
    problems = []
    for offset in np.flatnonzero(bad_byte | bad_action):
        byte = int(codes[offset])
        shown = f"{byte:#04x} ({chr(byte)!r})" if 32 <= byte < 127 else f"{byte:#04x}"
        if bad_byte[offset]:
            problems.append(f"byte {offset}: {shown} is neither 'R' nor an action 'a'..'r'")
        else:
            last = chr(FIRST_ACTION_BYTE + num_actions - 1)
            problems.append(
                f"byte {offset}: action {shown} = index {action[offset]} is outside the "
                f"minimal action set ({num_actions} actions, 'a'..'{last}')"
            )
    total = int((bad_byte | bad_action).sum())
    if total > limit:
        problems = problems[:limit] + [f"... and {total - limit} more bad bytes"]
    if not is_reset[0]:
        problems.insert(0, "byte 0: the stream must start with 'R' (a reset)")
    return problems


def check_directory(directory: Path, length: int | None = RECORDED_LENGTH) -> dict[str, list[str]]:
    """Validate every recorded stream in ``directory``: {file name: problems} (empty if fine).
    ``length``: the number of steps each file must hold (None: any).

    Files that are not a benchmark game's stream are reported; games without a file are not
    (any subset of the 58 may be present)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory} is not a directory; {DATA_HELP}")
    by_file = {file_name(g): g for g in GAMES}
    report = {}
    for path in sorted(directory.glob("*.txt")):
        game = by_file.get(path.name)
        if game is None:
            report[path.name] = ["not a benchmark stream (expected <Game>NoFrameskip-v4.txt)"]
            continue
        data = path.read_bytes()
        report[path.name] = find_problems(data, minimal_action_count(game))
        if length is not None and data and len(data) != length:
            report[path.name].insert(
                0, f"{len(data):,} bytes where a recorded stream has {length:,} (truncated?)"
            )
    return report


def read_stream_file(game: str, directory: Path) -> bytes:
    """The validated bytes of a game's recorded stream, or a DataError naming the file."""
    path = Path(directory) / file_name(game)
    if not path.exists():
        raise DataError(f"no recorded stream for {game}: {path} does not exist; {DATA_HELP}")
    data = path.read_bytes()
    problems = find_problems(data, minimal_action_count(game))
    if problems:
        listed = "\n  ".join(problems)
        raise DataError(
            f"{path} is corrupt:\n  {listed}\nReplace it with the original file "
            f"(`rtrl data check {directory}` validates them all)."
        )
    return data


# ---------------------------------------------------------------------------------------------
# Replay and preprocessing


def area_resize_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) weights of area-averaging resampling: row i averages the source interval
    [i * source / target, (i + 1) * source / target), partly covered pixels by their overlap."""
    edges = np.arange(target + 1) * source / target
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(source)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return overlap / (source / target)


def bilinear_resize_matrix(source: int, target: int) -> np.ndarray:
    """(target, source) weights of OpenCV's INTER_LINEAR: output i samples the source at
    (i + 0.5) * source / target - 0.5 (pixel centres aligned), interpolating its two neighbours;
    positions outside the image are clamped to the edge."""
    position = (np.arange(target) + 0.5) * source / target - 0.5
    left = np.floor(position).astype(int)
    fraction = position - left
    fraction = np.where((left < 0) | (left >= source - 1), 0.0, fraction)  # clamped to an edge
    left = np.clip(left, 0, source - 1)
    right = np.minimum(left + 1, source - 1)
    weights = np.zeros((target, source))
    np.add.at(weights, (np.arange(target), left), 1.0 - fraction)
    np.add.at(weights, (np.arange(target), right), fraction)
    return weights


RESIZE_MATRICES = {"area": area_resize_matrix, "bilinear": bilinear_resize_matrix}


def check_resize(resize: str) -> None:
    if resize not in RESIZE_MATRICES:
        raise ValueError(f"unknown resize {resize!r}; choose one of {sorted(RESIZE_MATRICES)}")


def downsample(screens: np.ndarray, size: int, resize: str = "area") -> np.ndarray:
    """(T, 210, 160) uint8 screens -> (T, size, size) uint8 by ``resize``, rounded."""
    check_resize(resize)
    matrix = RESIZE_MATRICES[resize]
    rows = matrix(SCREEN_SHAPE[0], size).astype(np.float32)
    cols = matrix(SCREEN_SHAPE[1], size).astype(np.float32)
    small = rows @ (screens.astype(np.float32) @ cols.T)  # matmuls, not einsum: BLAS speed
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


class Recording(NamedTuple):
    """A replayed stream, step t = byte t of the recorded file."""

    game: str
    frames: np.ndarray  # (T, n, n) uint8, the screen after step t
    actions: np.ndarray  # (T,) int8, minimal-action index taken at step t; -1 on a reset
    rewards: np.ndarray  # (T,) int32, the unclipped reward received on entering step t

    @property
    def episode_starts(self) -> np.ndarray:
        return self.actions < 0

    def discounts(self, gamma: float) -> np.ndarray:
        """Discount of the transition into each step: 0 where an episode starts, else gamma."""
        return np.where(self.episode_starts, 0.0, gamma)

    @property
    def clipped_rewards(self) -> np.ndarray:
        return np.sign(self.rewards).astype(np.int8)

    def episode_returns(self) -> np.ndarray:
        """Unclipped score of every complete episode (the one cut off by the end is dropped)."""
        starts = np.flatnonzero(self.episode_starts)
        sums = np.add.reduceat(self.rewards.astype(np.int64), starts)
        return sums[:-1]


def replay(
    game: str,
    data: bytes,
    frame_size: int = 16,
    block: int = 1024,
    progress: Callable[[int], Any] | None = None,
    resize: str = "area",
) -> Recording:
    """Replay a recorded stream in the ALE; ``progress(frames)`` is called after each block."""
    ale = make_emulator(game)
    actions_of = ale.getMinimalActionSet()
    codes = np.frombuffer(data, np.uint8)
    steps = codes.size
    frames = np.empty((steps, frame_size, frame_size), np.uint8)
    actions = np.where(codes == RESET_BYTE, -1, codes.astype(np.int64) - FIRST_ACTION_BYTE)
    rewards = np.zeros(steps, np.int32)
    screens = np.empty((block,) + SCREEN_SHAPE, np.uint8)
    for start in range(0, steps, block):
        stop = min(start + block, steps)
        for t in range(start, stop):
            if actions[t] < 0:
                if t > 0:  # step 0's reset is the freshly loaded emulator
                    ale.reset_game()
            else:
                rewards[t] = ale.act(actions_of[actions[t]])
            ale.getScreenGrayscale(screens[t - start])
        frames[start:stop] = downsample(screens[: stop - start], frame_size, resize)
        if progress is not None:
            progress(stop - start)
    return Recording(game, frames, actions.astype(np.int8), rewards)


def _cache_settings(game: str, frame_size: int, resize: str, data: bytes) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "game": game,
        "frame_size": frame_size,
        "resize": resize,
        "random_seed": REPLAY_SEED,
        "repeat_action_probability": 0.0,
        "frame_skip": 1,
        "ale_py": _ale_py().__version__,
        "data_sha256": hashlib.sha256(data).hexdigest(),
    }


def cache_path(game: str, frame_size: int, data: bytes, cache_dir: Path | None = None,
               resize: str = "area") -> Path:  # fmt: skip
    settings = _cache_settings(game, frame_size, resize, data)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir or cache_directory()) / f"{game}-{frame_size}px-{resize}-{key}.npz"


def load_recording(
    game: str,
    data_dir: str | os.PathLike | None = None,
    frame_size: int = 16,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    resize: str = "area",
) -> Recording:
    """A game's replayed stream, from the cache when it holds one with the same settings, else
    replayed (and cached; stale files of the same game and frame size are removed)."""
    if game not in GAMES:
        parse_games(game)  # raises the error that lists the games
    if frame_size < 1 or frame_size > SCREEN_SHAPE[1]:
        raise ValueError(f"frame_size {frame_size} must be in 1..{SCREEN_SHAPE[1]}")
    check_resize(resize)
    directory = data_directory(data_dir)
    data = read_stream_file(game, directory)
    path = cache_path(game, frame_size, data, Path(cache_dir) if cache_dir else None, resize)
    settings = _cache_settings(game, frame_size, resize, data)
    if path.exists():
        try:
            with np.load(path) as cached:
                if json.loads(str(cached["settings"])) == settings:
                    return Recording(game, cached["frames"], cached["actions"], cached["rewards"])
        except (OSError, ValueError, KeyError):
            pass  # unreadable or foreign: rebuild it
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(data), unit="frame", unit_scale=True, desc=f"replaying {game}")
    recording = replay(game, data, frame_size, progress=bar.update if bar else None, resize=resize)
    if bar:
        bar.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{game}-{frame_size}px-{resize}-*.npz"):
        stale.unlink()
    with atomic_path(path) as temporary:
        np.savez_compressed(temporary, frames=recording.frames, actions=recording.actions,
                            rewards=recording.rewards, settings=json.dumps(settings))  # fmt: skip
    return recording


# ---------------------------------------------------------------------------------------------
# The prediction stream


class RecordedStream(NamedTuple):
    """Recorded play as a ``PredictionStream`` (``rtrl.envs.base``): a stream's state is the
    index of its next frame, and ``transition(key, index, data) -> (index, Transition)`` reads
    one step from the recorded arrays ``data``, passed in explicitly so that compiled code takes
    them as an argument, not a constant. The key is unused: every seed sees the same stream."""

    name: str
    num_observations: int
    gamma: float
    length: int
    data: dict[str, jax.Array]
    reset: Callable
    transition: Callable

    def rollout(self, key, index: jax.Array, data, steps: int):
        """``steps`` transitions (time first) from ``index``, read in one vectorised gather."""
        indices = index + jnp.arange(steps, dtype=jnp.int32)
        transitions = jax.vmap(lambda i: self.transition(key, i, data)[1])(indices)
        return index + steps, transitions

    def rollout_seeds(self, keys, indices: jax.Array, data, steps: int):
        """``rollout`` for many seeds at once (a leading seed axis)."""
        return jax.vmap(lambda key, index: self.rollout(key, index, data, steps))(keys, indices)


def observation_size(frame_size: int) -> int:
    return frame_size * frame_size + NUM_ACTION_SLOTS + 1


def recorded_stream(recording: Recording, gamma: float = 0.98) -> RecordedStream:
    """The prediction stream of a recording (observation layout in the module docstring)."""
    data = {
        "frames": jnp.asarray(recording.frames.reshape(len(recording.frames), -1)),
        "actions": jnp.asarray(recording.actions),
        "rewards": jnp.asarray(recording.clipped_rewards),
        "discounts": jnp.asarray(recording.discounts(gamma)),
        "episode_starts": jnp.asarray(recording.episode_starts),
    }
    num_observations = observation_size(recording.frames.shape[1])

    def reset(key):
        del key
        return jnp.zeros((), jnp.int32)

    def transition(key, index, data):
        del key
        frame = data["frames"][index].astype(jnp.float32) / 256.0
        action = data["actions"][index]
        reward = data["rewards"][index].astype(jnp.float32)
        observation = jnp.concatenate(
            [frame, jax.nn.one_hot(action, NUM_ACTION_SLOTS), reward[None]]
        )  # one_hot(-1) is all zero: no action on a reset
        transition = Transition(
            observation, reward, data["discounts"][index], data["episode_starts"][index]
        )
        return index + 1, transition

    return RecordedStream(
        f"atari[{recording.game}]", num_observations, gamma, len(recording.frames), data, reset,
        transition,
    )  # fmt: skip
