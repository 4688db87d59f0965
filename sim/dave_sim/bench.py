"""Simulator benchmarks: stereo pairs per second with ground truth, and the physics real-time factor.

Each measurement runs in a fresh spawned process pinned to one core (os.sched_setaffinity) with
one llvmpipe thread, so a figure says what one core delivers; the two-worker figure runs two such
processes on two cores at once and adds their rates. A "stereo pair" is one loop of what the
collector does per frame: expert command, physics for one camera period, left + right RGB, and
the left camera's GT classes and depth. The real-time factor is sim seconds per wall second of
physics stepping alone (no rendering) at the simulator's physics dt, with the expert driving.

Every figure is the median over `repeats` timed windows after a warm-up that is not counted: the
machine may be shared, and a median shrugs off the windows someone else's job slowed down.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import queue
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from dave_sim.camera import StereoCameraConfig


class BenchError(RuntimeError):
    """A benchmark process failed; the message says which and why."""


@dataclass(frozen=True)
class SimBenchConfig:
    """Sizes of the measurement; the defaults take ~30 s on a 2-core machine."""

    frames: int = 45  # stereo pairs per timed window (3 s of camera at 15 Hz)
    repeats: int = 5  # timed windows; the median is reported
    warmup_frames: int = 10  # first GL frames compile shaders and fault in buffers: not counted
    physics_s: float = 10.0  # sim seconds per real-time-factor window (the truck still drives)
    world_seed: int = 0
    camera_rate_hz: float = 15.0
    timeout_s: float = 600.0  # per measurement process
    expert_worlds: int = 20  # worlds (seeds 0..N-1) the expert drives for its success rate; 0 skips
    expert_limit_s: float = 90.0  # sim seconds an expert drive may take before it counts as failed

    def __post_init__(self) -> None:
        for name in ('frames', 'repeats', 'world_seed'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == 'world_seed' else 1):
                raise ValueError(f'sim bench {name} must be an integer >= {0 if name == "world_seed" else 1}, '
                                 f'got {value!r}')
        if isinstance(self.warmup_frames, bool) or not isinstance(self.warmup_frames, int) or self.warmup_frames < 0:
            raise ValueError(f'sim bench warmup_frames must be an integer >= 0, got {self.warmup_frames!r}')
        if isinstance(self.expert_worlds, bool) or not isinstance(self.expert_worlds, int) or self.expert_worlds < 0:
            raise ValueError(f'sim bench expert_worlds must be an integer >= 0, got {self.expert_worlds!r}')
        for name in ('physics_s', 'camera_rate_hz', 'timeout_s', 'expert_limit_s'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f'sim bench {name} must be > 0, got {value!r}')


def _setup_process(env: Mapping[str, str], core: int) -> None:
    # A measurement process's own entry: pick the GL backend before mujoco loads, pin the core.
    os.environ.update(env)
    os.sched_setaffinity(0, {core})


def _simulator(camera: StereoCameraConfig, config: SimBenchConfig) -> Any:
    from dave_sim.simulator import Simulator
    from dave_sim.world import generate_world

    return Simulator(generate_world(config.world_seed), camera)


def _expert(sim: Any, config: SimBenchConfig) -> Any:
    """The collector's driver: noisy expert from the start pose, so the views change as in real use."""
    from dave_sim.expert import ExpertDriver, NoiseConfig

    return ExpertDriver(sim.world, sim.vehicle, noise=NoiseConfig(seed=config.world_seed))


def _drive(sim: Any, expert: Any, period_s: float) -> None:
    command = expert.command(sim.state)
    sim.apply_controls(command.applied_v, command.applied_w)
    sim.step(period_s)


