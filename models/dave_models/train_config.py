"""Options of steering training as one dataclass, and the argparse flags generated from it.

Kept free of torch so `dave --help` and `dave train --help` stay fast.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass
from typing import Any

from dave_models.config_flags import add_dataclass_arguments, check_values, config_from_namespace, opt


@dataclass
class SteeringTrainConfig:
    """Every default has a reason; see the help strings."""
    data: str = opt(MISSING, 'shard directory written by dave_models.sim_dataset', required=True)
    out: str = opt(MISSING, 'output directory for checkpoints, metrics.json, learning_curve.png',
                    required=True)
    seed: int = opt(0, 'seed of weights init, world split, shuffling and augmentation')
    epochs: int = opt(4, 'passes over the training worlds; on 6k sim frames held-out MAE was best '
                          'at epoch 4 of 12 (later epochs overfit the 30 worlds)')
    batch_size: int = opt(64, 'big enough for stable BatchNorm statistics, small enough for CPU')
    lr: float = opt(1e-3, 'AdamW peak learning rate, cosine-decayed to 0 over the run')
    weight_decay: float = opt(1e-4, 'mild L2; the data sets are small')
    device: str = opt('cpu', 'cpu or cuda', choices=('cpu', 'cuda'))
    threads: int = opt(2, 'torch CPU threads; the machines here have 2 cores shared by others')
    val_seeds: str = opt('', 'held-out world seeds, e.g. 30-35 (default: a seeded val-fraction)')
    val_fraction: float = opt(0.17, 'share of worlds held out when --val-seeds is not given (6 of 36)')
    crop_top: float = opt(0.30, 'share of image rows dropped at the top (sky); dave_core.preprocess')
    crop_bottom: float = opt(0.0, 'share of image rows dropped at the bottom (the ground right in '
                                  'front, which the expert\'s choice barely depends on)')
    input_height: int = opt(66, 'network input rows after cropping (PilotNet: 66)')
    input_width: int = opt(200, 'network input columns (PilotNet: 200)')
    perception: str = opt('', 'traversability checkpoint (dave train traversability ... last.pt): steer '
                              'from its maps of both views instead of from pixels; it stays frozen '
                              'and becomes part of the exported steering model. Sets the input to '
                              'its size and normalization (the crop and input flags do not apply)')
    init: str = opt('', 'steering checkpoint to start from: its network, weights and preprocessing, '
                        'with a fresh optimizer and schedule (fine-tuning; not --resume). Not with '
                        '--perception: a perception model brings its own. With --aux-weight, a '
                        'checkpoint without an aux head gets a new one')
    perception_lr: float = opt(0.0, 'learning rate of the traversability network inside a perception '
                                     'model (--perception or --init of one); 0 keeps it frozen. Its '
                                     'BatchNorm statistics stay frozen either way')
    deadband: float = opt(0.05, 'direction accuracy: |curvature| <= this counts as straight (1/m; '
                                 'radius >= 20 m, < 3 deg/s of yaw at 1 m/s)')
    augment: bool = opt(True, 'training augmentation (dave_models.augment): flip with left/right '
                               'swap, view rotation and shift with label correction, ground shadows, blur, '
                               'brightness/contrast; the --aug-* flags set each one', negatable=True)
    # Mirrors dave_models.augment.AugmentConfig (whose comments give the reasons); a test checks
    # the defaults agree. Rotation and shadow disparity need the data's camera in its manifest.
    aug_rotate_prob: float = opt(0.3, 'share of pairs re-rendered as if the vehicle were yawed, '
                                       'with the label corrected to steer back to the path')
    aug_rotate_max_deg: float = opt(5.0, 'largest yaw of a view rotation (deg); DART noise covers '
                                          'a few degrees already')
    aug_return_distance: float = opt(3.5, 'distance (m) over which a rotated view\'s label rejoins '
                                           'the path: correction -2 sin(yaw)/L; the expert\'s horizon')
    aug_shift_prob: float = opt(0.0, 'share of pairs re-rendered as if the vehicle stood beside its '
                                      'pose (per-pixel shift from the pair\'s own stereo disparity), '
                                      'label corrected to rejoin the path; off by default: ~30 ms of '
                                      'stereo matching per pair, and sim data has DART recoveries')
    aug_shift_max: float = opt(0.1, 'largest sideways displacement of a view shift (m)')
    aug_shadow_prob: float = opt(0.3, 'share of pairs with a dark band across the ground (same '
                                       'shadow in both views, shifted by the ground disparity)')
    aug_blur_prob: float = opt(0.2, 'share of pairs blurred (Gaussian or horizontal motion, same '
                                     'kernel in both views)')
    label: str = opt('expert', 'curvature label trained on: expert (its command, which leans '
                               'towards its previous arc) or memoryless (its choice from this view '
                               'alone; needs data from this sim_dataset). Held-out metrics are '
                               'always also reported against the expert label',
                      choices=('expert', 'memoryless'))
    head: str = opt('regression', 'regression (MSE on curvature) or arcs (cross-entropy over the '
                                   'expert\'s arc fan, curvature read from its softmax by --arc-readout)',
                     choices=('regression', 'arcs'))
    arc_readout: str = opt('mean', 'arcs head only: how its softmax gives the curvature: mean (of '
                                    'the fan, weighted) or direction (the most probable of right/'
                                    'straight/left, then the weighted mean of its arcs). Applies to '
                                    '--init models too', choices=('mean', 'direction'))
    mse_weight: float = opt(0.0, 'arcs head only: add this weight times the MSE of its '
                                  'curvature output; cross-entropy alone under-steers on the rare sharp '
                                  'turns (see the steering card)')
    direction_weight: float = opt(0.0, 'arcs head only: add this weight times the cross-entropy of '
                                        'its right/straight/left probabilities (summed over each side\'s '
                                        'arcs) against the label\'s direction (--deadband): what '
                                        'direction accuracy scores')
    aux_weight: float = opt(0.0, 'weight of the auxiliary loss predicting each arc\'s free length '
                                  'and clearance (privileged labels in the data); 0 = no aux head')
    predict_speed: bool = opt(False, 'also predict the expert\'s speed (needs speed labels): a regressed speed '
                              'and a "turn in place" logit (speed 0 where it fires); with --init, '
                              'both are added to the checkpoint\'s head')
    speed_weight: float = opt(0.1, 'weight of the speed loss (m/s errors are ~10x curvature ones)')
    dry_run: bool = opt(False, 'one epoch of at most 2 batches: checks the whole path quickly')
    resume: str | None = opt(None, 'continue from a checkpoint (default OUT/last.pt when given '
                                    'without a path); a larger --epochs extends the finished run, its '
                                    'learning rate going on along the longer cosine', nargs='?', const='')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per SteeringTrainConfig field (--batch-size for batch_size, ...)."""
    add_dataclass_arguments(parser, SteeringTrainConfig)


