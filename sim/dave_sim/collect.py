"""Expert data collection: one episode per world seed, recorded as a rosbag2 (MCAP) per episode.

An episode builds world `seed`, lets a privileged expert (EXPERTS: `reactive`, the default, steers
around what the camera sees; `planner` follows an A* route to a goal the camera never sees) drive
it with DART noise on the driven command (the recorded label is always the clean command), and
records at the camera rate the stereo pair, camera_info, ground-truth labels and depth, the label,
the applied /cmd_vel, and at the odometry rate /odom and /sim/collisions (dave_core.recording
fixes the topics). It ends after `duration_s` of sim time or when the goal is reached. The bag's
metadata carries the episode record (EPISODE_KEY: seed, expert, outcome, the expert's
turn-in-place label) and the settings (SETTINGS_KEY), so a bag is usable without the manifest.

`collect` runs episodes in K worker processes (spawned, one episode per task) and keeps
DIR/manifest.json up to date. Layout:

    DIR/manifest.json                 settings, seeds and one entry per finished episode
    DIR/episodes/seed_000007/         a rosbag2 directory: metadata.yaml + seed_000007.mcap

Interruption safety: a bag appears under its final name only when complete (written under a
hidden name, then renamed), so an interrupt loses at most the episodes in flight; a restart with
the same settings skips complete episodes and deletes leftovers. Stamps are sim time added to
the wall-clock epoch of the episode start, as the simulator node stamps its images.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import math
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm import tqdm

from dave_core import recording as rec
from dave_core.atomic_file import atomic_write_text
from dave_core.seeds import parse_seed_list
from dave_sim.camera import StereoCameraConfig
from dave_sim.expert import ExpertCommand, ExpertConfig, NoiseConfig
from dave_sim.reactive_expert import ReactiveConfig
from dave_sim.vehicle import VehicleConfig, VehicleState
from dave_sim.world import World, WorldConfig

if TYPE_CHECKING:  # the simulator module imports mujoco, which workers must load after setting MUJOCO_GL
    from dave_sim.simulator import StereoFrame

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = 'dave-collect'
MANIFEST_VERSION = 1
MANIFEST = 'manifest.json'
EPISODES = 'episodes'
LOCK = '.collect.lock'
EPISODE_KEY = 'dave.episode'  # bag custom_data: the EpisodeResult as JSON, to rebuild a lost manifest
SETTINGS_KEY = 'dave.collect'  # bag custom_data: CollectConfig.settings() as JSON, so a bag describes itself


class CollectError(ValueError):
    """Bad collection input (seeds, settings, output directory); the message names the culprit."""


class EpisodeInterrupted(Exception):
    """The episode was asked to stop; its partial bag has been removed."""


@dataclass(frozen=True)
class CollectConfig:
    """Everything that decides the recorded data (stored in the manifest; a restart must match)."""

    duration_s: float = 60.0  # sim time per episode, unless the goal is reached first
    camera_rate_hz: float = 15.0  # stereo pairs + labels per sim second
    odom_rate_hz: float = 50.0  # /odom and /sim/collisions samples per sim second, as the sim node
    # The stack's cruise speed (launch/params/stack.yaml), so labels show the speed it drives at.
    cruise_speed_mps: float = 0.8
    physics_dt_s: float = 0.005
    compress: bool = True  # zstd MCAP chunks
    world: WorldConfig = field(default_factory=WorldConfig)
    camera: StereoCameraConfig = field(default_factory=StereoCameraConfig)
    vehicle: VehicleConfig = field(default_factory=VehicleConfig)
    # Who drives: a key of EXPERTS. 'reactive' is the expert whose labels the shipped steering
    # model learns (models/STEERING_MODEL_CARD.md).
    expert: str = 'reactive'
    planner: ExpertConfig = field(default_factory=ExpertConfig)  # tuning of the 'planner' expert
    # Tuning of the 'reactive' expert; its cruise speed is always cruise_speed_mps (one speed).
    reactive: ReactiveConfig = field(default_factory=ReactiveConfig)
    # None: drive the clean command. Each episode draws its noise from (noise.seed, world seed).
    noise: NoiseConfig | None = field(default_factory=NoiseConfig)

    def __post_init__(self) -> None:
        for name in ('duration_s', 'camera_rate_hz', 'odom_rate_hz', 'cruise_speed_mps', 'physics_dt_s'):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise CollectError(f'collect {name} must be a number > 0, got {value!r}')
        if self.expert not in EXPERTS:
            raise CollectError(f'collect expert {self.expert!r} is unknown (known: {", ".join(sorted(EXPERTS))})')
        if self.cruise_speed_mps > self.vehicle.max_speed_mps:
            raise CollectError(f'collect cruise_speed_mps {self.cruise_speed_mps} exceeds the vehicle '
                               f'max_speed_mps {self.vehicle.max_speed_mps}')
        # Frozen, so set through object: the manifest must show the speed the reactive expert drives.
        object.__setattr__(self, 'reactive', dataclasses.replace(self.reactive, cruise_speed_mps=self.cruise_speed_mps))
        for name, rate in (('camera_rate_hz', self.camera_rate_hz), ('odom_rate_hz', self.odom_rate_hz)):
            if rate * self.physics_dt_s > 1.0:
                raise CollectError(f'collect {name} = {rate} is faster than the physics step '
                                   f'(physics_dt_s = {self.physics_dt_s})')

    def settings(self) -> dict[str, Any]:
        """JSON-ready settings as the manifest stores them."""
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class EpisodeResult:
    """Summary of one recorded episode (one manifest entry)."""

    seed: int
    frames: int
    sim_time_s: float
    distance_m: float
    collisions: int
    reached_goal: bool
    replans: int  # 0 for an expert that never re-plans (the reactive one has no plan)
    wall_time_s: float
    bag: str  # relative to the collection directory
    # Defaults: what bags recorded before these fields existed were (planner, no rule).
    expert: str = 'planner'
    # Curvature label [1/m] of a turn in place (label v = 0, w != 0): +-this, signed like w. None
    # when the expert's turn-in-place label is not a function of (v, w) (see turn_in_place_curvature).
    turn_in_place_curvature_per_m: float | None = None


class Expert(Protocol):
    """What an episode needs from a driver (expert.ExpertDriver, reactive_expert.ReactiveExpert).

    A driver that re-plans may count it in an int attribute `replans`; it is optional.
    """

    def command(self, state: VehicleState) -> ExpertCommand: ...

    def reached_goal(self, state: VehicleState) -> bool: ...


@dataclass(frozen=True)
class ExpertKind:
    """One entry of EXPERTS: how to build the driver and what its labels mean."""

    build: Callable[[World, CollectConfig, NoiseConfig | None], Expert]
    # The curvature label of a turn in place, or None when it cannot be recovered from (v, w).
    turn_in_place_curvature: Callable[[CollectConfig], float | None]


def _reactive_expert(world: World, config: CollectConfig, noise: NoiseConfig | None) -> Expert:
    from dave_sim.reactive_expert import ReactiveExpert
    return ReactiveExpert(world, config.vehicle, config.camera, config.reactive, noise)


def _planner_expert(world: World, config: CollectConfig, noise: NoiseConfig | None) -> Expert:
    from dave_sim.expert import ExpertDriver
    return ExpertDriver(world, config.vehicle, config.cruise_speed_mps, config.planner, noise)


# name -> how to build it. 'reactive' steers around the obstacles the camera sees (no goal, like
# DAVE's trainer); 'planner' follows an A* route on the true obstacle map to the world's goal.
# The reactive expert labels a turn in place (v = 0) with its sharpest arc, +-max_curvature_per_m,
# so its curvature is w / v everywhere else and +-k_max there. The planner labels it with the
# pure-pursuit curvature towards a route point the camera may not see (2 sin(alpha) / lookahead,
# alpha > 70 deg), which (v = 0, w) does not determine.
EXPERTS: dict[str, ExpertKind] = {
    'reactive': ExpertKind(_reactive_expert, lambda config: config.reactive.max_curvature_per_m),
    'planner': ExpertKind(_planner_expert, lambda config: None),
}


def parse_seeds(text: str) -> list[int]:
    """`--seeds` of dave collect ('A-B', 'N' or a comma list of both); CollectError names the item."""
    try:
        return parse_seed_list(text, '--seeds')
    except ValueError as exc:
        raise CollectError(str(exc)) from None


def frames_per_episode(config: CollectConfig) -> int:
    """Frames of an episode that does not reach its goal: one per camera period in [0, duration)."""
    return math.ceil(config.duration_s * config.camera_rate_hz - 1e-9)


def episode_name(seed: int) -> str:
    return f'seed_{seed:06d}'


def episode_path(out: Path, seed: int) -> Path:
    return out / EPISODES / episode_name(seed)


def noise_for(config: CollectConfig, seed: int) -> NoiseConfig | None:
    """The episode's noise: the configured one with a seed drawn from (noise.seed, world seed)."""
    if config.noise is None:
        return None
    episode_seed = int(np.random.SeedSequence([config.noise.seed, seed]).generate_state(1)[0])
    return dataclasses.replace(config.noise, seed=episode_seed)


