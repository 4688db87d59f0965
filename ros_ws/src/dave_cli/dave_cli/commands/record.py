"""Record the driving topics into rosbag2 (MCAP) segments, e.g. while a human teleoperates the robot.

    dave record --out data/run1                          # until Ctrl-C
    dave record --out data/run1 --duration 300 --split 30
    dave record --out data/run1 --topics /stereo/left/image_raw,/odom,/teleop/cmd_vel
    dave data info data/run1                             # what was recorded

Writes OUT/episodes/rec_<UTC start>_NNNN, one complete bag per --split seconds, and
OUT/manifest.json. A crash or power cut loses at most the segment being written; Ctrl-C or
SIGTERM closes the current segment cleanly. OUT must be new or empty: nothing is overwritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dave_cli.child import run_child
from dave_core import recording as rec
from dave_core.live_recording import RecordError, RecordSettings, check_out, parse_topics, read_manifest
from dave_core.rosenv import ros_env

PROG = 'dave record'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', type=Path, required=True, help='new (or empty) directory for the recording')
    parser.add_argument('--duration', type=float, default=0.0, metavar='S',
                        help='stop after S seconds of node-clock time (default: 0 = until Ctrl-C)')
    parser.add_argument('--split', type=float, default=60.0, metavar='S',
                        help='segment length in seconds; each segment is a complete bag (default: 60)')
    parser.add_argument('--topics', default=None, metavar='LIST',
                        help='comma list of topics to record (default: ' + ', '.join(rec.RECORD_TOPICS) + ')')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='stamp with the /clock of a simulator (bag times, --duration and --split in sim time)')
    parser.add_argument('--no-compress', action='store_true', help='do not zstd-compress the MCAP chunks')


# The settings name their fields; the user typed the flags.
_FLAGS = {'duration_s': '--duration', 'split_s': '--split'}


def settings_from_args(args: argparse.Namespace) -> RecordSettings:
    topics = rec.RECORD_TOPICS if args.topics is None else parse_topics(args.topics)
    try:
        return RecordSettings(topics, split_s=args.split, duration_s=args.duration, compress=not args.no_compress)
    except RecordError as exc:
        field_name = str(exc).split(' ', 1)[0]
        if field_name in _FLAGS:
            raise RecordError(_FLAGS[field_name] + str(exc)[len(field_name):]) from None
        raise


def node_command(args: argparse.Namespace, settings: RecordSettings) -> list[str]:
    """The command line that starts the record node with these settings."""
    params = [f'out:={args.out.expanduser().resolve()}', f'topics:=[{",".join(settings.topics)}]',
              f'duration_s:={float(settings.duration_s)}', f'split_s:={float(settings.split_s)}',
              f'compress:={"true" if settings.compress else "false"}']
    if args.use_sim_time:
        params.append('use_sim_time:=true')
    command = [sys.executable, '-m', 'dave_nodes.record_node', '--ros-args']
    for param in params:
        command += ['-p', param]
    return command


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        check_out(args.out)
    except RecordError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return 2
    # The node closes the current segment on SIGINT or SIGTERM; a repeated SIGINT is the same request.
    code = run_child(node_command(args, settings), ros_env(), forward_sigint=True)
    if code == 2:  # the node refused to start and said why
        return code
    try:
        manifest = read_manifest(args.out)
    except RecordError as exc:
        print(f'{PROG}: error: {exc}', file=sys.stderr)
        return code or 1
    totals = manifest['totals']
    print(f'{PROG}: {args.out}: {totals["segments"]} segment{"s" if totals["segments"] != 1 else ""}, '
          f'{totals["messages"]} messages, {totals["duration_s"]:.1f} s ({manifest["status"]})', flush=True)
    return 128 - code if code < 0 else code  # killed by a signal: the shell's 128 + N
