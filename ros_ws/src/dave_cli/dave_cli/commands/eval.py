"""Closed-loop evaluation: drive the stack in several generated worlds and report the metrics.

Each world seed gets a fresh simulator + stack (launch/sim.launch.yaml, as `dave demo`), and
DURATION seconds of driving measured from the first command. The report: one line per world,
the contract metrics over all worlds (distances and collisions add up), a flat JSON object
(totals, plus seed<N>_<metric> per world) and a PNG beside it with distance and collisions
per world. A world whose stack fails is reported and makes the exit code 1; the others still run.

--offline drives the steering model in-process instead (dave_sim.model_drive: no ROS, sim time,
the stack's 50 ms latency and command limits, deterministic, faster than real time): the way to
compare models. It adds distance_to_first_collision_m and leaves the latency keys null.

examples:
  dave eval --seeds 0-4 --duration 60 --json out/eval.json        # writes out/eval.png too
  dave eval --seeds 40-47 --duration 45 --model-dir out/candidate --json out/eval_candidate.json
  dave eval --offline --seeds 40-47 --duration 45 --model-dir out/candidate --json out/cl.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dave_cli.commands.demo import add_stack_arguments, apply_domain

PER_WORLD_KEYS = ('distance_m', 'collisions', 'mean_distance_between_collisions_m', 'camera_rate_hz',
                  'command_rate_hz', 'stack_latency_ms_p50', 'stack_latency_ms_p95')
EXTRA_KEYS = ('distance_to_first_collision_m',)  # offline only


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--seeds', required=True, help='world seeds, e.g. 0-4 or 1,4,7-9')
    parser.add_argument('--duration', type=float, default=60.0, metavar='S',
                        help='seconds of driving measured per world (default: 60)')
    parser.add_argument('--json', type=Path, required=True, metavar='PATH',
                        help='flat JSON report (atomically); the plot goes to PATH with .png')
    parser.add_argument('--offline', action='store_true',
                        help='drive the steering model in-process on sim time, without ROS '
                             '(deterministic; --launch, --domain-id and --quiet do not apply)')
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dave_core.seeds import parse_seed_list
    try:
        seeds = parse_seed_list(args.seeds)
    except ValueError as error:
        print(f'dave eval: error: --seeds: {error}', file=sys.stderr)
        return 2
    if not 0 < args.duration < float('inf'):
        print(f'dave eval: error: --duration must be a finite number > 0, got {args.duration}', file=sys.stderr)
        return 2
    # Checked before any world is driven; a .png here would be overwritten by the plot.
    if args.json.suffix != '.json' or args.json.is_dir():
        print(f'dave eval: error: --json {args.json}: must name a .json file (the plot goes beside it '
              f'as .png)', file=sys.stderr)
        return 2
    if args.offline:
        try:
            runs = _drive_offline(args, seeds)
        except (ValueError, FileNotFoundError) as error:  # the model: missing or not a steering model
            print(f'dave eval: error: {error}', file=sys.stderr)
            return 2
        return _report(args, runs, {})
    domain_id = apply_domain(args)
    from dave_cli.closed_loop import drive, load_sim_launch
    from dave_core.launch import LaunchError
    try:
        descriptions = {seed: load_sim_launch(seed, args.model_dir, args.launch) for seed in seeds}
    except (LaunchError, FileNotFoundError, ValueError) as error:
        print(f'dave eval: error: {error}', file=sys.stderr)
        return 2

    sink = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
    runs, failures = {}, {}
    for i, seed in enumerate(seeds, 1):
        print(f'dave eval: world {seed} ({i}/{len(seeds)}), {args.duration:.0f} s of driving', flush=True)
        metrics, failure = drive(descriptions[seed], args.duration, domain_id, sink)
        runs[seed] = metrics
        if failure:
            failures[seed] = failure
            print(f'dave eval: world {seed}: error: {failure}', file=sys.stderr)
        print(f'dave eval: world {seed}: {metrics["distance_m"]:.1f} m, {metrics["collisions"]} collision(s)',
              flush=True)

    return _report(args, runs, failures)


def _drive_offline(args: argparse.Namespace, seeds: list[int]) -> dict[int, dict]:
    """Each world driven by the steering model in-process (dave_sim.model_drive); ValueError or
    FileNotFoundError names a model that cannot be loaded."""
    import os
    os.environ.setdefault('MUJOCO_GL', 'egl')  # before MuJoCo is imported: headless rendering
    from dave_core.autopilot import SteeringPilot
    from dave_core.paths import project_file
    from dave_sim.model_drive import ModelDriveConfig, drive_model
    from dave_sim.world import generate_world

    pilot = SteeringPilot.from_file((args.model_dir or project_file('models')) / 'steering.onnx')
    config = ModelDriveConfig(duration_s=args.duration)
    runs = {}
    for i, seed in enumerate(seeds, 1):
        runs[seed] = metrics = drive_model(generate_world(seed), pilot, config)
        print(f'dave eval: world {seed} ({i}/{len(seeds)}, offline): {metrics["distance_m"]:.1f} m, '
              f'{metrics["collisions"]} collision(s)', flush=True)
    return runs


def _report(args: argparse.Namespace, runs: dict[int, dict], failures: dict[int, str]) -> int:
    """Print and write the report of `runs`; the exit code."""
    from dave_cli.closed_loop import print_metrics
    from dave_core.metrics import summarize_runs, write_json_atomic

    report = summarize_runs(runs)
    report['failed_worlds'] = len(failures)
    for seed, metrics in runs.items():
        report.update({f'seed{seed}_{key}': metrics[key] for key in PER_WORLD_KEYS + EXTRA_KEYS
                       if key in metrics})
    if args.offline:
        report['mode'] = 'offline'
    print_metrics({k: v for k, v in report.items() if not k.startswith('seed')},
                  f'closed-loop metrics over {len(runs)} world(s)')
    print(f'dave eval: report written to {write_json_atomic(args.json, report)}')
    print(f'dave eval: plot written to {save_plot(runs, args.json.with_suffix(".png"))}')
    return 1 if failures else 0


def save_plot(runs: dict[int, dict], path: Path) -> Path:
    """Bars of distance per world with the collision count above each."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from dave_core.atomic_file import atomic_write

    seeds = list(runs)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(seeds) + 2), 3.4))
    bars = ax.bar([str(s) for s in seeds], [runs[s]['distance_m'] for s in seeds], color='#4c72b0')
    for bar, seed in zip(bars, seeds):
        ax.annotate(f'{runs[seed]["collisions"]} coll.', (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha='center', va='bottom', fontsize=8, color='#c44e52')
    ax.set(xlabel='world seed', ylabel='distance driven (m)', title='dave eval: distance and collisions per world')
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', dpi=90))
    plt.close(fig)
    return path
