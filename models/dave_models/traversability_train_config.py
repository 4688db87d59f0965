"""Options of traversability training as one dataclass, and the argparse flags generated from it.

Kept free of torch so `dave --help` and `dave train --help` stay fast.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

# Where the per-pixel training labels come from. 'gt': the simulator's ground truth recorded by
# `dave collect`. 'stereo': LAGR's self-supervised labels from stereo geometry (ground plane fit,
# height above it, within the reliable range; dave_core.stereo_geometry), what a real robot has.
# Validation scores against simulator ground truth whenever the bags hold it.
LABEL_SOURCES = ('gt', 'stereo')


def _opt(default: Any, help_text: str, **extra: Any) -> Any:
    return field(default=default, metadata={'help': help_text, **extra})


@dataclass
class TraversabilityTrainConfig:
    """Every default has a reason; see the help strings."""
    data: str = _opt(MISSING, '`dave collect` output directory (or a folder of its bags)', required=True)
    out: str = _opt(MISSING, 'output directory for checkpoints, metrics.json, learning_curve.png',
                    required=True)
    labels: str = _opt('gt', 'training labels: gt = simulator ground truth; stereo = self-supervised '
                             'from stereo geometry within 7 m (no hand labels; unlabelled pixels are '
                             'ignored by the loss). Validation scores against ground truth when the bags '
                             'hold it, and for stereo also beyond stereo range', choices=LABEL_SOURCES)
    stereo_config: str = _opt('', 'JSON file of dave_core.stereo_geometry.StereoLabelConfig fields for '
                                  '--labels stereo, e.g. {"nominal_pitch_deg": 15, "max_range_m": 10} '
                                  '(default: the simulator camera\'s settings)')
    cache: str = _opt('', 'directory of the per-bag .npz cache (default: OUT/cache)')
    seed: int = _opt(0, 'seed of weights init, world split, shuffling and augmentation')
    epochs: int = _opt(8, 'passes over the training worlds (~2.5k frames; held-out mIoU flattens '
                          'after ~6 on the sim data)')
    max_minutes: float = _opt(0.0, 'stop after the first epoch that ends past this many minutes of '
                                   'training (0: no limit); the cosine schedule still spans --epochs')
    batch_size: int = _opt(32, 'per-pixel loss: 32 frames are ~600k labelled pixels per step')
    lr: float = _opt(3e-3, 'AdamW peak learning rate, cosine-decayed to 0 over the run')
    weight_decay: float = _opt(1e-4, 'mild L2; the data sets are small')
    balance: bool = _opt(True, 'weight the loss by 1/sqrt(class frequency): obstacles are ~10 %% of '
                               'pixels but half of the mIoU', negatable=True)
    device: str = _opt('cpu', 'cpu or cuda', choices=('cpu', 'cuda'))
    threads: int = _opt(1, 'torch CPU threads; one core, as the machines here are shared')
    val_seeds: str = _opt('', 'held-out world seeds, e.g. 30-35 (default: a seeded val-fraction)')
    val_fraction: float = _opt(0.17, 'share of worlds held out when --val-seeds is not given (6 of 36)')
    frame_stride: int = _opt(1, 'keep every k-th recorded frame (consecutive ones are near-duplicates)')
    augment: bool = _opt(True, 'horizontal flip + brightness/contrast jitter', negatable=True)
    dry_run: bool = _opt(False, 'one epoch of at most 2 batches: checks the whole path quickly')
    resume: str | None = _opt(None, 'continue from a checkpoint (default OUT/last.pt when given '
                                    'without a path)', nargs='?', const='')


_TYPES = {'int': int, 'float': float, 'str': str, 'str | None': str}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per TraversabilityTrainConfig field (--batch-size for batch_size, ...)."""
    for f in fields(TraversabilityTrainConfig):
        meta = dict(f.metadata)
        help_text = meta.pop('help')
        flag = '--' + f.name.replace('_', '-')
        if f.type == 'bool':
            if meta.pop('negatable', False):
                parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                    help=help_text)
            else:
                parser.add_argument(flag, action='store_true', help=help_text)
            continue
        kwargs: dict[str, Any] = {'type': _TYPES[f.type], 'help': help_text, **meta}
        if f.default is not MISSING:
            kwargs['default'] = f.default
            if f.default not in ('', None):
                kwargs['help'] += ' (default: %(default)s)'
        parser.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace) -> TraversabilityTrainConfig:
    """Build the config from parsed flags, with one clear error for a bad value."""
    config = TraversabilityTrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(TraversabilityTrainConfig)})
    if config.stereo_config and config.labels != 'stereo':
        raise ValueError('--stereo-config applies to --labels stereo only')
    checks = (('epochs', config.epochs >= 1), ('batch_size', config.batch_size >= 2),
              ('lr', config.lr > 0), ('threads', config.threads >= 1),
              ('weight_decay', config.weight_decay >= 0), ('max_minutes', config.max_minutes >= 0),
              ('val_fraction', 0 < config.val_fraction < 1), ('frame_stride', config.frame_stride >= 1))
    for name, ok in checks:
        if not ok:
            raise ValueError(f'--{name.replace("_", "-")}: invalid value {getattr(config, name)!r}')
    return config


def config_to_dict(config: TraversabilityTrainConfig) -> dict[str, Any]:
    return asdict(config)
