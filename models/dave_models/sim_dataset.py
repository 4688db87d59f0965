"""Generate steering shards by letting a simulator expert drive generated worlds.

    python -m dave_models.sim_dataset --seeds 0-47 --frames-per-world 200 --out out/data/steering_v2

For each world seed: build the world and the MuJoCo simulator, and let an expert drive it.
`--expert reactive` (the default, dave_sim.reactive_expert) steers around the obstacles the camera
sees, so its labels can be learned from the images; `--expert planner` (dave_sim.expert: A* to an
invisible goal + pure pursuit) is the first model's expert. Every camera period the stereo pair is
rendered and labelled with the expert's clean curvature and speed, while the command actually
driven carries DART noise, so the data also shows how to recover from small mistakes. An expert
with `privileged_labels()` (the reactive one) adds more per frame: its memoryless choice
(`curvature_memoryless`: the arc it picks from this view alone, without its pull towards the
previous arc) and the free length and clearance of each arc of its fan (`arc_free_m`,
`arc_clearance_m`, auxiliary training targets), and with `--fragility` whether its direction would
flip under a perception error of about one pixel (`direction_fragile`, an evaluation label);
these never change what is driven. When an episode ends (goal reached, or `max_episode_s`) the
truck restarts from the start with a new noise seed, until the world has its frames.

`--replay DIR` adds today's labels to a data set made earlier with the same options without
re-rendering it (rendering is ~90 % of the cost): each drive is repeated, physics and expert only,
the images are copied, and every replayed label must equal the stored one (else an error).
The steering_v5 data was made this way from steering_v3:

    python -m dave_models.sim_dataset --seeds 0-95 --replay out/data/steering_v3 --out out/data/steering_v5

Deterministic given the seeds and options (MuJoCo and the expert are; rendered pixels depend on
the Mesa/LLVM build, so identical bytes are guaranteed on one machine only). Needs a headless GL:
run with MUJOCO_GL=egl.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from dave_core import logs
from dave_core.seeds import parse_seed_list
from dave_models.datasets import DatasetError, Samples, ShardWriter, building, load_manifest, read_shard
if TYPE_CHECKING:
    from dave_sim.expert import ExpertCommand, NoiseConfig
    from dave_sim.vehicle import VehicleConfig, VehicleState
    from dave_sim.world import World

logger = logging.getLogger(__name__)


class Expert(Protocol):
    """What the generator needs from a driver (dave_sim.expert.ExpertDriver and ReactiveExpert)."""

    def command(self, state: VehicleState) -> ExpertCommand: ...

    def reached_goal(self, state: VehicleState) -> bool: ...


def privileged_labels(expert: Expert) -> dict[str, np.ndarray | float]:
    """Extra labels of the expert's last command ({} for experts without them, e.g. the planner)."""
    method = getattr(expert, 'privileged_labels', None)
    return method() if method is not None else {}


def _planner_expert(world: World, vehicle: VehicleConfig, cruise_speed_mps: float,
                    noise: NoiseConfig | None) -> Expert:
    from dave_sim.expert import ExpertDriver
    return ExpertDriver(world, vehicle, cruise_speed_mps, noise=noise)


def _reactive_expert(world: World, vehicle: VehicleConfig, cruise_speed_mps: float,
                     noise: NoiseConfig | None) -> Expert:
    from dave_sim.reactive_expert import ReactiveConfig, ReactiveExpert
    return ReactiveExpert(world, vehicle, config=ReactiveConfig(cruise_speed_mps=cruise_speed_mps), noise=noise)


# name -> factory(world, vehicle, cruise speed, DART noise or None)
EXPERTS: dict[str, Callable[..., Expert]] = {
    'reactive': _reactive_expert,
    'planner': _planner_expert,
}


MAX_CAMERA_RATE_HZ = 200.0  # dave_sim.simulator's physics rate (physics_dt 5 ms)


