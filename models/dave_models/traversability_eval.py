"""Score an exported traversability model on recorded worlds, at camera resolution, as deployed.

    python -m dave_models.traversability_eval --model models/traversability.onnx \\
        --data out/collect/trav_v1 --seeds 30-35 --json out/trav_eval.json

Every left image of the selected worlds' bags goes through `TraversabilitySegmenter.segment`
(the node's path: resize, network, argmax, nearest upsampling) and is compared with the
simulator's ground truth at the camera's own resolution. Training validates at network size;
this is the figure a consumer of /traversability/labels sees.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from dave_core import recording as rec
from dave_core.atomic_file import atomic_write_text
from dave_core.onnx_runner import MODEL_LOAD_ERRORS
from dave_core.segmentation import TraversabilitySegmenter
from dave_core.seeds import parse_seed_list
from dave_models.traversability_data import (NUM_CLASSES, TraversabilityDataError, find_bags,
                                             world_seed_of)
from dave_models.traversability_train import confusion_matrix, iou_metrics

logger = logging.getLogger(__name__)


def evaluate_bags(segmenter: TraversabilitySegmenter, bags: list[Path]) -> dict[str, float]:
    """IoU metrics over every (left image, GT labels) pair with one stamp in `bags`."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    frames = 0
    for bag in bags:
        lefts: dict[int, np.ndarray] = {}
        truth: dict[int, np.ndarray] = {}
        for topic, _, msg in rec.read_messages(bag, (rec.LEFT_IMAGE, rec.GT_LABELS)):
            target = lefts if topic == rec.LEFT_IMAGE else truth
            target[rec.stamp_to_ns(msg.header.stamp)] = rec.image_to_numpy(msg)
        for stamp in sorted(set(lefts) & set(truth)):
            confusion += confusion_matrix(segmenter.segment(lefts[stamp]), truth[stamp])
            frames += 1
    if frames == 0:
        raise TraversabilityDataError(f'{bags[0].parent}: no image/label pairs in the selected bags')
    return {**iou_metrics(confusion), 'frames': float(frames)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', type=Path, required=True, help='the .onnx (its sidecar beside it)')
    parser.add_argument('--data', required=True, help='a `dave collect` directory or a folder of bags')
    parser.add_argument('--seeds', required=True, help='world seeds to score, e.g. 30-35')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        wanted = set(parse_seed_list(args.seeds))
        segmenter = TraversabilitySegmenter.load(args.model)
        bags = [b for b in find_bags(args.data) if world_seed_of(b, rec.read_info(b)) in wanted]
        if not bags:
            raise TraversabilityDataError(f'--data {args.data}: no bag of worlds {sorted(wanted)}')
        figures = evaluate_bags(segmenter, bags)
    except (*MODEL_LOAD_ERRORS, ValueError) as exc:
        logger.error('%s', exc)
        return 2
    figures = {**{k: round(v, 4) for k, v in figures.items()}, 'seeds': args.seeds,
               'model': str(args.model)}
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(figures, indent=1) + '\n')
    logger.info('%s', ' '.join(f'{k}={v}' for k, v in figures.items()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
