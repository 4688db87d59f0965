"""Latency, parameter and FLOP counts of the shipped ONNX models on this machine (onnxruntime CPU).

Each network is timed at its deployment input size on a real stereo-sized input, after the
runner's warm-up, for 1 and 2 intra-op threads; figures are medians and 95th percentiles of
repeated single runs. `both_ms_p50` is one stereo pair through every model present, the way the
stack runs them, including preprocessing; `preprocess_ms_p50` is the stereo preprocessing alone.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from dave_core.onnx_runner import OnnxModel

Figures = dict[str, float | int | str]
TASK_FILES = {'steering': 'steering.onnx', 'traversability': 'traversability.onnx'}


@dataclass(frozen=True)
class ModelBenchConfig:
    runs: int = 200  # single-run samples per figure; enough for a stable p95
    threads: tuple[int, ...] = (1, 2)
    image_width: int = 320  # the camera the shipped models were trained on
    image_height: int = 240

    def __post_init__(self) -> None:
        if self.runs < 10:
            raise ValueError(f'runs must be >= 10 for percentiles, got {self.runs}')


def count_parameters(model: onnx.ModelProto) -> int:
    """Number of scalars in the model's initializers (the trained weights)."""
    return int(sum(numpy_helper.to_array(t).size for t in model.graph.initializer))


def count_flops(model: onnx.ModelProto) -> int:
    """Multiply-adds x 2 of Conv, ConvTranspose, Gemm and MatMul nodes, from inferred shapes."""
    inferred = shape_inference.infer_shapes(model)
    shapes: dict[str, tuple[int, ...]] = {}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value for d in dims)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    flops = 0
    for node in inferred.graph.node:
        if node.op_type in ('Conv', 'ConvTranspose'):
            weight, out = shapes.get(node.input[1]), shapes.get(node.output[0])
            if not weight or not out:
                continue
            kernel = int(np.prod(weight[2:]))
            if node.op_type == 'Conv':  # weight (Cout, Cin/groups, kh, kw)
                flops += 2 * int(np.prod(out)) * weight[1] * kernel
            else:  # weight (Cin, Cout/groups, kh, kw): every input pixel scatters a kernel
                inp = shapes.get(node.input[0])
                if inp:
                    flops += 2 * int(np.prod(inp)) * weight[1] * kernel
        elif node.op_type in ('Gemm', 'MatMul'):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if a and out:
                flops += 2 * int(np.prod(out)) * a[-1]
    return flops


def _time_ms(fn: Callable[[], object], runs: int) -> np.ndarray:
    samples = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - start) * 1e3
    return samples


def _random_inputs(model: OnnxModel, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {t.name: rng.standard_normal([d if isinstance(d, int) and d > 0 else 1 for d in t.shape])
            .astype(np.float32) for t in model.inputs}


def run_model_bench(model_dir: str | Path, config: ModelBenchConfig = ModelBenchConfig()) -> Figures:
    """Figures for every shipped model found in `model_dir`; FileNotFoundError if there is none."""
    model_dir = Path(model_dir)
    present = {task: model_dir / name for task, name in TASK_FILES.items() if (model_dir / name).is_file()}
    if not present:
        raise FileNotFoundError(f'{model_dir}: no {" or ".join(TASK_FILES.values())} found')
    rng = np.random.default_rng(0)
    figures: Figures = {'runs': config.runs}
    for task, path in present.items():
        OnnxModel.load(path, expected_task=task)  # model + sidecar checked before onnx parses it
        proto = onnx.load(str(path))
        figures[f'{task}_params'] = count_parameters(proto)
        figures[f'{task}_mflops'] = round(count_flops(proto) / 1e6, 2)
        for threads in config.threads:
            model = OnnxModel.load(path, expected_task=task, intra_op_threads=threads)
            inputs = _random_inputs(model, rng)
            ms = _time_ms(lambda: model.run(inputs), config.runs)
            suffix = '' if threads == 1 else f'_{threads}threads'
            figures[f'{task}_ms_p50{suffix}'] = round(float(np.median(ms)), 3)
            figures[f'{task}_ms_p95{suffix}'] = round(float(np.percentile(ms, 95)), 3)
    if 'steering' in present:
        figures['preprocess_ms_p50'] = round(float(np.median(_preprocess_pair(present['steering'], config))), 3)
    figures['both_ms_p50'] = round(float(np.median(_pair_through_all(present, config))), 3)
    figures['models'] = ','.join(present)
    return figures


def _camera_pair(config: ModelBenchConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (config.image_height, config.image_width, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)


def _preprocess_pair(steering_model: Path, config: ModelBenchConfig) -> np.ndarray:
    """The steering network's stereo preprocessing alone (crop, resize, normalise, stack), as its
    sidecar specifies it."""
    from dave_core.model_contract import load_contract
    from dave_core.preprocess import PreprocessSpec, preprocess_stereo
    spec = PreprocessSpec.from_dict(load_contract(steering_model).preprocessing)
    left, right = _camera_pair(config, seed=2)
    preprocess_stereo(left, right, spec)
    return _time_ms(lambda: preprocess_stereo(left, right, spec), config.runs)


def _pair_through_all(present: dict[str, Path], config: ModelBenchConfig) -> np.ndarray:
    """One camera-sized stereo pair through every present model, preprocessing included, 1 thread."""
    left, right = _camera_pair(config, seed=1)
    steps: list[Callable[[], object]] = []
    for task, path in present.items():
        runner = PAIR_RUNNERS[task](path)
        steps.append(lambda runner=runner: runner(left, right))
    return _time_ms(lambda: [step() for step in steps], config.runs)


def _steering_runner(path: Path) -> Callable[[np.ndarray, np.ndarray], object]:
    from dave_core.steering import SteeringPredictor
    return SteeringPredictor.load(path).predict


def _traversability_runner(path: Path) -> Callable[[np.ndarray, np.ndarray], object]:
    from dave_core.segmentation import TraversabilitySegmenter
    segmenter = TraversabilitySegmenter.load(path)
    return lambda left, _right: segmenter.segment(left)  # the segmenter looks at the left image


PAIR_RUNNERS: dict[str, Callable[[Path], Callable[[np.ndarray, np.ndarray], object]]] = {
    'steering': _steering_runner,
    'traversability': _traversability_runner,
}