# ---------------------------------------------------------------- one episode

def record_episode(out: Path, seed: int, config: CollectConfig, *, epoch_ns: int | None = None,
                   on_frame: Callable[[], None] | None = None,
                   should_stop: Callable[[], bool] | None = None) -> EpisodeResult:
    """Drive world `seed` with the noisy expert and record it to `episode_path(out, seed)`.

    Needs a headless GL (MUJOCO_GL=egl) chosen before mujoco is first imported. Raises
    EpisodeInterrupted (bag discarded) when `should_stop()` turns true between frames.
    """
    # Imported here: mujoco reads MUJOCO_GL when first imported, and a worker sets it first.
    from dave_sim.simulator import Simulator
    from dave_sim.world import generate_world

    started = time.perf_counter()
    epoch_ns = time.time_ns() if epoch_ns is None else int(epoch_ns)
    world = generate_world(seed, config.world)
    kind = EXPERTS[config.expert]
    expert = kind.build(world, config, noise_for(config, seed))
    cam = config.camera
    path = episode_path(out, seed)
    frame_period, odom_period = 1.0 / config.camera_rate_hz, 1.0 / config.odom_rate_hz
    frames = odom_ticks = 0
    published_collisions = -1
    reached = False
    with Simulator(world, cam, config.vehicle, config.physics_dt_s) as sim, \
            rec.RecordingWriter(path, rec.SIM_TOPICS, compress=config.compress,
                                custom_data={SETTINGS_KEY: json.dumps(config.settings(), sort_keys=True)}) as writer:
        intrinsics = (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)

        def stamp() -> int:
            return epoch_ns + round(sim.time_s * 1e9)

        while True:
            # Next event on the merged camera / odometry schedule (times of the first frame: 0).
            t_frame, t_odom = frames * frame_period, odom_ticks * odom_period
            t = min(t_frame, t_odom)
            if t >= config.duration_s - 1e-9:
                break
            sim.step_to(t)
            ns = stamp()
            if t_odom <= t:
                s = sim.state
                writer.write(rec.ODOM, rec.odometry_msg(ns, s.x, s.y, s.yaw, s.v, sim.lateral_speed_mps, s.w), ns)
                if sim.collisions != published_collisions:  # latched topic: changes only
                    published_collisions = sim.collisions
                    writer.write(rec.COLLISIONS, rec.uint32_msg(published_collisions), ns)
                odom_ticks += 1
            if t_frame <= t:
                state = sim.state
                if expert.reached_goal(state):
                    reached = True
                    break
                image = sim.render(with_gt=True)
                command = expert.command(state)  # the label belongs to the image just taken
                sim.apply_controls(command.applied_v, command.applied_w)
                _write_frame(writer, image, intrinsics, cam.baseline_m, ns, command)
                frames += 1
                if on_frame is not None:
                    on_frame()
                if should_stop is not None and should_stop():
                    raise EpisodeInterrupted(f'episode seed {seed} interrupted after {frames} frames')
        result = EpisodeResult(
            seed=seed, frames=frames, sim_time_s=round(sim.time_s, 6), distance_m=round(sim.distance_m, 3),
            collisions=sim.collisions, reached_goal=reached,
            replans=int(getattr(expert, 'replans', 0)),  # optional in the Expert protocol
            wall_time_s=round(time.perf_counter() - started, 3),
            bag=str(path.relative_to(out)), expert=config.expert,
            turn_in_place_curvature_per_m=kind.turn_in_place_curvature(config))
        writer.set_custom_data(EPISODE_KEY, json.dumps(asdict(result), sort_keys=True))
    return result


