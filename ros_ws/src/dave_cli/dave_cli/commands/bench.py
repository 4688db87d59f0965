"""Benchmarks with figures as rates and ratios, printed and written as flat JSON (medians of repeats).

    dave bench sim --json out/bench_sim.json       stereo pairs/s with GT (320x240 on 1 core and
                                                   2 workers, 640x480 on 1 core), physics real-time factor
    dave bench sim --frames 10 --repeats 3 --json PATH      a quicker, noisier run
    dave bench models --json out/bench_models.json  network latency at deployment size

Each benchmark is one entry of BENCHMARKS (name -> how to add its options and run it); a new one
is added there the same way.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROG = 'dave bench'

Figures = dict[str, float | int | str]


@dataclass(frozen=True)
class Benchmark:
    """One `dave bench NAME`: its help line, its own options and the function measuring it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Figures]


def _sim_arguments(parser: argparse.ArgumentParser) -> None:
    from dave_sim.bench import SimBenchConfig

    defaults = SimBenchConfig()
    parser.add_argument('--frames', type=int, default=defaults.frames,
                        help=f'stereo pairs per timed window (default: {defaults.frames})')
    parser.add_argument('--repeats', type=int, default=defaults.repeats,
                        help=f'timed windows; medians are reported (default: {defaults.repeats})')
    parser.add_argument('--warmup', type=int, default=defaults.warmup_frames,
                        help=f'untimed frames first (default: {defaults.warmup_frames})')
    parser.add_argument('--physics-seconds', type=float, default=defaults.physics_s,
                        help=f'sim seconds per real-time-factor window (default: {defaults.physics_s:g})')
    parser.add_argument('--seed', type=int, default=defaults.world_seed,
                        help=f'world seed (default: {defaults.world_seed})')
    parser.add_argument('--expert-worlds', type=int, default=defaults.expert_worlds,
                        help='worlds 0..N-1 the noisy expert drives to measure its goal and collision-free '
                             f'rates; 0 skips (default: {defaults.expert_worlds})')


def _sim_run(args: argparse.Namespace) -> Figures:
    from dave_sim.bench import SimBenchConfig, run_sim_bench

    config = SimBenchConfig(frames=args.frames, repeats=args.repeats, warmup_frames=args.warmup,
                            physics_s=args.physics_seconds, world_seed=args.seed,
                            expert_worlds=args.expert_worlds)
    # Headless GL and one llvmpipe thread, set in the measurement processes only: one process
    # is meant to use one core, and this process's environment stays as it was.
    env = {'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl'), 'LP_NUM_THREADS': '1'}
    return run_sim_bench(config, env)


def _models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model-dir', type=Path, default=None,
                        help='directory with steering.onnx / traversability.onnx (default: the shipped models/)')
    parser.add_argument('--runs', type=int, default=200, help='timed single runs per figure (default: 200)')


def _models_run(args: argparse.Namespace) -> Figures:
    from dave_core.model_bench import ModelBenchConfig, run_model_bench
    from dave_core.paths import project_file

    model_dir = args.model_dir or project_file('models')
    try:
        return run_model_bench(model_dir, ModelBenchConfig(runs=args.runs))
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


BENCHMARKS: dict[str, Benchmark] = {
    'sim': Benchmark('simulator: stereo pairs/s with ground truth, physics real-time factor',
                     _sim_arguments, _sim_run),
    'models': Benchmark('networks: onnxruntime latency (1 and 2 threads), parameters, FLOPs',
                        _models_arguments, _models_run),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='benchmark', metavar='BENCHMARK')
    sub.required = True
    for name, bench in BENCHMARKS.items():
        bench_parser = sub.add_parser(name, help=bench.help, description=bench.help)
        bench_parser.add_argument('--json', type=Path, default=None, help='write the figures here (flat JSON)')
        try:
            bench.add_arguments(bench_parser)
        except ImportError as exc:  # e.g. a robot-only install without dave_sim
            bench_parser.set_defaults(_import_error=str(exc))


def run(args: argparse.Namespace) -> int:
    from dave_core.metrics import write_json_atomic

    name = args.benchmark
    if getattr(args, '_import_error', None):
        print(f'{PROG} {name}: error: unavailable ({args._import_error})', file=sys.stderr)
        return 2
    try:
        figures = BENCHMARKS[name].run(args)
    except (ValueError, RuntimeError) as exc:  # bad options, or a measurement process that failed
        print(f'{PROG} {name}: error: {exc}', file=sys.stderr)
        return 2
    width = max(map(len, figures))
    print(f'{PROG} {name}')
    for key in sorted(figures):
        print(f'  {key:<{width}}  {figures[key]}')
    if args.json is not None:
        print(f'{PROG} {name}: figures written to {write_json_atomic(args.json, figures)}')
    return 0
