"""Collect training data: the simulator's expert drives generated worlds, headless, in parallel.

One episode per world seed, recorded as a rosbag2 (MCAP) directory with the stereo pair, camera
info, odometry, the applied /cmd_vel, the clean expert label /expert/cmd_vel and ground-truth
labels, depth and collisions; DIR/manifest.json lists settings and episodes. The driven command
carries DART noise (bounded, time-correlated) so the data shows recoveries; labels stay clean.

Experts (--expert): `reactive` (default) steers around the obstacles the camera sees, the
expert the shipped steering model imitates; `planner` drives an A* route to the world's goal,
which the camera never sees (its steering cannot be learned from images; it reaches goals).

    dave collect --seeds 0-29 --duration 60 --out out/collect/v1
    dave collect --seeds 0-3 --duration 20 --out DIR --workers 2 --noise yaw_rate_std_rps=0.2
    dave collect --seeds 0-3 --duration 20 --out DIR --expert planner --noise off

Then `dave data info DIR`, `dave data build steering --data DIR --out SHARDS`, `dave data show`.

Ctrl-C or SIGTERM loses at most the episodes in flight; run the same command again to finish
(complete episodes are skipped, settings must match).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
import typing
from pathlib import Path

PROG = 'dave collect'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--seeds', required=True, help='world seeds: A-B, N or a list such as 0-9,15')
    parser.add_argument('--duration', type=float, required=True,
                        help='sim seconds per episode (ends earlier when the goal is reached)')
    parser.add_argument('--out', type=Path, required=True, help='output directory (created; resumable)')
    parser.add_argument('--workers', type=int, default=None,
                        help='worker processes, one episode each at a time (default: usable CPU cores)')
    parser.add_argument('--camera-rate-hz', type=float, default=15.0, help='stereo frames per sim second (default: 15)')
    parser.add_argument('--width', type=int, default=320, help='image width [px] (default: 320)')
    parser.add_argument('--height', type=int, default=240, help='image height [px] (default: 240)')
    parser.add_argument('--world', type=Path, default=None,
                        help='world generator YAML (keys of dave_sim.world.WorldConfig)')
    parser.add_argument('--expert', default='reactive',
                        help="who drives: 'reactive' (avoids what the camera sees; default) or 'planner' "
                             "(A* to the world's goal + pure pursuit)")
    parser.add_argument('--cruise-speed', type=float, default=0.8,
                        help="expert's cruise speed [m/s] (default: 0.8, the stack's)")
    parser.add_argument('--noise', default='default',
                        help="DART noise on the driven command: 'default', 'off', or KEY=VALUE[,KEY=VALUE] "
                             'over dave_sim.expert.NoiseConfig fields (e.g. yaw_rate_std_rps=0.2,seed=1)')
    parser.add_argument('--no-compress', action='store_true',
                        help='store MCAP chunks uncompressed (~4x larger, ~1.5 ms less CPU per frame)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def parse_noise(text: str) -> typing.Any:
    """'default' | 'off' | 'key=value,...' -> NoiseConfig or None; errors name the key."""
    from dave_sim.expert import NoiseConfig

    text = text.strip()
    if text == 'off':
        return None
    if text == 'default':
        return NoiseConfig()
    hints = typing.get_type_hints(NoiseConfig)
    values: dict[str, typing.Any] = {}
    for item in text.split(','):
        key, sep, raw = (part.strip() for part in item.partition('='))
        if not sep or key not in hints:
            known = ', '.join(f.name for f in dataclasses.fields(NoiseConfig))
            raise ValueError(f"--noise {text!r}: {item.strip()!r} is not KEY=VALUE with KEY one of {known} "
                             "(or use 'default' / 'off')")
        try:
            values[key] = int(raw) if hints[key] is int else float(raw)
        except ValueError:
            raise ValueError(f'--noise {key}: {raw!r} is not a number') from None
        if not math.isfinite(values[key]):
            raise ValueError(f'--noise {key}: {raw!r} is not finite')
    return NoiseConfig(**values)


def build_config(args: argparse.Namespace) -> typing.Any:
    """The CollectConfig of these arguments (ValueError naming the option on bad input)."""
    from dave_sim.camera import StereoCameraConfig
    from dave_sim.collect import EXPERTS, CollectConfig
    from dave_sim.vehicle import VehicleConfig
    from dave_sim.world import WorldConfig, load_world_config

    if not (math.isfinite(args.duration) and args.duration > 0):
        raise ValueError(f'--duration must be > 0 seconds, got {args.duration}')
    if not (math.isfinite(args.camera_rate_hz) and args.camera_rate_hz > 0):
        raise ValueError(f'--camera-rate-hz must be > 0, got {args.camera_rate_hz}')
    if not (math.isfinite(args.cruise_speed) and 0 < args.cruise_speed <= VehicleConfig().max_speed_mps):
        raise ValueError(f'--cruise-speed must be in (0, {VehicleConfig().max_speed_mps}] m/s, got {args.cruise_speed}')
    try:
        camera = StereoCameraConfig(width=args.width, height=args.height)
    except ValueError as exc:
        raise ValueError(f'--width/--height: {exc}') from None
    world = load_world_config(args.world.expanduser()) if args.world is not None else WorldConfig()
    if args.expert not in EXPERTS:
        raise ValueError(f'--expert {args.expert!r} is unknown (known: {", ".join(sorted(EXPERTS))})')
    return CollectConfig(duration_s=args.duration, camera_rate_hz=args.camera_rate_hz,
                         cruise_speed_mps=args.cruise_speed, compress=not args.no_compress,
                         world=world, camera=camera, expert=args.expert, noise=parse_noise(args.noise))


def worker_env() -> dict[str, str]:
    """Environment of the collection workers: headless GL, one llvmpipe thread each."""
    # Workers are the parallelism; llvmpipe threads per worker would only fight over the cores.
    return {'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl'), 'LP_NUM_THREADS': '1'}


def run(args: argparse.Namespace) -> int:
    from dave_sim.collect import CollectError, collect, parse_seeds

    try:
        seeds = parse_seeds(args.seeds)
        config = build_config(args)
        workers = args.workers if args.workers is not None else len(os.sched_getaffinity(0))
        if workers < 1:
            raise ValueError(f'--workers must be >= 1, got {workers}')
    except (CollectError, ValueError) as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2

    # SIGTERM ends the run like Ctrl-C: workers stop, finished bags and the manifest stay.
    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        summary = collect(args.out, seeds, config, workers, worker_env=worker_env(), progress=not args.quiet)
    except CollectError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted; complete episodes are kept in {args.out} (run again to finish)',
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    goals = sum(r.reached_goal for r in summary.recorded)
    print(f'{PROG}: {len(summary.recorded)} episodes recorded by the {config.expert} expert ({summary.frames} frames, '
          f'{sum(r.distance_m for r in summary.recorded):.1f} m, {sum(r.collisions for r in summary.recorded)} '
          f'collisions, {goals} goals reached), {len(summary.skipped)} already complete; '
          f'manifest: {Path(args.out) / "manifest.json"}')
    if summary.failed:  # each failure was logged as it happened; the manifest keeps the messages
        print(f'{PROG}: error: episodes failed for seeds {sorted(summary.failed)} (see manifest.json)',
              file=sys.stderr)
    if summary.not_run:
        print(f'{PROG}: error: seeds not run (all workers died): {summary.not_run}', file=sys.stderr)
    return 1 if summary.failed or summary.not_run else 0
