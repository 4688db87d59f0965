"""The autopilot's decision for one stereo pair: steering ConvNet -> body-frame velocity proposal.

ROS-free so the whole path from pixels to command is tested without a node.
The network predicts path curvature (1/m, vehicle independent, as in PilotNet); the command's
yaw rate is speed * curvature, REP-103 signs (positive turns left).
"""
from __future__ import annotations

import math
import os

import numpy as np

from dave_core.command import Command
from dave_core.onnx_runner import MODEL_LOAD_ERRORS
from dave_core.steering import SteeringPredictor

# Encodings a colour camera driver may send; the network was trained on RGB.
COLOR_ENCODINGS = ('rgb8', 'bgr8')


class SteeringPilot:
    """Stereo pair in, `Command` out."""

    def __init__(self, predictor: SteeringPredictor, cruise_speed_mps: float = 0.8,
                 expected_size: tuple[int, int] | None = None) -> None:
        if not (math.isfinite(cruise_speed_mps) and cruise_speed_mps >= 0.0):
            raise ValueError(f'cruise_speed_mps must be >= 0, got {cruise_speed_mps!r}')
        self.predictor = predictor
        self.cruise_speed_mps = cruise_speed_mps
        self.expected_size = expected_size  # (width, height) of the camera the model was trained on

    @classmethod
    def from_file(cls, onnx_path: str | os.PathLike, cruise_speed_mps: float = 0.8,
                  onnx_threads: int = 1) -> 'SteeringPilot':
        """Load a steering model; any model problem becomes a ValueError naming the file."""
        try:
            predictor = SteeringPredictor.load(onnx_path, intra_op_threads=onnx_threads)
        except MODEL_LOAD_ERRORS as exc:
            raise ValueError(str(exc)) from None
        camera = predictor.model.contract.camera
        size = (int(camera['width']), int(camera['height'])) if camera else None
        return cls(predictor, cruise_speed_mps, size)

    def propose(self, left: np.ndarray, right: np.ndarray,
                left_encoding: str = 'rgb8', right_encoding: str = 'rgb8') -> Command:
        """Velocity proposal for one pair; ValueError names what is wrong with the input."""
        for side, encoding in (('left', left_encoding), ('right', right_encoding)):
            if encoding not in COLOR_ENCODINGS:
                raise ValueError(f'{side} image encoding {encoding!r} is not one of {COLOR_ENCODINGS}')
        if self.expected_size is not None:
            width, height = self.expected_size
            for side, image in (('left', left), ('right', right)):
                if image.shape[:2] != (height, width):
                    raise ValueError(f'{side} image is {image.shape[1]}x{image.shape[0]}, the model '
                                     f'was trained on {width}x{height} images')
        if left_encoding == 'bgr8':
            left = left[..., ::-1]
        if right_encoding == 'bgr8':
            right = right[..., ::-1]
        output = self.predictor.predict(np.ascontiguousarray(left), np.ascontiguousarray(right))
        speed = self.cruise_speed_mps if output.speed_mps is None else max(0.0, output.speed_mps)
        return Command(linear_mps=speed, angular_rps=speed * output.curvature_per_m)