@dataclass(frozen=True)
class SimDatasetConfig:
    frames_per_world: int = 200  # ~1.5 drives of a 20 m world at 10 Hz
    camera_rate_hz: float = 10.0  # sim time between frames; the stack's camera runs at 10-15 Hz
    cruise_speed_mps: float = 0.8  # the stack's cruise speed (launch/params/stack.yaml)
    dart_noise: bool = True  # perturb the driven command (never the label)
    max_episode_s: float = 90.0  # a drive that has not reached the goal by then restarts
    expert: str = 'reactive'  # a key of EXPERTS
    # DAgger (Ross et al. 2011): a steering model (.onnx) drives this share of the frames, the
    # noisy expert the others, while every frame is labelled by the expert. The data then shows
    # the states the model itself gets into, mistakes included, and what to do there.
    driver: str = ''
    driver_share: float = 0.5
    # Also label each frame `direction_fragile` (reactive expert only): whether its direction
    # flips under a perception error of about one pixel (dave_sim.reactive_expert.direction_fragile).
    # Off by default: six more arc evaluations a frame, and it is an evaluation label.
    fragility: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.driver_share <= 1.0:
            raise ValueError(f'driver_share must be in [0, 1], got {self.driver_share}')
        if self.expert not in EXPERTS:
            raise ValueError(f'expert {self.expert!r} unknown (known: {", ".join(EXPERTS)})')
        if self.fragility and self.expert != 'reactive':
            raise ValueError(f'--fragility needs --expert reactive (the {self.expert} expert has no arc fan)')
        if self.frames_per_world < 1:
            raise ValueError(f'frames_per_world must be >= 1, got {self.frames_per_world}')
        if not 0 < self.camera_rate_hz <= MAX_CAMERA_RATE_HZ:  # faster: the same frame again
            raise ValueError(f'camera_rate_hz must be > 0 and <= {MAX_CAMERA_RATE_HZ:g} (the simulator\'s '
                             f'physics rate), got {self.camera_rate_hz}')
        if not self.cruise_speed_mps > 0:
            raise ValueError(f'cruise_speed_mps must be > 0, got {self.cruise_speed_mps}')
        if not self.max_episode_s > 0:
            raise ValueError(f'max_episode_s must be > 0, got {self.max_episode_s}')


# "Obstacle ahead": the nearest obstacle surface within this range and half-angle of the
# heading, i.e. well inside the camera's 85 deg field of view and close enough to matter at 1 m/s.
AHEAD_RANGE_M = 3.0
AHEAD_HALF_ANGLE_DEG = 35.0


def obstacle_ahead(obstacles: np.ndarray, x: float, y: float, yaw: float) -> int:
    """+1 if the nearest obstacle ahead is on the left, -1 on the right, 0 if none is ahead.

    `obstacles` is (K, 3): x, y, bounding radius in the world frame. Privileged information,
    stored for evaluation ("does the network steer away?"), never a network input.
    """
    if len(obstacles) == 0:
        return 0
    dx, dy = obstacles[:, 0] - x, obstacles[:, 1] - y
    c, s = math.cos(yaw), math.sin(yaw)
    forward, left = c * dx + s * dy, -s * dx + c * dy
    gap = np.hypot(forward, left) - obstacles[:, 2]
    ahead = (forward > 0) & (np.abs(np.arctan2(left, forward)) < math.radians(AHEAD_HALF_ANGLE_DEG)) \
        & (gap < AHEAD_RANGE_M)
    if not ahead.any():
        return 0
    nearest = int(np.argmin(np.where(ahead, gap, np.inf)))
    return 1 if left[nearest] >= 0 else -1


@dataclass(frozen=True)
class WorldStats:
    seed: int
    frames: int
    episodes: int
    goals: int
    collisions: int