def config_from_args(args: argparse.Namespace) -> SteeringTrainConfig:
    """Build the config from parsed flags, with one clear error for a bad value."""
    config = config_from_namespace(SteeringTrainConfig, args)
    checks = (('epochs', config.epochs >= 1), ('batch_size', config.batch_size >= 2),
              ('lr', config.lr > 0), ('threads', config.threads >= 1),
              ('deadband', config.deadband >= 0), ('weight_decay', config.weight_decay >= 0),
              ('val_fraction', 0 < config.val_fraction < 1), ('speed_weight', config.speed_weight >= 0),
              ('aug_rotate_prob', 0 <= config.aug_rotate_prob <= 1),
              ('aug_rotate_max_deg', 0 <= config.aug_rotate_max_deg <= 30),
              ('aug_return_distance', config.aug_return_distance > 0),
              ('aug_shift_prob', 0 <= config.aug_shift_prob <= 1),
              ('aug_shift_max', 0 <= config.aug_shift_max <= 0.5),
              ('aug_shadow_prob', 0 <= config.aug_shadow_prob <= 1),
              ('aug_blur_prob', 0 <= config.aug_blur_prob <= 1), ('aux_weight', config.aux_weight >= 0),
              ('mse_weight', config.mse_weight >= 0), ('direction_weight', config.direction_weight >= 0),
              ('perception_lr', config.perception_lr >= 0),
              ('crop_top', 0 <= config.crop_top < 1), ('crop_bottom', 0 <= config.crop_bottom < 1),
              ('crop_bottom', config.crop_top + config.crop_bottom < 0.9),
              ('input_height', config.input_height >= 16), ('input_width', config.input_width >= 16))
    check_values(config, checks)
    return config


def config_to_dict(config: SteeringTrainConfig) -> dict[str, Any]:
    return asdict(config)