def _write_frame(writer: rec.RecordingWriter, image: StereoFrame, intrinsics: tuple, baseline_m: float, ns: int,
                 command: ExpertCommand) -> None:
    # One stamp for everything of this instant: pair, infos, GT and label (ARCHITECTURE.md).
    writer.write(rec.LEFT_IMAGE, rec.image_msg(image.left, 'rgb8', ns, rec.LEFT_OPTICAL_FRAME), ns)
    writer.write(rec.RIGHT_IMAGE, rec.image_msg(image.right, 'rgb8', ns, rec.RIGHT_OPTICAL_FRAME), ns)
    writer.write(rec.LEFT_INFO, rec.camera_info_msg(*intrinsics, ns, rec.LEFT_OPTICAL_FRAME), ns)
    writer.write(rec.RIGHT_INFO, rec.camera_info_msg(*intrinsics, ns, rec.RIGHT_OPTICAL_FRAME, baseline_m), ns)
    writer.write(rec.GT_LABELS, rec.image_msg(image.labels, 'mono8', ns, rec.LEFT_OPTICAL_FRAME), ns)
    writer.write(rec.GT_DEPTH, rec.image_msg(image.depth, '32FC1', ns, rec.LEFT_OPTICAL_FRAME), ns)
    writer.write(rec.EXPERT_CMD_VEL, rec.twist_stamped_msg(command.v, command.w, ns), ns)
    writer.write(rec.CMD_VEL, rec.twist_msg(command.applied_v, command.applied_w), ns)