def drive_world(seed: int, config: SimDatasetConfig, progress: tqdm | None = None,
                replay: Samples | None = None) -> tuple[Samples, WorldStats]:
    """Frames of world `seed` labelled by the expert's clean command.

    With `replay` (this world's frames from an earlier run) nothing is rendered: the drive is
    repeated (physics and expert are deterministic), the images are taken from `replay`, and
    every replayed label must equal the stored one exactly, which proves the drive, hence each
    image, is the same; otherwise DatasetError. This adds new labels without re-rendering.
    """
    from dave_sim.expert import NoiseConfig
    from dave_sim.simulator import Simulator
    from dave_sim.world import generate_world

    world = generate_world(seed)
    pilot = None
    if config.driver:
        if replay is not None:
            raise DatasetError('--driver: a replay repeats the recorded drives; it cannot be re-driven')
        from dave_core.autopilot import SteeringPilot
        pilot = SteeringPilot.from_file(config.driver, cruise_speed_mps=config.cruise_speed_mps)
    period = 1.0 / config.camera_rate_hz
    obstacles = np.array([(o.x, o.y, o.bounding_radius) for o in world.obstacles]).reshape(-1, 3)
    lefts, rights, curvatures, speeds, ahead = [], [], [], [], []
    extra: dict[str, list] = {}
    episodes = goals = collisions = 0
    with Simulator(world) as sim:
        while len(curvatures) < config.frames_per_world:
            sim.reset()
            # A new noise stream per episode, so repeated drives of one world differ.
            noise = NoiseConfig(seed=seed * 1000 + episodes) if config.dart_noise else None
            expert = EXPERTS[config.expert](world, sim.vehicle, config.cruise_speed_mps, noise)
            turns = np.random.default_rng([seed, episodes])  # who drives each frame (DAgger)
            episodes += 1
            while len(curvatures) < config.frames_per_world:
                state = sim.state
                if expert.reached_goal(state):
                    goals += 1
                    break
                if sim.time_s > config.max_episode_s:
                    logger.info('world %d: episode %d ended after %.0f s without a goal; restarting',
                                seed, episodes, config.max_episode_s)
                    break
                command = expert.command(state)
                if replay is None:
                    frame = sim.render()
                    lefts.append(frame.left)
                    rights.append(frame.right)
                else:
                    i = len(curvatures)
                    if i >= len(replay) or np.float32(command.curvature) != replay.curvature[i]:
                        raise DatasetError(
                            f'world {seed} frame {i}: the replayed drive differs from the stored one '
                            f'(the simulator, the expert or the options changed); regenerate instead')
                    lefts.append(replay.left[i])
                    rights.append(replay.right[i])
                curvatures.append(command.curvature)
                speeds.append(command.v)
                ahead.append(obstacle_ahead(obstacles, state.x, state.y, state.yaw))
                for name, value in privileged_labels(expert).items():
                    extra.setdefault(name, []).append(value)
                if config.fragility:
                    extra.setdefault('direction_fragile', []).append(expert.last_direction_fragile())
                if pilot is not None and turns.random() < config.driver_share:
                    learner = pilot.propose(lefts[-1], rights[-1])
                    sim.apply_controls(learner.linear_mps, learner.angular_rps)
                else:
                    sim.apply_controls(command.applied_v, command.applied_w)
                sim.step(period)
                if progress is not None:
                    progress.update(1)
            collisions += sim.collisions
    samples = Samples(left=np.stack(lefts), right=np.stack(rights),
                      curvature=np.asarray(curvatures, np.float32),
                      world_seed=np.full(len(curvatures), seed, np.int64),
                      speed=np.asarray(speeds, np.float32),
                      obstacle_ahead=np.asarray(ahead, np.int8),
                      **{name: _label_array(values) for name, values in extra.items()})
    return samples, WorldStats(seed, len(curvatures), episodes, goals, collisions)


def _label_array(values: list) -> np.ndarray:
    """Per-frame labels as stored: yes/no marks as int8 0/1, numbers as float32."""
    array = np.asarray(values)
    return array.astype(np.int8 if array.dtype == bool else np.float32)


