"""Options of traversability training as one dataclass, and the argparse flags generated from it.

Kept free of torch so `dave --help` and `dave train --help` stay fast.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass
from typing import Any

from dave_models.config_flags import add_dataclass_arguments, check_values, config_from_namespace, opt

# Where the per-pixel training labels come from. 'gt': the simulator's ground truth recorded by
# `dave collect`. 'stereo': LAGR's self-supervised labels from stereo geometry (ground plane fit,
# height above it, within the reliable range; dave_core.stereo_geometry), what a real robot has.
# Validation scores against simulator ground truth whenever the bags hold it.
LABEL_SOURCES = ('gt', 'stereo')




@dataclass
class TraversabilityTrainConfig:
    """Every default has a reason; see the help strings."""
    data: str = opt(MISSING, '`dave collect` output directory (or a folder of its bags)', required=True)
    out: str = opt(MISSING, 'output directory for checkpoints, metrics.json, learning_curve.png',
                    required=True)
    labels: str = opt('gt', 'training labels: gt = simulator ground truth; stereo = self-supervised '
                             'from stereo geometry within 7 m (no hand labels; unlabelled pixels are '
                             'ignored by the loss). Validation scores against ground truth when the bags '
                             'hold it, and for stereo also beyond stereo range', choices=LABEL_SOURCES)
    stereo_config: str = opt('', 'JSON file of dave_core.stereo_geometry.StereoLabelConfig fields for '
                                  '--labels stereo, e.g. {"nominal_pitch_deg": 15, "max_range_m": 10} '
                                  '(default: the simulator camera\'s settings)')
    cache: str = opt('', 'directory of the per-bag .npz cache (default: OUT/cache)')
    seed: int = opt(0, 'seed of weights init, world split, shuffling and augmentation')
    epochs: int = opt(8, 'passes over the training worlds (~2.5k frames; held-out mIoU flattens '
                          'after ~6 on the sim data)')
    max_minutes: float = opt(0.0, 'stop after the first epoch that ends past this many minutes of '
                                   'training (0: no limit); the cosine schedule still spans --epochs')
    batch_size: int = opt(32, 'per-pixel loss: 32 frames are ~600k labelled pixels per step')
    lr: float = opt(3e-3, 'AdamW peak learning rate, cosine-decayed to 0 over the run')
    weight_decay: float = opt(1e-4, 'mild L2; the data sets are small')
    balance: bool = opt(True, 'weight the loss by 1/sqrt(class frequency): obstacles are ~10 %% of '
                               'pixels but half of the mIoU', negatable=True)
    device: str = opt('cpu', 'cpu or cuda', choices=('cpu', 'cuda'))
    threads: int = opt(1, 'torch CPU threads; one core, as the machines here are shared')
    val_seeds: str = opt('', 'held-out world seeds, e.g. 30-35 (default: a seeded val-fraction)')
    val_fraction: float = opt(0.17, 'share of worlds held out when --val-seeds is not given (6 of 36)')
    frame_stride: int = opt(1, 'keep every k-th recorded frame (consecutive ones are near-duplicates)')
    augment: bool = opt(True, 'horizontal flip + brightness/contrast jitter', negatable=True)
    dry_run: bool = opt(False, 'one epoch of at most 2 batches: checks the whole path quickly')
    resume: str | None = opt(None, 'continue from a checkpoint (default OUT/last.pt when given '
                                    'without a path); a larger --epochs extends the finished run, its '
                                    'learning rate going on along the longer cosine', nargs='?', const='')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per TraversabilityTrainConfig field (--batch-size for batch_size, ...)."""
    add_dataclass_arguments(parser, TraversabilityTrainConfig)


def config_from_args(args: argparse.Namespace) -> TraversabilityTrainConfig:
    """Build the config from parsed flags, with one clear error for a bad value."""
    config = config_from_namespace(TraversabilityTrainConfig, args)
    if config.stereo_config and config.labels != 'stereo':
        raise ValueError('--stereo-config applies to --labels stereo only')
    checks = (('epochs', config.epochs >= 1), ('batch_size', config.batch_size >= 2),
              ('lr', config.lr > 0), ('threads', config.threads >= 1),
              ('weight_decay', config.weight_decay >= 0), ('max_minutes', config.max_minutes >= 0),
              ('val_fraction', 0 < config.val_fraction < 1), ('frame_stride', config.frame_stride >= 1))
    check_values(config, checks)
    return config


def config_to_dict(config: TraversabilityTrainConfig) -> dict[str, Any]:
    return asdict(config)
