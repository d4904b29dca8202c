"""Atari 2600 games (`ALE/<Game>-v5` through ale-py, whose wheel ships the ROMs) with Dopamine's preprocessing.

Dopamine (`atari_lib.AtariPreprocessing`, `dqn.gin`), which the sparse-training study's DQN runs on:
- sticky actions: at every emulator frame the previous action repeats with probability 0.25 (ALE's own
  `repeat_action_probability`, drawn from ALE's seeded RNG);
- frame skip 4: one agent step repeats the action for 4 frames and sums their rewards; the observation is the
  pixel-wise max of the last two frames' grey screens (ALE's luminance palette), which removes flicker;
- 84×84 grey: the 210×160 max-pooled screen is resized by area averaging (OpenCV's INTER_AREA, written here as
  two fixed averaging matrices, so no OpenCV is needed);
- a stack of the last 4 frames, uint8, channels first: observation shape (4, 84, 84);
- no life-loss terminals, no no-op starts; an episode ends at game over (`terminated`) or after 27,000 agent
  steps = 108,000 frames (`truncated`).

At reset the stack holds the reset frame 4 times (gymnasium's and DrQ-v2's convention, which `PixelReplay`
rebuilds); Dopamine fills it with zeros instead (docs/deviations.md). Rewards are returned unclipped; the DQN
agent clips them in its update (`reward_clip`), as Dopamine does.

`get_state`/`set_state` save the emulator with its RNG (`cloneState(include_rng=True)`), the frame stack, the
step counter and the action-space RNG, so a run resumed mid-episode continues bit-identically.

The 15 games of the study and the published random/human scores of every game (for human-normalised
scores) are `ATARI_15` and `human_random_scores()` (package data `data/atari_human_random.csv`).
"""

from __future__ import annotations

import csv
import pickle
import re
from functools import cache
from importlib import resources
from typing import Any

import gymnasium as gym
import numpy as np

ATARI_ID = re.compile(r"^ALE/([A-Za-z]+)-v5$")
# The study's 15 games (Graesser et al. 2022, Atari DQN experiments).
ATARI_15 = (
    "MsPacman",
    "Pong",
    "Qbert",
    "Assault",
    "Asterix",
    "BeamRider",
    "Boxing",
    "Breakout",
    "CrazyClimber",
    "DemonAttack",
    "Enduro",
    "FishingDerby",
    "SpaceInvaders",
    "Tutankham",
    "VideoPinball",
)
FRAME_SKIP = 4
STICKY_ACTIONS = 0.25
SCREEN_SIZE = 84
FRAME_STACK = 4
MAX_EPISODE_STEPS = 27_000


def is_atari_id(env_id: str) -> bool:
    return ATARI_ID.match(env_id) is not None


def game_of(env_id: str) -> str:
    m = ATARI_ID.match(env_id)
    if m is None:
        raise ValueError(f"{env_id!r} is not an Atari id (ALE/<Game>-v5)")
    return m.group(1)


def env_id_problem(env_id: str, options: dict[str, Any]) -> str | None:
    if options:
        return f"env_options {sorted(options)} are not accepted by Atari env {env_id!r}"
    game = game_of(env_id)
    if snake_case(game) not in human_random_scores():
        return f"unknown Atari game {game!r} in {env_id!r} (e.g. {', '.join(f'ALE/{g}-v5' for g in ATARI_15[:3])})"
    return None


def snake_case(game: str) -> str:
    """`MsPacman` → `ms_pacman` (the key of the published score table)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


@cache
def human_random_scores() -> dict[str, tuple[float, float]]:
    """game (snake case, e.g. `ms_pacman`) → (random score, human score); source and protocol in the CSV."""
    text = resources.files("neuroplastic").joinpath("data/atari_human_random.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {r["game"]: (float(r["random"]), float(r["human"])) for r in rows}


def human_normalized(env_id: str, score: float) -> float:
    """(score − random) / (human − random) for the game of `env_id`."""
    random, human = human_random_scores()[snake_case(game_of(env_id))]
    return (score - random) / (human - random)


def area_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of area-averaging resampling: output pixel i averages the source interval
    [i·src/dst, (i+1)·src/dst), partial source pixels weighted by their overlap (OpenCV INTER_AREA)."""
    scale = src / dst
    out = np.zeros((dst, src), dtype=np.float64)
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(src, int(np.ceil(hi)))):
            out[i, j] = min(hi, j + 1) - max(lo, j)
    return out / scale