def generate(seeds: list[int], out: str | os.PathLike, config: SimDatasetConfig,
             command_line: str = '', replay_from: str | os.PathLike | None = None) -> Path:
    """Write one shard per world seed plus manifest.json into `out` (which must be new or empty).

    `replay_from`: a data set made earlier with the same options; its drives are replayed
    without rendering (see drive_world) to write today's labels next to its images.
    """
    replay_manifest = load_manifest(replay_from) if replay_from is not None else None
    if replay_manifest is not None:
        missing = sorted(set(seeds) - set(replay_manifest.world_seeds))
        if missing:
            raise DatasetError(f'--replay {replay_from}: has no world {missing[0]}')
    from dave_sim.camera import StereoCameraConfig
    from dave_sim.reactive_expert import ReactiveConfig
    from dave_sim.vehicle import VehicleConfig

    source = {'generator': 'dave_models.sim_dataset', 'command': command_line, 'seeds': seeds,
              'replayed_from': replay_manifest.data_id if replay_manifest is not None else None,
              'config': asdict(config), 'camera': asdict(StereoCameraConfig()),
              'arc_curvatures': ReactiveConfig().curvatures.tolist() if config.expert == 'reactive' else None,
              'vehicle': asdict(VehicleConfig()), 'worlds': []}
    # Built beside `out` and renamed when complete: an interrupted run leaves nothing to clean up.
    with building(out) as partial, ShardWriter(partial, source) as writer, \
            tqdm(total=len(seeds) * config.frames_per_world, unit='frame', desc='expert driving',
                 disable=None) as progress:
        for seed in seeds:
            replay = None
            if replay_manifest is not None:
                shard = next(s for s in replay_manifest.shards if seed in s.world_seeds)
                stored = read_shard(replay_manifest, shard)
                keep = stored.world_seed == seed
                replay = Samples(stored.left[keep], stored.right[keep], stored.curvature[keep],
                                 stored.world_seed[keep])
            samples, stats = drive_world(seed, config, progress, replay)
            writer.add(samples)
            writer.source['worlds'].append(asdict(stats))  # lands in manifest.json
            logger.info('world %d: %d frames, %d episode(s), %d goal(s), %d collision(s)', seed,
                        stats.frames, stats.episodes, stats.goals, stats.collisions)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SimDatasetConfig()
    parser.add_argument('--seeds', required=True, help='world seeds, e.g. 0-35 or 1,4,7-9')
    parser.add_argument('--frames-per-world', type=int, default=defaults.frames_per_world)
    parser.add_argument('--camera-rate-hz', type=float, default=defaults.camera_rate_hz)
    parser.add_argument('--cruise-speed', type=float, default=defaults.cruise_speed_mps)
    parser.add_argument('--no-dart-noise', action='store_true', help='drive the clean command')
    parser.add_argument('--expert', choices=sorted(EXPERTS), default=defaults.expert,
                        help='who drives: reactive (avoids what the camera sees) or planner (A* to a goal)')
    parser.add_argument('--max-episode-s', type=float, default=defaults.max_episode_s,
                        help='sim seconds before a drive restarts from the start')
    parser.add_argument('--replay', metavar='DIR', default=None,
                        help='a data set made with the same options: repeat its drives without '
                             'rendering, keep its images, write the current labels (checked: every '
                             'replayed label must equal the stored one)')
    parser.add_argument('--driver', metavar='MODEL.onnx', default='',
                        help='DAgger: this steering model drives --driver-share of the frames (the '
                             'noisy expert the rest); the expert still labels every frame')
    parser.add_argument('--driver-share', type=float, default=defaults.driver_share,
                        help='share of frames the --driver model drives (default: %(default)s)')
    parser.add_argument('--fragility', action='store_true',
                        help='also label each frame direction_fragile: 1 where the expert\'s direction flips '
                             'under a perception error of about one pixel (2.5 cm on obstacle edges, '
                             '0.5 deg of bearing or 3 %% of range); steering_eval then scores those frames '
                             'apart. Reactive expert only; slower')
    parser.add_argument('--out', required=True, help='new directory for the shards')
    args = parser.parse_args(argv)
    # The program entry point (not library code) picks headless rendering unless told otherwise.
    os.environ.setdefault('MUJOCO_GL', 'egl')
    logs.configure()
    try:
        config = SimDatasetConfig(args.frames_per_world, args.camera_rate_hz, args.cruise_speed,
                                  not args.no_dart_noise, args.max_episode_s, args.expert,
                                  args.driver, args.driver_share, fragility=args.fragility)
        seeds = parse_seed_list(args.seeds)
        command = 'python -m dave_models.sim_dataset ' + shlex.join(argv if argv is not None else sys.argv[1:])
        out = generate(seeds, args.out, config, command, args.replay)
    except ValueError as exc:  # includes DatasetError
        logger.error('%s', exc)
        return 2
    logger.info('wrote %s', out)
    return 0


if __name__ == '__main__':
    from dave_core.entry import run_tool
    raise SystemExit(run_tool(main, 'python -m dave_models.sim_dataset'))