def episode_result_from_bag(out: Path, seed: int) -> EpisodeResult:
    """Read the summary a complete episode bag carries in its metadata (manifest recovery)."""
    info = rec.read_info(episode_path(out, seed))
    try:
        return EpisodeResult(**json.loads(info.custom_data[EPISODE_KEY]))
    except (KeyError, TypeError, ValueError) as exc:
        raise CollectError(f'{info.path}: metadata.yaml custom_data {EPISODE_KEY!r} is missing or malformed '
                           f'({type(exc).__name__})') from None


# ---------------------------------------------------------------- manifest

class Manifest:
    """DIR/manifest.json: settings, requested seeds, finished episodes; rewritten atomically."""

    def __init__(self, out: Path, settings: dict[str, Any]) -> None:
        self.path = out / MANIFEST
        self.settings = settings
        self.seeds: set[int] = set()
        self.episodes: dict[int, dict[str, Any]] = {}
        self.created_utc = _utc_now()

    @classmethod
    def load_or_new(cls, out: Path, settings: dict[str, Any]) -> Manifest:
        """The existing manifest if its settings equal `settings`, else a CollectError naming the key."""
        manifest = cls(out, settings)
        if not manifest.path.exists():
            return manifest
        try:
            document = json.loads(manifest.path.read_text())
            if document.get('format') != MANIFEST_FORMAT:
                raise ValueError(f"format is {document.get('format')!r}, not {MANIFEST_FORMAT!r}")
            old_settings = document['settings']
            seeds = [int(s) for s in document['seeds']]
            episodes = {int(e['seed']): dict(e) for e in document['episodes']}
            created = str(document.get('created_utc', manifest.created_utc))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CollectError(f'{manifest.path}: not a dave collect manifest ({exc}); use another --out') from None
        difference = _first_difference(old_settings, settings)
        if difference is not None:
            key, old, new = difference
            raise CollectError(f'{out} holds data collected with other settings ({key}: {old!r} there, {new!r} now); '
                               'use another --out or the same options')
        manifest.seeds.update(seeds)
        manifest.episodes.update(episodes)
        manifest.created_utc = created
        return manifest

    def add(self, result: EpisodeResult) -> None:
        self.episodes[result.seed] = {'status': 'complete', **asdict(result)}

    def add_failure(self, seed: int, error: str) -> None:
        self.episodes[seed] = {'seed': seed, 'status': 'failed', 'error': error}

    def complete_seeds(self) -> set[int]:
        return {s for s, e in self.episodes.items() if e.get('status') == 'complete'}

    def document(self) -> dict[str, Any]:
        done = [self.episodes[s] for s in sorted(self.complete_seeds())]
        return {
            'format': MANIFEST_FORMAT,
            'version': MANIFEST_VERSION,
            'recording_format': rec.FORMAT_NAME,
            'recording_format_version': rec.FORMAT_VERSION,
            'created_utc': self.created_utc,
            'updated_utc': _utc_now(),
            'software': _software_versions(),
            'settings': self.settings,
            'seeds': sorted(self.seeds),
            'totals': {
                'episodes_complete': len(done),
                'episodes_failed': len(self.episodes) - len(done),
                'frames': sum(e['frames'] for e in done),
                'sim_time_s': round(sum(e['sim_time_s'] for e in done), 3),
                'distance_m': round(sum(e['distance_m'] for e in done), 3),
                'collisions': sum(e['collisions'] for e in done),
                'goals_reached': sum(bool(e['reached_goal']) for e in done),
            },
            'episodes': [self.episodes[s] for s in sorted(self.episodes)],
        }

    def write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.document(), indent=2) + '\n')