def _stereo_worker(width: int, height: int, config: SimBenchConfig, core: int, env: Mapping[str, str],
                   barrier: Any, results: Any, breakdown: bool) -> None:
    """Process entry: per-window pairs/s of drive + render(with_gt=True); optional timing breakdown."""
    try:
        _setup_process(env, core)
        sim = _simulator(StereoCameraConfig(width=width, height=height), config)
        expert = _expert(sim, config)
        period = 1.0 / config.camera_rate_hz
        with sim:
            for _ in range(config.warmup_frames):
                _drive(sim, expert, period)
                sim.render(with_gt=True)
            rates = []
            for _ in range(config.repeats):
                if barrier is not None:
                    barrier.wait(timeout=config.timeout_s)  # both workers time the same window
                started = time.perf_counter()
                for _ in range(config.frames):
                    _drive(sim, expert, period)
                    sim.render(with_gt=True)
                rates.append(config.frames / (time.perf_counter() - started))
            result: dict[str, Any] = {'rates': rates}
            if breakdown:
                result.update(_breakdown(sim, expert, config, period))
        results.put(('ok', result))
    except Exception as exc:  # reported to the parent, which names the measurement
        results.put(('error', f'{type(exc).__name__}: {exc}'))


def _breakdown(sim: Any, expert: Any, config: SimBenchConfig, period: float) -> dict[str, list[float]]:
    # Where a pair's time goes: the RGB pair alone, the pair with GT, and expert + physics.
    times: dict[str, list[float]] = {'rgb_pair_ms': [], 'gt_pair_ms': [], 'drive_ms': []}
    for _ in range(config.frames):
        started = time.perf_counter()
        _drive(sim, expert, period)
        drove = time.perf_counter()
        sim.render(with_gt=False)
        rendered = time.perf_counter()
        sim.render(with_gt=True)
        done = time.perf_counter()
        times['drive_ms'].append((drove - started) * 1e3)
        times['rgb_pair_ms'].append((rendered - drove) * 1e3)
        times['gt_pair_ms'].append((done - rendered) * 1e3)
    return times


def _physics_worker(config: SimBenchConfig, core: int, env: Mapping[str, str], results: Any) -> None:
    """Process entry: per-window real-time factor of expert + physics stepping, no rendering."""
    try:
        _setup_process(env, core)
        sim = _simulator(StereoCameraConfig(), config)  # never renders: no GL context is made
        period = 1.0 / config.camera_rate_hz
        steps = max(1, round(config.physics_s * config.camera_rate_hz))
        factors = []
        for _ in range(config.repeats + 1):  # the first window warms caches up and is dropped
            sim.reset()  # the same drive in every window, from the start pose
            expert = _expert(sim, config)  # planning happens here, outside the timed window
            started = time.perf_counter()
            for _ in range(steps):
                _drive(sim, expert, period)
            factors.append(sim.time_s / (time.perf_counter() - started))
        results.put(('ok', {'factors': factors[1:], 'physics_dt_s': sim.physics_dt}))
    except Exception as exc:
        results.put(('error', f'{type(exc).__name__}: {exc}'))


def _expert_worker(config: SimBenchConfig, core: int, env: Mapping[str, str], results: Any) -> None:
    """Process entry: the noisy expert drives worlds 0..N-1 to the goal; counts goals and collisions."""
    try:
        _setup_process(env, core)
        from dave_sim.expert import ExpertDriver, NoiseConfig
        from dave_sim.simulator import Simulator
        from dave_sim.world import generate_world

        period = 1.0 / config.camera_rate_hz
        reached = collision_free = 0
        for seed in range(config.expert_worlds):
            world = generate_world(seed)
            sim = Simulator(world)  # never renders
            expert = ExpertDriver(world, sim.vehicle, noise=NoiseConfig(seed=seed))
            while sim.time_s < config.expert_limit_s and not expert.reached_goal(sim.state):
                _drive(sim, expert, period)
            reached += expert.reached_goal(sim.state)
            collision_free += sim.collisions == 0
            sim.close()
        results.put(('ok', {'reached': reached, 'collision_free': collision_free}))
    except Exception as exc:
        results.put(('error', f'{type(exc).__name__}: {exc}'))


