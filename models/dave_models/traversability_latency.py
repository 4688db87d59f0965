"""Latency of the shipped traversability model, alone and beside the steering model, on one core.

    python -m dave_models.traversability_latency --model-dir models --json out/trav_latency.json

Figures (milliseconds, medians and 95th percentiles of --runs single runs, onnxruntime CPU with
one intra-op thread, after the runner's warm-up):
  trav_onnx_ms_*      the network alone on a random input of its input size
  trav_segment_ms_*   camera-size image -> labels: resize, normalize, network, argmax, upsample
  both_ms_*           one camera-size stereo pair through steering (preprocessing included) and
                      traversability, one after the other, as the stack runs them
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dave_core.atomic_file import atomic_write_text
from dave_core.onnx_runner import MODEL_LOAD_ERRORS
from dave_core.segmentation import IMAGE_INPUT, TraversabilitySegmenter
from dave_core.steering import SteeringPredictor

logger = logging.getLogger(__name__)


def _time_ms(fn: Callable[[], object], runs: int) -> np.ndarray:
    samples = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - start) * 1e3
    return samples


def _summary(prefix: str, ms: np.ndarray) -> dict[str, float]:
    return {f'{prefix}_ms_p50': round(float(np.median(ms)), 3),
            f'{prefix}_ms_p95': round(float(np.percentile(ms, 95)), 3)}


def measure(model_dir: Path, runs: int = 200) -> dict[str, float | int | str]:
    """The figures of the module docstring; the steering ones only if steering.onnx is present."""
    segmenter = TraversabilitySegmenter.load(model_dir / 'traversability.onnx', intra_op_threads=1)
    camera = segmenter.model.contract.camera
    width, height = (int(camera['width']), int(camera['height'])) if camera else (320, 240)
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    right = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    x = rng.standard_normal((1,) + segmenter.spec.input_shape).astype(np.float32)
    spec = segmenter.spec
    figures: dict[str, float | int | str] = {'runs': runs, 'image': f'{width}x{height}',
                                             'network_input': f'{spec.width}x{spec.height}'}
    figures.update(_summary('trav_onnx', _time_ms(lambda: segmenter.model.run({IMAGE_INPUT: x}), runs)))
    figures.update(_summary('trav_segment', _time_ms(lambda: segmenter.segment(left), runs)))
    steering_path = model_dir / 'steering.onnx'
    if steering_path.is_file():
        steering = SteeringPredictor.load(steering_path, intra_op_threads=1)
        figures.update(_summary('steering_predict', _time_ms(lambda: steering.predict(left, right), runs)))
        figures.update(_summary('both', _time_ms(
            lambda: (steering.predict(left, right), segmenter.segment(left)), runs)))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-dir', type=Path, default=Path('models'),
                        help='directory with traversability.onnx (and steering.onnx)')
    parser.add_argument('--runs', type=int, default=200, help='timed single runs per figure')
    parser.add_argument('--json', type=Path, default=None, help='also write the figures here')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    if args.runs < 10:
        logger.error('--runs: expected >= 10 for percentiles, got %d', args.runs)
        return 2
    try:
        figures = measure(args.model_dir, args.runs)
    except (*MODEL_LOAD_ERRORS, ValueError) as exc:
        logger.error('%s', exc)
        return 2
    text = json.dumps(figures, indent=1)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, text + '\n')
    logger.info('%s', ' '.join(f'{k}={v}' for k, v in figures.items()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
