"""Train a network on recorded or generated data, with progress, checkpoints and a learning curve.

    dave train steering --data out/data/steering_v1 --out out/train/steering_v1 --val-seeds 30-35
    dave train steering --data DIR --out DIR --dry-run     # quick end-to-end check
    dave train traversability --data out/collect/trav_v1 --out out/train/trav_v1 --labels gt

Outputs in --out: last.pt, best.pt, metrics.json, learning_curve.png. Export with `dave export`.
"""
from __future__ import annotations

import argparse
import importlib
import logging

from dave_core import logs

# task -> (torch-free module with add_arguments, trainer module with run(args), help).
TASKS: dict[str, tuple[str, str, str]] = {
    'steering': ('dave_models.train_config', 'dave_models.train',
                 'the stereo steering ConvNet (curvature from a stereo pair)'),
    'traversability': ('dave_models.traversability_train_config', 'dave_models.traversability_train',
                       'the traversability ConvNet (per-pixel classes of the left image)'),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='task', metavar='TASK')
    sub.required = True
    for task, (options_module, _, help_text) in TASKS.items():
        task_parser = sub.add_parser(task, help=help_text, description=help_text)
        try:
            importlib.import_module(options_module).add_arguments(task_parser)
        except ImportError as exc:  # dave_models absent (e.g. a robot-only install)
            task_parser.set_defaults(_import_error=f'{options_module}: {exc}')


def run(args: argparse.Namespace) -> int:
    logs.configure()
    if getattr(args, '_import_error', None):
        logging.getLogger(__name__).error('dave train %s is unavailable (%s)', args.task,
                                          args._import_error)
        return 2
    return int(importlib.import_module(TASKS[args.task][1]).run(args))