def _first_difference(old: Any, new: Any, key: str = 'settings') -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            found = _first_difference(old.get(k), new.get(k), f'{key}.{k}')
            if found is not None:
                return found
        return None
    return None if old == new else (key, old, new)


def _utc_now() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def _software_versions() -> dict[str, str]:
    versions = {'python': sys.version.split()[0]}
    for package in ('mujoco', 'rosbags', 'numpy'):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = 'absent'
    return versions


# ---------------------------------------------------------------- parallel collection

@dataclass
class CollectSummary:
    """What one `collect` call did."""

    recorded: list[EpisodeResult] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # complete before this call
    failed: dict[int, str] = field(default_factory=dict)
    not_run: list[int] = field(default_factory=list)  # left when every worker had died
    interrupted: bool = False

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.recorded)


def prepare_output(out: Path) -> int:
    """Create `out`, take its lock; returns the lock's file descriptor (held until closed)."""
    try:
        (out / EPISODES).mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise CollectError(f'--out {out}: not a writable directory ({exc.strerror})') from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise CollectError(f'--out {out}: another dave collect is writing there') from None
    return fd


def collect(out: str | os.PathLike, seeds: Sequence[int], config: CollectConfig, workers: int, *,
            worker_env: Mapping[str, str] | None = None, progress: bool = True) -> CollectSummary:
    """Record one episode per seed in `workers` processes; see the module docstring for the layout.

    `worker_env` is applied in each worker process before mujoco loads (e.g. MUJOCO_GL=egl,
    LP_NUM_THREADS=1); this process's environment is left alone. KeyboardInterrupt (the caller
    maps SIGTERM onto it) stops the workers, keeps finished bags and the manifest, and re-raises.
    """
    out = Path(out)
    if workers < 1:
        raise CollectError(f'--workers must be >= 1, got {workers}')
    if not seeds:
        raise CollectError('--seeds selects no world')
    lock_fd = prepare_output(out)
    try:
        manifest = Manifest.load_or_new(out, config.settings())
        for leftover in rec.remove_partial_recordings(out / EPISODES):
            logger.info('removed the partial episode %s of an interrupted run', leftover.name)
        summary = CollectSummary()
        manifest.seeds.update(seeds)
        todo = []
        for seed in sorted(set(seeds)):
            if episode_path(out, seed).is_dir():
                if seed not in manifest.complete_seeds():  # bag finished, manifest update lost
                    manifest.add(episode_result_from_bag(out, seed))
                summary.skipped.append(seed)
            else:
                todo.append(seed)
        manifest.write()
        if todo:
            _run_pool(out, todo, config, min(workers, len(todo)), dict(worker_env or {}), progress, manifest, summary)
        return summary
    finally:
        os.close(lock_fd)


