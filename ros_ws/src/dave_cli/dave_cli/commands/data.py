"""Inspect recordings, turn `dave collect` bags into training sets, draw contact sheets and plots.

    dave data info out/collect/v1                  # per bag: seed, expert, frames, outcome; totals
    dave data info out/collect/v1 --json           # the same as JSON on stdout
    dave data build steering --data out/collect/v1 --out out/data/steering_bags_v1
    dave data build steering --label human --data data/run1 --out out/data/steering_human_run1
    dave data build traversability --data out/collect/v1 --out out/cache/trav_v1
    dave data show out/collect/v1/episodes/seed_000003 --out seed3.png
    dave data show out/data/steering_bags_v1 --out shards.png

`build steering` writes one shard per bag (one world) in the format `dave train steering`
reads; the label is the clean expert command's curvature, or with `--label human` (bags of
`dave record`) the curvature of the person's teleop command on the frames they drove
(dave_models.bag_dataset, dave_models.human_labels). The output
directory appears only when complete. `build traversability` fills the per-bag cache that
`dave train traversability --cache DIR` reads.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
from pathlib import Path
from typing import Any

PROG = 'dave data'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='action', metavar='ACTION')
    sub.required = True

    info = sub.add_parser('info', help='what a bag, a dave collect directory or a shard directory holds',
                          description='Per bag: world seed, expert, duration, frames, image size, distance, '
                                      'collisions, goal; then totals. For a steering shard directory: samples, '
                                      'worlds and label statistics per shard. Exits 1, naming the bag, when '
                                      'a bag\'s storage file is missing or cut short.')
    info.add_argument('path', type=Path, help='a bag, a dave collect directory, a folder of bags or a shard directory')
    info.add_argument('--json', action='store_true', help='print JSON on stdout instead of a table')
    info.set_defaults(_action=_info)

    build = sub.add_parser('build', help='turn bags into a training set',
                           description='Turn the bags of a dave collect (or dave record) directory into a '
                                       'training set.')
    tasks = build.add_subparsers(dest='task', metavar='TASK')
    tasks.required = True
    steering = tasks.add_parser(
        'steering', help='stereo pairs + curvature labels as steering shards (dave train steering --data)',
        description='One shard per bag (one world): left/right pairs with the clean expert curvature '
                    '(w / v of /expert/cmd_vel; a turn in place gets the expert\'s recorded turn-in-place '
                    'curvature), the expert speed, the world seed and, when the world can be rebuilt, '
                    'the side of the nearest obstacle ahead. With --label human (bags of dave record): the '
                    'curvature of the person\'s /teleop/cmd_vel on the frames they drove (/dave/intervention '
                    'true: mode manual or a takeover in shared mode), one drive per id. OUT must be new or empty; it '
                    'appears only when complete.')
    steering.add_argument('--data', type=Path, required=True,
                          help='a dave collect or dave record directory, a folder of bags or one bag')
    steering.add_argument('--label', choices=('expert', 'human'), default='expert',
                          help='expert: the simulator expert\'s /expert/cmd_vel (dave collect, default); '
                               'human: a person\'s /teleop/cmd_vel (dave record)')
    steering.add_argument('--out', type=Path, required=True, help='new directory for the shards')
    steering.add_argument('--frame-stride', type=int, default=1,
                          help='keep every N-th frame of each bag (default: 1; consecutive frames at 15 Hz '
                               'are near-duplicates)')
    steering.add_argument('--quiet', action='store_true', help='no progress bar')
    steering.set_defaults(_action=_build_steering)
    trav = tasks.add_parser(
        'traversability', help='left images + GT classes at network size, as the cache of dave train traversability',
        description='Fills the per-bag .npz cache (dave_models.traversability_data) that '
                    '`dave train traversability --data DATA --cache OUT` reuses.')
    trav.add_argument('--data', type=Path, required=True, help='a dave collect directory, a folder of bags or one bag')
    trav.add_argument('--out', type=Path, required=True, help='cache directory (reused; stale entries are rebuilt)')
    trav.add_argument('--frame-stride', type=int, default=1, help='keep every N-th frame (default: 1)')
    trav.set_defaults(_action=_build_traversability)

    show = sub.add_parser('show', help='contact sheet (frames + labels) and label plots as a PNG',
                          description='A grid of evenly spaced frames with the steering label drawn as its path '
                                      'on the ground (bags: next to the GT classes), and the label over time '
                                      '(bags) or over the samples plus a histogram (shard directories).')
    show.add_argument('path', type=Path, help='a bag or a steering shard directory')
    show.add_argument('--out', type=Path, required=True, help='PNG file to write')
    show.add_argument('--frames', type=int, default=8, help='frames on the sheet (default: 8)')
    show.set_defaults(_action=_show)


def run(args: argparse.Namespace) -> int:
    try:
        from dave_models.bag_dataset import BagDataError
        from dave_models.datasets import DatasetError
    except ImportError as exc:  # a robot-only install without dave_models
        print(f'{PROG}: error: dave_models is not installed ({exc})', file=sys.stderr)
        return 2
    try:
        return int(args._action(args))
    except (BagDataError, DatasetError) as exc:
        print(f'{PROG} {args.action}: error: {exc}', file=sys.stderr)
        return 2


# ---------------------------------------------------------------- info

def _info(args: argparse.Namespace) -> int:
    from dave_models.bag_dataset import bag_summary, find_bags, is_shard_dir, shard_summary, totals

    if is_shard_dir(args.path):
        summary = shard_summary(args.path)
        print(json.dumps(summary, indent=1) if args.json else _shard_table(args.path, summary))
        return 0
    rows = [bag_summary(bag) for bag in find_bags(args.path)]
    total = totals(rows)
    if args.json:
        print(json.dumps({'path': str(args.path), 'bags': rows, 'totals': total}, indent=1))
    else:
        print(_bag_table(rows, total))
    # Counts come from metadata.yaml; a damaged file keeps them, so say so and fail the command.
    damaged = [r for r in rows if r['problem']]
    for r in damaged:
        print(f'{PROG} info: error: {r["bag"]}: {r["problem"]}; its counts are what was recorded, '
              'not what is left', file=sys.stderr)
    return 1 if damaged else 0


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, float):
        return f'{value:.{digits}f}'
    return str(value)


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return '  '.join(padded).rstrip()
    return [line(header)] + [line(r) for r in rows]


def _bag_table(rows: list[dict[str, Any]], total: dict[str, Any]) -> str:
    from dave_core import recording as rec

    header = ['bag', 'seed', 'expert', 'time s', 'frames', 'labels', 'odom', 'image', 'dist m', 'coll', 'goal', 'MB']
    body = []
    for r in rows:
        image = f'{r["image_width"]}x{r["image_height"]}' if r['image_width'] else '-'
        body.append([Path(r['bag']).name, _cell(r['seed']), _cell(r['expert']), _cell(r['duration_s']),
                     _cell(r['frames']), _cell(r['messages'].get(rec.EXPERT_CMD_VEL, 0)),
                     _cell(r['messages'].get(rec.ODOM, 0)), image, _cell(r['distance_m']), _cell(r['collisions']),
                     _cell(r['reached_goal']), _cell(r['size_mb'])])
    if any(r['expert'] is not None for r in rows):
        outcome = [_cell(total['distance_m']), _cell(total['collisions']), f'{total["goals_reached"]}/{total["bags"]}']
    else:  # live recordings (dave record) have no episode record: no totals of what was not recorded
        outcome = ['-', '-', '-']
    worlds = f'{total["worlds"]} worlds' if total['worlds'] or outcome[0] != '-' else f'{total["bags"]} bags'
    body.append(['total', worlds, ','.join(total['experts']) or '-', _cell(total['duration_s']),
                 _cell(total['frames']), '', '', '', *outcome, _cell(total['size_mb'])])
    lines = _table(header, body, right={1, 3, 4, 5, 6, 8, 9, 10, 11})
    lines.insert(len(lines) - 1, '-' * len(lines[0]))
    topics = sorted({t for r in rows for t in r['messages']})
    lines.append('')
    lines += textwrap.wrap('messages per topic: ' + ', '.join(
        f'{t} {sum(r["messages"].get(t, 0) for r in rows)}' for t in topics), 100, subsequent_indent='  ')
    if not total['complete_records']:
        lines.append('bags without a dave collect episode record show "-" (not recorded, not zero)')
    return '\n'.join(lines)


def _shard_table(path: Path, s: dict[str, Any]) -> str:
    header = ['shard', 'worlds', 'samples', 'k mean', 'k std', 'left', 'straight', 'right', 'v mean']
    body = [[r['shard'], ','.join(map(str, r['world_seeds'])), _cell(r['samples']), _cell(r['curvature_mean'], 3),
             _cell(r['curvature_std'], 3), f'{r["left"]:.0%}', f'{r["straight"]:.0%}', f'{r["right"]:.0%}',
             _cell(r['speed_mean_mps'], 2)] for r in s['shards']]
    lines = [f'{path}: {s["data_id"]}, {s["samples"]} samples of {s["worlds"]} worlds, '
             f'{s["image_width"]}x{s["image_height"]}, made by {s["generator"]}',
             *_table(header, body, right={2, 3, 4, 5, 6, 7, 8}),
             'k: curvature label [1/m]; straight: |k| <= 0.05']
    return '\n'.join(lines)


# ---------------------------------------------------------------- build

def _build_steering(args: argparse.Namespace) -> int:
    from dave_models.bag_dataset import build_steering, label_stats, shard_labels

    # What the manifest records as its origin: the command, with every option spelled out.
    command = shlex.join(['dave', 'data', 'build', 'steering', '--data', str(args.data), '--out', str(args.out),
                          '--frame-stride', str(args.frame_stride), '--label', args.label])
    manifest, stats = build_steering(args.data, args.out, args.frame_stride, command, progress=not args.quiet,
                                     label=args.label)
    share = label_stats(shard_labels(manifest)[0])
    dropped = sum(s['dropped_undefined_label'] for s in stats)
    unpaired = sum(s['unpaired'] for s in stats)
    units = 'drives' if args.label == 'human' else 'worlds'
    print(f'{PROG} build steering: {manifest.num_samples} samples of {len(manifest.world_seeds)} {units} '
          f'({manifest.image_width}x{manifest.image_height}) from {len(stats)} bags -> {args.out}')
    print(f'  data_id {manifest.data_id}; curvature mean {share["curvature_mean"]:+.3f} std '
          f'{share["curvature_std"]:.3f} 1/m; left {share["left"]:.0%}, straight {share["straight"]:.0%}, '
          f'right {share["right"]:.0%}; turning in place {sum(s["turn_in_place"] for s in stats)} frames'
          + (f'; dropped {dropped} without a defined label' if dropped else '')
          + (f'; {unpaired} unpaired instants' if unpaired else ''))
    if args.label == 'human':
        print('  left out: ' + ', '.join(
            f'{why} {sum(s[f"dropped_{key}"] for s in stats)}' for why, key in (
                ('autopilot drove', 'autopilot'), ('no fresh teleop command', 'stale'), ('standing', 'standing'),
                ('reversing', 'reversing'))) + ' frames')
    print(f'  train: dave train steering --data {args.out} --out OUT')
    return 0


def _build_traversability(args: argparse.Namespace) -> int:
    from dave_models.traversability_data import TraversabilityDataError, build_dataset, class_frequencies
    from dave_core.segmentation import CLASS_IDS

    try:
        data = build_dataset(args.data, args.out, frame_stride=args.frame_stride)
    except TraversabilityDataError as exc:
        print(f'{PROG} build: error: {exc}', file=sys.stderr)
        return 2
    freq = class_frequencies(data.labels)
    classes = ', '.join(f'{name} {freq[i]:.1%}' for name, i in CLASS_IDS.items())
    print(f'{PROG} build traversability: {len(data)} frames of {len(data.world_seeds)} worlds cached in '
          f'{args.out} ({data.data_id}); classes {classes}')
    print(f'  train: dave train traversability --data {args.data} --cache {args.out} --out OUT')
    return 0


# ---------------------------------------------------------------- show

def _show(args: argparse.Namespace) -> int:
    from dave_models.contact_sheet import show

    if args.frames < 1:
        print(f'{PROG} show: error: --frames must be >= 1, got {args.frames}', file=sys.stderr)
        return 2
    if args.out.suffix.lower() != '.png':
        print(f'{PROG} show: error: --out {args.out}: the sheet is a PNG; name it *.png', file=sys.stderr)
        return 2
    if not args.out.parent.is_dir():
        print(f'{PROG} show: error: --out {args.out}: directory {args.out.parent} does not exist', file=sys.stderr)
        return 2
    path = show(args.path, args.out, args.frames)
    print(f'{PROG} show: wrote {path}')
    return 0
