"""The steering model's I/O: tensor names, postprocessing, and a one-call stereo predictor.

Sign convention (REP-103): positive curvature turns left (counter-clockwise yaw), and
curvature = yaw rate / speed, in 1/m.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from dave_core.onnx_runner import OnnxModel
from dave_core.preprocess import PreprocessSpec, preprocess_stereo

STEERING_TASK = 'steering'
STEREO_INPUT = 'stereo'  # float32 (1, 6, h, w): left channels, then right
CURVATURE_OUTPUT = 'curvature_per_m'  # float32 (1, 1)
SPEED_OUTPUT = 'speed_mps'  # optional float32 (1, 1)


@dataclass(frozen=True)
class SteeringOutput:
    """What the steering net proposes: path curvature (1/m, + = left) and optionally a speed."""
    curvature_per_m: float
    speed_mps: float | None = None


def _scalar(outputs: Mapping[str, np.ndarray], name: str) -> float:
    value = np.asarray(outputs[name])
    if value.size != 1:
        raise ValueError(f'steering output {name!r}: expected one value, got shape {value.shape}')
    number = float(value.reshape(()))
    if not math.isfinite(number):
        raise ValueError(f'steering output {name!r} is not finite ({number})')
    return number


def postprocess_steering(outputs: Mapping[str, np.ndarray]) -> SteeringOutput:
    """Model outputs -> SteeringOutput; a missing or non-finite value is a ValueError."""
    if CURVATURE_OUTPUT not in outputs:
        raise ValueError(f'steering outputs lack {CURVATURE_OUTPUT!r} (have: {sorted(outputs)})')
    speed = _scalar(outputs, SPEED_OUTPUT) if SPEED_OUTPUT in outputs else None
    return SteeringOutput(curvature_per_m=_scalar(outputs, CURVATURE_OUTPUT), speed_mps=speed)


class SteeringPredictor:
    """Stereo pair in, SteeringOutput out: preprocessing from the sidecar + OnnxModel + postprocess."""

    def __init__(self, model: OnnxModel):
        if model.contract.task != STEERING_TASK:
            raise ValueError(f'{model.path}: task is {model.contract.task!r}, not {STEERING_TASK!r}')
        if STEREO_INPUT not in model.input_names or CURVATURE_OUTPUT not in model.output_names:
            raise ValueError(f'{model.path}: a steering model needs input {STEREO_INPUT!r} and '
                             f'output {CURVATURE_OUTPUT!r} (has {model.input_names} -> '
                             f'{model.output_names})')
        self.model = model
        self.spec = PreprocessSpec.from_dict(model.contract.preprocessing)

    @classmethod
    def load(cls, onnx_path: str | os.PathLike, providers: Sequence[str] | str | None = None,
             intra_op_threads: int = 1) -> 'SteeringPredictor':
        return cls(OnnxModel.load(onnx_path, expected_task=STEERING_TASK, providers=providers,
                                  intra_op_threads=intra_op_threads))

    def predict(self, left: np.ndarray, right: np.ndarray) -> SteeringOutput:
        """Full-size HxWx3 uint8 RGB stereo pair -> SteeringOutput."""
        x = preprocess_stereo(left, right, self.spec)[np.newaxis]
        return postprocess_steering(self.model.run({STEREO_INPUT: x}))