def _run_pool(out: Path, todo: list[int], config: CollectConfig, workers: int, env: dict[str, str],
              progress: bool, manifest: Manifest, summary: CollectSummary) -> None:
    ctx = multiprocessing.get_context('spawn')  # no fork of a process that may hold GL or threads
    tasks, events = ctx.Queue(), ctx.Queue()
    for seed in todo:
        tasks.put(seed)
    for _ in range(workers):
        tasks.put(None)
    procs = [ctx.Process(target=_worker_main, args=(i, str(out), config, env, tasks, events),
                         name=f'dave-collect-{i}', daemon=True) for i in range(workers)]
    in_flight: dict[int, int] = {}  # worker -> seed
    frames_in_flight: dict[int, int] = {}
    expected = frames_per_episode(config)
    bar = tqdm(total=expected * len(todo), unit='frame', disable=not progress, dynamic_ncols=True,
               desc=f'{len(todo)} episodes')
    try:
        for proc in procs:
            proc.start()
        remaining = len(todo)
        while remaining:
            try:
                event = events.get(timeout=0.5)
            except queue.Empty:
                for i, proc in enumerate(procs):
                    if not proc.is_alive() and i in in_flight:  # crashed (GL, OOM killer...)
                        seed = in_flight.pop(i)
                        error = f'worker exited with code {proc.exitcode}'
                        summary.failed[seed] = error
                        manifest.add_failure(seed, error)
                        manifest.write()
                        remaining -= 1
                if not any(p.is_alive() for p in procs):
                    break
                continue
            kind, worker = event[0], event[1]
            if kind == 'start':
                in_flight[worker], frames_in_flight[worker] = event[2], 0
            elif kind == 'frame':
                frames_in_flight[worker] += 1
                bar.update(1)
            elif kind in ('done', 'failed'):
                seed = in_flight.pop(worker)
                if kind == 'done':
                    result = EpisodeResult(**event[2])
                    summary.recorded.append(result)
                    manifest.add(result)
                    bar.total -= expected - result.frames  # an episode that reached its goal early
                else:
                    summary.failed[seed] = event[2]
                    manifest.add_failure(seed, event[2])
                    logger.error('episode seed %d failed: %s', seed, event[2])
                    bar.total -= expected - frames_in_flight[worker]
                manifest.write()
                remaining -= 1
                bar.set_postfix_str(f'{len(summary.recorded)}/{len(todo)} done')
                bar.refresh()
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        bar.close()
        _stop_workers(procs, events)
        finished = {r.seed for r in summary.recorded} | set(summary.failed)
        summary.not_run = [s for s in todo if s not in finished]
        rec.remove_partial_recordings(out / EPISODES)
        manifest.write()


def _stop_workers(procs: list[Any], events: Any, timeout_s: float = 10.0) -> None:
    # SIGTERM lets a worker drop its partial bag and exit; events are drained meanwhile, since a
    # process that put data on a queue cannot exit before it is read.
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + timeout_s
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        try:
            while True:
                events.get_nowait()
        except queue.Empty:
            pass
        for proc in procs:
            proc.join(timeout=0.05)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()


_stop_requested = False


def _request_stop(signum: int, frame: object) -> None:
    global _stop_requested
    _stop_requested = True


def _worker_main(worker: int, out: str, config: CollectConfig, env: dict[str, str], tasks: Any, events: Any) -> None:
    """Entry point of a collection worker process."""
    # This process's own entry point: the GL backend must be chosen before mujoco is imported.
    os.environ.update(env)
    # Ctrl-C reaches the whole process group; the parent decides and sends SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _request_stop)
    while not _stop_requested:
        try:
            seed = tasks.get(timeout=0.2)
        except queue.Empty:
            continue
        if seed is None:
            break
        events.put(('start', worker, seed))
        try:
            result = record_episode(Path(out), seed, config, on_frame=lambda: events.put(('frame', worker)),
                                    should_stop=lambda: _stop_requested)
        except EpisodeInterrupted:
            break
        except Exception as exc:  # one bad world must not end the collection; the parent records it
            events.put(('failed', worker, f'{type(exc).__name__}: {exc}'))
            continue
        events.put(('done', worker, asdict(result)))