def _run_processes(ctx: Any, what: str, targets: list[tuple[Any, tuple]], results: Any,
                   timeout_s: float) -> list[dict]:
    """Start one process per (entry, args), wait for each one's result; BenchError names `what`."""
    procs = [ctx.Process(target=target, args=args, daemon=True) for target, args in targets]
    for proc in procs:
        proc.start()
    outputs = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(outputs) < len(procs):
            try:
                status, payload = results.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise BenchError(f'{what}: no result within {timeout_s:g} s') from None
                if not any(p.is_alive() for p in procs) and results.empty():
                    codes = [p.exitcode for p in procs]
                    raise BenchError(f'{what}: measurement process exited without a result '
                                     f'(exit codes {codes})') from None
                continue
            if status != 'ok':
                raise BenchError(f'{what}: {payload}')
            outputs.append(payload)
    finally:
        for proc in procs:
            proc.join(timeout=10.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return outputs


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def run_sim_bench(config: SimBenchConfig = SimBenchConfig(),
                  env: Mapping[str, str] | None = None) -> dict[str, float | int | str]:
    """All simulator figures as one flat dict (numbers and strings), keys as ARCHITECTURE's bench names.

    `env` is applied inside the measurement processes only (e.g. MUJOCO_GL=egl, LP_NUM_THREADS=1).
    """
    env = dict(env or {})
    cores = sorted(os.sched_getaffinity(0))
    one, two = cores[0], cores[:2] if len(cores) >= 2 else [cores[0], cores[0]]
    ctx = multiprocessing.get_context('spawn')  # fresh processes: no inherited GL or threads
    results = ctx.Queue()
    timeout = config.timeout_s

    single = _run_processes(ctx, 'stereo 320x240, 1 core',
                            [(_stereo_worker, (320, 240, config, one, env, None, results, True))], results, timeout)[0]
    barrier = ctx.Barrier(2)
    pair = _run_processes(ctx, 'stereo 320x240, 2 workers',
                          [(_stereo_worker, (320, 240, config, core, env, barrier, results, False)) for core in two],
                          results, timeout)
    large = _run_processes(ctx, 'stereo 640x480, 1 core',
                           [(_stereo_worker, (640, 480, config, one, env, None, results, False))], results, timeout)[0]
    physics = _run_processes(ctx, 'real-time factor', [(_physics_worker, (config, one, env, results))],
                             results, timeout)[0]

    expert = None
    if config.expert_worlds:
        expert = _run_processes(ctx, 'expert success', [(_expert_worker, (config, one, env, results))],
                                results, timeout)[0]

    # Windows were synchronised by the barrier, so window i of both workers overlapped in time.
    aggregate = [a + b for a, b in zip(pair[0]['rates'], pair[1]['rates'])]
    figures: dict[str, float | int | str] = {
        'stereo_pairs_per_s_320x240': _median(single['rates']),
        'stereo_pairs_per_s_320x240_2workers': _median(aggregate),
        'stereo_pairs_per_s_640x480': _median(large['rates']),
        'realtime_factor': _median(physics['factors']),
        'render_ms_stereo_rgb_320x240': _median(single['rgb_pair_ms']),
        'render_ms_stereo_with_gt_320x240': _median(single['gt_pair_ms']),
        'drive_ms_per_frame': round(statistics.median(single['drive_ms']), 3),
        'stereo_pairs_per_s_320x240_min': round(min(single['rates']), 2),
        'stereo_pairs_per_s_320x240_max': round(max(single['rates']), 2),
        'physics_dt_s': physics['physics_dt_s'],
        'frames_per_repeat': config.frames,
        'repeats': config.repeats,
        'warmup_frames': config.warmup_frames,
        'physics_s_per_repeat': config.physics_s,
        'world_seed': config.world_seed,
        'cpu_count': os.cpu_count() or 0,
        'cores_1worker': str(one),
        'cores_2workers': ','.join(str(c) for c in two),
        'load_avg_1min_after': round(os.getloadavg()[0], 2),
        'gl_backend': env.get('MUJOCO_GL', os.environ.get('MUJOCO_GL', '')),
        'lp_num_threads': env.get('LP_NUM_THREADS', os.environ.get('LP_NUM_THREADS', '')),
        'mujoco_version': _version('mujoco'),
    }
    if expert is not None:
        # Issue bar: the expert completes >= 95 % of 20 generated worlds without collision.
        figures['expert_worlds'] = config.expert_worlds
        figures['expert_goal_reached_pct'] = round(100.0 * expert['reached'] / config.expert_worlds, 1)
        figures['expert_collision_free_pct'] = round(100.0 * expert['collision_free'] / config.expert_worlds, 1)
    return figures


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return 'absent'