class AtariEnv(gym.Env):
    """One ALE game with Dopamine's preprocessing; observations (4, 84, 84) uint8, discrete actions."""

    def __init__(self, env_id: str, seed: int) -> None:
        import ale_py

        gym.register_envs(ale_py)
        self.env_id = env_id
        self.ale_env = gym.make(
            env_id,
            frameskip=1,
            repeat_action_probability=STICKY_ACTIONS,
            obs_type="grayscale",
            full_action_space=False,
            max_num_frames_per_episode=FRAME_SKIP * MAX_EPISODE_STEPS,
        ).unwrapped
        self.ale = self.ale_env.ale
        self.action_space = self.ale_env.action_space
        self.observation_space = gym.spaces.Box(0, 255, (FRAME_STACK, SCREEN_SIZE, SCREEN_SIZE), np.uint8)
        self.max_episode_steps = MAX_EPISODE_STEPS
        self.action_repeat = FRAME_SKIP
        height, width = self.ale.getScreenDims()
        self._rows = area_matrix(height, SCREEN_SIZE)
        self._cols = area_matrix(width, SCREEN_SIZE).T
        self.stack = np.zeros((FRAME_STACK, SCREEN_SIZE, SCREEN_SIZE), dtype=np.uint8)
        self.steps = 0
        self._seed = seed
        self._seeded = False
        self.action_space.seed(seed)

    def _frame(self, screens: list[np.ndarray]) -> np.ndarray:
        pooled = np.maximum(screens[-2], screens[-1]) if len(screens) > 1 else screens[-1]
        small = self._rows @ pooled.astype(np.float64) @ self._cols
        return np.clip(np.rint(small), 0, 255).astype(np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is None and not self._seeded:
            seed = self._seed
        self._seeded = True
        obs, _ = self.ale_env.reset(seed=seed)
        frame = self._frame([obs])
        self.stack[:] = frame
        self.steps = 0
        return self.stack.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = int(np.asarray(action).reshape(-1)[0])
        total, terminated, truncated = 0.0, False, False
        screens: list[np.ndarray] = []
        for k in range(FRAME_SKIP):
            obs, reward, terminated, truncated, _ = self.ale_env.step(a)
            total += float(reward)
            if k >= FRAME_SKIP - 2 or terminated or truncated:
                screens.append(obs)
            if terminated or truncated:
                break
        self.stack = np.concatenate((self.stack[1:], self._frame(screens)[None]), axis=0)
        self.steps += 1
        if self.steps >= self.max_episode_steps:
            truncated = True
        return self.stack.copy(), total, bool(terminated), bool(truncated and not terminated), {}

    def close(self) -> None:
        self.ale_env.close()

    def get_state(self) -> bytes:
        return pickle.dumps(
            {
                "ale": self.ale.cloneState(include_rng=True),
                "stack": self.stack.copy(),
                "steps": self.steps,
                "seeded": self._seeded,
                "action_space": self.action_space.np_random.bit_generator.state,
                "np_random": self.ale_env.np_random.bit_generator.state,
            }
        )

    def set_state(self, blob: bytes) -> None:
        state = pickle.loads(blob)
        if state["seeded"] and not self._seeded:
            # Load the ROM and seed ALE once so restoreState has a game to restore into.
            self.reset(seed=self._seed)
        self.ale.restoreState(state["ale"])
        self.stack = state["stack"].copy()
        self.steps = state["steps"]
        self._seeded = state["seeded"]
        self.action_space.np_random.bit_generator.state = state["action_space"]
        self.ale_env.np_random.bit_generator.state = state["np_random"]
