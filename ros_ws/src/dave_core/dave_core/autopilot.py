"""The autopilot's decision for one stereo pair: steering ConvNet -> body-frame velocity proposal.

ROS-free so the whole path from pixels to command is tested without a node.
The network predicts path curvature (1/m, vehicle independent, as in PilotNet); the command's
yaw rate is speed * curvature, REP-103 signs (positive turns left). A model that also predicts
the expert's speed sets the pace: below `turn_in_place_below_mps` it means "boxed in, turn in
place" (the expert's speed label there is 0), which no curvature can say.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from dave_core.command import Command
from dave_core.onnx_runner import MODEL_LOAD_ERRORS
from dave_core.steering import SteeringPredictor

# Encodings a colour camera driver may send; the network was trained on RGB.
COLOR_ENCODINGS = ('rgb8', 'bgr8')


@dataclass(frozen=True)
class Pace:
    """How a predicted speed becomes the command's; unused by a model that predicts none.

    Defaults are the reactive expert's (dave_sim.reactive_expert.ReactiveConfig): it slows to
    0.25 m/s near obstacles and turns in place at 1 rad/s when boxed in (speed label 0).
    """

    min_speed_mps: float = field(default=0.25, metadata={
        'description': 'slowest forward speed a predicted speed is raised to [m/s]'})
    turn_in_place_below_mps: float = field(default=0.125, metadata={
        'description': 'a predicted speed below this means turn in place [m/s]'})
    turn_in_place_rps: float = field(default=1.0, metadata={
        'description': 'yaw rate when turning in place [rad/s]'})

    def __post_init__(self) -> None:
        for name in ('min_speed_mps', 'turn_in_place_below_mps', 'turn_in_place_rps'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'pace.{name} must be >= 0, got {value!r}')
        if self.turn_in_place_below_mps > self.min_speed_mps:
            raise ValueError(f'pace.turn_in_place_below_mps ({self.turn_in_place_below_mps}) exceeds '
                             f'pace.min_speed_mps ({self.min_speed_mps})')


class SteeringPilot:
    """Stereo pair in, `Command` out."""

    def __init__(self, predictor: SteeringPredictor, cruise_speed_mps: float = 0.8,
                 expected_size: tuple[int, int] | None = None, pace: Pace | None = None) -> None:
        # 0 would leave a vehicle that never moves while everything reports "ok".
        if not (math.isfinite(cruise_speed_mps) and cruise_speed_mps > 0.0):
            raise ValueError(f'cruise_speed_mps must be > 0, got {cruise_speed_mps!r}')
        pace = pace or Pace()
        if pace.min_speed_mps > cruise_speed_mps:
            raise ValueError(f'pace.min_speed_mps ({pace.min_speed_mps}) exceeds cruise_speed_mps '
                             f'({cruise_speed_mps}): the cruise speed caps every predicted speed')
        self.predictor = predictor
        self.cruise_speed_mps = cruise_speed_mps
        self.expected_size = expected_size  # (width, height) of the camera the model was trained on
        self.pace = pace
        self._spin_direction = 0.0  # +1 / -1 while turning in place (kept, as the expert keeps it)

    @classmethod
    def from_file(cls, onnx_path: str | os.PathLike, cruise_speed_mps: float = 0.8,
                  onnx_threads: int = 1, pace: Pace | None = None) -> 'SteeringPilot':
        """Load a steering model; any model problem becomes a ValueError naming the file."""
        try:
            predictor = SteeringPredictor.load(onnx_path, intra_op_threads=onnx_threads)
        except MODEL_LOAD_ERRORS as exc:
            raise ValueError(str(exc)) from None
        camera = predictor.model.contract.camera
        size = (int(camera['width']), int(camera['height'])) if camera else None
        return cls(predictor, cruise_speed_mps, size, pace)

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
        return self.command_for(output.curvature_per_m, output.speed_mps)

    def command_for(self, curvature_per_m: float, speed_mps: float | None) -> Command:
        """The command for one network output (speed None: the model predicts no speed)."""
        if speed_mps is None:
            self._spin_direction = 0.0
            return Command(self.cruise_speed_mps, self.cruise_speed_mps * curvature_per_m)
        if not math.isfinite(speed_mps):  # passed on: the governor stops a non-finite proposal
            return Command(speed_mps, speed_mps * curvature_per_m)
        if speed_mps < self.pace.turn_in_place_below_mps:
            if not self._spin_direction:  # towards the side the network turns to; left if straight
                self._spin_direction = -1.0 if curvature_per_m < 0 else 1.0
            return Command(0.0, self._spin_direction * self.pace.turn_in_place_rps)
        self._spin_direction = 0.0
        speed = min(self.cruise_speed_mps, max(self.pace.min_speed_mps, speed_mps))  # cruise caps
        return Command(speed, speed * curvature_per_m)
