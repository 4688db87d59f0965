"""Score an exported steering model on recorded worlds, frame by frame, as deployed.

    python -m dave_models.steering_eval --model models/steering.onnx \\
        --data out/data/test --seeds 400-431 --json out/steering_test.json

Every stereo pair of the selected worlds of a `sim_dataset` directory goes through
`SteeringPredictor.predict` (the node's path: the sidecar's preprocessing, onnxruntime, one pair
at a time) and is compared with the expert's curvature label: the training's held-out metrics
(direction accuracy, MAE, timing-tolerant accuracy, near-ties), plus the direction accuracy of
each world and the direction confusion matrix (rows: label right/straight/left; columns: the
prediction). Training validates the torch model on the worlds it was compared on; this is the
figure for fresh worlds no recipe was chosen on.

With the expert's arc labels in the data, the direction accuracy is also split by the situation
the expert was in (`SITUATIONS`, from its straight arc and speed labels), each as
`direction_accuracy_<situation>` and `frames_<situation>` (its share of the frames): where the
misses are tells what the network fails to see. Data made with `sim_dataset --fragility` is also
split into the frames whose label a one-pixel perception error would flip and the others:
`frames_fragile`, `direction_accuracy_fragile`, `direction_accuracy_robust`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from dave_core import logs
from dave_core.atomic_file import atomic_write_text
from dave_core.onnx_runner import MODEL_LOAD_ERRORS
from dave_core.seeds import parse_seed_list
from dave_core.steering import SteeringPredictor
from dave_models.datasets import DatasetError, Manifest, load_manifest, read_shard
from dave_models.train import (TURN_IN_PLACE_BELOW_MPS, direction_classes, expert_near_ties, speed_metrics,
                                steering_metrics, training_camera)

logger = logging.getLogger(__name__)

DEFAULT_DEADBAND_PER_M = 0.05  # the training default, for a sidecar that does not state its own
CAMERA_KEYS = ('width', 'height', 'fx')
LABEL_ARRAYS = ('curvature', 'world_seed', 'speed', 'arc_free_m', 'arc_clearance_m', 'obstacle_ahead',
                'direction_fragile')
# The situations the expert meets, from its labels (`situations`): it turns in place (boxed in;
# its side is kept from the moment it started, which no single view shows); an obstacle on its
# straight arc within CLOSE_M ('close'), or further but within its horizon ('blocked'); the
# straight arc free, passing an obstacle within TIGHT_M ('tight': straight or turn hangs on
# centimetres the camera must resolve) or with more room ('open').
SITUATIONS = ('turn_in_place', 'close', 'blocked', 'tight', 'open')
CLOSE_M = 1.0
TIGHT_M = 0.1


def model_deadband(predictor: SteeringPredictor) -> float:
    """The direction deadband the model was trained and validated with (sidecar metrics)."""
    value = predictor.model.contract.metrics.get('deadband_per_m', DEFAULT_DEADBAND_PER_M)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else DEFAULT_DEADBAND_PER_M


def check_camera(predictor: SteeringPredictor, manifest: Manifest) -> None:
    """A model trained on another camera than the data's would be scored on images it never
    saw the like of: refused, naming both."""
    trained = predictor.model.contract.camera
    recorded = training_camera(manifest.source)
    for key in CAMERA_KEYS:
        if key in trained and key in recorded and not math.isclose(trained[key], recorded[key], rel_tol=1e-3):
            raise ValueError(f'{manifest.root}: recorded with camera {key}={recorded[key]}, but '
                             f'{predictor.model.path} was trained with {key}={trained[key]}')


def evaluate_worlds(predictor: SteeringPredictor, manifest: Manifest, seeds: set[int],
                    deadband: float) -> dict:
    """Metrics over every frame of `seeds` in the data set, predicted one pair at a time."""
    missing = seeds - set(manifest.world_seeds)
    if missing or not seeds:  # a world asked for and not scored would go unnoticed in the mean
        raise DatasetError(f'{manifest.root}: no frame of worlds {sorted(missing)}')
    predicted, speed_pred = [], []
    columns: dict[str, list[np.ndarray | None]] = {name: [] for name in LABEL_ARRAYS}
    for shard in manifest.shards:
        if not seeds & set(shard.world_seeds):
            continue
        samples = read_shard(manifest, shard)
        keep = np.isin(samples.world_seed, sorted(seeds))
        for i in np.flatnonzero(keep):
            output = predictor.predict(samples.left[i], samples.right[i])
            predicted.append(output.curvature_per_m)
            speed_pred.append(output.speed_mps)
        for name in LABEL_ARRAYS:  # labels only: every shard's images would take GBs
            array = getattr(samples, name)
            columns[name].append(None if array is None else array[keep])
    arrays = {name: None if any(c is None for c in parts) else np.concatenate(parts)
              for name, parts in columns.items()}
    prediction = np.asarray(predicted, np.float64)
    label, world = arrays['curvature'], arrays['world_seed']
    arcs = SimpleNamespace(arc_free_m=arrays['arc_free_m'], arc_clearance_m=arrays['arc_clearance_m'])
    near_tie = expert_near_ties(arcs, np.arange(len(label)), deadband)
    figures: dict = steering_metrics(prediction, label, deadband, arrays['obstacle_ahead'],
                                     sequence=world, near_tie=near_tie)
    if arrays['speed'] is not None and all(s is not None for s in speed_pred):
        figures.update(speed_metrics(np.asarray(speed_pred, np.float64), arrays['speed']))
    hits = direction_classes(prediction, deadband) == direction_classes(label, deadband)
    per_world = {int(s): float(hits[world == s].mean()) for s in np.unique(world)}
    figures['worlds'] = len(per_world)
    figures['direction_accuracy_worst_world'] = min(per_world.values())
    figures['direction_accuracy_world_std'] = float(np.std(list(per_world.values())))
    figures['direction_accuracy_per_world'] = per_world
    figures['direction_confusion'] = confusion(prediction, label, deadband)
    situation = expert_situations(arrays)
    if situation is not None:
        for index, name in enumerate(SITUATIONS):
            chosen = situation == index
            figures[f'frames_{name}'] = float(chosen.mean())
            if chosen.any():
                figures[f'direction_accuracy_{name}'] = float(hits[chosen].mean())
    if arrays['direction_fragile'] is not None:
        fragile = arrays['direction_fragile'].astype(bool)
        figures['frames_fragile'] = float(fragile.mean())
        for name, chosen in (('fragile', fragile), ('robust', ~fragile)):
            if chosen.any():
                figures[f'direction_accuracy_{name}'] = float(hits[chosen].mean())
    return figures


def expert_situations(arrays: dict[str, np.ndarray | None]) -> np.ndarray | None:
    """`situations` of the data's frames; None without the expert's arc and speed labels."""
    if any(arrays[name] is None for name in ('arc_free_m', 'arc_clearance_m', 'speed')):
        return None
    try:  # the arc labels are dave_sim's expert's; without dave_sim there is no split
        from dave_sim.reactive_expert import ReactiveConfig
    except ImportError:
        return None
    return situations(arrays['arc_free_m'], arrays['arc_clearance_m'], arrays['speed'], ReactiveConfig().horizon_m)


def situations(arc_free_m: np.ndarray, arc_clearance_m: np.ndarray, speed: np.ndarray,
               horizon_m: float) -> np.ndarray:
    """Per frame, the index in SITUATIONS of what the expert faced, from its labels: the speed
    and the free length and clearance [m] of the middle (straight) arc of its fan (N, K), whose
    free lengths stop at `horizon_m`."""
    straight = arc_free_m.shape[1] // 2
    free, clearance = arc_free_m[:, straight], arc_clearance_m[:, straight]
    # Turning in place as speed_metrics counts it (the expert's speed label is 0 there).
    return np.select([speed < TURN_IN_PLACE_BELOW_MPS, free < CLOSE_M, free < horizon_m - 1e-3, clearance < TIGHT_M],
                     [0, 1, 2, 3], default=4)


def confusion(predicted: np.ndarray, label: np.ndarray, deadband: float) -> list[list[int]]:
    """3x3 counts, rows the label's direction and columns the prediction's: right, straight, left."""
    rows = direction_classes(label, deadband) + 1  # -1 right, 0 straight, +1 left -> 0, 1, 2
    cols = direction_classes(predicted, deadband) + 1
    counts = np.zeros((3, 3), np.int64)
    np.add.at(counts, (rows, cols), 1)
    return counts.tolist()


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', type=Path, required=True, help='the steering .onnx (its sidecar beside it)')
    parser.add_argument('--data', type=Path, required=True, help='a `python -m dave_models.sim_dataset` directory')
    parser.add_argument('--seeds', default=None, help='world seeds to score, e.g. 400-431 (default: all in --data)')
    parser.add_argument('--deadband', type=float, default=None,
                        help='curvature (1/m) within which a direction is "straight" '
                             '(default: the model\'s training deadband from its sidecar)')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    args = parser.parse_args(argv)
    logs.configure()
    if args.deadband is not None and not 0 <= args.deadband < float('inf'):
        logger.error('--deadband must be a finite curvature >= 0, got %s', args.deadband)
        return 2
    try:
        predictor = SteeringPredictor.load(args.model)
        manifest = load_manifest(args.data)
        seeds = set(parse_seed_list(args.seeds, '--seeds')) if args.seeds else set(manifest.world_seeds)
        check_camera(predictor, manifest)
        deadband = model_deadband(predictor) if args.deadband is None else args.deadband
        figures = evaluate_worlds(predictor, manifest, seeds, deadband)
    except (*MODEL_LOAD_ERRORS, ValueError) as exc:
        logger.error('%s', exc)
        return 2
    figures = {**_rounded(figures), 'deadband_per_m': deadband, 'model': str(args.model),
               'data_id': manifest.data_id}
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(figures, indent=1) + '\n')
    logger.info('%s', ' '.join(f'{k}={v}' for k, v in figures.items()
                               if k not in ('direction_accuracy_per_world', 'direction_confusion')))
    return 0


if __name__ == '__main__':
    from dave_core.entry import run_tool
    raise SystemExit(run_tool(main, 'python -m dave_models.steering_eval'))
